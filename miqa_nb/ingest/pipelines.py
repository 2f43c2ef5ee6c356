"""The project's automatic processing after an archive (XNAT's ``triggerPipelines``).

XNAT runs a project's pipelines on each session it creates or changes unless the
import says ``triggerPipelines=false``. Here the processing is :data:`PIPELINES`: today
the thumbnail of each new frame (:func:`thumbnails`, the pictures the dashboard's
overview shows, in the catalog's thumbnail folder,
:func:`~miqa_nb.volumes.thumbnails.catalog_thumbnail_dir`), quality metrics when
they exist. Without it the thumbnails are still made, on the overview's first view.

:func:`run_pipelines` runs them on one worker thread of the process (the server's),
one archive after another, so an import's answer never waits for them and two
archives do not fight over the cores; it returns a :class:`~concurrent.futures.Future`
of the :class:`PipelineRun`. Failures are logged, never raised: a frame whose picture
cannot be made is noted in the run (``failed``) and the others go on; the archived
scans stay reviewable whatever happens here. The worker is a daemon thread: a server
that stops leaves the rest undone (a half-written picture never, as they are written
atomically), and the overview makes what is missing.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from miqa_nb.catalog import Catalog
from miqa_nb.volumes import LoadLimits
from miqa_nb.volumes.thumbnails import catalog_thumbnail_dir, thumbnail

if TYPE_CHECKING:  # archiving starts the pipelines: it imports this module
    from miqa_nb.ingest.archiving import Archived

__all__ = ["PIPELINES", "PipelineRun", "run_pipelines", "thumbnails"]

log = logging.getLogger(__name__)


@dataclass
class PipelineRun:
    """What one run of the pipelines did: files made, and what failed (with why)."""

    made: list[Path] = field(default_factory=list)
    #: ``(what, why)``: a frame's file or a pipeline's name, and the error's text.
    failed: list[tuple[str, str]] = field(default_factory=list)


def _frames(catalog: Catalog, archived: Sequence[Archived]) -> list[str]:
    """The file of every frame of the archived scans, in catalog order."""
    locations: list[str] = []
    for project in sorted({a.project for a in archived}):
        frames = catalog.frames(project)
        for one in (a for a in archived if a.project == project):
            mine = frames[
                (frames["experiment"] == one.experiment) & frames["scan"].isin(list(one.scans))
            ]
            locations.extend(str(v) for v in mine["location"])
    return locations


def thumbnails(catalog: Catalog, archived: Sequence[Archived], run: PipelineRun) -> None:
    """Make the thumbnail of each frame of the archived scans (as the overview draws
    them, so it finds them made); a frame that fails is noted and logged."""
    folder = catalog_thumbnail_dir(catalog.path)
    load = LoadLimits.from_environ(data_roots=catalog.data_roots).load
    for location in _frames(catalog, archived):
        if location.startswith("s3://"):
            continue
        try:
            run.made.append(thumbnail(location, folder, loader=load))
        except Exception as exc:  # one broken frame must not stop the others
            log.warning("pipelines: no thumbnail for %s: %s", location, exc)
            run.failed.append((location, str(exc)))


#: The project's automatic processing, in order: ``(name, function)``.
PIPELINES: tuple[tuple[str, Callable[[Catalog, Sequence[Archived], PipelineRun], None]], ...] = (
    ("thumbnails", thumbnails),
)


def _run(catalog: Catalog, archived: Sequence[Archived]) -> PipelineRun:
    run = PipelineRun()
    for name, pipeline in PIPELINES:
        try:
            pipeline(catalog, archived, run)
        except Exception as exc:  # logged, never raised: the archive is done
            log.exception("pipeline %s failed after archiving %s", name, _names(archived))
            run.failed.append((name, str(exc)))
    if run.failed:
        log.warning(
            "pipelines after archiving %s: %d file(s) made, %d failure(s)",
            _names(archived),
            len(run.made),
            len(run.failed),
        )
    return run


def _names(archived: Sequence[Archived]) -> str:
    return ", ".join(f"{a.project}/{a.experiment}" for a in archived) or "nothing"


# One worker thread per process, started on first use, fed by a queue.
_jobs: queue.SimpleQueue[tuple[Future[PipelineRun], Catalog, tuple[Archived, ...]]] = (
    queue.SimpleQueue()
)
_worker: threading.Thread | None = None
_start = threading.Lock()


def _serve() -> None:
    while True:
        future, catalog, archived = _jobs.get()
        if not future.set_running_or_notify_cancel():
            continue
        try:
            future.set_result(_run(catalog, archived))
        except BaseException as exc:  # pragma: no cover - _run logs and returns
            log.exception("pipelines stopped")
            future.set_exception(exc)


def run_pipelines(
    catalog: Catalog, archived: Sequence[Archived], *, background: bool = True
) -> Future[PipelineRun]:
    """Run the project's automatic processing on sessions just archived.

    Parameters
    ----------
    catalog : Catalog
    archived : sequence of Archived
        What :func:`~miqa_nb.ingest.archiving.archive_sessions` returned.
    background : bool
        Queue the work on the process's pipeline thread and return at once (the
        server's way); False runs it here, before returning.

    Returns
    -------
    Future of PipelineRun
        Done when the pipelines are; its result lists the files made and the
        failures, which are logged (the future never holds an exception of theirs).
        This never raises for the pipelines' sake: an archive that called it stands.
    """
    global _worker
    future: Future[PipelineRun] = Future()
    chosen = tuple(archived)
    if not background:
        future.set_running_or_notify_cancel()
        future.set_result(_run(catalog, chosen))
        return future
    try:
        with _start:
            if _worker is None or not _worker.is_alive():
                _worker = threading.Thread(target=_serve, name="miqa-pipelines", daemon=True)
                _worker.start()
    except RuntimeError as exc:  # no thread to be had: the archive stands all the same
        log.exception("pipelines not started after archiving %s", _names(chosen))
        future.set_running_or_notify_cancel()
        future.set_result(PipelineRun(failed=[("pipelines", str(exc))]))
        return future
    _jobs.put((future, catalog, chosen))
    return future

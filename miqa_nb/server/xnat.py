"""XNAT's import service on the dashboard's server: ``POST /data/services/import``.

What is built: an archive (zip, tar, tar.gz, or one DICOM file) sent as a multipart
form file or as the body (``inbody=true``), by any signed-in way (HTTP Basic, a token,
``JSESSIONID``), streamed to a staging folder (never whole in memory), unpacked safely
(:mod:`miqa_nb.ingest.archives`), its DICOM series read and routed as XNAT routes them
(``project``/``subject``/``session`` parameters, ``dest=/archive/projects/P``, else the
headers: :mod:`miqa_nb.ingest.dicom`), converted and archived as reviewable scans
(:mod:`miqa_nb.ingest.archiving`). The answer is XNAT's: 200 with ``text/uri-list``,
one ``/data/archive/projects/P/subjects/S/experiments/E`` per session; XNAT's error
texts with 400, 401, 403, 404 or 409. The staging folder is removed whatever happens.

With ``dest=/prearchive[/projects/P]``, or with no ``dest`` for a session whose headers
do not say ``AA:true`` (XNAT's default), the sessions are staged in the prearchive
instead (:mod:`miqa_nb.ingest.prearchive`, served by :mod:`miqa_nb.server.prearchive`)
and the answer lists ``/data/prearchive/projects/P/TIMESTAMP/SESSION``.

``import-handler``: ``SI`` (the default) and ``DICOM-zip`` as above; ``gradual-DICOM``
takes one DICOM file a request and adds it to the RECEIVING prearchive entry of its
study, built (and archived when asked) once quiet (:mod:`miqa_nb.ingest.gradual`);
``XAR`` archives a zip of a session document (a MIQA import file or XNAT's session XML)
and its files at once (:mod:`miqa_nb.ingest.xar`); any other name is a 400 naming
these. ``dest=/prearchive/projects/P/TIMESTAMP[/SESSION]`` merges the upload into that
existing entry (another study: 409).

With ``src=/user/cache/resources/X/files/NAME`` (several, or comma separated; also as
fields of a urlencoded or multipart form body) the files put earlier in the user's
cache (:mod:`miqa_nb.server.cache`) are imported instead of a body, as one upload: all
or nothing. As in XNAT, the default importer takes them out of the cache once
imported, and a named ``import-handler`` (``DICOM-zip``...) leaves them there; a
refused import leaves them all. An invalid ``src`` is 400 (``src uri is invalid``), a
missing file 404 (``Unknown src file``; the cache is always the caller's own).

With ``http-session-listener=ID`` the progress is recorded for ``GET /data/status/ID``
(:mod:`miqa_nb.server.status`); with ``src`` too, the answer is at once (``Submitted
for prearchival``, or ``... archival`` for ``dest=/archive...`` or XNAT's
``prearchive_code=1``) and the import runs in the background, which then owns the
staging folder and its lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import functools
import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import parse_qs, unquote

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import JupyterHandler
from tornado import web

from miqa_nb.catalog import Catalog, default_catalog_path
from miqa_nb.core.errors import MiqaError, NotFound, PermissionDenied
from miqa_nb.ingest.archives import UploadLimits, unpack
from miqa_nb.ingest.archiving import ArchiveConflict, archive_sessions
from miqa_nb.ingest.dicom import NotDicomError, read_sessions
from miqa_nb.ingest.gradual import merge_into, parse_entry_dest, receive, watch
from miqa_nb.ingest.prearchive import stage_sessions
from miqa_nb.ingest.uploads import MAX_FIELD_BYTES, UploadReceiver, UploadTooLarge
from miqa_nb.ingest.xar import import_xar
from miqa_nb.server.identity import act_as_owner

__all__ = ["ImportHandler", "ReceivingHandler", "XnatHandler"]

NO_FILES = "Upload did not include parsable files for session generation."
MANY_SESSIONS = "Upload included files for multiple imaging sessions."
SIGN_IN = "Authentication required: a user name and password or API token"
PROCESSING, FAILED, COMPLETED = "PROCESSING", "FAILED", "COMPLETED"

log = logging.getLogger(__name__)


class XnatHandler(JupyterHandler):
    """XNAT's REST conventions: 401 with a Basic challenge, plain-text errors, no HTML."""

    def check_xsrf_cookie(self) -> None:
        """Unauthenticated calls get XNAT's 401 challenge, not an XSRF 403."""
        if getattr(self, "_jupyter_current_user", None) is None:
            return
        super().check_xsrf_cookie()

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare(_redirect_to_login=False)
        act_as_owner(self)  # another identity provider signed it in: the owner's

    def _text(self, status: int, text: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        if status == 401:
            self.set_header("WWW-Authenticate", 'Basic realm="XNAT"')
        self.finish(text.rstrip("\n") + "\n")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors as plain text, never Jupyter's HTML page."""
        self._text(status_code, self._reason)

    def refuse(self, exc: MiqaError) -> None:
        """Answer a refusal with XNAT's status for it: 403 not allowed, 404 not found,
        409 a conflict with what is archived, else 400."""
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 400)
        self._text(status, str(exc))


#: XNAT's status for each kind of refusal (the first that fits).
_STATUS: tuple[tuple[type[MiqaError], int], ...] = (
    (PermissionDenied, 403),
    (NotFound, 404),
    (ArchiveConflict, 409),
)


class ReceivingHandler(XnatHandler):
    """A handler that streams its request body to a staging folder of its own,
    ``<catalog>-staging/import-*``, locked while the request is handled (a server killed
    meanwhile releases the lock, and the next one's start-up removes the folder:
    :func:`clean_staging`); the folder goes when the answer is sent."""

    receiver: UploadReceiver | None = None
    _lock: IO[bytes] | None = None
    staging: Path | None = None
    refused: tuple[int, str] | None = None

    def _stage(self) -> Path:
        """Make the request's staging folder (and lock it); allow a large body."""
        connection: Any = self.request.connection  # Tornado's HTTP1Connection
        connection.set_max_body_size(UploadLimits().max_upload_bytes)  # its default: 100 MB
        self.staging = Path(tempfile.mkdtemp(prefix="import-", dir=_staging_root()))
        self._lock = _hold(self.staging / LOCK_NAME)
        return self.staging

    def _receive(self, content_type: str | None, *, inbody: bool, **options: Any) -> None:
        """Start receiving the body into the staging folder (a refusal is kept for the
        method to answer)."""
        assert self.staging is not None
        length = self.request.headers.get("Content-Length")
        try:
            self.receiver = UploadReceiver(
                self.staging,
                UploadLimits(),
                content_type,
                inbody=inbody,
                content_length=int(length) if length and length.isdigit() else None,
                **options,
            )
        except MiqaError as exc:
            self._refuse_upload(exc)

    def _refuse_upload(self, exc: MiqaError) -> None:
        self.refused = (413 if isinstance(exc, UploadTooLarge) else 400, str(exc))

    def data_received(self, chunk: bytes) -> None:
        if self.receiver is None or self.refused is not None:
            return
        try:
            self.receiver.feed(chunk)
        except MiqaError as exc:
            self._refuse_upload(exc)
            self.receiver.abort()

    def finish(self, chunk: Any = None) -> Any:
        """Remove the staging folder first: the answer means it is gone (a background
        import has taken it over before)."""
        self._clean()
        return super().finish(chunk)

    def on_finish(self) -> None:
        self._clean()

    def on_connection_close(self) -> None:
        self._clean()

    def _clean(self) -> None:
        if self.receiver is not None:
            self.receiver.abort()  # removes the partial file unless it was moved
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None
        lock, self._lock = getattr(self, "_lock", None), None
        if lock is not None:
            lock.close()


@web.stream_request_body
class ImportHandler(ReceivingHandler):
    """``POST data/services/import`` (see the module)."""

    form: bytearray | None = None

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        if self.current_user is None:
            return  # post() answers 401 (the body is discarded)
        self._stage()
        inbody = self.get_query_argument("inbody", "").lower() == "true"
        content_type = self.request.headers.get("Content-Type", "")
        if self.get_query_arguments("src"):
            return  # the files are in the user's cache; a body is not read
        if not inbody and content_type.split(";")[0].strip().lower() == FORM_TYPE:
            self.form = bytearray()  # the parameters as a form (XNAT's web uploader)
            return
        # a form may name cached files with src instead of holding a file
        self._receive(content_type or None, inbody=inbody, file_required=False)

    def data_received(self, chunk: bytes) -> None:
        if self.form is None:
            super().data_received(chunk)
            return
        if self.refused is None:
            self.form += chunk
        if len(self.form) > MAX_FIELD_BYTES:  # refused: the rest is discarded
            self.refused = (400, f"The import's form is longer than {MAX_FIELD_BYTES} bytes.")
            self.form = bytearray()

    def _add_arguments(self, fields: dict[str, list[str]]) -> None:
        """Parameters sent in the body (a form) count as the query's do, after them."""
        for key, values in fields.items():
            encoded = [v.encode("utf-8") for v in values]
            self.request.arguments.setdefault(key, []).extend(encoded)
            self.request.body_arguments.setdefault(key, []).extend(encoded)

    @allow_unauthenticated
    async def post(self) -> None:
        # here, not at the top: both modules build on this one's XnatHandler
        from miqa_nb.server import cache, status

        if self.current_user is None:
            self._text(401, SIGN_IN)
            return
        if self.refused is not None:
            self._text(*self.refused)
            return
        upload = None
        try:
            if self.form is not None:
                self._add_arguments(parse_qs(self.form.decode("utf-8", "replace")))
            if self.receiver is not None:
                upload = self.receiver.finish()
                self._add_arguments(upload.fields)
        except MiqaError as exc:
            self._text(400, str(exc))
            return
        user = self.current_user.username
        dest = self.get_argument("dest", "")
        options = {
            "project": self.get_argument("project", "") or self.get_argument("PROJECT_ID", ""),
            "subject": self.get_argument("subject", "") or self.get_argument("SUBJECT_ID", ""),
            "session": self.get_argument("session", "") or self.get_argument("EXPT_LABEL", ""),
        }
        options.update(_from_dest(dest))
        options.update(handler=self.get_argument("import-handler", "") or "SI", dest=dest)
        options["where"] = (
            "archive" if dest.startswith("/archive") else "prearchive" if dest else "headers"
        )
        overwrite = self.get_argument("overwrite", "none").lower()
        options["quarantine"] = self.get_argument("quarantine", "false").lower()
        options["trigger_pipelines"] = self.get_argument("triggerPipelines", "true").lower()
        listener = self.get_argument("http-session-listener", "")
        sources = self.get_arguments("src")
        if len(listener) > MAX_LISTENER:
            self._text(
                400,
                f"The http-session-listener is longer than {MAX_LISTENER} characters; "
                "give a shorter ID.",
            )
            return
        assert self.staging is not None
        job = _Job([], self.staging, user, options, overwrite, listener)
        # XNAT's default importer moves a cached file out of the cache as it imports
        # it; a named import-handler (DICOM-zip...) only reads it, and it stays
        job.consume = bool(sources) and not self.get_argument("import-handler", "")
        if listener:
            status.BOARD.start(user, listener)
            job.progress("Determining destination")
        try:
            if sources:
                job.archives = cache.resolve_sources(cache.cache_root(), user, sources)
            elif upload is not None and upload.has_file:
                job.archives = [upload.path]
                options["filename"] = upload.filename or ""
            else:
                raise MiqaError(
                    "The import holds no file: send the archive as a form's file, as the "
                    "body with inbody=true, or name files of your cache with src."
                )
        except MiqaError as exc:
            job.progress(str(exc), FAILED)
            self.refuse(exc)
            return
        if listener and sources:
            # XNAT answers at once and imports in the background: the job now owns
            # the staging folder and its lock
            job.lock, self._lock, self.staging = self._lock, None, None
            task = asyncio.get_running_loop().create_task(job.run_and_clean())
            _RUNNING.add(task)
            task.add_done_callback(_RUNNING.discard)
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            archival = (
                options["where"] == "archive" or self.get_argument("prearchive_code", "") == "1"
            )
            where = "archival" if archival else "prearchival"
            self.finish(f"Submitted for {where}")
            return
        try:
            uris = await job.run()
        except MiqaError as exc:
            self.refuse(exc)
        else:
            self.set_header("Content-Type", "text/uri-list")
            self.finish("".join(uri + "\n" for uri in uris))


#: The form type whose body holds the import's parameters rather than a file.
FORM_TYPE = "application/x-www-form-urlencoded"
#: The longest ``http-session-listener`` ID.
MAX_LISTENER = 256
#: Background imports running (kept referenced until done).
_RUNNING: set[asyncio.Task[None]] = set()


class _Job:
    """One import: the files, where it stages, who sends it, and its listener."""

    def __init__(
        self,
        archives: list[Path],
        staging: Path,
        user: str,
        options: dict[str, Any],
        overwrite: str,
        listener: str,
    ) -> None:
        self.archives, self.staging, self.user = archives, staging, user
        self.options, self.overwrite, self.listener = options, overwrite, listener
        self.lock: IO[bytes] | None = None
        self.consume = False  # remove the (cached) files once imported

    def progress(self, message: str, state: str = PROCESSING) -> None:
        from miqa_nb.server import status  # see ImportHandler.post

        if self.listener:
            status.BOARD.add(self.user, self.listener, state, message)

    async def run(self) -> list[str]:
        """Import off the event loop; record its progress; raise its refusal."""
        from miqa_nb.server.status import done_message  # see ImportHandler.post

        self.progress("Beginning import")
        try:
            uris = await asyncio.get_running_loop().run_in_executor(
                None,
                lambda: _import(
                    self.archives,
                    self.staging,
                    self.user,
                    self.options,
                    self.overwrite,
                    progress=self.progress,
                ),
            )
        except NotDicomError as exc:
            refusal = MiqaError(f"{NO_FILES} {exc}")
            self.progress(str(refusal), FAILED)
            raise refusal from exc
        except MiqaError as exc:
            self.progress(str(exc), FAILED)
            raise
        except Exception as exc:
            self.progress(f"The import failed: {type(exc).__name__}: {exc}", FAILED)
            raise
        if self.consume:
            for path in self.archives:
                path.unlink(missing_ok=True)
                with contextlib.suppress(OSError):  # still holds other files
                    path.parent.rmdir()
        self.progress(done_message(uris), COMPLETED)
        return uris

    async def run_and_clean(self) -> None:
        """Run in the background (its outcome is in the status board), then remove
        the staging folder."""
        try:
            await self.run()
        except MiqaError:
            pass  # recorded as FAILED
        except Exception:
            log.exception("a background import of %s failed", self.user)
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)
            if self.lock is not None:
                self.lock.close()


#: The file an upload's staging folder holds locked while the upload is handled.
LOCK_NAME = ".in-use"


def _hold(path: Path) -> IO[bytes]:
    """Open ``path`` and hold an exclusive lock on it (released when it is closed, or
    when the process ends however it ends)."""
    handle = open(path, "wb")  # noqa: SIM115 - held until the upload is done
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def clean_staging() -> list[Path]:
    """Remove the staging folders of uploads nobody handles any more (a server killed in
    the middle of one); a folder whose lock another server holds stays. Returns those
    removed. Called when the server starts."""
    removed = []
    for folder in sorted(_staging_root().glob("import-*")):
        try:
            with open(folder / LOCK_NAME, "ab") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(folder, ignore_errors=True)
        except BlockingIOError:  # a live upload of another server on this catalog
            continue
        except OSError:  # no lock file: made by nobody we know; leave it
            continue
        removed.append(folder)
    return removed


def _staging_root() -> Path:
    """``<catalog>-staging/`` beside the catalog: uploads wait there while imported."""
    catalog = served_catalog(_catalog_path()).path
    folder = catalog.with_name(catalog.stem + "-staging")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _from_dest(dest: str) -> dict[str, str]:
    """``/archive/projects/P[/subjects/S[/experiments/E]]`` (or ``/prearchive/projects/P``)
    as routing parameters."""
    parts = [unquote(p) for p in dest.strip("/").split("/") if p]
    found: dict[str, str] = {}
    for key, name in (("projects", "project"), ("subjects", "subject"), ("experiments", "session")):
        if key in parts and parts.index(key) + 1 < len(parts):
            found[name] = parts[parts.index(key) + 1]
    return found


#: XNAT's import handlers, as ``import-handler`` names them.
HANDLERS = ("SI", "DICOM-zip", "gradual-DICOM", "XAR")


def _unpack_all(archives: Path | Sequence[Path], files: Path, name: str | None = None) -> None:
    """Unpack one upload into ``files`` (a single file named ``name`` when given), or
    several (files of the user's cache, one upload: all or nothing) each into a folder
    of its own, under one total limit."""
    limits = UploadLimits()
    if isinstance(archives, Path) or len(archives) == 1:
        unpack(archives if isinstance(archives, Path) else archives[0], files, limits, name=name)
        return
    for number, archive in enumerate(archives):
        written = unpack(archive, files / f"{number:04d}", limits)
        limits = dataclasses.replace(
            limits,
            max_total_bytes=limits.max_total_bytes - sum(p.stat().st_size for p in written),
            max_members=limits.max_members - len(written),
        )


def _quiet(message: str) -> None:
    """Progress nobody listens to."""


def _import(
    archive: Path | Sequence[Path],
    staging: Path,
    user: str,
    options: dict[str, Any],
    overwrite: str,
    progress: Callable[[str], None] = _quiet,
) -> list[str]:
    """Import the upload ``archive`` as ``options["handler"]`` says; the URIs created.

    ``SI`` and ``DICOM-zip`` (an archive of DICOM files) archive or stage each session;
    ``gradual-DICOM`` adds the file to the RECEIVING entry of its study
    (:mod:`miqa_nb.ingest.gradual`); ``XAR`` archives a session document and its files
    (:mod:`miqa_nb.ingest.xar`). With ``dest=/prearchive/projects/P/TIMESTAMP[/SESSION]``
    the files are merged into that entry instead.
    """
    handler = str(options.get("handler") or "SI")
    if handler.lower() not in {h.lower() for h in HANDLERS}:
        raise MiqaError(
            f"Unknown import-handler {handler!r}; the accepted ones are " + ", ".join(HANDLERS)
        )
    handler = next(h for h in HANDLERS if h.lower() == handler.lower())
    catalog = served_catalog(_catalog_path())
    if handler == "XAR":
        if not isinstance(archive, Path):
            if len(archive) != 1:
                raise MiqaError(
                    f"import-handler=XAR takes one file; {len(archive)} were given: send "
                    "each XAR in its own import"
                )
            archive = archive[0]
        xar = import_xar(
            catalog,
            archive,
            staging,
            by=user,
            project=options.get("project") or None,
            overwrite=overwrite,
        )
        return [a.uri for a in xar]
    files = staging / "files"
    # a single file keeps the name its sender gave (errors name it), never a path
    given = PurePosixPath(str(options.get("filename") or "").replace("\\", "/")).name
    _unpack_all(archive, files, name=given if given.strip(".") else None)
    progress("Populating session")
    into = parse_entry_dest(str(options.get("dest", "")))
    if into is not None:
        merged = merge_into(catalog, files, by=user, dest=into)
        watch(catalog)  # it may be RECEIVING
        return ["/data" + merged.url]
    if handler == "gradual-DICOM":
        received = receive(catalog, files, by=user, options=options)
        watch(catalog)  # builds the entries once quiet
        return ["/data" + e.url for e in received]
    with catalog.store.peek():  # a read-only look, about 1 ms (opening it: 15 ms)
        known_types = catalog.scan_types()
    sessions = read_sessions(
        files,
        project=options.get("project") or None,
        subject=options.get("subject") or None,
        session=options.get("session") or None,
        scan_types=known_types,
    )
    if not sessions:
        raise MiqaError(NO_FILES)
    if len(sessions) > 1 and options.get("session"):
        raise MiqaError(
            f"{MANY_SESSIONS} It holds {len(sessions)} studies (StudyInstanceUID "
            f"{', '.join(s.study_uid for s in sessions)}) for the one session "
            f"{options['session']!r}: send each study in its own upload, or leave the "
            "session out to archive each under its own label."
        )
    where = options.get("where", "archive")
    named = options.get("project")
    if where == "prearchive" and named and named not in set(catalog.projects()["project"]):
        raise NotFound(f"project {named!r} is not in the catalog")
    now = [
        s for s in sessions if where == "archive" or (where == "headers" and s.route.auto_archive)
    ]
    later = [s for s in sessions if s not in now]
    flags = {  # XNAT's quarantine (default false) and triggerPipelines (default true)
        "quarantine": options.get("quarantine") == "true",
        "trigger_pipelines": options.get("trigger_pipelines") != "false",
    }
    if now:
        progress("Archiving")
    uris = (
        [a.uri for a in archive_sessions(catalog, now, by=user, overwrite=overwrite, **flags)]
        if now
        else []
    )
    if not later:
        return uris
    progress("Moving to prearchive")
    return uris + ["/data" + e.url for e in stage_sessions(catalog, later, by=user)]


def resume_receiving() -> None:
    """Build, once quiet, the RECEIVING entries a stopped server left (called when the
    server starts; :func:`miqa_nb.ingest.gradual.watch`)."""
    watch(Catalog(_catalog_path()))


@functools.lru_cache(maxsize=4)
def served_catalog(path: Path | str) -> Catalog:
    """The catalog at ``path``, made once per server: making one opens the file and
    checks its schema (15-50 ms), which each import would otherwise pay again. Its
    methods open the file for each unit of work, as any catalog's do."""
    return Catalog(path)


def _catalog_path() -> Path | str:
    """The served catalog (``MIQA_NB_CATALOG``, set by :mod:`miqa_nb.serve`): a file's
    absolute path, or a PostgreSQL database's URL."""
    found = default_catalog_path()
    return found if isinstance(found, str) else found.resolve()

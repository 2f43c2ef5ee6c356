"""XNAT's prearchive REST calls on the signed-in server (what pyxnat's ``PreArchive`` uses).

- ``GET /data/prearchive/projects[/P]``: the entries the user may see;
- ``GET /data/prearchive/projects/P/TS/SESSION[/scans[/ID/resources[/R/files]]]``;
- ``GET /data/prearchive/projects/P/TS/SESSION[/scans/ID]?format=zip``: the session's
  (or the scan's) DICOM files as a zip (``SESSION/SCANS/ID/DICOM/NAME``), streamed;
- ``POST /data/prearchive/projects/P/TS/SESSION`` with ``action=build``: read again;
- ``POST /data/services/archive`` with ``src=/prearchive/projects/P/TS/SESSION``,
  ``overwrite`` (``none``, ``append``, ``delete``) and, to archive under other names or
  an Unassigned entry into a project, ``project``/``subject``/``session`` or
  ``dest=/archive/projects/P[/subjects/S[/experiments/E]]``;
- ``POST /data/services/prearchive/delete`` with ``src=...``;
- ``POST /data/services/prearchive/rebuild`` with ``src`` (several, or comma
  separated): read each again, as ``action=build`` does; answers them as a listing;
- ``POST /data/services/prearchive/move`` with ``src`` (several, or comma separated)
  and ``newProject``: answers the moved entries as a listing.

While an entry is archived, deleted or moved it shows ARCHIVING, DELETING or MOVING;
:func:`clean_archiving`, run when the server starts, settles the entries a killed server
left so and removes its archive work folders.

Listings answer ``format=json`` (``{"ResultSet": {"Result": [...], "totalRecords": "N"}}``,
the default) and ``format=csv`` (a header row, then rows), which is what pyxnat asks.
Refusals are XNAT's: 401 with a Basic challenge, 403, 404, 409, in plain text.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from jupyter_server.auth.decorator import allow_unauthenticated
from tornado.iostream import StreamClosedError

from miqa_nb.catalog import Catalog
from miqa_nb.core.errors import MiqaError
from miqa_nb.ingest import prearchive
from miqa_nb.ingest.archiving import sweep_data
from miqa_nb.server.xnat import SIGN_IN, XnatHandler, _catalog_path, _from_dest

__all__ = [
    "PREARCHIVE_ROUTES",
    "ArchiveHandler",
    "DeleteHandler",
    "EntryHandler",
    "ListHandler",
    "MoveHandler",
    "RebuildHandler",
    "clean_archiving",
]

T = TypeVar("T")
#: Bytes of zip sent to the client at a time.
CHUNK = 256 * 1024
_PART = r"([^/]+)"
_ENTRY = rf"/data/prearchive/projects/{_PART}/{_PART}/{_PART}"


class _Base(XnatHandler):
    async def _call(self, work: Callable[[Catalog, str], T]) -> T | None:
        """Run ``work(catalog, user)`` off the event loop; answer its refusal and return None."""
        if self.current_user is None:
            self._text(401, SIGN_IN)
            return None
        user = self.current_user.username
        try:
            return await asyncio.get_running_loop().run_in_executor(
                None, lambda: work(Catalog(_catalog_path()), user)
            )
        except MiqaError as exc:
            self.refuse(exc)
        return None

    def _table(self, rows: list[dict[str, Any]], columns: list[str]) -> None:
        if self.get_argument("format", "json").lower() == "csv":
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows([str(row.get(c, "")) for c in columns] for row in rows)
            self.set_header("Content-Type", "text/csv; charset=utf-8")
            self.finish(out.getvalue())
            return
        result = [{c: str(row.get(c, "")) for c in columns} for row in rows]
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"ResultSet": {"Result": result, "totalRecords": str(len(rows))}}))

    def _src(self) -> tuple[str, str, str]:
        return prearchive.parse_src(self.get_argument("src", ""))


COLUMNS = [
    "project", "timestamp", "folderName", "name", "subject", "status",
    "url", "tag", "scan_date", "uploaded", "lastmod",
]  # fmt: skip


class ListHandler(_Base):
    """``GET /data/prearchive/projects[/P]``."""

    @allow_unauthenticated
    async def get(self, project: str | None = None) -> None:
        found = await self._call(lambda cat, user: prearchive.entries(cat, user, project))
        if found is not None:
            self._table([e.row() for e in found], COLUMNS)


class EntryHandler(_Base):
    """One entry, its scans, a scan's resources, a resource's files; ``action=build``."""

    @allow_unauthenticated
    async def get(self, project: str, ts: str, folder: str, rest: str | None = None) -> None:
        entry = await self._call(lambda c, u: prearchive.get_entry(c, u, project, ts, folder))
        if entry is None:
            return
        parts = [p for p in (rest or "").split("/") if p]
        scans = {s["id"]: s for s in entry.scans}
        if self.get_argument("format", "").lower() == "zip":
            await self._zip(entry, parts, scans)
        elif not parts:
            self._table([entry.row()], COLUMNS)
        elif parts == ["scans"]:
            rows = [
                {"ID": s["id"], "type": s["type"], "series_description": s["description"],
                 "files": s["files"]}
                for s in entry.scans
            ]  # fmt: skip
            self._table(rows, ["ID", "type", "series_description", "files"])
        elif (
            len(parts) == 3
            and parts[0] == "scans"
            and parts[1] in scans
            and parts[2] == "resources"
        ):
            folder_ = entry.path / "SCANS" / scans[parts[1]]["folder"] / "DICOM"
            count = sum(1 for p in folder_.iterdir() if p.is_file())
            self._table([{"label": "DICOM", "format": "DICOM", "file_count": count}],
                        ["label", "format", "file_count"])  # fmt: skip
        elif (
            len(parts) == 5 and parts[0] == "scans" and parts[1] in scans
            and parts[2:] == ["resources", "DICOM", "files"]
        ):  # fmt: skip
            base = f"/data{entry.url}/scans/{parts[1]}/resources/DICOM/files"
            files = sorted(
                p for p in (entry.path / "SCANS" / scans[parts[1]]["folder"] / "DICOM").iterdir()
            )
            rows = [
                {"Name": p.name, "URI": f"{base}/{p.name}", "Size": p.stat().st_size} for p in files
            ]
            self._table(rows, ["Name", "URI", "Size"])
        else:
            self._text(404, f"no such resource under /data{entry.url}: {rest}")

    async def _zip(
        self, entry: prearchive.Entry, parts: list[str], scans: dict[str, dict[str, Any]]
    ) -> None:
        """Stream the DICOM files of ``entry`` (``parts`` empty) or of one of its scans
        (``parts`` ``["scans", ID]``) as a zip, built in a worker thread a chunk ahead."""
        if parts and not (len(parts) == 2 and parts[0] == "scans" and parts[1] in scans):
            self._text(404, f"format=zip is for a session or one of its scans, not {parts}")
            return
        chosen = [scans[parts[1]]] if parts else list(entry.scans)
        try:
            files = [
                path
                for scan in chosen
                for path in sorted((entry.path / "SCANS" / scan["folder"] / "DICOM").iterdir())
                if path.is_file()
            ]
        except FileNotFoundError:
            self._text(404, f"/data{entry.url} was deleted or moved meanwhile")
            return
        name = entry.folder if not parts else f"{entry.folder}_scan{parts[1]}"
        self.set_header("Content-Type", "application/zip")
        self.set_header("Content-Disposition", f'attachment; filename="{name}.zip"')
        loop = asyncio.get_running_loop()
        out = _Chunks(loop)
        writer = loop.run_in_executor(None, _write_zip, files, entry.path.parent, out)
        sent = False
        try:
            while (chunk := await out.queue.get()) is not None:
                self.write(chunk)
                await self.flush()
            sent = True
        except StreamClosedError:
            pass  # the client went away (below: the writer stops)
        finally:
            if not sent:  # stop the writer at its next chunk and let it end
                out.stop.set()
                while await out.queue.get() is not None:
                    pass
        try:
            await writer
        except OSError:
            if sent:  # a file gone meanwhile: the unfinished zip is cut off
                raise
            return
        if sent:
            self.finish()

    @allow_unauthenticated
    async def post(self, project: str, ts: str, folder: str, rest: str | None = None) -> None:
        if self.current_user is None:
            self._text(401, SIGN_IN)
            return
        if (rest or "").strip("/") or self.get_argument("action", "") != "build":
            self._text(400, "POST to a prearchive session takes action=build")
            return
        entry = await self._call(lambda c, u: prearchive.rebuild_entry(c, u, project, ts, folder))
        if entry is not None:
            self._text(200, f"/data{entry.url}")


class ArchiveHandler(_Base):
    """``POST /data/services/archive`` with ``src``, ``overwrite`` and, to archive under
    other names (or an Unassigned entry into a project), ``project``/``subject``/
    ``session`` or ``dest=/archive/projects/P[/subjects/S[/experiments/E]]``."""

    @allow_unauthenticated
    async def post(self) -> None:
        overwrite = self.get_argument("overwrite", "none").lower()
        quarantine = self.get_argument("quarantine", "false").lower() == "true"
        pipelines = self.get_argument("triggerPipelines", "").lower() != "false"
        names = {
            "project": self.get_argument("project", "") or self.get_argument("PROJECT_ID", ""),
            "subject": self.get_argument("subject", "") or self.get_argument("SUBJECT_ID", ""),
            "session": self.get_argument("session", "") or self.get_argument("EXPT_LABEL", ""),
        }
        dest = self.get_argument("dest", "")
        if dest and not dest.strip("/").startswith("archive"):
            self._text(400, f"dest must be /archive[/projects/P[/subjects/S]]; {dest!r} was given")
            return
        names.update(_from_dest(dest))

        def work(cat: Catalog, user: str) -> list[str]:
            p, ts, folder = self._src()
            done = prearchive.archive_entry(
                cat, user, p, ts, folder, overwrite=overwrite,
                to_project=names["project"] or None, subject=names["subject"] or None,
                session=names["session"] or None, quarantine=quarantine,
                trigger_pipelines=pipelines,
            )  # fmt: skip
            return [a.uri for a in done]

        uris = await self._call(work)
        if uris is not None:
            self.set_header("Content-Type", "text/uri-list")
            self.finish("".join(uri + "\n" for uri in uris))


class MoveHandler(_Base):
    """``POST /data/services/prearchive/move`` with ``src`` (several, or comma separated)
    and ``newProject``: answers the moved entries as a listing (pyxnat asks csv).
    ``async`` is accepted and the move done before the answer either way."""

    @allow_unauthenticated
    async def post(self) -> None:
        new_project = self.get_argument("newProject", "")
        sources = [s for value in self.get_arguments("src") for s in value.split(",") if s.strip()]

        def work(cat: Catalog, user: str) -> list[prearchive.Entry]:
            if not new_project or not sources:
                raise MiqaError(
                    "move takes src=/prearchive/projects/P/TIMESTAMP/SESSION (one or more) "
                    "and newProject=PROJECT"
                )
            triples = [prearchive.parse_src(src) for src in sources]
            return prearchive.move_entries(cat, user, triples, new_project)

        moved = await self._call(work)
        if moved is not None:
            self._table([e.row() for e in moved], COLUMNS)


class RebuildHandler(_Base):
    """``POST /data/services/prearchive/rebuild`` with ``src`` (several, or comma
    separated): each entry read again, as ``action=build`` on it does; answers the
    entries as a listing. ``async`` is accepted and the rebuild done before the answer."""

    @allow_unauthenticated
    async def post(self) -> None:
        sources = [s for value in self.get_arguments("src") for s in value.split(",") if s.strip()]

        def work(cat: Catalog, user: str) -> list[prearchive.Entry]:
            if not sources:
                raise MiqaError(
                    "rebuild takes src=/prearchive/projects/P/TIMESTAMP/SESSION (one or more)"
                )
            triples = [prearchive.parse_src(src) for src in sources]
            return [prearchive.rebuild_entry(cat, user, *triple) for triple in triples]

        rebuilt = await self._call(work)
        if rebuilt is not None:
            self._table([e.row() for e in rebuilt], COLUMNS)


class DeleteHandler(_Base):
    """``POST /data/services/prearchive/delete`` with ``src``."""

    @allow_unauthenticated
    async def post(self) -> None:
        def work(cat: Catalog, user: str) -> str:
            p, ts, folder = self._src()
            prearchive.delete_entry(cat, user, p, ts, folder)
            return f"/data/prearchive/projects/{p}/{ts}/{folder}"

        gone = await self._call(work)
        if gone is not None:
            self._text(200, gone)


#: ``(path under the server's base URL, handler)`` pairs.
PREARCHIVE_ROUTES: list[tuple[str, type[XnatHandler]]] = [
    ("/data/prearchive/projects/?", ListHandler),
    (rf"/data/prearchive/projects/{_PART}/?", ListHandler),
    (rf"{_ENTRY}(/.*)?", EntryHandler),
    ("/data/services/archive", ArchiveHandler),
    ("/data/services/prearchive/delete", DeleteHandler),
    ("/data/services/prearchive/move", MoveHandler),
    ("/data/services/prearchive/rebuild", RebuildHandler),
]


class _Chunks(io.RawIOBase):
    """A write-only, unseekable stream that hands what is written, in chunks of
    :data:`CHUNK` bytes, to :attr:`queue` on ``loop`` (waiting while it is full);
    :attr:`stop` set makes the next chunk raise."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=4)
        self.stop = threading.Event()
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.buffer += data
        if len(self.buffer) >= CHUNK:
            self.send()
        return len(data)

    def send(self) -> None:
        if self.stop.is_set():
            raise OSError("the zip's reader went away")
        if self.buffer:
            chunk, self.buffer = bytes(self.buffer), bytearray()
            self._put(chunk)

    def _put(self, chunk: bytes | None) -> None:
        asyncio.run_coroutine_threadsafe(self.queue.put(chunk), self.loop).result()


def _write_zip(files: list[Path], base: Path, out: _Chunks) -> None:
    """Zip ``files`` (named relative to ``base``) into ``out``; a None chunk ends it,
    error or not."""
    try:
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            for path in files:
                archive.write(path, path.relative_to(base).as_posix())
        out.send()
    finally:
        out._put(None)


def clean_archiving() -> list[str]:
    """What a server killed in the middle of an action left, put right when the server
    starts: the data folder's ``.archiving-*`` work folders and unreferenced scan
    folders (:func:`~miqa_nb.ingest.archiving.sweep_data`), and prearchive entries left
    ARCHIVING, DELETING or MOVING (:func:`~miqa_nb.ingest.prearchive.settle_all`).
    Returns a line per thing done, for the log."""
    where = _catalog_path()
    if isinstance(where, Path) and not where.exists():
        return []
    catalog = Catalog(_catalog_path())
    done = [f"removed {path}, left by a stopped archive" for path in sweep_data(catalog)]
    done += [f"set the status of {path} again" for path in prearchive.settle_all(catalog)]
    return done

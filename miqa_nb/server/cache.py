"""XNAT's user cache: files a user uploads first and imports later with ``src``.

- ``PUT /data/user/cache/resources/X/files/NAME`` (or ``POST``) stores the request's
  body as the file ``NAME`` of the user's resource ``X``: the raw body, or the file of
  a ``multipart/form-data`` form (XNAT's web uploader sends a form; ``inbody=true``
  forces the raw body). It streams to disk (never whole in memory) under the import's
  size limit (:class:`~miqa_nb.ingest.archives.UploadLimits`), into a locked staging
  folder as the import's uploads do (a server killed meanwhile leaves it to the next
  one's start-up), and replaces a file of that name only once it is whole. Answers
  200 with the file's address.
- ``GET /data/user/cache/resources/X/files`` lists X's files (``format=json``, the
  default, as XNAT's ``{"ResultSet": {"Result": [...]}}``, or ``format=csv``), with the
  columns ``Name``, ``Size``, ``URI``, ``collection``.
- ``GET .../files/NAME`` returns the file; ``DELETE .../files/NAME`` removes it, and
  ``DELETE /data/user/cache/resources/X`` removes X with its files.

The files live in ``<catalog>-cache/<user>/<X>/<NAME>`` beside the catalog. The
address names no user: it is always the signed-in user's own cache, so nobody sees
or imports another user's files (they are simply not there: 404). ``X`` and ``NAME``
are single plain names: empty, ``.``/``..``, a ``/`` or ``\\``, a control character, a
name starting with ``.`` (hidden) or longer than 255 bytes is refused with 400.

:func:`resolve_sources` turns the import's ``src`` arguments into cached files.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from pathlib import Path
from urllib.parse import quote, unquote

from jupyter_server.auth.decorator import allow_unauthenticated
from tornado import web

from miqa_nb.core.errors import MiqaError, NotFound
from miqa_nb.server.xnat import SIGN_IN, ReceivingHandler, _catalog_path, served_catalog

__all__ = ["CACHE_ROUTES", "CacheError", "CacheHandler", "cache_root", "resolve_sources"]

_CHUNK = 1 << 20
_SRC = re.compile(r"^(?:/data|/REST)?/user/cache/resources/([^/]+)/files/(.+)$")


class CacheError(MiqaError, ValueError):
    """A cache address or name that is not allowed (HTTP 400)."""


def cache_root() -> Path:
    """``<catalog>-cache/`` beside the served catalog."""
    catalog = served_catalog(_catalog_path()).path
    return catalog.with_name(catalog.stem + "-cache")


def check_name(name: str, what: str) -> str:
    """``name`` if it is a single plain file or folder name; else :class:`CacheError`."""
    problem = (
        "is empty"
        if not name
        else "is '.' or '..'"
        if name in (".", "..")
        else "holds a '/' or '\\'"
        if "/" in name or "\\" in name
        else "holds a control character"
        if any(ord(c) < 32 or ord(c) == 127 for c in name)
        else "starts with '.' (a hidden name)"
        if name.startswith(".")
        else "is longer than 255 bytes"
        if len(name.encode("utf-8", "surrogateescape")) > 255
        else ""
    )
    if problem:
        raise CacheError(
            f"The cache {what} {name!r} {problem}; give a plain name such as "
            "'upload1' or 'session.zip' (letters, digits, '-', '_', '.', not first '.')."
        )
    return name


def user_folder(root: Path, user: str) -> Path:
    """The user's own folder in the cache (the name quoted: one safe path part)."""
    part = quote(user, safe="")
    return root / (part if part not in (".", "..") else f"%2E{part[1:]}")


def cached_file(root: Path, user: str, resource: str, name: str) -> Path:
    """Where ``user``'s file ``name`` of resource ``resource`` is kept."""
    return (
        user_folder(root, user) / check_name(resource, "resource") / check_name(name, "file name")
    )


def resolve_sources(root: Path, user: str, sources: list[str]) -> list[Path]:
    """The cached files that the import's ``src`` arguments name (each argument may
    hold several, comma separated).

    Raises
    ------
    CacheError
        A ``src`` that is not ``[/data]/user/cache/resources/X/files/NAME`` (400).
    NotFound
        A named file that is not in ``user``'s cache (404).
    """
    paths: list[Path] = []
    for src in [s.strip() for arg in sources for s in arg.split(",") if s.strip()]:
        match = _SRC.match(src.split("?", 1)[0])
        if match is None:
            raise CacheError(
                f"src uri is invalid: {src!r}. The import takes files of your cache, as "
                "/user/cache/resources/X/files/NAME (put them there first with PUT "
                "/data/user/cache/resources/X/files/NAME)."
            )
        resource, name = unquote(match.group(1)), unquote(match.group(2))
        try:
            path = cached_file(root, user, resource, name)
        except CacheError as exc:
            raise CacheError(f"src uri is invalid: {src!r}. {exc}") from None
        if not path.is_file():
            raise NotFound(
                f"Unknown src file: no file {name!r} in resource {resource!r} of your "
                f"cache (src {src!r}); "
                "put it there first with PUT /data/user/cache/resources/X/files/NAME."
            )
        if path not in paths:
            paths.append(path)
    return paths


@web.stream_request_body
class CacheHandler(ReceivingHandler):
    """``/data/user/cache/resources/X[/files[/NAME]]`` (see the module)."""

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        if self.current_user is None or self.request.method not in ("PUT", "POST"):
            return  # the method answers 401 (a body is discarded)
        try:
            files, name = self.path_kwargs.get("files"), self._name()
            if not files or not name:
                raise CacheError(
                    "Put a file into the cache at /data/user/cache/resources/X/files/NAME."
                )
            cached_file(
                cache_root(), self.current_user.username, self.path_kwargs["resource"], name
            )
        except MiqaError as exc:
            self._refuse_upload(exc)
            return
        self._stage()
        self._receive(
            self.request.headers.get("Content-Type"),
            inbody=self.get_query_argument("inbody", "").lower() == "true",
        )

    def _name(self) -> str:
        return str(self.path_kwargs.get("name") or "")  # Tornado has decoded it

    def _user(self) -> str | None:
        if self.current_user is None:
            self._text(401, SIGN_IN)
            return None
        return str(self.current_user.username)

    @allow_unauthenticated
    async def put(self, resource: str, files: str | None = None, name: str | None = None) -> None:
        user = self._user()
        if user is None:
            return
        if self.refused is not None:
            self._text(*self.refused)
            return
        assert self.receiver is not None
        try:
            target = cached_file(cache_root(), user, resource, self._name())
            upload = self.receiver.finish()
        except MiqaError as exc:
            self._text(400, str(exc))
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(upload.path, target)  # whole, or not there at all
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"/data/user/cache/resources/{quote(target.parent.name)}/files/"
                    f"{quote(target.name)}\n")  # fmt: skip

    post = put

    @allow_unauthenticated
    async def get(self, resource: str, files: str | None = None, name: str | None = None) -> None:
        user = self._user()
        if user is None:
            return
        try:
            folder, path = self._lookup(user, resource, name)
            if path is not None:
                await self._send(path)
                return
            if not folder.is_dir():
                raise NotFound(f"No resource {folder.name!r} in your cache.")
        except MiqaError as exc:
            self.refuse(exc)
            return
        rows = [
            {
                "Name": p.name,
                "Size": str(p.stat().st_size),
                "URI": f"/data/user/cache/resources/{quote(folder.name)}/files/{quote(p.name)}",
                "collection": folder.name,
            }
            for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".")
        ]
        self._table(rows, ["Name", "Size", "URI", "collection"])

    def _lookup(self, user: str, resource: str, name: str | None) -> tuple[Path, Path | None]:
        """The resource's folder in ``user``'s cache and, when the address names a file,
        that file (:class:`NotFound` when it is not there)."""
        folder = user_folder(cache_root(), user) / check_name(resource, "resource")
        if not name:
            return folder, None
        path = cached_file(cache_root(), user, resource, self._name())
        if not path.is_file():
            raise NotFound(f"No file {path.name!r} in resource {folder.name!r} of your cache.")
        return folder, path

    async def _send(self, path: Path) -> None:
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Length", str(path.stat().st_size))
        self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(path.name)}")
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                self.write(chunk)
                await self.flush()
        self.finish()

    def _table(self, rows: list[dict[str, str]], columns: list[str]) -> None:
        if self.get_argument("format", "json").lower() == "csv":
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows([row[c] for c in columns] for row in rows)
            self.set_header("Content-Type", "text/csv; charset=utf-8")
            self.finish(out.getvalue())
            return
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"ResultSet": {"Result": rows, "totalRecords": str(len(rows))}}))

    @allow_unauthenticated
    async def delete(
        self, resource: str, files: str | None = None, name: str | None = None
    ) -> None:
        user = self._user()
        if user is None:
            return
        try:
            folder, path = self._lookup(user, resource, name)
            if path is not None:
                path.unlink()
                if not any(folder.iterdir()):
                    folder.rmdir()
            elif files:
                raise CacheError(
                    "Delete one file (.../files/NAME), or the resource (.../resources/X)."
                )
            elif folder.is_dir():
                shutil.rmtree(folder)
            else:
                raise NotFound(f"No resource {folder.name!r} in your cache.")
        except MiqaError as exc:
            self.refuse(exc)
            return
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish("")


#: The cache's routes (Tornado patterns below the base URL).
_X = r"/data/user/cache/resources/(?P<resource>[^/]+)"
CACHE_ROUTES: list[tuple[str, type[CacheHandler]]] = [
    (_X + r"/?", CacheHandler),
    (_X + r"/(?P<files>files)/?", CacheHandler),
    (_X + r"/(?P<files>files)/(?P<name>.+)", CacheHandler),
]

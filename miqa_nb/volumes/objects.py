"""Frames in object storage: ``s3://bucket/key`` locations, fetched into a local cache.

The readers of :mod:`miqa_nb.volumes.io` need a local file, so an object is downloaded
once into a cache folder and read from there like any file. Contract:

- Only ``s3://`` is read (never ``http(s)://`` or another fsspec protocol), and only
  inside the allowed prefixes: the ``s3://bucket[/prefix]`` entries of the data roots
  (``MIQA_NB_DATA_ROOTS`` or a catalog's ``data_roots``). An import file can therefore
  not make the server fetch an arbitrary bucket.
- :class:`ObjectCache` keeps downloaded objects in a folder bounded in bytes
  (``MIQA_NB_OBJECT_CACHE``, default ``~/.cache/miqa-nb/objects``;
  ``MIQA_NB_OBJECT_CACHE_BYTES``, default 4 GiB), least recently used first out. A file
  is named after the bucket, the key and the object's ETag and size, so a changed object
  is fetched again; every read asks the store for the object's header (a HEAD, no data;
  an answer is reused for :attr:`ObjectCache.fresh_seconds`, one second).
- Credentials and the endpoint come from the usual places, through botocore:
  ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, ``AWS_PROFILE``,
  ``~/.aws/credentials`` and ``~/.aws/config``; ``AWS_ENDPOINT_URL_S3`` or
  ``AWS_ENDPOINT_URL`` for a store other than AWS (MinIO, Ceph, ...).
- A missing object raises ``FileNotFoundError`` naming its location, as a missing file does.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from miqa_nb.core.files import atomic_path

__all__ = [
    "CACHE_BYTES_ENV",
    "CACHE_DIR_ENV",
    "ObjectCache",
    "allowed",
    "default_objects",
    "is_object",
    "prefixes_of",
    "reset_default",
]

CACHE_DIR_ENV = "MIQA_NB_OBJECT_CACHE"
CACHE_BYTES_ENV = "MIQA_NB_OBJECT_CACHE_BYTES"
_DEFAULT_BYTES = 4 << 30
_SCHEME = "s3://"
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def is_object(location: object) -> bool:
    """True for an ``s3://`` location (any case of the scheme).

    Examples
    --------
    >>> is_object("s3://bucket/a.nii.gz"), is_object("/data/a.nii.gz")
    (True, False)
    """
    return isinstance(location, str) and location[:5].lower() == _SCHEME


def prefixes_of(roots: Iterable[str | os.PathLike[str]] | None) -> tuple[str, ...]:
    """The ``s3://bucket[/prefix]`` entries of data roots, without a trailing '/'.

    Examples
    --------
    >>> prefixes_of(["/data", "s3://lab/mri/", "S3://other"])
    ('s3://lab/mri', 's3://other')
    """
    found = []
    for root in roots or ():
        text = os.fspath(root)
        if is_object(text):
            found.append(_SCHEME + text[5:].rstrip("/"))
    return tuple(found)


def allowed(location: str, prefixes: Iterable[str]) -> bool:
    """True when ``location`` lies inside one of ``prefixes`` (whole key parts only).

    Examples
    --------
    >>> allowed("s3://lab/mri/a.nii.gz", ["s3://lab/mri"])
    True
    >>> allowed("s3://lab/mri-old/a.nii.gz", ["s3://lab/mri"]), allowed("s3://labx/a", ["s3://lab"])
    (False, False)
    """
    url = _SCHEME + location[5:]
    return any(url.startswith(prefix.rstrip("/") + "/") for prefix in prefixes)


def _filesystem(environ: Mapping[str, str]) -> Any:
    import s3fs  # imported on first use: only catalogs with s3:// frames need it

    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    kwargs: dict[str, Any] = {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}
    return s3fs.S3FileSystem(skip_instance_cache=True, **kwargs)


class ObjectCache:
    """Objects downloaded into ``folder``, at most ``max_bytes`` in all (LRU).

    Parameters
    ----------
    folder : path-like
        Where downloaded objects are kept (created when needed).
    max_bytes : int
        The bound on the bytes kept; the least recently read files go first. An object
        larger than the bound is downloaded, read, and removed at the next download.
    filesystem : s3fs.S3FileSystem, optional
        Default: one built from the environment (see the module's description).
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        max_bytes: int = _DEFAULT_BYTES,
        *,
        filesystem: Any = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self._environ = os.environ if environ is None else environ
        self._fs = filesystem
        self._lock = threading.Lock()
        self._heard: dict[str, tuple[float, str, int]] = {}
        self.downloads = 0
        #: How long an answer to a HEAD is reused (seconds): the decoded-volume cache's
        #: check and the fetch that follows it ask once, not twice.
        self.fresh_seconds = 1.0

    @property
    def filesystem(self) -> Any:
        """The s3fs file system (built on first use)."""
        with self._lock:
            if self._fs is None:
                self._fs = _filesystem(self._environ)
            return self._fs

    def head(self, location: str) -> tuple[str, int]:
        """The object's ETag and size, asked of the store (no data is read).

        Raises
        ------
        FileNotFoundError
            When there is no such object (or it is a "folder").
        """
        now = time.monotonic()
        heard = self._heard.get(location)
        if heard is not None and now - heard[0] < self.fresh_seconds:
            return heard[1], heard[2]
        path = location[5:]
        try:
            info = self.filesystem.info(path, refresh=True)
        except FileNotFoundError as exc:
            raise FileNotFoundError(2, "no such object", location) from exc
        if info.get("type") != "file":
            raise FileNotFoundError(2, "no such object (a prefix, not an object)", location)
        etag, size = str(info.get("ETag", "")).strip('"'), int(info.get("size", 0))
        if len(self._heard) > 10_000:
            self._heard.clear()
        self._heard[location] = (now, etag, size)
        return etag, size

    def fetch(self, location: str) -> Path:
        """The local copy of the object ``location``, downloaded unless cached.

        Raises
        ------
        FileNotFoundError
            When there is no such object.
        OSError
            When the store refuses (credentials) or the cache folder cannot be written.
        """
        etag, size = self.head(location)
        target = self.folder / self._name(location, etag, size)
        try:
            os.utime(target)  # a hit: now the most recently used
            return target
        except FileNotFoundError:
            pass
        with atomic_path(target, durable=False) as tmp:
            self.filesystem.get_file(location[5:], os.fspath(tmp))
        self.downloads += 1
        self._evict(keep=target)
        return target

    def nbytes(self) -> int:
        """Bytes held in the cache folder."""
        return sum(size for _, size, _ in self._files())

    def _name(self, location: str, etag: str, size: int) -> str:
        digest = hashlib.sha256(f"{location[5:]}\0{etag}\0{size}".encode()).hexdigest()[:40]
        base = _SAFE.sub("_", location.rsplit("/", 1)[-1])[-80:]
        return f"{digest}-{base}"

    def _files(self) -> list[tuple[float, int, Path]]:
        found = []
        with contextlib.suppress(FileNotFoundError), os.scandir(self.folder) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    st = entry.stat(follow_symlinks=False)
                    found.append((st.st_mtime, st.st_size, Path(entry.path)))
        return found

    def _evict(self, keep: Path) -> None:
        with self._lock:
            files = sorted(self._files())
            total = sum(size for _, size, _ in files)
            for _, size, path in files:
                if total <= self.max_bytes:
                    break
                if path == keep:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                total -= size


_DEFAULT: ObjectCache | None = None
_DEFAULT_LOCK = threading.Lock()


def default_objects(environ: Mapping[str, str] | None = None) -> ObjectCache:
    """The process-wide object cache, configured from the environment (see the module).

    Raises
    ------
    ValueError
        When ``MIQA_NB_OBJECT_CACHE_BYTES`` is not a positive whole number.
    """
    global _DEFAULT
    env = os.environ if environ is None else environ
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            folder = env.get(CACHE_DIR_ENV) or os.path.join(
                os.path.expanduser("~"), ".cache", "miqa-nb", "objects"
            )
            text = env.get(CACHE_BYTES_ENV, "").strip()
            if text and (not text.isdigit() or int(text) <= 0):
                raise ValueError(
                    f"{CACHE_BYTES_ENV} must be a positive whole number of bytes; {text!r} was set"
                )
            _DEFAULT = ObjectCache(folder, int(text) if text else _DEFAULT_BYTES, environ=env)
        return _DEFAULT


def reset_default() -> None:
    """Forget the process-wide object cache (the next use reads the environment again)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        _DEFAULT = None

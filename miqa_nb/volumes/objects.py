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
  is fetched again. A read of an object with a copy asks for its header (a HEAD, no
  data; an answer is reused for :attr:`ObjectCache.fresh_seconds`, one second); one
  without a copy is one GET, whose answer names the copy.
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
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

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

        An object with a copy in the folder is asked for with a HEAD first (its copy
        is used when the ETag and size still match); one without is downloaded at once
        (one GET, whose answer names the copy), so a first view costs one request.

        Raises
        ------
        FileNotFoundError
            When there is no such object.
        OSError
            When the store refuses (credentials) or the cache folder cannot be written.
        """
        heard = self._heard.get(location)
        fresh = heard is not None and time.monotonic() - heard[0] < self.fresh_seconds
        if fresh or self._copies(location):
            etag, size = self.head(location)
            target = self.folder / self._name(location, etag, size)
            try:
                os.utime(target)  # a hit: now the most recently used
                return target
            except FileNotFoundError:
                pass
        # Written under a hidden temporary name, then renamed: a reader never sees half.
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".part", dir=self.folder)
        os.close(fd)
        try:
            etag, size = self._download(location, Path(tmp))
            target = self.folder / self._name(location, etag, size)
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self._heard[location] = (time.monotonic(), etag, size)
        self.downloads += 1
        self._evict(keep=target)
        return target

    def _download(self, location: str, dest: Path) -> tuple[str, int]:
        """GET the object into ``dest``; its ETag and size, from the same answer."""
        from fsspec.asyn import sync

        fs = self.filesystem
        bucket, _, key = location[5:].partition("/")

        async def get() -> tuple[str, int]:
            try:
                answer = await fs._call_s3("get_object", Bucket=bucket, Key=key)
            except FileNotFoundError as exc:
                raise FileNotFoundError(2, "no such object", location) from exc
            body = answer["Body"]
            try:
                with open(dest, "wb") as out:
                    while chunk := await body.read(1 << 20):
                        out.write(chunk)
            finally:
                body.close()
            return str(answer.get("ETag", "")).strip('"'), int(answer.get("ContentLength", 0))

        found: tuple[str, int] = sync(fs.loop, get)
        return found

    def _copies(self, location: str) -> bool:
        """Whether the folder holds a copy of some version of ``location``."""
        stem = self._stem(location)
        with contextlib.suppress(FileNotFoundError), os.scandir(self.folder) as entries:
            return any(e.name.startswith(stem + "-") for e in entries)
        return False

    def nbytes(self) -> int:
        """Bytes held in the cache folder."""
        return sum(size for _, size, _ in self._files())

    def _stem(self, location: str) -> str:
        return hashlib.sha256(location[5:].encode()).hexdigest()[:24]

    def _name(self, location: str, etag: str, size: int) -> str:
        version = hashlib.sha256(f"{etag}\0{size}".encode()).hexdigest()[:16]
        base = _SAFE.sub("_", location.rsplit("/", 1)[-1])[-80:]
        return f"{self._stem(location)}-{version}-{base}"

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

"""Uploaded archives unpacked safely into a staging folder.

This module owns the rule for what an uploaded archive may put on disk, and the
bounds that keep a hostile one from costing unbounded disk, time or memory
(:class:`UploadLimits`, the one home of those bounds; :mod:`miqa_nb.ingest.uploads`
receives the upload itself under the same limits).

:func:`unpack` takes a zip, a tar, or a tar compressed with gzip, bzip2 or xz, each
recognised by its first bytes and never by its name, or any other single file, which
is kept as it is (a single DICOM file). Its contract:

- every member lands inside the staging folder, as a regular file or a folder; a
  member that is absolute, has a ``..`` part, is a link (symbolic or hard, in tar; in a
  zip, a member whose Unix mode says symbolic link), a device, a FIFO, a socket,
  encrypted, or would overwrite or clash with another member is refused;
- sizes are counted as the bytes are written, not read from the headers (which an
  attacker writes): the total, the count of members, the depth of folders, the length
  of names, and the ratio of bytes written to compressed bytes read, per zip member
  and over the whole archive, are bounded;
- any refusal, and any other failure (a corrupt or truncated archive, a full disk, an
  interruption), raises :class:`ArchiveError` naming the archive, the member and the
  reason, and leaves the staging folder as it was: removed when :func:`unpack` made
  it, emptied when it was an empty folder already.

Members are written by this module, chunk by chunk, with ``O_EXCL | O_NOFOLLOW``;
nothing is handed to ``extractall``. For tar, :func:`tarfile.data_filter` (Python's
own "data" extraction filter) checks every member as well: a second opinion, since
its rules (absolute names, names outside the folder, special files, links leaving the
folder) overlap ours but allow links inside the folder, which we refuse outright.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from miqa_nb.core.errors import MiqaError

__all__ = ["ArchiveError", "UploadLimits", "archive_kind", "unpack"]

#: Bytes read and written at a time.
CHUNK = 1 << 20
_GIB = 1 << 30


@dataclass(frozen=True)
class UploadLimits:
    """The bounds an upload and its archive must keep.

    Parameters
    ----------
    max_upload_bytes
        The largest upload received, as sent (4 GiB).
    max_total_bytes
        The most bytes an archive may unpack to (16 GiB).
    max_members
        The most members (files and folders) an archive may hold.
    max_member_ratio
        The most bytes a zip member may unpack to per compressed byte (DICOM
        compresses some 2 to 10 times; a zip bomb of zeros about 1000 times).
    max_total_ratio
        The same, over the whole archive so far (zip and compressed tar).
    ratio_floor_bytes
        Ratios are checked only once this many bytes were written (for a member, or
        in all): a small file of zeros may compress very well and harm nobody.
    max_depth
        The most folders a member's name may go down.
    max_name_bytes
        The longest member name, in bytes of UTF-8 (each part at most 255).
    """

    max_upload_bytes: int = 4 * _GIB
    max_total_bytes: int = 16 * _GIB
    max_members: int = 100_000
    max_member_ratio: float = 200.0
    max_total_ratio: float = 100.0
    ratio_floor_bytes: int = 1 << 20
    max_depth: int = 32
    max_name_bytes: int = 1024


class ArchiveError(MiqaError, ValueError):
    """An uploaded archive was refused or cannot be unpacked; nothing was kept.

    ``archive`` is the archive's path, ``member`` the member at fault (``None`` when
    the fault is the archive's as a whole), ``reason`` what was wrong.
    """

    def __init__(self, archive: Path | str, member: str | None, reason: str) -> None:
        self.archive = Path(archive)
        self.member = member
        self.reason = reason
        where = f"member {member!r} of {self.archive.name!r}" if member else repr(self.archive.name)
        super().__init__(f"The upload {where} was refused: {reason}.")


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_COMPRESSED = {b"\x1f\x8b": "gz", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz"}


def archive_kind(path: Path) -> str:
    """What the file holds, from its first bytes: ``zip``, ``tar``, ``gz``, ``bz2``,
    ``xz`` (a compressed tar) or ``file`` (anything else, kept as it is)."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    for magic, kind in _COMPRESSED.items():
        if head.startswith(magic):
            return kind
    if head[257:262] == b"ustar":
        return "tar"
    return "file"


def unpack(
    archive_path: Path,
    staging_dir: Path,
    limits: UploadLimits | None = None,
    *,
    name: str | None = None,
) -> list[Path]:
    """Unpack ``archive_path`` into ``staging_dir``; return the files written.

    Parameters
    ----------
    archive_path
        The uploaded file; it is only read.
    staging_dir
        Where the members go. It must not exist yet, or be an empty folder.
    limits
        The bounds to keep (:class:`UploadLimits`' defaults when ``None``).
    name
        The name under which a single file that is not an archive is kept (default:
        the name of ``archive_path``).

    Returns
    -------
    list of Path
        Every regular file written, in the archive's order (folders are not listed).

    Raises
    ------
    ArchiveError
        On any refusal or failure; the staging folder is then as it was before.
    """
    limits = limits or UploadLimits()
    archive_path = Path(archive_path)
    staging_dir = Path(staging_dir)
    existed = staging_dir.exists()
    if existed and (not staging_dir.is_dir() or any(staging_dir.iterdir())):
        raise ArchiveError(
            archive_path,
            None,
            f"the staging folder {str(staging_dir)!r} is not an empty folder; "
            "unpack each upload into a folder of its own",
        )
    try:
        staging_dir.mkdir(parents=True, exist_ok=True)
        writer = _Writer(archive_path, staging_dir.resolve(), limits)
        kind = archive_kind(archive_path)
        if kind == "zip":
            _unpack_zip(writer)
        elif kind == "file":
            _keep_file(writer, name or archive_path.name)
        else:
            _unpack_tar(writer, "r:" if kind == "tar" else f"r:{kind}")
        return [staging_dir / rel for rel in writer.files]
    except BaseException as exc:
        _clean(staging_dir, existed)
        if isinstance(exc, ArchiveError):
            raise
        if isinstance(exc, (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error)):
            reason = f"it is corrupt or cut short ({exc})"
        elif isinstance(exc, (OSError, ValueError, RuntimeError, NotImplementedError)):
            # zipfile raises these for encrypted, unsupported or broken members; our
            # own writes raise OSError (a full disk): in every case nothing is kept.
            reason = f"it cannot be unpacked ({type(exc).__name__}: {exc})"
        else:
            raise
        raise ArchiveError(archive_path, None, reason) from exc


def _clean(staging_dir: Path, existed: bool) -> None:
    """Put the staging folder back as it was: removed, or emptied."""
    if not existed:
        shutil.rmtree(staging_dir, ignore_errors=True)
        return
    for child in list(staging_dir.iterdir()):
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


class _Writer:
    """The members written so far, and the bounds they are checked against."""

    def __init__(self, archive: Path, root: Path, limits: UploadLimits) -> None:
        self.archive = archive
        self.root = root
        self.limits = limits
        self.files: list[str] = []
        self._taken: set[str] = set()  # every file and folder written, relative
        self._folders: set[str] = set()
        self._resolved: dict[str, Path] = {}  # folder (relative) -> its resolved path
        self.members = 0
        self.total = 0
        #: How many compressed bytes the members written so far came from.
        self.compressed_read: Callable[[], int] = lambda: self.total

    def refuse(self, member: str | None, reason: str) -> ArchiveError:
        return ArchiveError(self.archive, member, reason)

    def count_member(self, member: str) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise self.refuse(
                member, f"the archive holds more than {self.limits.max_members} members"
            )

    def relative(self, member: str) -> str:
        """The member's name made safe, relative to the staging folder, or refused."""
        name = member.replace("\\", "/")
        if any(ord(c) < 32 for c in name):
            raise self.refuse(member, "its name holds a control character")
        if len(name.encode("utf-8", "surrogateescape")) > self.limits.max_name_bytes:
            raise self.refuse(member, f"its name is longer than {self.limits.max_name_bytes} bytes")
        if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
            raise self.refuse(member, "its name is absolute")
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise self.refuse(member, "its name has a '..' part, which leads out of the folder")
        if not parts:
            raise self.refuse(member, "its name is empty")
        if any(len(p.encode("utf-8", "surrogateescape")) > 255 for p in parts):
            raise self.refuse(member, "a part of its name is longer than 255 bytes")
        if len(parts) > self.limits.max_depth:
            raise self.refuse(member, f"it lies more than {self.limits.max_depth} folders deep")
        rel = "/".join(parts)
        if not self._resolve(parts).is_relative_to(self.root):
            raise self.refuse(member, "it resolves outside the staging folder")
        return rel

    def _resolve(self, parts: list[str]) -> Path:
        """``root/parts`` with every link followed, as :meth:`Path.resolve`, each folder
        resolved once: nothing unpacked is a link (links are refused), so a folder's
        resolution does not change while unpacking (a member links nothing either; one
        found there is followed all the same)."""
        parent = "/".join(parts[:-1])
        folder = self._resolved.get(parent)
        if folder is None:
            folder = self._resolved[parent] = (self.root / parent).resolve()
        target = folder / parts[-1]
        return target.resolve() if target.is_symlink() else target

    def _claim(self, member: str, rel: str, folder: bool) -> None:
        parts = rel.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in self._taken and parent not in self._folders:
                raise self.refuse(member, f"its folder {parent!r} is a file of the archive")
        if rel in self._taken:
            if folder and rel in self._folders:
                return
            raise self.refuse(member, "another member has the same name; it would be overwritten")
        self._taken.add(rel)
        if folder:
            self._folders.add(rel)
        else:
            for i in range(1, len(parts)):
                parent = "/".join(parts[:i])
                self._taken.add(parent)
                self._folders.add(parent)

    def folder(self, member: str) -> None:
        rel = self.relative(member)
        self._claim(member, rel, folder=True)
        (self.root / rel).mkdir(parents=True, exist_ok=True)

    def file(self, member: str, source: IO[bytes], compressed: int | None = None) -> None:
        """Write one member, chunk by chunk, checking the bounds after every chunk.

        ``compressed`` is the member's own compressed size (zip), for its ratio; the
        ratio over the archive divides by :attr:`compressed_read` (zip: the compressed
        sizes of the members so far; tar: the bytes read from the archive so far).
        """
        rel = self.relative(member)
        self._claim(member, rel, folder=False)
        target = self.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(target, flags, 0o600)
        self.files.append(rel)
        limits = self.limits
        written = 0
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(CHUNK):
                out.write(chunk)
                written += len(chunk)
                self.total += len(chunk)
                if self.total > limits.max_total_bytes:
                    raise self.refuse(
                        member,
                        f"the archive unpacks to more than {limits.max_total_bytes} bytes",
                    )
                if compressed is not None and written > limits.ratio_floor_bytes:
                    ratio = written / max(compressed, 1)
                    if ratio > limits.max_member_ratio:
                        raise self.refuse(member, _ratio_reason(ratio, limits.max_member_ratio))
                if self.total > limits.ratio_floor_bytes:
                    ratio = self.total / max(self.compressed_read(), 1)
                    if ratio > limits.max_total_ratio:
                        raise self.refuse(
                            member, _ratio_reason(ratio, limits.max_total_ratio, "archive")
                        )


def _ratio_reason(ratio: float, limit: float, what: str = "member") -> str:
    return (
        f"the {what} unpacks to {ratio:.0f} times its compressed size, more than the "
        f"{limit:g} allowed (a compression bomb?)"
    )


def _unpack_zip(writer: _Writer) -> None:
    with zipfile.ZipFile(writer.archive) as zf:
        infos = zf.infolist()
        if len(infos) > writer.limits.max_members:
            raise writer.refuse(
                None,
                f"the archive holds {len(infos)} members, more than {writer.limits.max_members}",
            )
        compressed_so_far = 0
        writer.compressed_read = lambda: compressed_so_far
        for info in infos:
            member = info.filename
            writer.count_member(member)
            mode = info.external_attr >> 16
            kind = stat.S_IFMT(mode)
            if kind == stat.S_IFLNK:
                raise writer.refuse(member, "it is a symbolic link")
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise writer.refuse(member, "it is a device, FIFO or socket, not a file")
            if info.flag_bits & 0x1:
                raise writer.refuse(member, "it is encrypted")
            if info.is_dir() or kind == stat.S_IFDIR:
                writer.folder(member)
                continue
            if writer.total + info.file_size > writer.limits.max_total_bytes:
                raise writer.refuse(
                    member,
                    f"the archive unpacks to more than {writer.limits.max_total_bytes} bytes",
                )
            compressed_so_far += info.compress_size
            with zf.open(info) as source:
                writer.file(member, source, info.compress_size)


class _Counted:
    """A binary file that counts the bytes read from it (the compressed bytes)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.count += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True


def _tar_members(tf: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while (member := tf.next()) is not None:
        yield member


def _unpack_tar(writer: _Writer, mode: str) -> None:
    # Not stream mode ("r|gz"): it decompresses a block of input at once with no bound
    # on the output (a bzip2 block can grow a thousandfold and more), while GzipFile,
    # BZ2File and LZMAFile bound what they hand out. Members are read in order, so
    # their seeks only go forward.
    with open(writer.archive, "rb") as raw:
        counted = _Counted(raw)
        writer.compressed_read = lambda: counted.count
        with tarfile.open(fileobj=counted, mode=mode) as tf:  # type: ignore[call-overload]
            for info in _tar_members(tf):
                member = info.name
                writer.count_member(member)
                if info.issym() or info.islnk():
                    raise writer.refuse(
                        member, f"it is a {'symbolic' if info.issym() else 'hard'} link"
                    )
                if not (info.isreg() or info.isdir()):
                    raise writer.refuse(member, "it is a device, FIFO or socket, not a file")
                writer.relative(member)  # our reasons first, then Python's filter's
                try:
                    tarfile.data_filter(info, str(writer.root))
                except tarfile.FilterError as exc:
                    raise writer.refuse(member, str(exc)) from exc
                if info.isdir():
                    writer.folder(member)
                    continue
                if writer.total + info.size > writer.limits.max_total_bytes:
                    raise writer.refuse(
                        member,
                        f"the archive unpacks to more than {writer.limits.max_total_bytes} bytes",
                    )
                source = tf.extractfile(info)
                if source is None:  # pragma: no cover - isreg() members always have data
                    raise writer.refuse(member, "its data cannot be read")
                with source:
                    writer.file(member, source)


def _keep_file(writer: _Writer, name: str) -> None:
    """A single file that is not an archive: copied as it is, under ``name``."""
    if "/" in name.replace("\\", "/").strip("/"):
        name = name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    writer.count_member(name)
    with open(writer.archive, "rb") as source:
        writer.file(name, source)

"""Where frame files are: resolve import-file locations safely inside the data roots.

The rules (``docs/design.md`` says why):

- A relative location resolves against the import file's folder (the specification).
  MIQA's own files resolve against the folder above it: when a location without ``..``
  is not found under the import file's folder but is found under its parent, that file
  is used and a warning says so.
- After resolving ``..`` and symlinks, every file must lie inside the data roots
  (``MIQA_NB_DATA_ROOTS``, a list of folders separated by ``os.pathsep``; by default the
  import file's folder). Anything else is an error, whatever the path looked like.
- ``s3://`` locations are kept as given. A missing file is a warning.

Resolution works on distinct folders, not files (one ``realpath`` and one directory
listing per folder), so a million frames in a hundred thousand folders resolve quickly.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd

from miqa_nb.vocabulary import FRAME_SUFFIXES

ROOTS_ENV = "MIQA_NB_DATA_ROOTS"

#: Statuses of a resolved location, and whether each stops an import.
OK, S3, MISSING, GRANDPARENT = "ok", "s3", "missing", "grandparent"
SUFFIX, OUTSIDE, ESCAPES, SYMLINK = "suffix", "outside-roots", "escapes-roots", "symlink-escapes"
ERRORS = frozenset({SUFFIX, OUTSIDE, ESCAPES, SYMLINK})


@dataclass(frozen=True)
class DataRoots:
    """The folders frame files may live in (real paths, symlinks resolved)."""

    folders: tuple[str, ...]

    @classmethod
    def from_setting(
        cls, roots: Iterable[str | os.PathLike[str]] | None, default: str | os.PathLike[str]
    ) -> DataRoots:
        """Use ``roots``; else the ``MIQA_NB_DATA_ROOTS`` variable; else ``default``."""
        if roots is None:
            env = os.environ.get(ROOTS_ENV, "")
            roots = [p for p in env.split(os.pathsep) if p] or [default]
        return cls(tuple(os.path.realpath(os.fspath(r)) for r in roots))

    def contains(self, real_path: str) -> bool:
        """True when ``real_path`` lies inside one of the roots."""
        return any(
            real_path == root or real_path.startswith(root.rstrip(os.sep) + os.sep)
            for root in self.folders
        )

    def __str__(self) -> str:
        return os.pathsep.join(self.folders)


@cache
def _real_dir(folder: str) -> str:
    return os.path.realpath(folder)


@cache
def _listing(real_folder: str) -> dict[str, bool]:
    """Names in a folder, each mapped to whether it is a symlink."""
    try:
        with os.scandir(real_folder) as entries:
            return {entry.name: entry.is_symlink() for entry in entries}
    except OSError:
        return {}


def _locate(candidate: str) -> tuple[str, bool, bool]:
    """Return (real path, exists, is a symlink) for a normalised absolute path."""
    folder, name = os.path.split(candidate)
    real_folder = _real_dir(folder)
    listing = _listing(real_folder)
    real = os.path.join(real_folder, name)
    is_link = listing.get(name, False)
    if is_link:
        real = os.path.realpath(real)
    return real, name in listing and (not is_link or os.path.exists(real)), is_link


def resolve(
    values: Sequence[str], import_file: str | os.PathLike[str], roots: DataRoots
) -> pd.DataFrame:
    """Resolve distinct file locations found in ``import_file``.

    Returns
    -------
    DataFrame
        ``value`` (as found), ``resolved`` (real absolute path, or the ``s3://`` URL),
        ``status`` (``ok``, ``s3``, ``missing``, ``grandparent`` or one of :data:`ERRORS`)
        and ``detail`` (a sentence for the report).
    """
    _real_dir.cache_clear()
    _listing.cache_clear()
    base = os.path.dirname(os.path.abspath(import_file))
    grandparent = os.path.dirname(base)
    real_grandparent = os.path.realpath(grandparent)
    out_resolved: list[str | None] = []
    out_status: list[str] = []
    out_detail: list[str] = []
    for value in values:
        resolved, status, detail = _resolve_one(value, base, grandparent, real_grandparent, roots)
        out_resolved.append(resolved)
        out_status.append(status)
        out_detail.append(detail)
    return pd.DataFrame(
        {
            "value": list(values),
            "resolved": out_resolved,
            "status": out_status,
            "detail": out_detail,
        }
    )


def _resolve_one(
    value: str, base: str, grandparent: str, real_grandparent: str, roots: DataRoots
) -> tuple[str | None, str, str]:
    if value.lower().startswith("s3://"):
        return value, S3, ""
    if not value.lower().endswith(FRAME_SUFFIXES) or "\x00" in value:
        return (
            None,
            SUFFIX,
            f"a frame file must end in {', '.join(FRAME_SUFFIXES)}",
        )
    relative = not os.path.isabs(value)
    candidate = os.path.normpath(os.path.join(base, value) if relative else value)
    real, exists, is_link = _locate(candidate)
    inside = roots.contains(real)
    if inside and exists:
        return real, OK, ""
    if relative and ".." not in Path(value).parts:
        fallback = _grandparent(value, grandparent, real_grandparent, roots)
        if fallback is not None:
            return (
                fallback,
                GRANDPARENT,
                (
                    f"not found under {base}, but found under {grandparent} (where MIQA resolves "
                    "relative paths); write paths relative to the import file's folder"
                ),
            )
    if inside:
        return real, MISSING, f"file not found: {real}"
    allowed = f"the data roots ({roots}); set {ROOTS_ENV} to allow another folder"
    if is_link:
        return None, SYMLINK, f"a symlink that leads to {real}, outside {allowed}"
    if relative:
        return None, ESCAPES, f"'..' leads to {real}, outside {allowed}"
    return None, OUTSIDE, f"{real} is outside {allowed}"


def _grandparent(
    value: str, grandparent: str, real_grandparent: str, roots: DataRoots
) -> str | None:
    """MIQA's resolution: the file under the import file's grandparent, if it is there."""
    real, exists, _ = _locate(os.path.normpath(os.path.join(grandparent, value)))
    inside = roots.contains(real) or DataRoots((real_grandparent,)).contains(real)
    return real if exists and inside else None


def relative_to(resolved: str, folder: str | os.PathLike[str]) -> str:
    """Write ``resolved`` relative to ``folder`` when it lies inside it, else as is."""
    folder = os.path.realpath(folder)
    if resolved.startswith(folder.rstrip(os.sep) + os.sep):
        return Path(os.path.relpath(resolved, folder)).as_posix()
    return resolved

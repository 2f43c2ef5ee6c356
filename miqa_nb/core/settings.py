"""Settings read from the environment, named once.

Applications read them at their edges and pass the values in; library code deeper
down takes them as arguments.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["ROOTS_ENV", "data_roots_named", "folder_beside"]

#: The folders frame files may lie in, separated by ``os.pathsep``.
ROOTS_ENV = "MIQA_NB_DATA_ROOTS"


def data_roots_named(environ: Mapping[str, str] | None = None) -> list[str]:
    """The folders ``MIQA_NB_DATA_ROOTS`` names, in order, empty entries skipped
    (``s3://bucket[/prefix]`` entries too, kept whole although they hold a ':').

    Examples
    --------
    >>> data_roots_named({"MIQA_NB_DATA_ROOTS": "/data" + os.pathsep + os.pathsep + "/srv"})
    ['/data', '/srv']
    >>> data_roots_named({})
    []
    >>> data_roots_named({"MIQA_NB_DATA_ROOTS": "/data:s3://lab/mri:/srv"})  # on POSIX
    ['/data', 's3://lab/mri', '/srv']
    """
    env = os.environ if environ is None else environ
    parts = env.get(ROOTS_ENV, "").split(os.pathsep)
    roots: list[str] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        # 's3://bucket' holds the separator ':' itself: join it back to its scheme
        if part.lower() == "s3" and i + 1 < len(parts) and parts[i + 1].startswith("//"):
            part, i = f"{part}:{parts[i + 1]}", i + 1
        if part:
            roots.append(part)
        i += 1
    return roots


def folder_beside(
    catalog_path: str | os.PathLike[str],
    suffix: str,
    env: str,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """The folder ``env`` names, else ``<catalog>-<suffix>`` beside the catalog file.

    Examples
    --------
    >>> folder_beside("/lab/study.duckdb", "uploads", "MIQA_NB_UPLOAD_DIR", {})
    PosixPath('/lab/study-uploads')
    >>> folder_beside("/lab/study.duckdb", "uploads", "MIQA_NB_UPLOAD_DIR",
    ...               {"MIQA_NB_UPLOAD_DIR": "/srv/up"})
    PosixPath('/srv/up')
    """
    named = (os.environ if environ is None else environ).get(env)
    if named:
        return Path(named)
    path = Path(catalog_path)
    return path.with_name(f"{path.stem}-{suffix}")

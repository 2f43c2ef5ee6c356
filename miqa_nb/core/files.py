"""Files written whole or not at all: the one home of atomic writes.

A file is written under a temporary name beside its target (``.<name>.<random>.tmp``,
hidden, in the same folder so that the last step is a rename on one file system),
then put in place:

- by default with ``os.replace``: readers see the old file or the new one, never half
  of one (exports, thumbnails);
- with ``replace=False``, with ``os.link``, which refuses a target that exists: two
  writers of the same name cannot overwrite each other (uploads).

The data is flushed to disk (``fsync``) before it is put in place, so that a crash
cannot leave a truncated file under the final name; a cache that can be rebuilt may
skip this (``durable=False``). Whatever fails, the temporary file is removed and an
earlier file at the target stays as it was. Errors are the file system's
(``OSError``): callers word them for their users.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "write_atomic"]


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike[str], *, replace: bool = True, durable: bool = True
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an error,
    the file written there becomes ``path``.

    Parameters
    ----------
    path : path-like
        The file to write (its folder is created if missing).
    replace : bool
        Replace a file already at ``path``; when False, leave it and raise
        ``FileExistsError``.
    durable : bool
        Flush the data to disk before putting the file in place.

    Raises
    ------
    FileExistsError
        With ``replace=False``, when ``path`` exists (nothing is written there).
    OSError
        When the folder or the file cannot be written; nothing is left behind.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with atomic_path(os.path.join(folder, "a.txt")) as tmp:
    ...     _ = tmp.write_text("whole")
    >>> open(os.path.join(folder, "a.txt")).read(), os.listdir(folder)
    ('whole', ['a.txt'])
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if durable:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        if replace:
            os.replace(tmp, target)
        else:
            os.link(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_atomic(
    path: str | os.PathLike[str], content: bytes, *, replace: bool = True, durable: bool = True
) -> Path:
    """Write ``content`` to ``path`` whole or not at all (see :func:`atomic_path`).

    Returns
    -------
    Path
        ``path``.
    """
    with atomic_path(path, replace=replace, durable=durable) as tmp:
        tmp.write_bytes(content)
    return Path(path)

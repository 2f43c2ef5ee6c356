"""Programs miqa_nb starts and stops: the dashboard's server, JupyterHub."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import IO

__all__ = ["log_output", "log_tail", "stop_process"]


def log_output(
    log: IO[bytes] | int | str | os.PathLike[str] | None,
) -> tuple[Path | None, IO[bytes] | int | None]:
    """Where a child's output goes: a log file named by ``log``, opened to append (and
    its path; the caller closes it once the child has it), or a stream or descriptor
    as given, or None (the parent's own)."""
    if isinstance(log, str | os.PathLike):
        path = Path(log)
        return path, open(path, "ab")
    return None, log


def log_tail(log_path: Path | None, lines: int = 30) -> str:
    """The end of a program's log, for an error message ('' without a log)."""
    if log_path is None or not log_path.exists():
        return ""
    text = log_path.read_text(errors="replace").splitlines()[-lines:]
    return "; its log ends:\n" + "\n".join(text)


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Ask ``process`` to end (SIGTERM), and kill it when it has not within ``timeout``."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

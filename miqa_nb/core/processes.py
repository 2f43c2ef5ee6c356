"""Programs miqa_nb starts and stops: the dashboard's server, JupyterHub."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

__all__ = ["free_port", "log_tail", "start_logged", "stop_process"]


def start_logged(
    command: Sequence[str],
    *,
    cwd: str | os.PathLike[str],
    env: Mapping[str, str],
    log: IO[bytes] | int | str | os.PathLike[str] | None,
) -> tuple[subprocess.Popen[bytes], Path | None]:
    """Start ``command`` in the background, its output (and errors) to ``log``: a file
    named by it (appended to; its path is returned), a stream or descriptor as given,
    or None (this process's own). Its input is empty."""
    log_path: Path | None = None
    out: IO[bytes] | int | None
    if isinstance(log, str | os.PathLike):
        log_path = Path(log)
        out = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
    else:
        out = log
    try:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            stdin=subprocess.DEVNULL,
        )
    finally:
        if log_path is not None and out is not None and not isinstance(out, int):
            out.close()  # the child has its own copy
    return process, log_path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


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

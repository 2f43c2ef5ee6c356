"""The dashboard's server, and XNAT's calls in any Jupyter Server.

:mod:`miqa_nb.server.app` is the process :mod:`miqa_nb.serve` starts (``python -m
miqa_nb.server``): Voila's pages and pre-heated kernels behind the catalog's sign-in.
The package is also a Jupyter Server extension (``jupyter server extension enable
miqa_nb.server``) adding XNAT's import service and prearchive to any Jupyter Server
(:mod:`miqa_nb.server.extension`). Never loaded by a kernel or the command line.
"""

from __future__ import annotations

from typing import Any

__all__: list[str] = []


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Jupyter Server's entry: this package is the extension."""
    return [{"module": "miqa_nb.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Add XNAT's routes to a Jupyter Server (:func:`miqa_nb.server.extension.load`)."""
    from miqa_nb.server.extension import load

    load(serverapp)

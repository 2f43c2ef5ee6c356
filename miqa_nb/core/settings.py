"""Settings read from the environment, named once.

Applications read them at their edges and pass the values in; library code deeper
down takes them as arguments.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["ROOTS_ENV", "data_roots_named"]

#: The folders frame files may lie in, separated by ``os.pathsep``.
ROOTS_ENV = "MIQA_NB_DATA_ROOTS"


def data_roots_named(environ: Mapping[str, str] | None = None) -> list[str]:
    """The folders ``MIQA_NB_DATA_ROOTS`` names, in order, empty entries skipped.

    Examples
    --------
    >>> data_roots_named({"MIQA_NB_DATA_ROOTS": "/data" + os.pathsep + os.pathsep + "/srv"})
    ['/data', '/srv']
    >>> data_roots_named({})
    []
    """
    env = os.environ if environ is None else environ
    return [p for p in env.get(ROOTS_ENV, "").split(os.pathsep) if p]

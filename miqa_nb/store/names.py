"""What the catalog accepts as a name (of a user, project, scan type) and as a path.

Pure checks: each returns the value as stored or raises
:class:`~miqa_nb.core.errors.MiqaError` naming the value and what would be accepted.
"""

from __future__ import annotations

import os
import re

from miqa_nb.core.errors import MiqaError

__all__ = ["absolute_path", "check_name"]


def check_name(name: str, what: str) -> str:
    """A name as stored: one line of at most 255 characters, stripped.

    Examples
    --------
    >>> check_name("  ana ", "user name")
    'ana'
    >>> check_name("", "user name")
    Traceback (most recent call last):
    ...
    miqa_nb.core.errors.MiqaError: user name must be a non-empty string; '' was provided
    """
    if not isinstance(name, str) or not name.strip():
        raise MiqaError(f"{what} must be a non-empty string; {name!r} was provided")
    if re.search(r"[\x00-\x1f\x7f]", name) or len(name) > 255:
        raise MiqaError(f"{what} must be one line of at most 255 characters; {name!r} was provided")
    return name.strip()


def absolute_path(value: str, what: str) -> str:
    """An absolute path on this machine, normalised.

    Examples
    --------
    >>> absolute_path("/data/in/../in/study.csv", "import_path")
    '/data/in/study.csv'
    """
    if not os.path.isabs(value):
        raise MiqaError(f"{what} must be an absolute path on this machine; {value!r} was provided")
    return os.path.normpath(value)

"""The exceptions miqa_nb raises.

Every error is a :class:`MiqaError`; most also inherit the built-in exception that
fits, so callers can catch either ``ImportFileError`` or ``ValueError``.
Messages say what is wrong, the offending value, and how to fix it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from miqa_nb.core.report import Report

__all__ = [
    "CatalogBusy",
    "ImportFileError",
    "MiqaError",
    "NotFound",
    "PermissionDenied",
    "VocabularyError",
    "VolumeError",
    "WriteError",
]


class MiqaError(Exception):
    """Base class of every error raised by miqa_nb."""


class ImportFileError(MiqaError, ValueError):
    """An import file has errors; nothing was written.

    ``report`` holds every problem found (a :class:`~miqa_nb.core.report.Report`).
    """

    def __init__(self, message: str, report: Report | None = None) -> None:
        super().__init__(message)
        self.report = report


class VocabularyError(MiqaError, ValueError):
    """A decision code, scan type, artifact name or location is not known."""


class PermissionDenied(MiqaError, PermissionError):
    """The user may not do this; nothing was changed."""


class NotFound(MiqaError, LookupError):
    """A project, experiment, scan or user that does not exist in the catalog."""


class CatalogBusy(MiqaError, TimeoutError):
    """The catalog stayed locked by other processes for longer than the retry bound."""


class WriteError(MiqaError, OSError):
    """A file (an export, a backup) cannot be written; the message names it and why.
    Nothing was written in its place."""


class VolumeError(MiqaError, OSError):
    """An image file cannot be loaded or shown; the message names the file and why."""

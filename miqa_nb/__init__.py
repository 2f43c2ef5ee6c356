"""miqa_nb: review the quality of MRI scans in Jupyter.

A MIQA-compatible catalog, review panels and a Voila dashboard. The public API:

- :class:`Catalog` -- the catalog file: projects, users and roles, imports and
  exports, decisions, and DataFrames of them; :func:`read_export` reads an export
  file back into DataFrames.
- :class:`ReviewSession` -- one reviewer going through a project's scans, without
  widgets (a script, a test, or the state behind the panels).
- :func:`build_demo` -- the demo project, built from images that packages ship.
- The words the API speaks: :class:`Decision`, :class:`ArtifactState`,
  :class:`Location`, :class:`Role`, :class:`ScanState`, :class:`Report` of
  :class:`Problem`; and the errors, all :class:`MiqaError`.

Packages that are public too, each with its own ``__all__``:
:mod:`miqa_nb.widgets` (the review panels: ``open_review`` in a notebook),
:mod:`miqa_nb.volumes` (load, orient, window and render images),
:mod:`miqa_nb.dashboard` (the Voila dashboard) and :mod:`miqa_nb.exchange` (import
and export files). ``ls miqa_nb`` shows the layers; ``docs/design.md`` says how they fit.
"""

from typing import TYPE_CHECKING

from miqa_nb.catalog import Catalog
from miqa_nb.core.errors import (
    CatalogBusy,
    ImportFileError,
    MiqaError,
    NotFound,
    PermissionDenied,
    VocabularyError,
    VolumeError,
    WriteError,
)
from miqa_nb.core.report import Problem, Report
from miqa_nb.core.vocabulary import ArtifactState, Decision, Location, Role, ScanState
from miqa_nb.exchange.analysis import read_export

if TYPE_CHECKING:  # loaded on first use (below); type checkers see them at once
    from miqa_nb.demo import build_demo
    from miqa_nb.review import ReviewSession

__version__ = "0.1.0"

#: Public names loaded on first use: the review session brings the volumes layer
#: (nibabel, Pillow) and the demo its images, which a script that only imports
#: files into a catalog should not pay for at start-up.
_LAZY = {"ReviewSession": "miqa_nb.review", "build_demo": "miqa_nb.demo"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'miqa_nb' has no attribute {name!r}")


__all__ = [
    "ArtifactState",
    "Catalog",
    "CatalogBusy",
    "Decision",
    "ImportFileError",
    "Location",
    "MiqaError",
    "NotFound",
    "PermissionDenied",
    "Problem",
    "Report",
    "ReviewSession",
    "Role",
    "ScanState",
    "VocabularyError",
    "VolumeError",
    "WriteError",
    "build_demo",
    "read_export",
]

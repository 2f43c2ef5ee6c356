"""miqa_nb: review the quality of MRI scans in Jupyter.

A MIQA-compatible catalog (:class:`Catalog`), review panels and a Voila dashboard.
"""

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

__version__ = "0.1.0"

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
    "Role",
    "ScanState",
    "VocabularyError",
    "VolumeError",
    "WriteError",
    "read_export",
]

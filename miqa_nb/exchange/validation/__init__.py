"""Validate an import file: one report of every problem, and the clean tables.

:func:`validate` reads a file (:mod:`miqa_nb.exchange.formats`), stages its rows, and
runs a battery of checks over them (after nibabel's ``batteryrunners``):

1. *Rows* (``_rows``): the rows, read as Arrow record batches, are split into
   ``runs``, one row per run of consecutive rows with the same names and scan-level
   values (a scan's frames, in any file MIQA or a script writes), and ``frames``, per
   row its run, number and location. A run stands for ``_n`` identical rows: checked
   once, it gives the result of checking all of them, at a tenth of the cost.
2. *Staging* (``_staging``): the one step the checks rely on. The runs are staged in an
   in-memory DuckDB database; the frames stay in Arrow, with a view over them; the
   decisions, the scans spread over several runs, and each vocabulary's distinct
   values (parsed once: a million rows cost a few thousand parses) become tables;
   the frames' locations are resolved (:mod:`miqa_nb.exchange.locations`) on a second
   connection meanwhile.
3. *Checks* (``_values`` and ``_text``, ``_scans``, ``_files``): each a small
   function that names the staged tables it reads and returns its problems, or SQL
   rules for the runner (``_battery``) to describe. No check reads a table another check made, so they
   run in any order, or alone. The checks across rows run only when the value checks
   found no error.

When the report has no error, the staging database holds the validated tables
``v_experiments``, ``v_scans`` and ``v_decisions`` in the catalog's column layout, and
:attr:`Staged.frames` the frames, ready to be written in one transaction (``_staged``).
"""

from miqa_nb.exchange.validation._battery import MAX_LISTED, Check, Rule, run_battery
from miqa_nb.exchange.validation._files import FILE_CHECKS
from miqa_nb.exchange.validation._rows import (
    FRAME_COLUMNS,
    MAX_TEXT,
    NAME_COLUMNS,
    RUN_COLUMNS,
    SCAN_LEVEL,
)
from miqa_nb.exchange.validation._scans import SCAN_CHECKS
from miqa_nb.exchange.validation._staged import Staged
from miqa_nb.exchange.validation._staging import STAGING_MEMORY, Staging
from miqa_nb.exchange.validation._validate import check, validate
from miqa_nb.exchange.validation._values import VALUE_CHECKS

__all__ = [
    "FILE_CHECKS",
    "FRAME_COLUMNS",
    "MAX_LISTED",
    "MAX_TEXT",
    "NAME_COLUMNS",
    "RUN_COLUMNS",
    "SCAN_CHECKS",
    "SCAN_LEVEL",
    "STAGING_MEMORY",
    "VALUE_CHECKS",
    "Check",
    "Rule",
    "Staged",
    "Staging",
    "check",
    "run_battery",
    "validate",
]

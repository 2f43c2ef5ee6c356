"""What a value of an import or export file may be: its size, its nesting, and the
values a spreadsheet would run as formulas.

This module owns the bounds that keep a hostile file from costing unbounded time or
memory, and the rule for formulas, each written once: readers and validation read the
bounds from here, validation warns about formulas and exports neutralise them with the
same characters (:data:`FORMULA_START`, in Python and in SQL).

- :data:`MAX_VALUE_BYTES`: the longest value (a note, a link, a location), 1 MiB of
  UTF-8, far above any real one (names are shorter still: 255 characters).
- :data:`MAX_JSON_DEPTH`: how deeply a JSON file may nest. The format nests
  :data:`FORMAT_DEPTH` levels (the document, ``projects``, a project, ``experiments``,
  an experiment, ``scans``, a scan, ``frames`` or ``decisions``, a frame or decision).
- :data:`FORMULA_START`: a cell that begins with one of these characters is run as a
  formula by Excel and LibreOffice when they open a CSV (OWASP, "CSV Injection").
  Exports in the spreadsheet-safe form put a single quote before such a value.
"""

from __future__ import annotations

__all__ = [
    "FORMAT_DEPTH",
    "FORMULA_START",
    "MAX_JSON_DEPTH",
    "MAX_VALUE_BYTES",
    "formula_sql",
    "safe_sql",
    "spreadsheet_safe",
]

#: The longest value an import file may hold, in bytes of UTF-8.
MAX_VALUE_BYTES = 1 << 20
#: How many levels of objects and lists a MIQA JSON file nests.
FORMAT_DEPTH = 9
#: How many levels a JSON file may nest before it is refused unparsed.
MAX_JSON_DEPTH = 16
#: The characters that make a spreadsheet read a cell as a formula (OWASP's list).
FORMULA_START = "=+-@\t\r"
#: A number, which a spreadsheet reads as a number even with a sign in front.
_NUMBER = r"[+-]?[0-9]+(\.[0-9]+)?"


def _sql_class() -> str:
    return "[" + "".join("\\-" if c == "-" else f"\\x{ord(c):02x}" for c in FORMULA_START) + "]"


def formula_sql(column: str) -> str:
    """SQL: the value of ``column`` begins as a formula, and is not a plain number.

    >>> import duckdb
    >>> sql = formula_sql("v")
    >>> duckdb.sql(f"SELECT v, {sql} FROM (VALUES ('=1+2'), ('-3'), ('-3 dB'), ('a=b')) t(v)").fetchall()
    [('=1+2', True), ('-3', False), ('-3 dB', True), ('a=b', False)]
    """
    return (
        f"(regexp_matches({column}, '^{_sql_class()}') "
        f"AND NOT regexp_full_match({column}, '{_NUMBER}'))"
    )


def safe_sql(column: str) -> str:
    """SQL: ``column`` in the spreadsheet-safe form (:func:`spreadsheet_safe`)."""
    return (
        f"CASE WHEN regexp_matches({column}, '^{_sql_class()}') "
        f"THEN '''' || {column} ELSE {column} END"
    )


def spreadsheet_safe(text: str) -> str:
    """``text`` as a spreadsheet shows it without running it: a value that begins with
    a character of :data:`FORMULA_START` gets a single quote in front (OWASP's rule;
    numbers too, so that every such cell is read as text).

    >>> spreadsheet_safe("=HYPERLINK(\\"http://x\\")"), spreadsheet_safe("T1")
    ('\\'=HYPERLINK("http://x")', 'T1')
    """
    return "'" + text if text[:1] in FORMULA_START and text else text

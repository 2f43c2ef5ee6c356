"""The JSON reader of import files: ``projects -> experiments -> scans -> frames``.

:func:`read_json` parses the document, walks it (``_JsonReader``) into frame rows and
every scan's decisions, ordered as MIQA orders them (:func:`decision_order`), and
reports each wrongly nested value or unknown key with its JSON path. Re-exported by
:mod:`miqa_nb.exchange.formats`, the front door of the readers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from miqa_nb.core.errors import VocabularyError
from miqa_nb.core.report import Problem
from miqa_nb.core.vocabulary import Timestamp
from miqa_nb.exchange import limits, scanning
from miqa_nb.exchange._parsed import (
    BATCH_COLUMNS,
    BATCH_SCHEMA,
    BOM,
    DECISION_KEYS,
    DECISIONS_TABLE,
    MIQA_COLUMNS,
    SCAN_KEYS,
    ParsedFile,
)

if TYPE_CHECKING:  # pandas loads when a JSON file is read, not with this module
    import pandas as pd

__all__ = ["decision_order", "read_json"]


def _jpath(*keys: str) -> str:
    return "$" + "".join(f"[{json.dumps(k, ensure_ascii=False)}]" for k in keys)


def _scalar(value: Any) -> str | None:
    """A scalar as text ('' for null); None when the value is not a scalar."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def read_json(path: str | os.PathLike[str]) -> ParsedFile:
    """Read a JSON import file: ``projects -> experiments -> scans -> frames``.

    A scan carries ``last_decision`` (the specification) or ``decisions`` (MIQA: every
    decision); an experiment may carry ``notes``. Unknown keys and wrongly nested values
    are reported with their JSON path. A scan's decisions are ordered as MIQA orders
    them (:func:`decision_order`). What MIQA's own importer would refuse or read
    otherwise (``"notes": null``; ``decisions`` beside ``last_decision``) is a warning.
    """
    import pandas as pd

    name = str(path)
    parsed = ParsedFile(name, "json")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        parsed.problems.append(
            _json_problem(name, "unreadable", f"cannot read the file: {exc.strerror or exc}", "$")
        )
        return parsed
    data = data[len(BOM) :] if data.startswith(BOM) else data
    deep = scanning.json_too_deep(data, limits.MAX_JSON_DEPTH)
    if deep is not None:
        parsed.problems.append(_too_deep(name, deep.path, deep.line, deep.column))
        return parsed
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        parsed.problems.append(
            _json_problem(
                name, "encoding", f"the file is not UTF-8 ({exc.reason}); save it as UTF-8", "$"
            )
        )
        return parsed
    except json.JSONDecodeError as exc:
        parsed.problems.append(
            _json_problem(
                name,
                "malformed-json",
                f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
                "$",
                row=exc.lineno,
            )
        )
        return parsed
    except RecursionError:  # pragma: no cover - the depth is bounded above; a safety net
        parsed.problems.append(_too_deep(name, None, None, None))
        return parsed
    reader = _JsonReader(name)
    reader.read(document)
    parsed.problems.extend(reader.problems)
    if not reader.rows and not parsed.problems:
        parsed.problems.append(
            _json_problem(
                name,
                "no-rows",
                "the file holds no frames; add projects, experiments, scans and frames",
                "$",
            )
        )
    parsed.decisions = pd.DataFrame(reader.decisions, columns=list(DECISIONS_TABLE))
    frame = pd.DataFrame(reader.rows, columns=[*MIQA_COLUMNS, "_path"], dtype=object)
    parsed._batches = lambda: _frame_batches(frame)
    return parsed


def _too_deep(file: str, where: str | None, line: int | None, column: int | None) -> Problem:
    at = f" at line {line}, column {column}" if line is not None else ""
    return _json_problem(
        file,
        "json-too-deep",
        f"the JSON nests deeper than {limits.MAX_JSON_DEPTH} levels{at}; a MIQA file nests "
        f"{limits.FORMAT_DEPTH} (projects, experiments, scans, frames or decisions): this "
        "is not an import file, and it was not read further",
        where or "$",
        row=line,
        expected=f"at most {limits.MAX_JSON_DEPTH} levels of objects and lists",
    )


def _json_problem(
    file: str,
    check: str,
    message: str,
    where: str,
    severity: Literal["error", "warning"] = "error",
    **more: Any,
) -> Problem:
    return Problem(severity, check, message, file=file, path=where, **more)


def _frame_batches(frame: pd.DataFrame) -> Iterator[pa.RecordBatch]:
    """The rows of a JSON file as record batches of :data:`BATCH_SCHEMA`."""
    table = pa.Table.from_pandas(frame.assign(_row=None)[list(BATCH_COLUMNS)], schema=BATCH_SCHEMA)
    yield from table.to_batches()


def decision_order(created: list[str]) -> list[int]:
    """Each decision's place in its scan's history (0 the newest), given their
    ``created`` texts in the order a file lists them (newest first).

    As MIQA orders them (``docs/miqa-rules.md``, rule D1): by ``created``, newest first,
    a decision without a (readable) time before any with one (PostgreSQL sorts nulls
    first in MIQA's ``-created`` order); times compare as written, wall clock, whatever
    their UTC offsets (MIQA drops the offset); ties keep the list's order.

    >>> decision_order(["2022-01-01 10:00:00", "2022-01-02 09:00:00", "", "2022-01-02 09:00"])
    [3, 1, 0, 2]
    """
    keys = []
    for position, text in enumerate(created):
        try:
            wall = Timestamp.parse(text).wall if text.strip() else None
        except VocabularyError:
            wall = None
        since = 0 if wall is None else (wall - datetime.min) // timedelta(microseconds=1)
        keys.append((wall is not None, -since, position))
    ranked = sorted(range(len(created)), key=keys.__getitem__)
    order = [0] * len(created)
    for place, index in enumerate(ranked):
        order[index] = place
    return order


class _JsonReader:
    """Walks a parsed JSON document into frame rows and decisions, noting problems."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.rows: list[dict[str, Any]] = []
        self.decisions: list[dict[str, Any]] = []

    def problem(self, check: str, message: str, where: str, **more: Any) -> None:
        self.problems.append(_json_problem(self.file, check, message, where, **more))

    def mapping(
        self, value: Any, where: str, what: str, keys: tuple[str, ...] | None
    ) -> dict[str, Any]:
        """``value`` if it is an object (its unknown keys reported), else ``{}``."""
        if not isinstance(value, dict):
            self.problem(
                "json-structure",
                f"{what} must be a JSON object; found {type(value).__name__}",
                where,
                value=_preview(value),
            )
            return {}
        allowed = () if keys is None else keys
        for key in value if keys is not None else ():
            if key not in allowed:
                self.problem(
                    "unknown-key",
                    f"unknown key {key!r} in {what}; allowed keys are {', '.join(allowed)}",
                    where + f"[{json.dumps(key, ensure_ascii=False)}]",
                    column=key,
                    value=key,
                    expected=", ".join(allowed),
                )
        return value

    def text(self, container: dict[str, Any], key: str, where: str) -> str:
        """A scalar value as text (``''`` for null or absent)."""
        found = _scalar(container.get(key))
        if found is None:
            self.problem(
                "json-structure",
                f"{key!r} must be a string or null, not a nested value",
                where + f"[{json.dumps(key)}]",
                column=key,
                value=_preview(container.get(key)),
            )
            return ""
        return found

    def read(self, document: Any) -> None:
        top = self.mapping(document, "$", "the document", ("projects",))
        if isinstance(document, dict) and "projects" not in document:
            self.problem("json-structure", "the document needs a top-level 'projects' object", "$")
        projects = self.mapping(top.get("projects", {}), _jpath("projects"), "'projects'", None)
        for project, pvalue in projects.items():
            pwhere = _jpath("projects", project)
            pdict = self.mapping(pvalue, pwhere, f"project {project!r}", ("experiments",))
            experiments = self.mapping(
                pdict.get("experiments", {}), pwhere + '["experiments"]', "'experiments'", None
            )
            for experiment, evalue in experiments.items():
                self.experiment(project, experiment, evalue)

    def experiment(self, project: str, experiment: str, evalue: Any) -> None:
        ewhere = _jpath("projects", project, "experiments", experiment)
        edict = self.mapping(evalue, ewhere, f"experiment {experiment!r}", ("scans", "notes"))
        if "notes" in edict and edict["notes"] is None:
            self.problem(
                "miqa-refuses",
                f'experiment {experiment!r} has "notes": null, which MIQA refuses (it '
                'writes "" for no notes); read here as no notes',
                ewhere + '["notes"]',
                severity="warning",
                column="notes",
                expected='a string ("" for none)',
            )
        notes = self.text(edict, "notes", ewhere)
        scans = self.mapping(edict.get("scans", {}), ewhere + '["scans"]', "'scans'", None)
        if not scans and isinstance(evalue, dict):
            self.problem(
                "empty-experiment",
                f"experiment {experiment!r} has no scans; add scans or remove it",
                ewhere,
            )
        for scan, svalue in scans.items():
            swhere = ewhere + _jpath("scans", scan)[1:]
            sdict = self.mapping(
                svalue,
                swhere,
                f"scan {scan!r}",
                (*SCAN_KEYS, "frames", "last_decision", "decisions"),
            )
            base = {
                **dict.fromkeys(MIQA_COLUMNS, ""),
                "project_name": project,
                "experiment_name": experiment,
                "scan_name": scan,
                "experiment_notes": notes,
                **{col: self.text(sdict, key, swhere) for key, col in SCAN_KEYS.items()},
            }
            frames = self.mapping(sdict.get("frames", {}), swhere + '["frames"]', "'frames'", None)
            if not frames and isinstance(svalue, dict):
                self.problem(
                    "empty-scan",
                    f"scan {scan!r} has no frames; add at least one frame or remove it",
                    swhere,
                )
            for number, fvalue in frames.items():
                fwhere = swhere + _jpath("frames", number)[1:]
                fdict = self.mapping(fvalue, fwhere, f"frame {number!r}", ("file_location",))
                self.rows.append(
                    {
                        **base,
                        "frame_number": number,
                        "file_location": self.text(fdict, "file_location", fwhere),
                        "_path": fwhere,
                    }
                )
            self.history(project, experiment, scan, sdict, swhere)

    def history(
        self, project: str, experiment: str, scan: str, sdict: dict[str, Any], swhere: str
    ) -> None:
        """A scan's decisions: ``last_decision`` and the ``decisions`` list, in MIQA's order."""
        listed: list[tuple[Any, str]] = []
        if sdict.get("last_decision") is not None:
            listed.append((sdict["last_decision"], swhere + '["last_decision"]'))
        given = sdict.get("decisions")
        if given is not None and not isinstance(given, list):
            self.problem("json-structure", "'decisions' must be a list", swhere + '["decisions"]')
        elif given is not None:
            if listed and given:
                self.problem(
                    "miqa-differs",
                    f"scan {scan!r} has both 'last_decision' and 'decisions'; MIQA would keep "
                    "only 'last_decision', here both are kept",
                    swhere,
                    severity="warning",
                )
            listed.extend((d, swhere + f'["decisions"][{n}]') for n, d in enumerate(given))
        found: list[dict[str, Any]] = []
        for dvalue, dwhere in listed:
            ddict = self.mapping(dvalue, dwhere, "a decision", tuple(DECISION_KEYS))
            found.append(
                {
                    "project_name": project,
                    "experiment_name": experiment,
                    "scan_name": scan,
                    **{col: self.text(ddict, key, dwhere) for key, col in DECISION_KEYS.items()},
                    "_path": dwhere,
                }
            )
        order = decision_order([d["last_decision_created"] for d in found])
        for decision, place in zip(found, order, strict=True):
            decision["_order"] = place
        self.decisions.extend(found)


def _preview(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."

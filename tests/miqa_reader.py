"""What MIQA would store from an import file: the rules of ``docs/miqa-rules.md``.

A reader for tests, written from those rules (each function names the rules it
applies), not from MIQA's code. It answers two questions about a file: would MIQA
accept it (:class:`Refused` when not, as MIQA's importer raises), and what would it
store (:class:`Stored`: experiments, scans, frames and decisions, as plain tuples).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

#: Rule C1: the columns, in MIQA's order.
COLUMNS = (
    "project_name",
    "experiment_name",
    "scan_name",
    "scan_type",
    "frame_number",
    "file_location",
    "experiment_notes",
    "subject_id",
    "session_id",
    "scan_link",
    "last_decision",
    "last_decision_creator",
    "last_decision_note",
    "last_decision_created",
    "identified_artifacts",
    "location_of_interest",
)
#: Rule S3: the decision codes MIQA stores (others are dropped).
CODES = ("U", "UE", "Q?", "UN")
#: Rule S4: MIQA's artifact keys, each matched as a substring of the written text.
ARTIFACT_KEYS = (
    "lesions",
    "partial_brain_coverage",
    "misalignment",
    "swap_wraparound",
    "ghosting_motion",
    "inhomogeneity",
    "susceptibility_metal",
    "flow_artifact",
    "truncation_artifact",
)
DECISION_KEYS = ("decision", "creator", "note", "created", "user_identified_artifacts", "location")


class Refused(ValueError):
    """MIQA's importer would refuse the file."""


@dataclass
class Stored:
    """What MIQA would store, keyed by names; decisions newest first (rule D1)."""

    experiments: dict[tuple[str, str], str] = field(default_factory=dict)
    scans: dict[tuple[str, str, str], tuple[Any, ...]] = field(default_factory=dict)
    frames: dict[tuple[str, str, str, int], str] = field(default_factory=dict)
    decisions: dict[tuple[str, str, str], list[tuple[Any, ...]]] = field(default_factory=dict)

    def last_decisions(self) -> dict[tuple[str, str, str], tuple[Any, ...]]:
        return {key: found[0] for key, found in self.decisions.items() if found}


def read(path: str | Path, import_path: str | Path | None = None) -> Stored:
    """What MIQA would store from ``path`` read as the import file ``import_path``
    (the path MIQA is configured with; by default ``path`` itself)."""
    path = Path(path)
    import_path = Path(import_path or path)
    if path.suffix == ".json":
        document = json.loads(path.read_text(encoding="utf-8"))
    else:
        document = csv_to_document(path.read_text(encoding="utf-8"))
    check_shape(document)
    return store(document, import_path)


def csv_to_document(text: str) -> dict[str, Any]:
    """Rules C1-C4: a CSV file as the nested document MIQA's importer builds from it."""
    frame = pd.read_csv(io.StringIO(text), index_col=False, na_filter=False).astype(str)
    columns = list(frame.columns)
    if columns != list(COLUMNS[: len(columns)]) or len(columns) < 6:
        raise Refused(f"C1: columns {columns} are not the first N >= 6 of {COLUMNS}")
    projects: dict[str, Any] = {}
    for project, p_rows in frame.groupby("project_name"):
        experiments: dict[str, Any] = {}
        for experiment, e_rows in p_rows.groupby("experiment_name"):
            scans: dict[str, Any] = {}
            first = e_rows.iloc[0]
            entry: dict[str, Any] = {"scans": scans}
            if "experiment_notes" in columns:
                entry["notes"] = first["experiment_notes"]
            for scan, s_rows in e_rows.groupby("scan_name"):
                if list(s_rows["file_location"].unique()) == [""]:
                    continue
                top = s_rows.iloc[0]
                scan_entry: dict[str, Any] = {
                    "type": top["scan_type"],
                    "frames": {
                        int(r["frame_number"]): {"file_location": r["file_location"]}
                        for _, r in s_rows.iterrows()
                    },
                    "decisions": [],
                }
                for key in ("subject_id", "session_id", "scan_link"):
                    if key in columns:
                        scan_entry[key] = top[key]
                if "last_decision" in columns and top["last_decision"]:
                    values = [top[c] for c in COLUMNS[10:]]
                    scan_entry["decisions"].append(
                        {k: (v or None) for k, v in zip(DECISION_KEYS, values, strict=True)}
                    )
                scans[scan] = scan_entry
            experiments[experiment] = entry
        projects[project] = {"experiments": experiments}
    return {"projects": projects}


def check_shape(document: Any) -> None:
    """Rules J1-J3: the shape MIQA's schema accepts (it raises on anything else)."""

    def keys(value: Any, required: set[str], optional: set[str], where: str) -> None:
        if not isinstance(value, dict):
            raise Refused(f"{where} must be an object")
        unknown = set(value) - required - optional
        missing = required - set(value)
        if unknown or missing:
            raise Refused(f"{where}: unknown keys {unknown}, missing keys {missing}")

    def text_or_null(value: Any, where: str) -> None:
        if value is not None and not isinstance(value, str):
            raise Refused(f"{where} must be a string or null, not {value!r}")

    keys(document, {"projects"}, set(), "$")
    for p, project in document["projects"].items():
        keys(project, {"experiments"}, set(), p)
        for e, experiment in project["experiments"].items():
            keys(experiment, {"scans"}, {"notes"}, e)
            if "notes" in experiment and not isinstance(experiment["notes"], str):
                raise Refused(f"J2: notes of {e} must be a string, not {experiment['notes']!r}")
            for s, scan in experiment["scans"].items():
                keys(
                    scan,
                    {"type", "frames"},
                    {"subject_id", "session_id", "scan_link", "decisions", "last_decision"},
                    s,
                )
                for key in ("subject_id", "session_id", "scan_link"):
                    text_or_null(scan.get(key), f"{s}.{key}")
                for number, frame in scan["frames"].items():
                    int(number)  # J3: a frame key is an integer
                    keys(frame, {"file_location"}, set(), f"{s}.frames.{number}")
                listed = list(scan.get("decisions", []))
                if scan.get("last_decision") is not None:
                    listed.append(scan["last_decision"])
                for decision in listed:
                    keys(decision, set(DECISION_KEYS), set(), f"{s}.decisions")
                    for key in DECISION_KEYS[1:]:
                        text_or_null(decision[key], f"{s}.decisions.{key}")


def location(value: str, import_path: Path) -> str:
    """Rule L1-L2: the path MIQA records for a ``file_location``."""
    if value.startswith("s3://") or not value:
        return value
    path = Path(value.strip())
    if not path.is_absolute():
        path = import_path.parent.parent / path
    return str(path)


def created(value: str | None) -> str | None:
    """Rule S2: a decision time as MIQA stores it: wall clock as written, to the minute."""
    if not value:
        return None
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M")


def store(document: dict[str, Any], import_path: Path) -> Stored:
    """Rules L1-L2, S1-S5, D1: what MIQA's import task stores from a checked document."""
    stored = Stored()
    for p, project in document["projects"].items():
        for e, experiment in project["experiments"].items():
            kept_experiment = False
            for s, scan in experiment["scans"].items():
                frames = {
                    int(n): location(f["file_location"], import_path)
                    for n, f in scan["frames"].items()
                    if f["file_location"]
                }
                if not frames:  # S5: a scan without frames is not created
                    continue
                kept_experiment = True
                key = (p, e, s)
                stored.scans[key] = (
                    scan["type"],
                    scan.get("subject_id"),
                    scan.get("session_id"),
                    scan.get("scan_link"),
                )
                for n, where in frames.items():
                    stored.frames[(p, e, s, n)] = where
                listed = scan.get("decisions", [])
                if scan.get("last_decision"):  # S1: last_decision replaces the list
                    listed = [scan["last_decision"]]
                found = [_decision(d) for d in listed if d["decision"] in CODES]
                stored.decisions[key] = _newest_first(found)
            if kept_experiment:
                stored.experiments[(p, e)] = experiment.get("notes", "")
    return stored


def _decision(d: dict[str, Any]) -> tuple[Any, ...]:
    """Rules S2-S4: (decision, creator, note, created, artifacts, location)."""
    written = d["user_identified_artifacts"]
    artifacts = frozenset(a for a in ARTIFACT_KEYS if written and a in written)
    where = None
    if d["location"]:
        where = tuple(axis.split("=")[1] for axis in d["location"].split(";"))
    return (d["decision"], d["creator"], d["note"] or "", created(d["created"]), artifacts, where)


def _newest_first(found: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rule D1: by time, newest first, undated ones before all (ties: as listed)."""
    return sorted(found, key=lambda d: (d[3] is not None, _negated(d[3])))


def _negated(minute: str | None) -> tuple[int, ...]:
    if minute is None:
        return ()
    when = datetime.strptime(minute, "%Y-%m-%d %H:%M")
    return (-when.toordinal(), -when.hour, -when.minute)

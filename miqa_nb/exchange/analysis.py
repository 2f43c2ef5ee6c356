"""Exports as DataFrames for ad hoc analysis.

:func:`read_export` turns any MIQA export, ours or the MIQA application's, CSV or JSON,
into one typed DataFrame: a row per frame with its scan's last decision, times as
datetimes, one boolean column per artifact, and the location of interest as ``i``,
``j``, ``k`` floats (mm). It is forgiving (a value it cannot read becomes missing):
to *check* a file, use :func:`miqa_nb.exchange.validation.validate`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from miqa_nb.core.errors import ImportFileError, VocabularyError
from miqa_nb.core.report import Report
from miqa_nb.core.vocabulary import ARTIFACTS, Decision, Location, Timestamp, parse_artifacts
from miqa_nb.exchange import formats

if TYPE_CHECKING:  # pandas loads on first use: an import never needs it
    import pandas as pd


def read_export(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read an export file into a typed DataFrame (one row per frame).

    Columns: MIQA's 16 (``frame_number`` an integer, ``last_decision`` categorical,
    ``last_decision_created`` a datetime, wall-clock as written), then ``i``, ``j``,
    ``k`` (mm) and one boolean column per artifact (present or not). JSON exports also
    give ``n_decisions`` (the length of each scan's history).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(folder.name, "project.csv")
    >>> _ = path.write_text(
    ...     ",".join(formats.MIQA_COLUMNS) + "\\n"
    ...     "P,E1,S1,T1,0,/data/s1.nii.gz,,,,,U,ana,,2024-05-01 10:00:00,,\\n"
    ...     "P,E1,S2,T1,0,/data/s2.nii.gz,,,,,UN,ben,moved,2024-05-01 10:05:00,"
    ...     "ghosting_motion,i=1;j=2;k=3\\n"
    ... )
    >>> df = read_export(path)
    >>> df.drop_duplicates("scan_name").groupby("last_decision_creator").size().to_dict()
    {'ana': 1, 'ben': 1}
    >>> df[["scan_name", "ghosting_motion", "k"]]
      scan_name  ghosting_motion    k
    0        S1            False  NaN
    1        S2             True  3.0
    >>> folder.cleanup()
    """
    parsed = formats.read(path)
    frames = parsed.frame()
    if any(p.severity == "error" for p in parsed.problems):
        report = Report(file=str(path), problems=parsed.problems)
        raise ImportFileError(f"cannot read {path}:\n{report}", report)
    frames = frames.drop(columns=["_path"])
    if parsed.decisions is not None:
        frames = _with_last_decision(frames, parsed.decisions)
    return _typed(frames)


def _with_last_decision(frames: pd.DataFrame, decisions: pd.DataFrame) -> pd.DataFrame:
    keys = ["project_name", "experiment_name", "scan_name"]
    history = decisions.groupby(keys).size().rename("n_decisions")
    last = decisions[decisions["_order"] == 0].drop(columns=["_order", "_path"])
    frames = frames.drop(columns=list(formats.DECISION_COLUMNS))
    frames = frames.merge(last, on=keys, how="left").merge(history, on=keys, how="left")
    frames["n_decisions"] = frames["n_decisions"].fillna(0).astype("int64")
    return frames.fillna({c: "" for c in formats.DECISION_COLUMNS})


def _lenient(values: pd.Series, parse: Callable[[str], Any]) -> dict[str, Any]:
    out = {}
    for value in values.dropna().unique():
        if value == "":
            continue
        try:
            out[value] = parse(value)
        except VocabularyError:
            continue
    return out


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    text = [c for c in formats.MIQA_COLUMNS if c not in ("frame_number",)]
    df[text] = df[text].replace("", None)
    df["frame_number"] = pd.to_numeric(df["frame_number"], errors="coerce").astype("Int64")
    df["scan_type"] = df["scan_type"].astype("category")
    codes = _lenient(df["last_decision"], lambda v: Decision.parse(v).value)
    df["last_decision"] = pd.Categorical(
        df["last_decision"].map(codes), [d.value for d in Decision]
    )
    times = _lenient(df["last_decision_created"], Timestamp.parse)
    df["last_decision_created"] = pd.to_datetime(
        df["last_decision_created"].map({k: t.wall for k, t in times.items()})
    )
    locations = _lenient(df["location_of_interest"], Location.parse)
    for axis in "ijk":
        df[axis] = (
            df["location_of_interest"]
            .map({k: getattr(v, axis) for k, v in locations.items()})
            .astype("float64")
        )
    artifacts = _lenient(df["identified_artifacts"], parse_artifacts)
    present = df["identified_artifacts"].map(artifacts)
    for name in ARTIFACTS:
        df[name] = present.map(lambda names, n=name: isinstance(names, tuple) and n in names)
        df[name] = df[name].astype(np.bool_)
    return df

"""Exports: MIQA's layouts, atomic writes, and exact round trips (hypothesis)."""

import csv
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import frame_row

from miqa_nb import Catalog
from miqa_nb.core.rules import NOTE_CONTROLS
from miqa_nb.core.vocabulary import ARTIFACTS, SCAN_TYPES
from miqa_nb.exchange.formats import MIQA_COLUMNS


def test_csv_export_is_miqas_16_columns(catalog, write_csv, tmp_path):
    rows = [
        frame_row(
            frame=n,
            last_decision="UN",
            last_decision_creator="a@b.org",
            last_decision_note='bad, "very"',
            last_decision_created="2022-01-02 09:04:22",
            identified_artifacts="partial_coverage;misalignment",
            location_of_interest="i=-2.669;j=-61.718;k=-48.763",
        )
        for n in range(2)
    ]
    catalog.add_user("a@b.org", by="admin")  # an import credits decisions to users only
    catalog.import_file(write_csv(rows), by="admin")
    out = catalog.export_file(tmp_path / "export.csv", by="admin", project="P")
    with open(out, newline="") as handle:
        table = list(csv.reader(handle))
    assert table[0] == list(MIQA_COLUMNS)
    # Absolute: MIQA and miqa_nb read the same file wherever the export is moved.
    assert table[1][4:6] == ["0", str(tmp_path / "images/E1/S1/f0.nii.gz")]
    assert table[1][10:] == [
        "UN",
        "a@b.org",
        'bad, "very"',
        "2022-01-02 09:04:22",
        "partial_brain_coverage;misalignment",
        "i=-2.669;j=-61.718;k=-48.763",
    ]


def test_export_outside_the_data_folder_writes_absolute_paths(catalog, write_csv, tmp_path):
    catalog.import_file(write_csv([frame_row()]), by="admin")
    out = catalog.export_file(tmp_path / "elsewhere" / "e.csv", by="admin")
    assert pd.read_csv(out)["file_location"][0] == str(tmp_path / "images/E1/S1/f0.nii.gz")


def test_csv_export_without_decision_time(catalog, write_csv, tmp_path):
    """MIQA's export crashes when a decision has no time; ours writes an empty cell."""
    catalog.import_file(write_csv([frame_row(last_decision="U")]), by="admin")
    out = catalog.export_file(tmp_path / "e.csv", by="admin")
    assert pd.read_csv(out, keep_default_na=False)["last_decision_created"][0] == ""


def test_json_export_keeps_history_newest_first(catalog, write_csv, tmp_path):
    catalog.import_file(write_csv([frame_row()]), by="admin")
    catalog.record_decision("P", "E1", "S1", "Q?", by="admin", note="first")
    catalog.record_decision("P", "E1", "S1", "U", by="admin")
    out = catalog.export_file(tmp_path / "e.json", by="admin")
    scan = json.loads(out.read_text())["projects"]["P"]["experiments"]["E1"]["scans"]["S1"]
    assert [d["decision"] for d in scan["decisions"]] == ["U", "Q?"]
    assert set(scan) == {"type", "subject_id", "session_id", "scan_link", "frames", "decisions"}
    assert set(scan["decisions"][0]) == {
        "decision",
        "creator",
        "note",
        "created",
        "user_identified_artifacts",
        "location",
    }
    assert scan["decisions"][0]["created"].endswith("+00:00")


def test_miqa_sample_round_trip_is_byte_exact(tmp_path, samples, make_catalog):
    first = make_catalog("a", data_roots=[samples])
    first.add_user("admin")
    first.import_file(samples / "samples" / "demo_project.csv", by="admin")
    e1 = first.export_file(tmp_path / "e1.csv", by="admin")
    second = make_catalog("b", data_roots=[samples])
    second.add_user("admin")
    second.import_file(e1, by="admin")
    e2 = second.export_file(tmp_path / "e2.csv", by="admin")
    assert e1.read_bytes() == e2.read_bytes()


# ----------------------------------------------------------------- hypothesis

NAME = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=10
).filter(lambda s: s.strip() == s and s != "")
OPTIONAL = st.one_of(st.just(""), NAME)
# A note holds no control character but tab and line breaks (\r is left out: pandas
# writes the CSV, and a lone \r would end its line).
NOTE = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters=NOTE_CONTROLS + "\r"),
    max_size=20,
)
TIME = st.builds(
    lambda d, tz: (
        d.replace(tzinfo=None) if tz is None else d.replace(tzinfo=timezone(timedelta(minutes=tz)))
    ),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1)).map(
        lambda d: d.replace(microsecond=0)
    ),
    st.one_of(st.none(), st.sampled_from([0, 60, -330, 540])),
)
LOCATION = st.tuples(*[st.floats(-300, 300, allow_nan=False).map(lambda v: round(v, 3))] * 3)


@st.composite
def decisions(draw):
    if not draw(st.booleans()):
        return {}
    created = draw(st.one_of(st.none(), TIME))
    location = draw(st.one_of(st.none(), LOCATION))
    return {
        "last_decision": draw(st.sampled_from(["U", "UE", "Q?", "UN"])),
        "last_decision_creator": draw(OPTIONAL),
        "last_decision_note": draw(NOTE),
        "last_decision_created": "" if created is None else created.isoformat(sep=" "),
        "identified_artifacts": ";".join(draw(st.lists(st.sampled_from(ARTIFACTS), unique=True))),
        "location_of_interest": "" if location is None else "i={};j={};k={}".format(*location),
    }


@st.composite
def projects(draw):
    rows = []
    n = 0
    for project in draw(st.lists(NAME, min_size=1, max_size=2, unique=True)):
        for experiment in draw(st.lists(NAME, min_size=1, max_size=2, unique=True)):
            note = draw(NOTE)
            for scan in draw(st.lists(NAME, min_size=1, max_size=3, unique=True)):
                scan_values = {
                    "scan_type": draw(st.sampled_from(SCAN_TYPES)),
                    "subject_id": draw(OPTIONAL),
                    "session_id": draw(OPTIONAL),
                    "scan_link": draw(
                        st.one_of(st.just(""), NAME.map(lambda s: "https://x.org/" + s))
                    ),
                    **draw(decisions()),
                }
                for frame in draw(
                    st.lists(st.integers(0, 20), min_size=1, max_size=3, unique=True)
                ):
                    n += 1
                    rows.append(
                        {
                            "project_name": project,
                            "experiment_name": experiment,
                            "scan_name": scan,
                            "frame_number": str(frame),
                            "file_location": f"img/{n}.nii.gz",
                            "experiment_notes": note,
                            **scan_values,
                        }
                    )
    return rows


def _catalog_state(cat):
    tables = {}
    for table, order in (
        ("experiments", "project, name"),
        ("scans", "project, experiment, name"),
        ("frames", "project, experiment, scan, frame_number"),
        ("decisions", "project, experiment, scan, id"),
    ):
        df = cat.sql(
            f"SELECT * EXCLUDE ({'id' if table == 'decisions' else 'project'}) "
            f"{', project' if table != 'decisions' else ''} FROM {table} ORDER BY {order}"
        )
        tables[table] = df.astype(str).to_dict("list")
    return tables


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=projects(), suffix=st.sampled_from([".csv", ".json"]))
def test_round_trips_are_exact(tmp_path_factory, rows, suffix):
    folder: Path = tmp_path_factory.mktemp("rt")
    (folder / "img").mkdir()
    for n in range(1, len(rows) + 1):
        (folder / "img" / f"{n}.nii.gz").touch()
    source = folder / "source.csv"
    pd.DataFrame(rows, columns=list(MIQA_COLUMNS)).to_csv(source, index=False)
    # An import credits decisions to the catalog's users only: both catalogs have them.
    creators = {r.get("last_decision_creator", "") for r in rows} - {"", "admin"}
    first = Catalog(folder / "a.duckdb")
    first.add_user("admin")
    for name in creators:
        first.add_user(name, by="admin")
    first.import_file(source, by="admin")
    e1 = first.export_file(folder / f"e1{suffix}", by="admin")
    second = Catalog(folder / "b.duckdb")
    second.add_user("admin")
    for name in creators:
        second.add_user(name, by="admin")
    second.import_file(e1, by="admin")
    assert _catalog_state(second) == _catalog_state(first)
    e2 = second.export_file(folder / f"e2{suffix}", by="admin")
    assert e2.read_bytes() == e1.read_bytes()

"""MIQA reads our exports as we mean them: checked against the rules of
``docs/miqa-rules.md`` as ``tests/miqa_reader.py`` applies them."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import miqa_reader
import pytest
from support import frame_row

from miqa_nb import Catalog
from miqa_nb.cli import main
from miqa_nb.exchange.formats import read_json


@pytest.fixture
def new_catalog(make_catalog):
    """``new_catalog(folder, roots)``: a fresh catalog (on each backend) with 'admin'."""

    def make(folder: Path, roots: list[Path] | None = None) -> Catalog:
        cat = make_catalog(folder=folder, data_roots=roots)
        cat.add_user("admin")
        return cat

    return make


def _locations(cat: Catalog) -> dict[tuple[str, str, str, int], str]:
    frames = cat.sql("SELECT project, experiment, scan, frame_number, location FROM frames")
    return {(p, e, s, int(n)): where for p, e, s, n, where in frames.itertuples(index=False)}


def _json(path: Path, decisions: list[dict], notes: str | None = "") -> Path:
    frames = {"0": {"file_location": "images/a.nii.gz"}}
    scan = {"type": "T1", "frames": frames, "decisions": decisions}
    experiment = {"scans": {"S": scan}, "notes": notes}
    path.write_text(json.dumps({"projects": {"P": {"experiments": {"E": experiment}}}}))
    (path.parent / "images").mkdir(exist_ok=True)
    (path.parent / "images" / "a.nii.gz").touch()
    return path


def _decision(code: str, created: str | None, note: str = "") -> dict:
    return {
        "decision": code,
        "creator": None,
        "note": note,
        "created": created,
        "user_identified_artifacts": None,
        "location": None,
    }


# ------------------------------------------------------------- 1: notes (rule J2)


def test_json_export_writes_notes_as_miqa_does(catalog, write_csv, tmp_path):
    catalog.import_file(write_csv([frame_row()]), by="admin")  # an experiment without notes
    out = catalog.export_file(tmp_path / "out" / "e.json", by="admin")
    experiment = json.loads(out.read_text())["projects"]["P"]["experiments"]["E1"]
    assert experiment["notes"] == ""
    miqa_reader.check_shape(json.loads(out.read_text()))  # J1-J3: MIQA accepts it


def test_notes_null_is_read_with_a_warning_that_miqa_refuses_it(tmp_path):
    path = _json(tmp_path / "a.json", [], notes=None)
    with pytest.raises(miqa_reader.Refused, match="J2"):
        miqa_reader.read(path)
    parsed = read_json(path)
    assert parsed.ok
    (warning,) = parsed.problems
    assert (warning.severity, warning.check) == ("warning", "miqa-refuses")
    assert "MIQA refuses" in warning.message and warning.path.endswith('["notes"]')


def test_miqas_json_sample_round_trips_through_json(tmp_path, samples, new_catalog):
    original = samples / "miqa" / "core" / "tests" / "data" / "test_import.json"
    cat = new_catalog(tmp_path, roots=[Path("/opt"), samples])
    assert cat.import_file(original, by="admin").ok
    out = cat.export_file(tmp_path / "out" / "test_import.json", by="admin")
    assert miqa_reader.read(out) == miqa_reader.read(original)


# ---------------------------------------------------- 2: locations (rules L1-L2)


def test_default_exports_name_the_files_miqa_finds(catalog, write_csv, tmp_path):
    catalog.import_file(write_csv([frame_row(frame=n) for n in range(3)]), by="admin")
    ours = _locations(catalog)
    for name in ("e.csv", "e.json", "deeper/down/e.csv"):
        out = catalog.export_file(tmp_path / name, by="admin")
        assert miqa_reader.read(out).frames == ours, name
        # Moved elsewhere, it still names the same files.
        moved = tmp_path / "elsewhere" / "x" / out.name
        moved.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(out, moved)
        assert miqa_reader.read(moved).frames == ours, name


def test_relative_export_follows_miqas_rule_and_reads_back(tmp_path, write_csv, new_catalog):
    data = tmp_path / "study"
    cat = new_catalog(tmp_path, roots=[tmp_path])
    rows = [frame_row(frame=n) for n in range(2)]
    cat.import_file(write_csv(rows, folder=data), by="admin")
    ours = _locations(cat)
    for name in ("e.csv", "e.json"):
        out = cat.export_file(data / name, by="admin", relative_paths=True)
        if name.endswith(".csv"):
            written = miqa_reader.csv_to_document(out.read_text())
        else:
            written = json.loads(out.read_text())
        frames = written["projects"]["P"]["experiments"]["E1"]["scans"]["S1"]["frames"]
        # Relative to the folder above the export's folder (L2), not to its own folder.
        assert frames[0 if name.endswith(".csv") else "0"]["file_location"] == (
            "study/images/E1/S1/f0.nii.gz"
        )
        assert miqa_reader.read(out).frames == ours
        again = new_catalog(_fresh(tmp_path, name), roots=[tmp_path])
        report = again.import_file(out, by="admin")
        assert report.ok and _locations(again) == ours


def _fresh(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / f"catalog-{name}"
    folder.mkdir()
    return folder


def test_relative_export_keeps_absolute_what_miqa_nb_would_find_elsewhere(
    tmp_path, write_csv, new_catalog
):
    data = tmp_path / "study"
    cat = new_catalog(tmp_path, roots=[tmp_path])
    cat.import_file(write_csv([frame_row()], folder=data), by="admin")
    # A folder 'study' inside the export's folder: miqa_nb would look for
    # 'study/images/...' there first (the specification's rule), MIQA not.
    (data / "study").mkdir()
    out = cat.export_file(data / "e.csv", by="admin", relative_paths=True)
    with open(out, newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["file_location"] == os.path.realpath(data / "images/E1/S1/f0.nii.gz")
    assert miqa_reader.read(out).frames == _locations(cat)


def test_relative_export_of_miqas_demo_is_miqas_own_layout(tmp_path, samples, new_catalog):
    copy = tmp_path / "samples"
    shutil.copytree(samples / "samples", copy)
    original = copy / "demo_project.csv"
    cat = new_catalog(tmp_path, roots=[tmp_path])
    assert cat.import_file(original, by="admin").ok
    out = cat.export_file(copy / "export.csv", by="admin", relative_paths=True)
    assert miqa_reader.read(out).frames == miqa_reader.read(original).frames
    with open(out, newline="") as handle:
        first = next(csv.DictReader(handle))
    assert first["file_location"].startswith("samples/Demo Project/IXI002/")


# ------------------------------------------------------ 3: decision order (D1)


def test_decisions_listed_oldest_first_are_ordered_by_created(tmp_path, new_catalog):
    listed = [
        _decision("Q?", "2022-01-01 10:00:00", "old"),
        _decision("UN", "2022-02-01 10:00:00", "middle"),
        _decision("U", "2022-03-01 10:00:00", "new"),
    ]
    source = _json(tmp_path / "a.json", listed)
    cat = new_catalog(tmp_path)
    assert cat.import_file(source, by="admin").ok
    expected = miqa_reader.read(source).last_decisions()[("P", "E", "S")]
    assert expected[2] == "new"
    for name in ("e.csv", "e.json"):
        out = cat.export_file(tmp_path / "out" / name, by="admin")
        assert miqa_reader.read(out).last_decisions()[("P", "E", "S")] == expected, name
    decisions = json.loads((tmp_path / "out" / "e.json").read_text())
    history = decisions["projects"]["P"]["experiments"]["E"]["scans"]["S"]["decisions"]
    assert [d["note"] for d in history] == ["new", "middle", "old"]


def test_undated_decisions_are_newest_and_ties_keep_the_lists_order(tmp_path):
    listed = [
        _decision("UN", "2022-01-01 10:00:00", "tie, listed first"),
        _decision("Q?", "2022-01-01 10:00:00", "tie, listed second"),
        _decision("U", None, "undated"),
        _decision("UE", "2021-01-01 10:00:00", "oldest"),
    ]
    parsed = read_json(_json(tmp_path / "a.json", listed))
    assert parsed.decisions is not None
    order = parsed.decisions.sort_values("_order")["last_decision_note"].tolist()
    assert order == ["undated", "tie, listed first", "tie, listed second", "oldest"]
    # MIQA's last decision is the undated one too (D1: nulls first).
    source = tmp_path / "a.json"
    assert miqa_reader.read(source).last_decisions()[("P", "E", "S")][2] == "undated"


# ------------------------------------------ 4: missing relative files (rule L2)


def test_a_missing_relative_file_is_recorded_where_miqa_records_it(
    tmp_path, write_csv, new_catalog
):
    path = write_csv([frame_row()], folder=tmp_path / "imports", make_files=False)
    cat = new_catalog(tmp_path, roots=[tmp_path])
    report = cat.import_file(path, by="admin")
    (warning,) = report.warnings
    assert warning.check == "missing-file" and "where MIQA looks for it" in warning.message
    expected = miqa_reader.location("images/E1/S1/f0.nii.gz", path)
    assert expected == str(tmp_path / "images/E1/S1/f0.nii.gz")
    assert _locations(cat) == {("P", "E1", "S1", 0): expected}
    assert miqa_reader.read(path).frames == _locations(cat)


# ------------------------------------------------ MIQA's samples: round trips


def _empty_as_null(stored: miqa_reader.Stored) -> miqa_reader.Stored:
    """C3: an empty CSV cell is '' in MIQA where an absent column is null; MIQA shows
    both as empty. A 6-column file exported as 16 columns differs only so."""
    stored.scans = {k: tuple(v or None for v in scan) for k, scan in stored.scans.items()}
    return stored


@pytest.mark.parametrize(
    "sample",
    [
        "samples/demo_project.csv",
        "samples/scans_to_review.csv",
        "samples/scans_to_review_optional_columns.csv",
        "miqa/core/tests/data/relative_import.csv",
        "miqa/core/tests/data/s3_import.csv",
    ],
)
def test_miqas_csv_samples_round_trip(tmp_path, samples, sample, new_catalog):
    # the catalog stores real paths; MIQA joins the folder's path as given: compare
    # them on a samples folder reached through no symbolic link
    samples = samples.resolve()
    original = samples / sample
    cat = new_catalog(tmp_path, roots=[samples, tmp_path])
    report = cat.import_file(original, by="admin")
    assert report.ok, report
    out = cat.export_file(tmp_path / "out" / original.name, by="admin")
    assert _empty_as_null(miqa_reader.read(out)) == _empty_as_null(miqa_reader.read(original))
    if sample.endswith(("demo_project.csv", "optional_columns.csv")):  # all 16 columns
        assert miqa_reader.read(out) == miqa_reader.read(original)


def test_the_command_line_writes_relative_paths_when_asked(tmp_path, write_csv, monkeypatch):
    data = tmp_path / "study"
    monkeypatch.setenv("MIQA_NB_CATALOG", str(tmp_path / "cli.duckdb"))
    monkeypatch.setenv("MIQA_NB_USER", "admin")
    monkeypatch.setenv("MIQA_NB_DATA_ROOTS", str(tmp_path))
    assert main(["users", "add", "admin", "--superuser"]) == 0
    assert main(["import", str(write_csv([frame_row()], folder=data))]) == 0
    for flags, expected in (
        ([], str(data / "images/E1/S1/f0.nii.gz")),
        (["--relative-paths"], "study/images/E1/S1/f0.nii.gz"),
    ):
        assert main(["export", str(data / "e.csv"), *flags]) == 0
        with open(data / "e.csv", newline="") as handle:
            assert next(csv.DictReader(handle))["file_location"] == expected

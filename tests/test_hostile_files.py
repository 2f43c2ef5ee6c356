"""Hostile import files and values: each ends in a clear problem naming the file, the
row or JSON path, the column and the reason, within bounded time and memory, and
changes nothing in the catalog. Every hostile file is written here, by the test."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from support import frame_row

from miqa_nb import Catalog
from miqa_nb.core.errors import ImportFileError, MiqaError
from miqa_nb.exchange import formats
from miqa_nb.exchange.formats import BLOCK_BYTES, MIQA_COLUMNS
from miqa_nb.exchange.limits import FORMULA_START, MAX_JSON_DEPTH, MAX_VALUE_BYTES
from miqa_nb.exchange.validation import check


def _state(cat: Catalog) -> dict[str, list]:
    """Everything an import could change, as plain lists."""
    return {
        table: cat.sql(f"SELECT * FROM {table} ORDER BY ALL").astype(str).values.tolist()
        for table in ("projects", "experiments", "scans", "frames", "decisions")
    }


@pytest.fixture
def filled(catalog: Catalog, write_csv) -> Catalog:
    """The catalog with one project P of two frames and a decision."""
    catalog.import_file(
        write_csv([frame_row(frame=n) for n in range(2)], name="good.csv"), by="admin"
    )
    catalog.record_decision("P", "E1", "S1", "U", by="admin", note="fine")
    return catalog


def _refused(cat: Catalog, path: Path, **options) -> list:
    """Import ``path``: it must be refused and leave ``cat`` as it was; its errors."""
    before = _state(cat)
    with pytest.raises(ImportFileError) as caught:
        cat.import_file(path, by="admin", **options)
    assert _state(cat) == before
    assert caught.value.report is not None
    return caught.value.report.errors


def _cli(*args: str, catalog: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MIQA_NB_USER": "admin", "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-m", "miqa_nb.cli", "--catalog", str(catalog), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# ------------------------------------------------------------ 6. deep JSON


_HEAD = '{"projects": {"P": {"experiments": '


def _deep_json(path: Path, depth: int) -> Path:
    """A JSON import file whose experiments nest ``depth`` lists deep."""
    path.write_text(_HEAD + "[" * depth + "]" * depth + "}}}")
    return path


def test_json_nested_100000_deep_is_refused_with_its_path_and_the_bound(tmp_path, filled):
    path = _deep_json(tmp_path / "deep.json", 100_000)
    (problem,) = _refused(filled, path)
    assert problem.check == "json-too-deep" and problem.file == str(path)
    lists = MAX_JSON_DEPTH - 3  # the document, projects and P are the first three levels
    assert problem.path == '$["projects"]["P"]["experiments"]' + "[0]" * lists
    assert problem.row == 1
    column = len(_HEAD) + lists + 1  # the bracket one level too deep
    assert f"deeper than {MAX_JSON_DEPTH} levels at line 1, column {column}" in problem.message


def test_json_as_deep_as_the_bound_is_read(tmp_path):
    """The bound itself is allowed: the file is read, and its structure judged."""
    within = _deep_json(tmp_path / "within.json", MAX_JSON_DEPTH - 3)
    assert "json-too-deep" not in {p.check for p in check(within).problems}
    beyond = _deep_json(tmp_path / "beyond.json", MAX_JSON_DEPTH - 2)
    assert [p.check for p in check(beyond).problems] == ["json-too-deep"]


def test_brackets_in_json_strings_do_not_count(tmp_path, write_csv):
    """A note full of brackets (and escaped quotes) is text, not nesting."""
    note = '[{"\\' * 50_000
    rows = [frame_row(last_decision="UN", last_decision_note=note)]
    csv_path = write_csv(rows)
    cat = Catalog(tmp_path / "c.duckdb")
    cat.add_user("admin", superuser=True)
    cat.import_file(csv_path, by="admin")
    exported = cat.export_file(tmp_path / "out.json", by="admin")
    assert check(exported).ok
    assert (
        json.loads(exported.read_text())["projects"]["P"]["experiments"]["E1"]["scans"]["S1"][
            "decisions"
        ][0]["note"]
        == note
    )


@pytest.mark.parametrize("command", ["validate", "import"])
def test_cli_prints_the_depth_problem_and_exits_non_zero(tmp_path, filled, command):
    path = _deep_json(tmp_path / "deep.json", 100_000)
    before = _state(filled)
    result = _cli(command, str(path), catalog=filled.location)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "RecursionError" not in output
    assert f"deeper than {MAX_JSON_DEPTH} levels" in output and str(path) in output
    assert _state(filled) == before


# ------------------------------------------------------- 7. very long values


def _csv_with_note(path: Path, note_bytes: int, row: int = 3) -> Path:
    """An import CSV whose ``row`` (the header is row 1) has a note of ``note_bytes``."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(",".join(MIQA_COLUMNS[:7]) + "\n")
        for n in range(2, row + 1):
            note = '"' + "x" * note_bytes + '"' if n == row else "short"
            handle.write(f"P,E1,S1,T1,{n},s3://bucket/f{n}.nii.gz,{note}\n")
    return path


def test_a_100_mb_value_names_its_row_column_and_the_bound(tmp_path, filled):
    path = _csv_with_note(tmp_path / "huge.csv", 100 << 20)
    (problem,) = _refused(filled, path)
    assert (problem.check, problem.row, problem.column) == ("too-long", 3, "experiment_notes")
    assert f"{(100 << 20) + 2:,} bytes" in problem.message  # the quotes count
    assert f"at most {MAX_VALUE_BYTES:,} bytes" in problem.message
    assert "block" not in problem.message and "straddl" not in problem.message


def test_a_row_too_long_for_the_reader_names_the_row(tmp_path):
    """Values under the bound, but too many of them: a row over two blocks, which
    pyarrow's reader cannot take (one over a single block it may)."""
    path = tmp_path / "wide.csv"
    value = "y" * (MAX_VALUE_BYTES - 10)
    row = ["P", "E1", "S1", "T1", "0", "s3://b/f.nii.gz", *[value] * 10]
    path.write_text(",".join(MIQA_COLUMNS) + "\n" + ",".join(row) + "\n")
    assert len(",".join(row)) > 2 * BLOCK_BYTES
    (problem,) = check(path).errors
    assert (problem.check, problem.row, problem.column) == ("too-long", 2, None)
    assert f"more than {BLOCK_BYTES:,} bytes" in problem.message


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_a_value_over_the_bound_that_parses_is_refused_too(tmp_path, filled, suffix):
    """A note of 2 MiB fits in a block of the CSV reader (and in JSON): validation
    refuses it with its row or JSON path."""
    note = "z" * (2 << 20)
    if suffix == ".csv":
        path = _csv_with_note(tmp_path / "long.csv", len(note))
        where = {"row": 3}
    else:
        path = tmp_path / "long.json"
        scan = {"type": "T1", "frames": {"0": {"file_location": "s3://b/f.nii.gz"}},
                "decisions": [{"decision": "UN", "note": note}]}  # fmt: skip
        experiment = {"notes": "", "scans": {"S1": scan}}
        path.write_text(json.dumps({"projects": {"P": {"experiments": {"E1": experiment}}}}))
        where = {"path": '$["projects"]["P"]["experiments"]["E1"]["scans"]["S1"]["decisions"][0]'}
    (problem,) = _refused(filled, path)
    column = "experiment_notes" if suffix == ".csv" else "last_decision_note"
    assert (problem.check, problem.column) == ("too-long", column)
    assert {k: getattr(problem, k) for k in where} == where
    assert f"is {len(note):,} bytes long" in problem.message


# ------------------------------------------------------------ 8. formulas


@pytest.mark.parametrize("start", list(FORMULA_START))
def test_values_a_spreadsheet_would_run_are_warnings(write_csv, start):
    rows = [
        frame_row(frame=0, experiment_notes=start + "cmd|' /C calc'!A0"),
        frame_row(scan="S2", last_decision="UN", last_decision_note=start + "SUM(A1)"),
    ]
    expected = {(2, "experiment_notes"), (3, "last_decision_note")}
    if start.isprintable():  # a tab or carriage return is a control character in a name
        rows.append(frame_row(scan=start + "S3", scan_link=f'{start}HYPERLINK("http://x")'))
        expected |= {(4, "scan_name"), (4, "scan_link")}
    report = check(write_csv(rows))
    assert report.ok  # warnings only: the values may be meant as text
    assert {(p.row, p.column) for p in report.warnings if p.check == "formula"} == expected


def test_numbers_and_unchecked_columns_are_not_formulas(write_csv):
    rows = [
        frame_row(subject_id="-12", session_id="+3.5", last_decision="U"),
        frame_row(scan="S2", last_decision="UN", last_decision_note="-3 dB drop"),
    ]
    report = check(write_csv(rows))
    found = [(p.row, p.column, p.value) for p in report.warnings if p.check == "formula"]
    assert found == [(3, "last_decision_note", "-3 dB drop")]


def test_json_decisions_are_checked_for_formulas(tmp_path):
    path = tmp_path / "f.json"
    scan = {"type": "T1", "frames": {"0": {"file_location": "s3://b/f.nii.gz"}},
            "decisions": [{"decision": "UN", "creator": "@bob", "note": "ok"}]}  # fmt: skip
    path.write_text(json.dumps({"projects": {"P": {"experiments": {"E": {"scans": {"S": scan}}}}}}))
    (problem,) = [p for p in check(path).problems if p.check == "formula"]
    assert problem.column == "last_decision_creator" and problem.value == "@bob"
    assert problem.path.endswith('["decisions"][0]')


def test_exports_are_exact_unless_spreadsheet_safe(tmp_path, catalog, write_csv):
    formula = '=HYPERLINK("http://evil.example","x")'
    path = write_csv([frame_row(experiment_notes=formula, subject_id="-12", frame=0)])
    catalog.import_file(path, by="admin")
    catalog.record_decision("P", "E1", "S1", "UN", by="admin", note="@SUM(1+1)")
    exact = catalog.export_file(tmp_path / "exact.csv", by="admin")
    safe = catalog.export_file(tmp_path / "safe.csv", by="admin", spreadsheet_safe=True)

    def read(path: Path) -> pd.DataFrame:
        return pd.read_csv(path, dtype=str, keep_default_na=False)

    row = read(exact).iloc[0]
    assert (row["experiment_notes"], row["subject_id"]) == (formula, "-12")
    assert row["last_decision_note"] == "@SUM(1+1)"
    row = read(safe).iloc[0]
    assert (row["experiment_notes"], row["subject_id"]) == ("'" + formula, "'-12")
    assert row["last_decision_note"] == "'@SUM(1+1)" and row["project_name"] == "P"
    assert row["file_location"].startswith("/") and row["frame_number"] == "0"
    # The exact form imports back to the same values.
    again = Catalog(tmp_path / "again.duckdb")
    again.add_user("admin", superuser=True)
    again.import_file(exact, by="admin")
    assert again.sql("SELECT note FROM experiments").iloc[0, 0] == formula


def test_cli_export_spreadsheet_safe(tmp_path, filled):
    filled.record_decision("P", "E1", "S1", "UN", by="admin", note="+1 more")
    out = tmp_path / "out.csv"
    assert _cli("export", str(out), "--spreadsheet-safe", catalog=filled.location).returncode == 0
    notes = pd.read_csv(out, dtype=str, keep_default_na=False)["last_decision_note"]
    assert set(notes) == {"'+1 more"}
    assert _cli("export", str(out), catalog=filled.location).returncode == 0
    assert set(pd.read_csv(out, dtype=str, keep_default_na=False)["last_decision_note"]) == {
        "+1 more"
    }


# ------------------------------------------- 9. control characters, s3 paths


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("project_name", "P\x00"),
        ("experiment_name", "E\x1b[31m"),
        ("scan_name", "S\x7f"),
        ("scan_type", "T1\x00"),
        ("subject_id", "a\nb"),
        ("last_decision_creator", "bo\x00b"),
        ("scan_link", "https://x.org/\x00"),
        ("file_location", "images/a\x00.nii.gz"),
        ("experiment_notes", "a\x00b"),
        ("last_decision_note", "bell\x07"),
    ],
)
def test_control_characters_are_errors_shown_escaped(filled, write_csv, column, value):
    row = frame_row(scan="S9", last_decision="U", **{column: value})
    problems = _refused(filled, write_csv([row], make_files=False))
    (problem,) = [p for p in problems if p.check == "control-character"]
    assert (problem.row, problem.column, problem.value) == (2, column, value)
    assert repr(value) in problem.message and value not in problem.message


def test_notes_keep_tabs_and_line_breaks(write_csv):
    rows = [
        frame_row(last_decision="UN", last_decision_note="a\tb\nc\r\nd", experiment_notes="x\ny")
    ]
    report = check(write_csv(rows))
    assert report.ok and not report.problems


def test_json_decision_with_a_nul_note_is_an_error_at_its_path(tmp_path):
    path = tmp_path / "nul.json"
    scan = {"type": "T1", "frames": {"0": {"file_location": "s3://b/f.nii.gz"}},
            "decisions": [{"decision": "U"}, {"decision": "UN", "note": "x\u0000"}]}  # fmt: skip
    path.write_text(json.dumps({"projects": {"P": {"experiments": {"E": {"scans": {"S": scan}}}}}}))
    (problem,) = check(path).errors
    assert (problem.check, problem.column) == ("control-character", "last_decision_note")
    assert problem.path == '$["projects"]["P"]["experiments"]["E"]["scans"]["S"]["decisions"][1]'


def test_record_decision_refuses_a_note_with_control_characters(filled):
    before = _state(filled)
    with pytest.raises(MiqaError, match=r"control character '\\x00' at character 4"):
        filled.record_decision("P", "E1", "S1", "UN", by="admin", note="bad\x00note")
    assert _state(filled) == before
    filled.record_decision("P", "E1", "S1", "UN", by="admin", note="two\tcolumns\nand lines")


@pytest.mark.parametrize(
    "location",
    [
        "s3://bucket/../../etc/passwd.nii.gz",
        "s3://bucket/a/./b.nii.gz",
        "s3://bucket//b.nii.gz",
        "s3:///b.nii.gz",
        "S3://bucket/a/../b.nii.gz",
    ],
)
def test_s3_locations_that_normalising_would_change_are_errors(filled, write_csv, location):
    row = frame_row(scan="S9", frame=0, file_location=location)
    (problem,) = _refused(filled, write_csv([frame_row(), row], make_files=False))
    assert (problem.check, problem.row, problem.column) == ("location-s3-path", 3, "file_location")
    assert problem.value == location and repr(location) in problem.message


def test_a_plain_s3_location_is_kept_as_given(catalog, write_csv):
    location = "s3://my-bucket/sub/..dots/a.b/f.nii.gz"
    catalog.import_file(write_csv([frame_row(file_location=location)]), by="admin")
    assert catalog.frames()["location"].tolist() == [location]


def test_a_broken_csv_with_a_value_over_the_csv_module_bound_names_the_bad_line(tmp_path):
    """The diagnosis of a broken file reads it again with Python's csv module, whose
    bound on a value (128 KiB) is raised to ours meanwhile, and put back."""
    path = tmp_path / "broken.csv"
    header = ",".join(MIQA_COLUMNS[:7])
    path.write_text(header + '\nP,E,S,T1,0,s3://b/f.nii.gz,"' + "x" * 200_000 + '"\nP,E\n')
    bound = csv.field_size_limit()
    parsed = formats.read(path)
    assert list(parsed.batches()) == []
    assert [(p.check, p.row) for p in parsed.problems] == [("malformed-csv", 3)]
    assert "2 fields where the header has 7" in parsed.problems[0].message
    assert csv.field_size_limit() == bound

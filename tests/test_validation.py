"""Every kind of bad input is reported, with file, row, column, value and a fix."""

import os
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import replace

import pytest
from support import frame_row

from miqa_nb.core.vocabulary import ScanTypes
from miqa_nb.exchange import formats
from miqa_nb.exchange.formats import REQUIRED_COLUMNS
from miqa_nb.exchange.limits import MAX_VALUE_BYTES
from miqa_nb.exchange.validation import (
    FILE_CHECKS,
    MAX_LISTED,
    SCAN_CHECKS,
    VALUE_CHECKS,
    Check,
    Staging,
    run_battery,
    validate,
)
from miqa_nb.exchange.validation._battery import reads
from miqa_nb.exchange.validation._rows import split_rows
from miqa_nb.exchange.validation._staging import connect, staging

BATTERY: tuple[Check, ...] = (*VALUE_CHECKS, *SCAN_CHECKS, *FILE_CHECKS)


def _problems(staged, check):
    return [p for p in staged.report.problems if p.check == check]


def test_clean_file_builds_tables(write_csv):
    rows = [frame_row(frame=n, subject_id="s1") for n in range(3)]
    rows.append(frame_row(scan="S2", scan_type="t1w", frame="00"))
    staged = validate(write_csv(rows))
    assert staged.report.ok and not staged.report.problems
    assert staged.report.counts == {
        "projects": 1,
        "experiments": 1,
        "scans": 2,
        "frames": 4,
        "decisions": 0,
    }
    types = staged.con.execute("SELECT name, type FROM v_scans ORDER BY 1").fetchall()
    assert types == [("S1", "T1"), ("S2", "T1")]


@pytest.mark.parametrize("bad", ["abc", "-1", "1.5", "1e3", " "])
def test_bad_frame_numbers(write_csv, bad):
    staged = validate(
        write_csv([frame_row(frame=0), frame_row(frame=bad, scan="S2")], make_files=False)
    )
    (problem,) = staged.report.errors
    assert problem.row == 3 and problem.column == "frame_number"
    if bad.strip():
        assert problem.check == "frame-number"
        assert problem.value == bad and "whole number" in problem.message
    else:  # spaces alone are trimmed away: an empty frame number
        assert problem.check == "required-value"


def test_frame_number_00_is_0(write_csv):
    staged = validate(write_csv([frame_row(frame="00")]))
    assert staged.con.execute("SELECT frame_number FROM v_frames").fetchall() == [(0,)]


def test_duplicate_frames_name_both_rows(write_csv):
    rows = [frame_row(frame=0), frame_row(frame=1), frame_row(frame="01")]
    (problem,) = _problems(validate(write_csv(rows)), "duplicate-frame")
    assert "rows 3 and 4" in problem.message and problem.value == "1"


def test_scan_rows_disagreeing_name_both_rows(write_csv):
    rows = [
        frame_row(frame=0, subject_id="a"),
        frame_row(frame=1, subject_id="b"),
        frame_row(frame=2, scan_type="t1"),
        frame_row(frame=3, scan_type="T2"),
    ]
    staged = validate(write_csv(rows))
    problems = {p.column: p for p in _problems(staged, "scan-conflict")}
    assert set(problems) == {"subject_id", "scan_type"}
    assert "row 2 has 'a', row 3 has 'b'" in problems["subject_id"].message
    assert "row 5" in problems["scan_type"].message  # t1 and T1 agree; T2 does not


def test_an_experiments_notes_must_agree(write_csv):
    rows = [
        frame_row(scan="S1", experiment_notes="moved"),
        frame_row(scan="S2", experiment_notes=""),  # given once is enough
        frame_row(scan="S3", experiment_notes="moved, twice"),
        frame_row(experiment="E2", scan="S4", experiment_notes="other"),
    ]
    (problem,) = _problems(validate(write_csv(rows)), "experiment-conflict")
    assert (problem.row, problem.column, problem.value) == (4, "experiment_notes", "moved, twice")
    assert "row 2 has 'moved', row 4 has 'moved, twice'" in problem.message


def test_many_distinct_bad_values_are_listed_up_to_a_bound(write_csv):
    rows = [frame_row(scan=f"S{n}", scan_type=f"T{n + 10}") for n in range(MAX_LISTED + 5)]
    problems = _problems(validate(write_csv(rows, make_files=False)), "unknown-scan-type")
    assert len(problems) == MAX_LISTED + 1
    assert [p.value for p in problems[:2]] == ["T10", "T11"]  # in the file's order
    assert "more distinct values fail this check in 'scan_type'" in problems[-1].message


def test_a_scan_whose_rows_are_apart_is_one_scan(write_csv):
    """Rows of a scan need not be together: they are checked as one scan."""
    rows = [frame_row(frame=0), frame_row(scan="S2"), frame_row(frame=1)]
    staged = validate(write_csv(rows))
    assert staged.report.ok and staged.report.counts["scans"] == 2
    frames = staged.con.execute("SELECT scan, frame_number FROM v_frames ORDER BY 1, 2")
    assert frames.fetchall() == [("S1", 0), ("S1", 1), ("S2", 0)]

    rows = [frame_row(frame=0), frame_row(scan="S2"), frame_row(frame="0"), frame_row(frame=70),
            frame_row(scan="S2", frame=1), frame_row(frame=70, subject_id="x")]  # fmt: skip
    staged = validate(write_csv(rows))
    duplicates = sorted(p.message for p in _problems(staged, "duplicate-frame"))
    assert len(duplicates) == 2
    assert "frame 0 of scan 'S1'" in duplicates[0] and "rows 2 and 4" in duplicates[0]
    assert "frame 70 of scan 'S1'" in duplicates[1] and "rows 5 and 7" in duplicates[1]
    (conflict,) = _problems(staged, "scan-conflict")
    assert conflict.column == "subject_id" and conflict.row == 7


def test_locations_resolve_to_real_paths_inside_the_roots(tmp_path, write_csv):
    folder = tmp_path / "imports"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "a.nii.gz").touch()
    (folder / "flat.mgz").touch()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "b.nrrd").touch()
    os.symlink(tmp_path / "data", folder / "linked")  # a symlink inside the roots is fine
    os.symlink(folder / "images" / "a.nii.gz", folder / "images" / "alias.nii.gz")
    given = {
        "S1": "images/a.nii.gz",
        "S2": "./images//a.nii.gz",
        "S3": "flat.mgz",
        "S4": str(folder / "images" / "a.nii.gz"),
        "S5": "linked/b.nrrd",
        "S6": "images/alias.nii.gz",
        "S7": "images/../images/a.nii.gz",
        "S8": "images/missing.nii",
    }
    rows = [frame_row(scan=scan, file_location=where) for scan, where in given.items()]
    staged = validate(write_csv(rows, folder=folder, make_files=False), roots=[tmp_path])
    assert staged.report.ok
    assert [(p.check, p.value) for p in staged.report.problems] == [
        ("missing-file", "images/missing.nii")
    ]
    located = dict(staged.con.execute("SELECT scan, location FROM v_frames").fetchall())
    real = os.path.realpath(folder / "images" / "a.nii.gz")
    assert located == {
        "S1": real, "S2": real, "S3": os.path.realpath(folder / "flat.mgz"), "S4": real,
        "S5": os.path.realpath(tmp_path / "data" / "b.nrrd"), "S6": real, "S7": real,
        "S8": os.path.realpath(tmp_path) + "/images/missing.nii",  # where MIQA looks
    }  # fmt: skip
    at_root = write_csv([frame_row(file_location="/miqa-nb-absent.nii.gz")], make_files=False)
    (problem,) = validate(at_root, roots=["/"]).report.problems
    assert problem.message == "file not found: /miqa-nb-absent.nii.gz"


def test_values_are_trimmed_of_spaces(write_csv):
    """Spaces around values (also no-break and ideographic ones) are not part of them."""
    rows = [
        frame_row(frame=0),
        frame_row(scan=" S1\u3000", frame="\u00a01", file_location=" images/E1/S1/f1.nii.gz "),
    ]
    path = write_csv(rows, make_files=False)
    for frame in (0, 1):
        (path.parent / "images" / "E1" / "S1").mkdir(parents=True, exist_ok=True)
        (path.parent / "images" / "E1" / "S1" / f"f{frame}.nii.gz").touch()
    staged = validate(path)
    assert staged.report.ok and not staged.report.problems
    frames = staged.con.execute("SELECT scan, frame_number FROM v_frames ORDER BY 2").fetchall()
    assert frames == [("S1", 0), ("S1", 1)]


def test_unknown_vocabulary_is_reported_with_rows(write_csv):
    decided = dict(last_decision="U", last_decision_creator="me")
    rows = [
        frame_row(scan="S1", scan_type="T7"),
        frame_row(scan="S2", last_decision="OK", last_decision_creator="me"),
        frame_row(scan="S3", identified_artifacts="lesions;aliens", **decided),
        frame_row(scan="S4", location_of_interest="somewhere", **decided),
        frame_row(scan="S5", last_decision_created="last tuesday", **decided),
    ]
    staged = validate(write_csv(rows))
    found = {p.check: p for p in staged.report.errors}
    assert set(found) == {
        "unknown-scan-type",
        "unknown-decision",
        "unknown-artifact",
        "bad-location",
        "bad-time",
    }
    assert found["unknown-scan-type"].row == 2 and found["unknown-scan-type"].value == "T7"
    assert found["unknown-decision"].row == 3 and "'OK'" in found["unknown-decision"].message
    assert "'aliens' is not known" in found["unknown-artifact"].message
    assert found["bad-location"].row == 5 and found["bad-time"].row == 6


def test_decision_fields_without_a_decision(write_csv):
    staged = validate(write_csv([frame_row(last_decision_note="looks fine")]))
    assert _problems(staged, "decision-missing")[0].row == 2


def test_every_problem_at_once(write_csv):
    rows = [
        frame_row(frame="x"),
        frame_row(scan="S2", scan_type="??"),
        frame_row(scan="", frame=0),
        frame_row(scan="S3", file_location="notes.txt"),
    ]
    report = validate(write_csv(rows, make_files=False)).report
    assert {p.check for p in report.errors} == {
        "frame-number",
        "unknown-scan-type",
        "required-value",
        "location-suffix",
    }
    frame = report.to_frame()
    assert list(frame.columns[:4]) == ["severity", "check", "message", "file"]
    # errors first, each in the file's order; then the warnings (these files are absent)
    assert list(zip(frame["severity"], frame["row"], frame["check"], strict=True)) == [
        ("error", 2, "frame-number"),
        ("error", 3, "unknown-scan-type"),
        ("error", 4, "required-value"),
        ("error", 5, "location-suffix"),
        ("warning", 2, "missing-file"),
        ("warning", 3, "missing-file"),
        ("warning", 4, "missing-file"),
    ]
    text = str(report)
    assert "4 error(s)" in text and "row 2" in text


def test_missing_files_are_counted_warnings(write_csv):
    rows = [frame_row(frame=n) for n in range(3)]
    path = write_csv(rows, make_files=False)
    staged = validate(path)
    assert staged.report.ok
    warnings = staged.report.warnings
    assert [w.check for w in warnings] == ["missing-file"] * 3
    assert [w.row for w in warnings] == [2, 3, 4]
    # Found in neither the file's folder nor the one above: recorded where MIQA records
    # it (under the folder above), so that both name the same file once it is added.
    expected = os.path.join(os.path.realpath(path.parent.parent), "images", "E1", "S1", "f0.nii.gz")
    assert warnings[0].message == (
        f"file not found: {expected} (a relative location found neither under "
        f"{os.path.realpath(path.parent)} nor under {os.path.realpath(path.parent.parent)} "
        "is recorded under the latter, where MIQA looks for it)"
    )
    (location,) = staged.con.execute("SELECT location FROM v_frames LIMIT 1").fetchone()
    assert location == expected  # kept, so that the file can be added later


def test_s3_locations_are_kept(samples):
    staged = validate(samples / "miqa" / "core" / "tests" / "data" / "s3_import.csv")
    assert staged.report.ok and not staged.report.problems
    (location,) = staged.con.execute("SELECT location FROM v_frames").fetchone()
    assert location.startswith("s3://miqa-sample/IXI_small/")


def test_miqa_grandparent_locations_warn(samples):
    staged = validate(samples / "samples" / "demo_project.csv")
    assert staged.report.ok
    grand = _problems(staged, "location-grandparent")
    assert len(grand) == 5 and "where MIQA resolves" in grand[0].message
    assert len(_problems(staged, "missing-file")) == 8
    located = dict(
        staged.con.execute("SELECT scan || frame_number, location FROM v_frames").fetchall()
    )
    assert os.path.exists(located["0828-DTI0"])
    staged = validate(samples / "miqa" / "core" / "tests" / "data" / "relative_import.csv")
    assert [p.check for p in staged.report.problems] == ["location-grandparent"]


def test_dotdot_escaping_the_roots(tmp_path, write_csv):
    (tmp_path / "outside.nii.gz").touch()
    rows = [frame_row(file_location="../outside.nii.gz")]
    path = write_csv(rows, folder=tmp_path / "imports", make_files=False)
    (problem,) = validate(path).report.errors
    assert problem.check == "location-escapes-roots" and "MIQA_NB_DATA_ROOTS" in problem.message
    assert validate(path, roots=[tmp_path]).report.ok


def test_absolute_path_outside_the_roots(tmp_path, write_csv):
    rows = [frame_row(file_location="/etc/passwd.nii.gz")]
    (problem,) = validate(write_csv(rows, make_files=False)).report.errors
    assert problem.check == "location-outside-roots"
    assert "/etc/passwd.nii.gz" in problem.message


def test_miqa_json_with_absolute_paths_outside_the_roots(samples):
    staged = validate(samples / "miqa" / "core" / "tests" / "data" / "test_import.json")
    assert [p.check for p in staged.report.errors] == ["location-outside-roots"]
    assert staged.report.errors[0].path.startswith('$["projects"]["ucsd"]')
    staged = validate(
        samples / "miqa" / "core" / "tests" / "data" / "test_import.json", roots=["/opt"]
    )
    assert staged.report.ok and [p.check for p in staged.report.problems] == ["missing-file"]


def test_symlink_that_escapes(tmp_path, write_csv):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "brain.nii.gz").touch()
    folder = tmp_path / "imports"
    (folder / "images").mkdir(parents=True)
    os.symlink(secret / "brain.nii.gz", folder / "images" / "link.nii.gz")
    os.symlink(secret, folder / "linkdir")
    rows = [
        frame_row(file_location="images/link.nii.gz"),
        frame_row(scan="S2", file_location="linkdir/brain.nii.gz"),
    ]
    report = validate(write_csv(rows, folder=folder, make_files=False)).report
    assert sorted(p.check for p in report.errors) == [
        "location-escapes-roots",
        "location-symlink-escapes",
    ]


def test_project_import_rejects_other_projects(write_csv):
    rows = [frame_row(), frame_row(project="Other", scan="S9")]
    (problem,) = validate(write_csv(rows), project="P").report.errors
    assert problem.check == "other-project" and problem.value == "Other" and problem.row == 3


def test_catalog_scan_types_extend_the_vocabulary(write_csv):
    path = write_csv([frame_row(scan_type="SWI")])
    assert not validate(path).report.ok
    assert validate(path, scan_types=ScanTypes(extra=("SWI",))).report.ok


def test_names_must_be_one_line(write_csv):
    staged = validate(write_csv([frame_row(scan="bad\tname")], make_files=False))
    assert _problems(staged, "control-character")[0].column == "scan_name"


def test_names_have_at_most_255_characters(write_csv):
    """Characters, not bytes: 255 accented letters (510 bytes) are fine, 256 are not."""
    rows = [frame_row(subject_id="é" * 255), frame_row(scan="S2", session_id="x" * 256)]
    (problem,) = _problems(validate(write_csv(rows, make_files=False)), "too-long")
    assert problem.column == "session_id" and problem.row == 3


def test_links_that_are_not_web_addresses_warn(write_csv):
    staged = validate(write_csv([frame_row(scan_link="javascript:alert(1)")]))
    assert staged.report.ok
    assert _problems(staged, "link-not-web")[0].value == "javascript:alert(1)"


def test_header_problems_stop_before_rows(write_csv, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text(";".join(REQUIRED_COLUMNS) + "\n")
    report = validate(path).report
    assert [p.check for p in report.errors] == ["delimiter"]


def test_a_streamed_file_gives_the_same_result(write_csv, monkeypatch):
    """Past formats.STREAM_BYTES the file is read block by block; scans that straddle
    blocks, and a scan whose rows are far apart, are still one scan each."""
    from miqa_nb.exchange import formats

    rows = [
        frame_row(scan=f"S{s}", frame=f, subject_id=f"sub-{s}", last_decision="U")
        for s in range(60)
        for f in range(5)
    ]
    rows.append(frame_row(scan="S0", frame=5, subject_id="sub-0", last_decision="U"))
    rows.append(frame_row(scan="S7", frame=9, subject_id="someone else", last_decision="U"))
    path = write_csv(rows, make_files=False)
    whole = validate(path)
    monkeypatch.setattr(formats, "STREAM_BYTES", 1)
    monkeypatch.setattr(formats, "BLOCK_BYTES", 2048)  # about 15 rows per block
    streamed = validate(path)
    assert streamed.report.counts == whole.report.counts == {"rows": 302}
    for staged in (whole, streamed):
        (conflict,) = _problems(staged, "scan-conflict")
        assert conflict.row == 303 and conflict.value == "someone else"
        assert conflict.expected == "sub-7" and "row 37" in conflict.message


# ---------------------------------------------------------------- the battery

_DECIDED = dict(last_decision="U", last_decision_creator="me")
#: A row each value check and the file check finds a problem in (imported into "P").
_BAD_VALUES = [
    frame_row(file_location=""),
    frame_row(scan="S2", frame="x"),
    frame_row(scan="S3", scan_type="T7"),
    frame_row(scan=""),
    frame_row(scan="S5\tx"),
    frame_row(project="Other", scan="S6"),
    frame_row(scan="S7", scan_link="ftp://x"),
    frame_row(scan="S8", last_decision_note="n"),
    frame_row(scan="S9", last_decision="OK", last_decision_creator="me"),
    frame_row(scan="S10", identified_artifacts="aliens", **_DECIDED),
    frame_row(scan="S11", last_decision_created="last tuesday", **_DECIDED),
    frame_row(scan="S12", location_of_interest="somewhere", **_DECIDED),
    frame_row(scan="S13", file_location="notes.txt"),
    frame_row(scan="S14", experiment_notes="x" * (MAX_VALUE_BYTES + 1)),
    frame_row(scan="S15", last_decision_note="a\x00b", **_DECIDED),
    frame_row(scan="S16", subject_id="=1+2"),
]
#: Good values, and a problem each check across rows finds.
_BAD_SCANS = [
    frame_row(frame=0),
    frame_row(frame=0),
    frame_row(scan="S2", frame=0, subject_id="a"),
    frame_row(scan="S2", frame=1, subject_id="b"),
    frame_row(scan="S3", experiment_notes="x"),
    frame_row(scan="S4", experiment_notes="y"),
]


@contextmanager
def _staged_rows(path: os.PathLike[str], **options) -> Iterator[Staging]:
    """The rows of ``path`` staged as :func:`validate` stages them, no check run."""
    parsed = formats.read(path)
    runs, frames = split_rows(parsed.batches())
    con = connect()
    try:
        with staging(con, os.fspath(path), parsed, runs, frames, **options) as rows:
            yield rows
    finally:
        con.close()


def _only(rows: Staging, sources: tuple[str, ...]) -> Staging:
    """``rows`` without every staged source not in ``sources``."""
    for name in rows.sources - set(sources) - {"locations"}:
        rows.con.execute(f"DROP {'VIEW' if name in ('frames', 'runs') else 'TABLE'} {name}")
    unresolved: Future = Future()
    unresolved.set_exception(AssertionError("the locations were read but not declared"))
    return replace(
        rows,
        runs=rows.runs if "runs" in sources else None,
        frames=rows.frames if "frames" in sources else None,
        resolving=rows.resolving if "locations" in sources else unresolved,
        sources=frozenset(sources),
    )


def _everything(con) -> set[str]:
    """The tables and views of a database, and the Arrow data registered on it."""
    return {
        name
        for (name,) in con.execute(
            "SELECT table_name FROM duckdb_tables() UNION ALL "
            "SELECT view_name FROM duckdb_views() WHERE NOT internal"
        ).fetchall()
    }


@pytest.mark.parametrize("check", BATTERY, ids=lambda check: check.name)
def test_a_check_alone_reads_only_what_it_declares(write_csv, check):
    """Alone, on staged rows stripped of every table it does not declare, a check finds
    exactly what it finds after every check before it in the battery has run: it
    needs no other check, and no table but those it names."""
    across_rows = check in SCAN_CHECKS
    path = write_csv(_BAD_SCANS if across_rows else _BAD_VALUES, make_files=False)
    before = BATTERY[: BATTERY.index(check)]
    if not across_rows:  # as validate, which runs those only on values without an error
        before = tuple(c for c in before if c not in SCAN_CHECKS)
    with _staged_rows(path, project="P", users={"admin"}) as rows:
        run_battery(before, rows)
        after_the_others = check(rows)
    with _staged_rows(path, project="P", users={"admin"}) as rows:
        alone = check(_only(rows, check.reads))
    assert alone and alone == after_the_others


def test_checks_leave_the_staged_tables_as_they_were(write_csv):
    for rows_given, checks in ((_BAD_VALUES, VALUE_CHECKS + FILE_CHECKS), (_BAD_SCANS, BATTERY)):
        with _staged_rows(write_csv(rows_given, make_files=False), project="P") as rows:
            before = _everything(rows.con)
            assert run_battery(checks, rows)
            assert _everything(rows.con) == before


def test_the_runner_refuses_a_check_reading_what_staging_did_not_make(write_csv):
    @reads("runs", "no_such_table")
    def greedy(staging: Staging) -> list:
        return []

    with (
        _staged_rows(write_csv([frame_row()])) as rows,
        pytest.raises(RuntimeError, match=r"'greedy' reads \['no_such_table'\]"),
    ):
        run_battery([greedy], rows)

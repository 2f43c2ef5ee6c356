"""Reading the shapes of import files: headers, delimiters, encodings, JSON nesting."""

import json

import pytest

from miqa_nb.core.errors import WriteError
from miqa_nb.exchange import formats
from miqa_nb.exchange.formats import MIQA_COLUMNS, REQUIRED_COLUMNS


def _rows(parsed):
    return parsed.frame()


def _checks(parsed):
    return {p.check for p in parsed.problems}


def test_header_read_by_name_in_any_order(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(
        "file_location,frame_number,scan_type,scan_name,experiment_name,project_name\n"
        "x.nii.gz,00,T1,S,E,P\n"
    )
    parsed = formats.read_csv(path)
    rows = _rows(parsed)
    assert list(rows.columns[:16]) == list(MIQA_COLUMNS)
    assert rows.loc[0, "frame_number"] == "00" and rows.loc[0, "project_name"] == "P"
    assert rows.loc[0, "subject_id"] == ""


def test_fifteen_column_layout_without_experiment_notes(tmp_path):
    spec = [c for c in MIQA_COLUMNS if c != "experiment_notes"]
    path = tmp_path / "spec.csv"
    path.write_text(",".join(spec) + "\n" + ",".join(["x"] * 4 + ["0", "a.nii"] + [""] * 9) + "\n")
    parsed = formats.read_csv(path)
    assert not parsed.problems
    row = _rows(parsed).loc[0]
    assert (row["frame_number"], row["file_location"], row["experiment_notes"]) == (
        "0",
        "a.nii",
        "",
    )


def test_sixteen_column_layout_of_miqa_sample(samples):
    parsed = formats.read_csv(samples / "samples" / "scans_to_review_optional_columns.csv")
    assert _rows(parsed).loc[0, "experiment_notes"] == "this experiment has a note!"


def test_unknown_and_missing_columns_are_named(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("project_name,experiment_name,scan_name,scan_typo,frame_number,file_location\n")
    parsed = formats.read_csv(path)
    unknown = [p for p in parsed.problems if p.check == "unknown-column"]
    assert unknown[0].column == "scan_typo" and "did you mean 'scan_type'" in unknown[0].message
    missing = [p for p in parsed.problems if p.check == "missing-column"]
    assert missing[0].column == "scan_type"


def test_empty_file_and_header_only(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert _checks(formats.read_csv(empty)) == {"empty-file"}
    header = tmp_path / "header.csv"
    header.write_text(",".join(REQUIRED_COLUMNS) + "\n")
    parsed = formats.read_csv(header)
    assert _rows(parsed).empty
    assert _checks(parsed) == {"no-rows"}


@pytest.mark.parametrize(("sep", "word"), [(";", "';'"), ("\t", "tab")])
def test_wrong_delimiter(tmp_path, sep, word):
    path = tmp_path / "a.csv"
    path.write_text(
        sep.join(REQUIRED_COLUMNS) + "\n" + sep.join(["P", "E", "S", "T1", "0", "a.nii"])
    )
    parsed = formats.read_csv(path)
    assert _checks(parsed) == {"delimiter"}
    assert word in parsed.problems[0].message and "comma" in parsed.problems[0].message


def test_bom_is_accepted_with_a_warning(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(
        b"\xef\xbb\xbf" + (",".join(REQUIRED_COLUMNS) + "\nP,E,S,T1,0,a.nii\n").encode()
    )
    parsed = formats.read_csv(path)
    rows = _rows(parsed)
    assert rows.loc[0, "project_name"] == "P"
    assert [(p.severity, p.check) for p in parsed.problems] == [("warning", "byte-order-mark")]


# A row of too few fields cannot be handed to the handler of bad rows (pyarrow cannot
# decode it): the encoding is what is reported, and nothing is printed as "Exception
# ignored".
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("row", ["P,E,Sé,T1,1,b.nii", "P,E,Sé,T1"], ids=["fields", "too-few"])
def test_latin1_bytes_name_the_line(tmp_path, row):
    path = tmp_path / "a.csv"
    body = ",".join(REQUIRED_COLUMNS) + f"\nP,E,S,T1,0,a.nii\n{row}\n"
    path.write_bytes(body.encode("latin-1"))
    parsed = formats.read_csv(path)
    parsed.frame()
    (problem,) = parsed.problems
    assert problem.check == "encoding" and problem.row == 3 and "0xe9" in problem.message
    assert "UTF-8" in problem.message


def test_a_header_not_in_utf8(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(("projé_name," + ",".join(REQUIRED_COLUMNS[1:]) + "\n").encode("latin-1"))
    (problem,) = formats.read_csv(path).problems
    assert (problem.check, problem.row) == ("encoding", 1)
    assert "b'\\xe9'" in problem.message and "save the file as UTF-8" in problem.message


def test_a_column_twice(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(",".join(REQUIRED_COLUMNS) + ",Scan_Name\nP,E,S,T1,0,a.nii,S\n")
    (problem,) = formats.read_csv(path).problems
    assert (problem.check, problem.column) == ("duplicate-column", "scan_name")


def test_quoted_commas_quotes_and_newlines(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(
        ",".join(MIQA_COLUMNS) + "\n"
        'P,E,S,T1,0,a.nii,"note, with ""quotes""\nand a line",,,,U,me,"x;y",,,\n'
    )
    rows = _rows(formats.read_csv(path))
    assert rows.loc[0, "experiment_notes"] == 'note, with "quotes"\nand a line'
    assert rows.loc[0, "last_decision_note"] == "x;y"


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_notes_of_several_lines_across_read_blocks(tmp_path, monkeypatch, end):
    # Small blocks, so that many cuts between blocks fall inside a quoted note.
    monkeypatch.setattr(formats, "BLOCK_BYTES", 1 << 10)
    path = tmp_path / "a.csv"
    notes = [f'note {n}{end}"line" two{end}line three, end' for n in range(400)]
    quoted = ['"' + note.replace('"', '""') + '"' for note in notes]
    rows = "".join(f"P,E,S{n},T1,0,a.nii,{quoted[n]},,,,,,,,,{end}" for n in range(400))
    path.write_bytes((",".join(MIQA_COLUMNS) + end + rows).encode())
    parsed = formats.read_csv(path)
    frame = _rows(parsed)
    assert not parsed.problems
    assert frame["experiment_notes"].tolist() == notes
    assert frame["scan_name"].tolist() == [f"S{n}" for n in range(400)]


def test_rows_keep_the_files_order(tmp_path):
    path = tmp_path / "a.csv"
    lines = [",".join(REQUIRED_COLUMNS)] + [f"P,E,S,T1,{n},f{n}.nii" for n in range(5000)]
    path.write_text("\n".join(lines) + "\n")
    rows = formats.read_csv(path).frame()
    assert rows["frame_number"].tolist() == [str(n) for n in range(5000)]


def test_wrong_number_of_fields_names_the_line(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(",".join(REQUIRED_COLUMNS) + "\nP,E,S,T1,0,a.nii\nP,E,S,T1,1,b.nii,extra\n")
    parsed = formats.read_csv(path)
    parsed.frame()
    (problem,) = parsed.problems
    assert problem.check == "malformed-csv" and problem.row == 3 and "line 3" in problem.message


def _json(tmp_path, document):
    path = tmp_path / "a.json"
    path.write_text(json.dumps(document))
    return formats.read_json(path)


def test_json_with_decision_history(samples):
    parsed = formats.read_json(samples / "miqa" / "core" / "tests" / "data" / "test_import.json")
    rows = _rows(parsed)
    assert rows.loc[0, "scan_type"] == "ncanda-t1spgr-v1" and rows.loc[0, "subject_id"] == ""
    assert parsed.decisions.loc[0, "last_decision"] == "Q?"
    assert parsed.decisions.loc[0, "last_decision_note"] == "MP(2022-09-16): Damaged Phantom"
    assert not parsed.problems


@pytest.mark.parametrize(
    ("document", "check", "path"),
    [
        ([1, 2], "json-structure", "$"),
        ({"project": {}}, "unknown-key", '$["project"]'),
        (
            {
                "projects": {
                    "P": {"experiments": {"E": {"scans": {"S": {"type": "T1", "frames": [1]}}}}}
                }
            },
            "json-structure",
            '$["projects"]["P"]["experiments"]["E"]["scans"]["S"]["frames"]',
        ),
        (
            {
                "projects": {
                    "P": {
                        "experiments": {
                            "E": {
                                "scans": {
                                    "S": {
                                        "type": "T1",
                                        "colour": 1,
                                        "frames": {"0": {"file_location": "a.nii"}},
                                    }
                                }
                            }
                        }
                    }
                }
            },
            "unknown-key",
            '$["projects"]["P"]["experiments"]["E"]["scans"]["S"]["colour"]',
        ),
        (
            {
                "projects": {
                    "P": {
                        "experiments": {
                            "E": {
                                "scans": {
                                    "S": {
                                        "type": {"x": 1},
                                        "frames": {"0": {"file_location": "a.nii"}},
                                    }
                                }
                            }
                        }
                    }
                }
            },
            "json-structure",
            '$["projects"]["P"]["experiments"]["E"]["scans"]["S"]["type"]',
        ),
    ],
)
def test_json_structure_problems_give_the_path(tmp_path, document, check, path):
    parsed = _json(tmp_path, document)
    assert any(p.check == check and p.path == path for p in parsed.problems), parsed.problems


_SCAN = {"type": "T1", "frames": {"0": {"file_location": "a.nii"}}}


@pytest.mark.parametrize(
    ("scan", "experiment", "check", "path"),
    [
        ({**_SCAN, "decisions": {"decision": "U"}}, None, "json-structure", '["S"]["decisions"]'),
        ({**_SCAN, "decisions": ["U"]}, None, "json-structure", '["S"]["decisions"][0]'),
        (None, {"notes": "no scans"}, "empty-experiment", '["experiments"]["E"]'),
    ],
    ids=["decisions-not-a-list", "decision-not-an-object", "experiment-without-scans"],
)
def test_json_decisions_and_experiments_nested_wrongly(tmp_path, scan, experiment, check, path):
    experiment = experiment or {"scans": {"S": scan}}
    document = {"projects": {"P": {"experiments": {"E": experiment}}}}
    problems = [p for p in _json(tmp_path, document).problems if p.check == check]
    assert problems and problems[0].path.endswith(path), problems


def test_json_not_in_utf8(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes('{"projects": {"Projé": {}}}'.encode("latin-1"))
    (problem,) = formats.read_json(path).problems
    assert problem.check == "encoding" and "save it as UTF-8" in problem.message


def test_malformed_json(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('{"projects": {')
    (problem,) = formats.read_json(path).problems
    assert problem.check == "malformed-json" and "line 1" in problem.message


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")

    def fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        formats.write_csv(fail, target)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_a_path_that_cannot_be_written_is_a_clear_error(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "a-file").write_text("old")

    def write(tmp):
        tmp.write_text("rows")

    with pytest.raises(WriteError, match=r"folder: it is a folder; give a file path"):
        formats.write_csv(write, tmp_path / "folder")
    with pytest.raises(WriteError, match=r"a-file is a file, not a folder"):
        formats.write_csv(write, tmp_path / "a-file" / "sub" / "out.csv")

    def no_space(tmp):
        raise OSError(28, "No space left on device")

    with pytest.raises(WriteError, match=r"a-file: No space left on device"):
        formats.write_csv(no_space, tmp_path / "a-file")
    assert (tmp_path / "a-file").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "folder"]
    assert list((tmp_path / "folder").iterdir()) == []


def test_every_line_of_the_wrong_width_is_named(tmp_path):
    path = tmp_path / "a.csv"
    good = [f"P,E,S,T1,{n},f{n}.nii" for n in range(10)]
    bad = [f"P,E,S,T1,{n},f{n}.nii,extra" for n in range(10, 35)]
    path.write_text("\n".join([",".join(REQUIRED_COLUMNS), *good, *bad]) + "\n")
    parsed = formats.read_csv(path)
    parsed.frame()
    problems = parsed.problems
    assert [p.row for p in problems[:20]] == list(range(12, 32))
    assert {p.check for p in problems} == {"malformed-csv"}
    assert problems[0].value == "P,E,S,T1,10,f10.nii,extra" and problems[0].expected == "6 fields"
    assert (problems[20].count, problems[20].message) == (5, "5 more lines cannot be parsed")
    assert len(problems) == 21

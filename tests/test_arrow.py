"""miqa_nb.core.arrow: Arrow arrays from and to NumPy and lists without pandas, and the
promise it keeps: an import of a CSV file never loads pandas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from miqa_nb.core.arrow import from_numpy, texts, to_numpy
from miqa_nb.exchange.formats import MIQA_COLUMNS


@pytest.mark.parametrize("dtype", ["bool", "int8", "int32", "int64", "uint16", "float64"])
def test_from_numpy_and_back_give_the_same_values(dtype):
    values = np.array([0, 1, 1, 0, 5, 3, 1, 0, 2, 7, 1], dtype=np.float64).astype(dtype)
    array = from_numpy(values)
    assert array.type == pa.from_numpy_dtype(values.dtype)
    assert array.to_pylist() == values.tolist()
    back = to_numpy(array)
    assert back.dtype == values.dtype
    assert back.tolist() == values.tolist()


def test_from_numpy_makes_nulls_where_the_mask_says():
    array = from_numpy(np.array([1, 2, 3], np.int32), mask=np.array([False, True, False]))
    assert array.to_pylist() == [1, None, 3]
    assert array.null_count == 1
    stamps = np.array(["2024-05-01T10:00:00", "1970-01-01"], "datetime64[us]")
    assert from_numpy(stamps, mask=np.array([False, True])).to_pylist()[1] is None
    assert str(from_numpy(stamps)[0]) == "2024-05-01 10:00:00"


def test_to_numpy_reads_slices_and_chunks_at_their_offsets():
    bools = pa.chunked_array([[True, False, True, True, False, False, True, False, True], [False]])
    sliced = bools.slice(3, 6)  # a chunk that starts inside a byte of bits
    assert to_numpy(sliced).tolist() == sliced.to_pylist()
    numbers = pa.chunked_array([[1, 2, 3, 4], [5, 6]]).slice(2)
    assert to_numpy(numbers).tolist() == [3, 4, 5, 6]
    assert to_numpy(pa.chunked_array([], pa.int64())).tolist() == []
    # Nulls (and types without a plain buffer) take pyarrow's own way.
    assert to_numpy(pa.array([1.0, None])).tolist()[0] == 1.0


def test_texts_holds_any_text():
    values = ["", "a", "é", "雪", "line\nend", None, "x" * 1000]
    assert texts(values).to_pylist() == values
    assert texts([]).to_pylist() == []
    assert texts(["a"]).type == pa.string()


def test_from_numpy_refuses_a_table():
    with pytest.raises(ValueError, match="1-d array"):
        from_numpy(np.zeros((2, 2)))


IMPORT = """
import json, sys
from miqa_nb.catalog import Catalog
catalog = Catalog(sys.argv[1])
catalog.add_user("admin", superuser=True)
catalog.add_user("ana", by="admin")
report = catalog.import_file(sys.argv[2], by="admin")
loaded = "pandas" in sys.modules
changes = report.changes.set_index("level")["added"].to_dict()
print(json.dumps({"loaded": loaded, "changes": changes,
                  "warnings": sorted(p.check for p in report.warnings)}))
"""


def test_an_import_of_a_csv_file_does_not_load_pandas(tmp_path: Path):
    """pandas takes a quarter of a second to load: an import of a CSV file (values of
    every kind, times and locations parsed by Python, missing and s3:// files, a
    column left out) never needs it; the report's ``changes`` loads it when asked."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.nii.gz").touch()
    rows = [
        ["P", "E1", "S1", "T1", "0", "data/a.nii.gz", "", "", "", "", "U", "ana", "",
         "2024-05-01 10:00:00", "", "i=1;j=2;k=3"],
        ["P", "E1", "S1", "T1", "1", "data/missing.nii.gz", "", "", "", "", "U", "ana", "",
         "2024-05-01 10:00:00", "", "i=1;j=2;k=3"],
        ["P", "E1", "S2", "t2", "0", "s3://bucket/key/f.nii.gz", "", "", "", "", "UN", "ana",
         "moved", "2024-05-01T10:05:00+02:00", "ghosting_motion", "i = 1.5; j=2 ;k=3"],
    ]  # fmt: skip
    columns = [c for c in MIQA_COLUMNS if c != "scan_link"]  # a column left out
    at = MIQA_COLUMNS.index("scan_link")
    lines = [",".join(columns)] + [",".join(r[:at] + r[at + 1 :]) for r in rows]
    csv = tmp_path / "import.csv"
    csv.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(IMPORT), str(tmp_path / "c.duckdb"), str(csv)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["loaded"] is False
    assert result["changes"] == {
        "projects": 1,
        "experiments": 1,
        "scans": 2,
        "frames": 3,
        "decisions": 2,
    }
    assert result["warnings"] == ["missing-file"]

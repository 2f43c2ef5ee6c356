"""read_export: any export (ours or MIQA's) as a typed DataFrame."""

import pandas as pd
import pytest
from support import frame_row

from miqa_nb.core.errors import ImportFileError
from miqa_nb.exchange.analysis import read_export


@pytest.fixture
def exported(catalog, write_csv, tmp_path):
    rows = [
        frame_row(
            frame=n,
            last_decision="Q?",
            last_decision_creator="a",
            last_decision_created="2022-01-02 09:04:22",
            identified_artifacts="ghosting_motion;lesions",
            location_of_interest="i=-2.5;j=1;k=30",
        )
        for n in range(2)
    ]
    rows.append(frame_row(scan="S2"))
    catalog.add_user("a", by="admin")  # an import credits decisions to users only
    catalog.import_file(write_csv(rows), by="admin")
    catalog.record_decision("P", "E1", "S2", "U", by="admin")
    return (
        catalog.export_file(tmp_path / "e.csv", by="admin"),
        catalog.export_file(tmp_path / "e.json", by="admin"),
    )


@pytest.mark.parametrize("which", [0, 1])
def test_typed_columns(exported, which):
    df = read_export(exported[which])
    assert len(df) == 3
    assert df["frame_number"].dtype == "Int64"
    assert isinstance(df["last_decision"].dtype, pd.CategoricalDtype)
    assert pd.api.types.is_datetime64_any_dtype(df["last_decision_created"])
    first = df.iloc[0]
    assert first.last_decision == "Q?" and first.i == -2.5 and first.k == 30.0
    assert first.ghosting_motion and first.lesions and not first.inhomogeneity
    assert first.last_decision_created == pd.Timestamp("2022-01-02 09:04:22")
    assert df.iloc[2].last_decision == "U"


def test_json_gives_history_length(exported):
    df = read_export(exported[1])
    assert df["n_decisions"].tolist() == [1, 1, 1]


def test_miqa_files(samples):
    df = read_export(samples / "samples" / "demo_project.csv")
    assert len(df) == 13 and df["frame_number"].tolist()[:3] == [0, 1, 2]
    assert df["last_decision"].isna().all()
    js = read_export(samples / "miqa" / "core" / "tests" / "data" / "test_import.json")
    assert js.loc[0, "last_decision"] == "Q?" and pd.isna(js.loc[0, "last_decision_created"])


def test_unreadable_file(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a;b\n1;2\n")
    with pytest.raises(ImportFileError, match="delimited"):
        read_export(path)

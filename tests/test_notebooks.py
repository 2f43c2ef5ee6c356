"""The notebooks run top to bottom against a catalog given by environment variables."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from test_review_support import PROJECT, build_template, copy_catalog

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A catalog with a few decisions; kernels write only under tmp_path."""
    catalog = copy_catalog(build_template(tmp_path / "data"), tmp_path)
    catalog.record_decision(PROJECT, "E1", "S2", "Q?", by="t1", note="motion?")
    catalog.record_decision(PROJECT, "E1", "S2", "UN", by="t2", artifacts={"ghosting": "present"})
    catalog.record_decision(PROJECT, "E3", "S6", "U", by="t2b", location=(1.0, 2.0, 3.0))
    for name in ("JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_CONFIG_DIR", "IPYTHONDIR"):
        folder = tmp_path / name.lower()
        folder.mkdir()
        monkeypatch.setenv(name, str(folder))
    (tmp_path / "mpl").mkdir()
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
    monkeypatch.setenv("MPLBACKEND", "agg")
    monkeypatch.setenv("MIQA_NB_CATALOG", str(catalog.path))
    monkeypatch.setenv("MIQA_NB_USER", "t2")
    monkeypatch.setenv("MIQA_NB_PROJECT", PROJECT)
    return catalog


def run(name: str, folder: Path) -> nbformat.NotebookNode:
    copy = folder / name
    shutil.copyfile(NOTEBOOKS / name, copy)
    nb = nbformat.read(copy, as_version=4)
    for cell in nb.cells:
        assert cell.get("outputs", []) == [] and cell.get("execution_count") is None, (
            f"{name} is committed with outputs: clear them"
        )
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    ).execute()
    return nb


def _text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.extend(str(v) for v in output.get("data", {}).values())
    return "\n".join(parts)


@pytest.mark.slow
def test_review_notebook(lab, tmp_path):
    nb = run("01_review.ipynb", tmp_path)
    out = _text(nb)
    assert "application/vnd.jupyter.widget-view+json" in str(nb.cells[5].outputs)
    assert "Traceback" not in out
    stored = lab.decisions(PROJECT)
    assert len(stored) == 4 and stored.iloc[-1]["creator"] == "t2"  # the "from code" cell


def _cell(nb: nbformat.NotebookNode, snippet: str) -> str:
    """The plain-text result of the one code cell whose source holds ``snippet``."""
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and snippet in c.source]
    return "\n".join(
        o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in cell.outputs
    )


def _rows(table: str) -> list[list[str]]:
    """The rows of a small printed DataFrame, without the header and the index."""
    return [line.split()[1:] for line in table.splitlines()[1:]]


@pytest.mark.slow
def test_analyse_notebook(lab, tmp_path):
    """Each section shows the lab's three decisions (t1 Q?, t2 UN, t2b U), counted the
    way its heading says, from the catalog and from an exported CSV; the plot is drawn."""
    nb = run("02_analyse.ipynb", tmp_path)
    assert "Traceback" not in _text(nb)
    summary = _cell(nb, "catalog.summary()")
    assert "P: 3 experiments, 7 scans, 8 frames; 2/7 reviewed, 2 complete" in summary
    last = _cell(nb, "]].tail()").splitlines()[-1].split()
    assert last[1:5] == ["E3", "S6", "U", "t2b"] and last[-1] == "i=1;j=2;k=3"
    per_reviewer = _rows(_cell(nb, "creator AS reviewer, decision"))
    assert per_reviewer == [["t1", "Q?", "1"], ["t2", "UN", "1"], ["t2b", "U", "1"]]
    per_type = _rows(_cell(nb, "s.type AS scan_type"))
    assert per_type == [["T2", "Q?", "1"], ["T2", "U", "1"], ["T2", "UN", "1"]]
    exported = _rows(_cell(nb, "FROM frames GROUP BY ALL"))  # last decision per scan
    assert exported == [["T1", "unreviewed", "5"], ["T2", "U", "1"], ["T2", "UN", "1"]]
    assert "image/png" in str(nb.cells[-1].outputs)

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


@pytest.mark.slow
def test_analyse_notebook(lab, tmp_path):
    nb = run("02_analyse.ipynb", tmp_path)
    out = _text(nb)
    assert ("t2b" in out and "ghosting" in out.lower()) or "UN" in out
    assert "image/png" in str(nb.cells[-1].outputs)

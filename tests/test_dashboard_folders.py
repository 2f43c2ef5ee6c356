"""Paths typed in the dashboard's administration stay inside the data roots (imports)
and the export folder (exports): checked by ``AdminActions`` on a real catalog, with
real files, symlinks and a FIFO outside the roots."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from widgets_dashboard.dashboard_catalog import (
    ADMIN,
    PROJECT,
    SECRET,
    DashboardCatalog,
    build,
    outside_folder,
)

from miqa_nb.catalog import Catalog
from miqa_nb.dashboard.folders import EXPORT_DIR_ENV, PageFolders, PathRefused
from miqa_nb.dashboard.model import AdminActions, readable_error


@pytest.fixture
def site(tmp_path: Path) -> DashboardCatalog:
    """The dashboard tests' catalog in ``<tmp>/site`` (its folder is the data root)."""
    return build(tmp_path / "site")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    return outside_folder(tmp_path)


def _state(cat: Catalog) -> tuple[pd.DataFrame, dict[str, str | None], pd.DataFrame]:
    """What a refused action must leave as it was: paths, global paths, decisions."""
    projects = cat.projects()[["project", "import_path", "export_path"]]
    return projects, cat.global_paths(), cat.decisions(PROJECT)


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")} if folder.exists() else set()


def _refused(call: Callable[[], object], *needles: str) -> str:
    """Call ``call``; it must raise PathRefused naming each of ``needles`` and never
    quoting the secret; return the sentence the page would show."""
    with pytest.raises(PathRefused) as caught:
        call()
    shown = readable_error(caught.value)
    assert shown.startswith("Refused: ")
    for needle in needles:
        assert needle in shown, (needle, shown)
    assert "root:" not in shown and "secret-marker" not in shown
    return shown


# -------------------------------------------------------------------- imports


def test_etc_passwd_as_import_path_is_refused_and_not_quoted(site: DashboardCatalog) -> None:
    cat = site.catalog()
    actions = AdminActions(cat, ADMIN, PROJECT)
    before = _state(cat)
    shown = _refused(
        lambda: actions.set_paths(import_path="/etc/passwd"),
        "Import path",
        "'/etc/passwd'",
        str(site.root),  # the allowed folder
        "MIQA_NB_DATA_ROOTS",  # the fix for another folder
    )
    assert "absolute path of a MIQA .csv or .json file" in shown
    pd.testing.assert_frame_equal(_state(cat)[0], before[0])
    # stored by other means (the command line, or before this rule): refused when run
    cat.set_project_paths(PROJECT, by=ADMIN, import_path="/etc/passwd")
    for dry_run in (True, False):
        _refused(lambda d=dry_run: actions.import_project(dry_run=d), "import path")
    pd.testing.assert_frame_equal(_state(cat)[2], before[2])


def test_a_path_out_of_the_roots_by_dotdot_or_symlink_is_refused(
    site: DashboardCatalog, outside: Path
) -> None:
    cat = site.catalog()
    actions = AdminActions(cat, ADMIN, PROJECT)
    data = site.root / "data"
    (data / "link.csv").symlink_to(outside / "secret.csv")
    (data / "linked").symlink_to(outside, target_is_directory=True)
    hostile = [
        str(data / ".." / ".." / "outside" / "secret.csv"),
        str(data / "link.csv"),
        str(data / "linked" / "secret.json"),
        str(outside / "secret.csv"),
        "data/alpha.csv",  # relative: not absolute, refused
    ]
    before = _state(cat)
    for value in hostile:
        _refused(lambda v=value: actions.set_paths(import_path=v), "Import path", repr(value))
        _refused(lambda v=value: actions.set_global_paths(import_path=v), "Import path")
    after = _state(cat)
    pd.testing.assert_frame_equal(after[0], before[0])
    assert after[1] == before[1]
    for value in hostile[:4]:
        cat.set_project_paths(PROJECT, by=ADMIN, import_path=value)
        cat.set_global_paths(by=ADMIN, import_path=value)
        _refused(actions.import_project, "The project's import path")
        _refused(actions.import_global, "The global import path")
    pd.testing.assert_frame_equal(_state(cat)[2], before[2])


def test_a_file_outside_the_roots_is_never_opened(site: DashboardCatalog, outside: Path) -> None:
    """A FIFO outside the roots: opening it to read would block until a writer comes,
    so the refusal coming back at all shows the file was not opened."""
    fifo = outside / "feed.csv"
    os.mkfifo(fifo)
    cat = site.catalog()
    cat.set_project_paths(PROJECT, by=ADMIN, import_path=str(fifo))
    actions = AdminActions(cat, ADMIN, PROJECT)
    raised: list[BaseException] = []

    def run() -> None:
        try:
            actions.import_project()
        except BaseException as exc:
            raised.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(60)
    if worker.is_alive():
        with open(fifo, "w", encoding="utf-8") as feed:  # let the reader go
            feed.write(SECRET + "\n")
        worker.join(60)
        pytest.fail("the import opened a file outside the data roots")
    assert len(raised) == 1 and isinstance(raised[0], PathRefused), raised


def test_a_suffix_other_than_csv_or_json_is_not_read(site: DashboardCatalog) -> None:
    """Inside the roots too, only import files are read: a secret kept beside the data
    is not quoted by the import report."""
    (site.root / "data" / "notes.txt").write_text(SECRET + "\n", encoding="utf-8")
    actions = AdminActions(site.catalog(), ADMIN, PROJECT)
    value = str(site.root / "data" / "notes.txt")
    _refused(lambda: actions.set_paths(import_path=value), "does not end in .csv or .json")


def test_an_import_inside_the_roots_works_end_to_end(site: DashboardCatalog) -> None:
    cat = site.catalog()
    cat.set_project_paths(PROJECT, by=ADMIN, import_path="/etc/passwd")
    actions = AdminActions(cat, ADMIN, PROJECT)
    dotted = str(site.root / "data" / "images" / ".." / "alpha.csv")  # `..` inside: fine
    actions.set_paths(import_path=dotted)
    assert actions.paths()["import_path"] == str(site.import_csv)
    report = actions.import_project(dry_run=True)
    assert report.file == str(site.import_csv) and not report.errors
    assert len(cat.decisions(PROJECT)) == 2
    actions.import_project(dry_run=False)
    assert cat.decisions(PROJECT).empty  # the file has no decisions: replaced
    actions.set_global_paths(import_path=str(site.import_csv))
    assert not actions.import_global(dry_run=True).errors


def test_data_roots_come_from_the_catalog_then_the_environment_then_its_folder(
    site: DashboardCatalog, outside: Path
) -> None:
    folder = os.path.realpath(site.root)
    assert PageFolders.of(site.catalog(), {}).roots.folders == (folder,)
    env = {"MIQA_NB_DATA_ROOTS": f"{outside}{os.pathsep}{site.root / 'data'}"}
    from_env = PageFolders.of(site.catalog(), env)
    assert from_env.roots.folders == (str(outside), str(site.root / "data"))
    given = Catalog(site.catalog_path, data_roots=[outside])
    assert PageFolders.of(given, env).roots.folders == (str(outside),)
    # with the outside folder a root, its import file may be read (and quoted)
    actions = AdminActions(given, ADMIN, PROJECT)
    actions.set_paths(import_path=str(outside / "secret.csv"))
    assert actions.paths()["import_path"] == str(outside / "secret.csv")


# -------------------------------------------------------------------- exports


def test_exports_outside_the_export_folder_are_refused_and_write_nothing(
    site: DashboardCatalog, outside: Path
) -> None:
    cat = site.catalog()
    actions = AdminActions(cat, ADMIN, PROJECT)
    exports = site.root / "exports"
    (exports / "out.csv").symlink_to(outside / "secret.csv")
    (exports / "away").symlink_to(outside, target_is_directory=True)
    hostile = [
        str(outside / "written.csv"),
        "../x.csv",
        "sub/../../x.csv",
        str(exports / ".." / "x.csv"),
        "out.csv",  # a symlink in the export folder pointing out
        "away/written.csv",
        ".",
        "x.duckdb",  # not an export file (the catalog could be in the folder)
    ]
    before, files_before = _state(cat), _files(site.root) | _files(outside)
    for value in hostile:
        _refused(lambda v=value: actions.set_paths(export_path=v), "Export path", repr(value))
        _refused(lambda v=value: actions.set_global_paths(export_path=v), "Export path")
    after = _state(cat)
    pd.testing.assert_frame_equal(after[0], before[0])
    assert after[1] == before[1]
    for value in [hostile[0], str(exports / "out.csv"), str(exports / "away" / "w.csv")]:
        cat.set_project_paths(PROJECT, by=ADMIN, export_path=value)
        cat.set_global_paths(by=ADMIN, export_path=value)
        _refused(actions.export_project, "The project's export path", str(exports))
        _refused(actions.export_global, "The global export path")
    assert _files(site.root) | _files(outside) == files_before
    assert (outside / "secret.csv").read_text(encoding="utf-8") == SECRET + "\n"
    assert not (site.root / "x.csv").exists() and not (outside / "written.csv").exists()


def test_exports_inside_the_export_folder_work_end_to_end(site: DashboardCatalog) -> None:
    actions = AdminActions(site.catalog(), ADMIN, PROJECT)
    actions.set_paths(export_path="sub/alpha.json")  # relative: from the export folder
    target = site.root / "exports" / "sub" / "alpha.json"
    assert actions.paths()["export_path"] == str(target)
    assert actions.export_project() == target and target.read_text().startswith("{")
    actions.set_global_paths(export_path=str(site.root / "exports" / "all.csv"))
    written = actions.export_global()
    assert written == site.root / "exports" / "all.csv"
    assert written.read_text().startswith("project_name,")


def test_the_export_folder_is_created_when_needed_and_may_be_set(
    site: DashboardCatalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = tmp_path / "chosen" / "exports"
    monkeypatch.setenv(EXPORT_DIR_ENV, str(chosen))
    actions = AdminActions(site.catalog(), ADMIN, PROJECT)
    assert actions.confined.export_folder == str(chosen)
    _refused(
        lambda: actions.set_paths(export_path=str(site.root / "exports" / "a.csv")),
        str(chosen),
        EXPORT_DIR_ENV,
    )
    assert not chosen.exists()  # a refusal creates nothing
    actions.set_paths(export_path="a.csv")
    assert actions.export_project() == chosen / "a.csv" and (chosen / "a.csv").is_file()


def test_a_control_character_is_refused_in_words(site: DashboardCatalog) -> None:
    actions = AdminActions(site.catalog(), ADMIN, PROJECT)
    _refused(lambda: actions.set_paths(export_path="a\x00.csv"), "control character")
    _refused(lambda: actions.set_paths(import_path="/x/\n.csv"), "control character")


def test_the_panel_sentence_names_the_folders(site: DashboardCatalog) -> None:
    folders = PageFolders.of(site.catalog(), {})
    text = folders.describe()
    assert str(os.path.realpath(site.root)) in text
    assert str(os.path.realpath(site.root / "exports")) in text

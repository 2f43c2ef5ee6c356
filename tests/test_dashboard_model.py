"""The dashboard's plain-Python model: identity, errors, projects, overview, admin, upload."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from widgets_dashboard.dashboard_catalog import (
    ADMIN,
    COLLABORATOR,
    NASTY_PROJECT,
    PROJECT,
    TIER1,
    TIER2,
    DashboardCatalog,
    build,
    tiny_volume,
)

from miqa_nb.core.errors import ImportFileError, MiqaError, PermissionDenied
from miqa_nb.core.report import Report
from miqa_nb.core.vocabulary import Role
from miqa_nb.dashboard.model import (
    AdminActions,
    default_thumbnail_dir,
    filter_overview,
    overview_table,
    readable_error,
    resolve_user,
    visible_projects,
)
from miqa_nb.dashboard.uploads import (
    UploadFile,
    UploadStager,
    check_upload_name,
    default_upload_dir,
)


@pytest.fixture
def dash(tmp_path: Path) -> DashboardCatalog:
    return build(tmp_path)


# ---------------------------------------------------------------------- identity


def test_a_served_page_is_the_signed_in_users(dash: DashboardCatalog) -> None:
    """Served, the user is the one the server verified; the query string and the server's
    own environment never name it."""
    cat = dash.catalog()
    env = {"MIQA_NB_IDENTITY": "server", "MIQA_NB_USER": ADMIN, "JUPYTERHUB_USER": ADMIN}
    assert resolve_user(cat, env, "user=admin", page_user=TIER1).user == TIER1
    missing = resolve_user(cat, env, "user=admin")  # the server named nobody
    assert missing.user is None and "sign in again" in (missing.refusal or "")
    unknown = resolve_user(cat, env, None, page_user="<script>")
    assert unknown.user is None and "'<script>' is not in this catalog" in (unknown.refusal or "")
    old = resolve_user(cat, {"MIQA_NB_IDENTITY": "query"}, "user=admin")  # no longer a way
    assert old.user is None and "MIQA_NB_IDENTITY=query" in (old.refusal or "")


def test_identity_under_jupyterhub_ignores_the_query(dash: DashboardCatalog) -> None:
    cat = dash.catalog()
    env = {"MIQA_NB_IDENTITY": "hub", "JUPYTERHUB_USER": TIER2}
    assert resolve_user(cat, env, "user=admin").user == TIER2
    assert resolve_user(cat, {"MIQA_NB_IDENTITY": "hub"}, "user=admin").user is None


def test_identity_in_a_plain_notebook(dash: DashboardCatalog) -> None:
    cat = dash.catalog()
    assert resolve_user(cat, {"MIQA_NB_USER": COLLABORATOR}, None).user == COLLABORATOR
    assert resolve_user(cat, {}, "user=tom").user == TIER2
    assert resolve_user(cat, {}, None).refusal


# ------------------------------------------------------------------------ errors


def test_readable_error() -> None:
    assert readable_error(PermissionDenied("user 'x' may not")).startswith("Refused: ")
    assert readable_error(MiqaError("bad path")) == "bad path"
    report = Report(file="f.csv")
    for i in range(20):
        report.add("error", f"bad{i}", f"problem {i}", row=i + 2)
    text = readable_error(ImportFileError("x", report))
    assert "Nothing was imported" in text and "more line(s)" in text
    text = readable_error(KeyError("secret internals"))
    assert "KeyError" in text and "secret internals" not in text


# ---------------------------------------------------------------------- projects


def test_visible_projects(dash: DashboardCatalog) -> None:
    cat = dash.catalog()
    cat.create_project("Hidden", by=ADMIN)
    mine = visible_projects(cat, TIER1)
    assert list(mine["project"]) == [PROJECT, NASTY_PROJECT]
    assert list(mine["my_role"]) == ["tier1", "tier1"]
    assert mine["progress"].round(3).tolist() == [0.667, 0.0]
    every = visible_projects(cat, ADMIN)
    assert "Hidden" in set(every["project"])
    assert every.set_index("project").loc["Hidden", "progress"] == 0.0


# ---------------------------------------------------------------------- overview


def test_overview_table_and_filters(dash: DashboardCatalog) -> None:
    table = overview_table(dash.catalog(), PROJECT)
    assert list(table["scan"]) == ["S1", "S2", "S3"]
    assert list(table["state"].astype(str)) == ["complete", "needs tier-2 review", "unreviewed"]
    assert all(Path(p).exists() for p in table["location"])
    assert list(filter_overview(table, state="complete")["scan"]) == ["S1"]
    assert list(filter_overview(table, scan_type="T1")["scan"]) == ["S1", "S3"]
    assert list(filter_overview(table, experiment=" e1 ")["scan"]) == ["S1", "S2"]
    assert filter_overview(table, experiment="[").empty  # plain text, not a regex


# ------------------------------------------------------------------------- admin


def test_admin_actions_refuse_non_admins(dash: DashboardCatalog) -> None:
    cat = dash.catalog()
    for user in (TIER1, TIER2, COLLABORATOR):
        actions = AdminActions(cat, user, PROJECT)
        assert not actions.allowed and not actions.global_allowed
        for call in (
            actions.export_project,
            actions.import_project,
            actions.paths,
            actions.roles,
            actions.export_global,
            lambda a=actions: a.set_role(TIER1, "tier2"),
            lambda a=actions: a.add_user("x"),
        ):
            with pytest.raises(PermissionDenied):
                call()
    assert not dash.export_csv.exists()


def test_admin_actions_refuse_with_the_permissions_sentence(dash: DashboardCatalog) -> None:
    actions = AdminActions(dash.catalog(), TIER2, PROJECT)
    with pytest.raises(
        PermissionDenied,
        match=rf"user '{TIER2}' may not change roles of project '{PROJECT}': "
        "only the project's creator and superusers may",
    ):
        actions.set_role(TIER1, "tier2")
    with pytest.raises(PermissionDenied, match="may not add users: only superusers may"):
        actions.add_user("x")


def test_admin_actions_for_a_creator(dash: DashboardCatalog) -> None:
    cat = dash.catalog()
    cat.sql("UPDATE projects SET creator = ? WHERE name = ?", [TIER1, PROJECT])
    actions = AdminActions(cat, TIER1, PROJECT)
    assert actions.allowed and not actions.global_allowed
    assert actions.export_project() == dash.export_csv
    report = actions.import_project()  # a dry run by default
    assert report.file == str(dash.import_csv) and not report.errors
    assert report.changes is not None and len(cat.decisions(PROJECT)) == 2
    # the file holds no decisions: the dry run says the two would go, and keeps them
    assert report.changes.set_index("level").loc["decisions", "removed"] == 2
    actions.set_role(COLLABORATOR, "tier1")
    roles = actions.roles().set_index("user")["role"]
    assert roles[COLLABORATOR] == "tier1"
    assert cat.standing(COLLABORATOR, PROJECT).role == Role.TIER1
    with pytest.raises(PermissionDenied):
        actions.import_global()


def test_admin_paths(dash: DashboardCatalog) -> None:
    actions = AdminActions(dash.catalog(), ADMIN, PROJECT)
    assert actions.paths() == {
        "import_path": str(dash.import_csv),
        "export_path": str(dash.export_csv),
    }
    actions.set_paths(export_path=str(dash.root / "exports" / "x.csv"))
    assert actions.paths()["import_path"] == str(dash.import_csv)
    assert actions.paths()["export_path"] == str(dash.root / "exports" / "x.csv")
    with pytest.raises(MiqaError, match="open a project"):
        AdminActions(dash.catalog(), ADMIN).export_project()


# ------------------------------------------------------------------------ upload


@pytest.mark.parametrize(
    "name",
    [
        "../x.nii.gz",
        "a/b.nii",
        ".hidden.nii",
        "x.txt",
        ".nii.gz",
        "x.nhdr",
        "x\x00.nii",
        "",
        "é.nii",
    ],
)
def test_bad_upload_names(name: str) -> None:
    assert check_upload_name(name)


@pytest.mark.parametrize("name", ["T1 scan.nii.gz", "a.NII", "b-1_(2).mgz", "c.nrrd"])
def test_good_upload_names(name: str) -> None:
    assert check_upload_name(name) is None


def _stager(dash: DashboardCatalog, upload_dir: Path, user: str = ADMIN) -> UploadStager:
    return UploadStager(
        dash.catalog(), user, upload_dir, clock=lambda: datetime(2025, 1, 2, tzinfo=UTC)
    )


def test_upload_writes_inside_the_folder_and_imports(
    dash: DashboardCatalog, tmp_path: Path
) -> None:
    source = tmp_path / "src.nii.gz"
    tiny_volume(source, 7)
    upload_dir = tmp_path / "uploads"
    steps: list[tuple[int, int, str]] = []
    staged = _stager(dash, upload_dir, TIER1).upload(
        PROJECT,
        "E1",
        [UploadFile("S7.nii.gz", source.read_bytes()), UploadFile("S8.mgz", b"")],
        scan_type="T2",
        progress=lambda *a: steps.append(a),
    )
    assert all(os.path.realpath(p).startswith(str(upload_dir.resolve())) for p in staged.files)
    assert staged.csv_path is not None and staged.csv_path.parent == upload_dir / ".imports"
    scans = dash.catalog().scans(PROJECT).set_index("scan")
    assert scans.loc["S7", "type"] == "T2" and scans.loc["S7", "experiment"] == "E1"
    assert steps[0][0] == 0 and steps[-1][:2] == (3, 3)
    # the same name again is refused, and nothing is overwritten
    with pytest.raises(MiqaError, match="already has a scan 'S7'"):
        _stager(dash, upload_dir).upload(PROJECT, "E1", [UploadFile("S7.nii.gz", b"other")])
    assert staged.files[0].read_bytes() == source.read_bytes()


def test_upload_refused_by_the_catalog_leaves_no_files(
    dash: DashboardCatalog, tmp_path: Path
) -> None:
    upload_dir = tmp_path / "uploads"
    with pytest.raises(PermissionDenied):
        _stager(dash, upload_dir, COLLABORATOR).upload(PROJECT, "E1", [UploadFile("n.nii", b"x")])
    leftovers = [p for p in upload_dir.rglob("*") if p.is_file()]
    assert leftovers == []


def test_upload_checks_everything_first(dash: DashboardCatalog, tmp_path: Path) -> None:
    stager = _stager(dash, tmp_path / "up")
    problems = stager.check(PROJECT, "", ["a.nii", "a.nii.gz", "x.exe"], "NOPE")
    text = " | ".join(problems)
    assert "experiment" in text and "both be scan 'a'" in text and "x.exe" in text
    assert "NOPE" in text
    assert not (tmp_path / "up").exists()


def test_upload_folder_must_be_inside_the_data_roots(
    dash: DashboardCatalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIQA_NB_DATA_ROOTS", str(dash.root / "data"))
    stager = _stager(dash, tmp_path / "elsewhere")
    assert any("outside the data roots" in p for p in stager.check(PROJECT, "E1", ["a.nii"], "T1"))
    inside = _stager(dash, dash.root / "data" / "uploads")
    assert inside.check(PROJECT, "E1", ["a.nii"], "T1") == []


def test_default_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_upload_dir(tmp_path / "lab.duckdb") == tmp_path / "lab-uploads"
    assert default_thumbnail_dir(tmp_path / "lab.duckdb") == tmp_path / "lab-thumbnails"
    monkeypatch.setenv("MIQA_NB_UPLOAD_DIR", str(tmp_path / "u"))
    assert default_upload_dir(tmp_path / "lab.duckdb") == tmp_path / "u"

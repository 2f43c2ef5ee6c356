"""The catalog: import semantics, transactions, backups, roles, decisions, DataFrames."""

import json
from datetime import UTC, datetime

import pandas as pd
import pytest
from support import frame_row, write_sql

from miqa_nb import Catalog, Decision, ImportFileError, MiqaError, NotFound, PermissionDenied
from miqa_nb.core.vocabulary import ScanState


def _snapshot(cat):
    return {
        t: cat.sql(f"SELECT * FROM {t} ORDER BY ALL").astype(str).to_dict("list")
        for t in ("projects", "experiments", "scans", "frames", "decisions", "roles", "users")
    }


@pytest.fixture
def project(catalog, write_csv):
    """Project P: E1/S1 (2 frames, decided U), E1/S2 (1 frame), E2/S3 (1 frame, Q?)."""
    rows = [
        frame_row(
            frame=0,
            last_decision="U",
            last_decision_creator="rev@lab.org",
            last_decision_created="2022-01-01 13:44:34",
            identified_artifacts="lesions",
            location_of_interest="i=1;j=2;k=3.50",
        ),
        frame_row(
            frame=1,
            last_decision="U",
            last_decision_creator="rev@lab.org",
            last_decision_created="2022-01-01 13:44:34",
            identified_artifacts="lesions",
            location_of_interest="i=1;j=2;k=3.50",
        ),
        frame_row(scan="S2"),
        frame_row(
            experiment="E2",
            scan="S3",
            scan_type="T2",
            last_decision="Q?",
            last_decision_note="ghost?",
            experiment_notes='second, "quoted"',
        ),
    ]
    path = write_csv(rows)
    catalog.add_user("rev@lab.org", by="admin")  # an import credits decisions to users only
    catalog.import_file(path, by="admin")
    return path


def test_import_builds_the_hierarchy(catalog, project):
    scans = catalog.scans()
    assert scans[["experiment", "scan", "n_frames"]].values.tolist() == [
        ["E1", "S1", 2],
        ["E1", "S2", 1],
        ["E2", "S3", 1],
    ]
    assert scans["state"].tolist() == ["complete", "unreviewed", "needs tier-2 review"]
    assert isinstance(scans["state"].dtype, pd.CategoricalDtype)
    frames = catalog.frames("P")
    assert frames["frame_number"].dtype == "int64" and frames["location"].str.startswith("/").all()
    assert catalog.projects().loc[0, "creator"] == "admin"
    decisions = catalog.decisions()
    assert decisions.loc[0, "lesions"] == "present" and decisions.loc[0, "k"] == 3.5
    assert decisions.loc[0, "created"] == pd.Timestamp("2022-01-01 13:44:34")
    assert catalog.sql("SELECT count(*) AS n FROM frames WHERE project = ?", ["P"]).n[0] == 4


def test_errors_change_nothing(catalog, project, write_csv):
    before = _snapshot(catalog)
    bad = write_csv([frame_row(frame="x"), frame_row(scan="S9", scan_type="T7")], name="bad.csv")
    with pytest.raises(ImportFileError) as info:
        catalog.import_file(bad, by="admin")
    assert {p.check for p in info.value.report.errors} == {"frame-number", "unknown-scan-type"}
    assert "nothing was imported" in str(info.value)
    assert _snapshot(catalog) == before
    assert catalog.backups() == []


def test_failure_half_way_rolls_back(catalog, project, write_csv, monkeypatch):
    from miqa_nb.exchange import apply as exchange

    before = _snapshot(catalog)
    real_apply = exchange.apply

    def apply_then_fail(con, mode, creator, **kwargs):
        real_apply(con, mode, creator, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(exchange, "apply", apply_then_fail)
    with pytest.raises(OSError, match="disk full"):
        catalog.import_file(write_csv([frame_row(scan="New")], name="n.csv"), by="admin")
    assert _snapshot(catalog) == before


def test_replace_takes_the_files_state_and_backs_up(catalog, project, write_csv):
    catalog.record_decision("P", "E1", "S2", "U", by="admin")
    path = write_csv([frame_row(scan="S2"), frame_row(scan="S4")], name="v2.csv")
    report = catalog.import_file(path, by="admin")
    changes = report.changes.set_index("level")
    assert changes.loc["scans", "added"] == 1 and changes.loc["scans", "removed"] == 2
    assert changes.loc["decisions", "removed"] == 3
    assert catalog.scans()["scan"].tolist() == ["S2", "S4"]
    assert catalog.decisions().empty
    (backup,) = catalog.backups()
    saved = json.loads(backup.read_text())
    decisions = saved["projects"]["P"]["experiments"]["E1"]["scans"]["S2"]["decisions"]
    assert decisions[0]["decision"] == "U" and decisions[0]["creator"] == "admin"
    # the backup restores every decision (its paths lie under the data roots)
    restoring = Catalog(catalog.location, data_roots=[project.parent])
    restoring.import_file(backup, by="admin", project="P")
    assert len(restoring.decisions()) == 3


def test_backups_are_bounded(make_catalog, write_csv):
    ticks = iter(range(100))
    cat = make_catalog(
        "c",
        backups_kept=2,
        clock=lambda: datetime(2026, 1, 1, 0, 0, next(ticks), tzinfo=UTC),
    )
    cat.add_user("admin")
    path = write_csv([frame_row()])
    for _ in range(4):
        cat.import_file(path, by="admin")
    assert len(cat.backups()) == 2


def test_dry_run_reports_and_writes_nothing(catalog, project, write_csv):
    before = _snapshot(catalog)
    path = write_csv(
        [frame_row(frame=0, file_location="images/E1/S1/other.nii.gz"), frame_row(scan="S5")],
        name="d.csv",
    )
    report = catalog.import_file(path, by="admin", dry_run=True)
    changes = report.changes.set_index("level")
    assert changes.loc["frames", "changed"] == 1 and changes.loc["frames", "removed"] == 3
    assert changes.loc["scans", "added"] == 1 and changes.loc["experiments", "removed"] == 1
    assert "changes:" in str(report)
    assert _snapshot(catalog) == before


def test_dry_run_counts_every_decision_when_the_catalog_has_none(catalog, project):
    write_sql(catalog, "DELETE FROM decisions")  # P keeps its scans, not their decisions
    report = catalog.import_file(project, by="admin", dry_run=True)
    changes = report.changes.set_index("level")
    assert changes.loc["decisions", "added"] == 2 and changes.loc["decisions", "removed"] == 0
    assert changes.loc["scans", "unchanged"] == 3 and changes.loc["frames", "added"] == 0
    assert catalog.decisions().empty


def test_append_adds_new_and_keeps_existing(catalog, project, write_csv):
    rows = [
        frame_row(frame=0, file_location="images/E1/S1/moved.nii.gz"),
        frame_row(frame=2),
        frame_row(scan="S6", last_decision="UN", last_decision_note="bad"),
    ]
    report = catalog.import_file(write_csv(rows, name="a.csv"), by="admin", mode="append")
    changes = report.changes.set_index("level")
    assert changes.loc["frames", "added"] == 2 and changes.loc["frames", "conflicts"] == 1
    conflict = [p for p in report.warnings if p.check == "conflict"]
    assert conflict and "moved.nii.gz" in conflict[0].message
    frames = catalog.frames()
    assert len(frames) == 6 and not frames["location"].str.contains("moved").any()
    assert len(catalog.decisions()) == 3
    again = catalog.import_file(write_csv(rows, name="a.csv"), by="admin", mode="append")
    assert again.changes.set_index("level").loc["decisions", "added"] == 0


def test_project_import_cannot_touch_other_projects(catalog, project, write_csv):
    catalog.import_file(write_csv([frame_row(project="Q")], name="q.csv"), by="admin")
    path = write_csv([frame_row(project="P"), frame_row(project="Q", scan="X")], name="pq.csv")
    with pytest.raises(ImportFileError, match=r"other-project|project 'Q'"):
        catalog.import_file(path, by="admin", project="P")
    assert catalog.scans("Q")["scan"].tolist() == ["S1"]


def test_roles_and_permissions(catalog, project, write_csv, tmp_path):
    for name in ("t1", "t2", "collab", "creator", "nobody"):
        catalog.add_user(name, by="admin")
    catalog.set_role("P", "t1", "tier1", by="admin")
    catalog.set_role("P", "t2", "tier-2", by="admin")
    catalog.set_role("P", "collab", "collaborator", by="admin")
    write_sql(catalog, "UPDATE projects SET creator = 'creator' WHERE name = 'P'")
    before = _snapshot(catalog)
    out = tmp_path / "out.csv"

    for user in ("t1", "t2", "collab", "nobody"):
        with pytest.raises(PermissionDenied, match="creator and superusers"):
            catalog.set_project_paths("P", by=user, import_path="/data/p.csv")
    for user in ("collab", "nobody"):
        with pytest.raises(PermissionDenied, match="reviewers"):
            catalog.import_file(project, by=user, project="P")
        with pytest.raises(PermissionDenied):
            catalog.export_file(out, by=user, project="P")
    for user in ("t1", "t2", "creator", "collab"):
        with pytest.raises(PermissionDenied, match="superusers"):
            catalog.import_file(project, by=user)
        with pytest.raises(PermissionDenied, match="superusers"):
            catalog.export_file(out, by=user)
        with pytest.raises(PermissionDenied):
            catalog.add_user("x", by=user)
    with pytest.raises(PermissionDenied, match="not in the catalog"):
        catalog.export_file(out, by="stranger", project="P")
    assert _snapshot(catalog) == before and not out.exists()

    more = write_csv([frame_row(experiment="E3", scan="S9")], name="more.csv")
    catalog.set_project_paths("P", by="creator", import_path=str(more))
    report = catalog.import_project("P", by="t1", mode="append")  # a reviewer may import
    assert report.file == str(more) and not report.errors
    assert report.changes.set_index("level").loc["scans", "added"] == 1
    assert "S9" in catalog.scans("P")["scan"].tolist()
    catalog.export_file(out, by="t2", project="P")
    assert sorted(set(pd.read_csv(out)["scan_name"])) == ["S1", "S2", "S3", "S9"]
    with pytest.raises(MiqaError, match="absolute"):
        catalog.set_project_paths("P", by="admin", export_path="relative.csv")


def test_decisions_follow_roles(catalog, project):
    for name, role in (("t1", "tier1"), ("t2", "tier2"), ("collab", "collaborator")):
        catalog.add_user(name, by="admin")
        catalog.set_role("P", name, role, by="admin")
    with pytest.raises(PermissionDenied, match="tier-2"):
        catalog.record_decision("P", "E1", "S2", "UN", by="t1", note="bad")
    with pytest.raises(PermissionDenied):
        catalog.record_decision("P", "E1", "S2", "U", by="collab")
    with pytest.raises(MiqaError, match="needs a note or at least one artifact"):
        catalog.record_decision("P", "E1", "S2", "Q?", by="t1")
    catalog.record_decision(
        "P",
        "E1",
        "S2",
        Decision.QUESTIONABLE,
        by="t1",
        artifacts={"ghosting": "present", "lesions": "absent"},
        location=(1.5, -2.25, 30),
    )
    scans = catalog.scans().set_index("scan")
    assert scans.loc["S2", "state"] == ScanState.NEEDS_TIER2
    catalog.record_decision("P", "E1", "S2", "UN", by="t2", note="motion")
    assert catalog.scans().set_index("scan").loc["S2", "state"] == ScanState.COMPLETE
    history = catalog.decisions("P").query("scan == 'S2'")
    assert history["decision"].tolist() == ["Q?", "UN"]
    first = history.iloc[0]
    assert (first.ghosting_motion, first.lesions, first.inhomogeneity) == (
        "present",
        "absent",
        "not assessed",
    )
    assert (first.i, first.j, first.k, first.location) == (1.5, -2.25, 30.0, "i=1.5;j=-2.25;k=30")
    with pytest.raises(NotFound):
        catalog.record_decision("P", "E1", "nope", "U", by="t2")


def test_only_superusers_create_projects_by_import(catalog, write_csv):
    catalog.add_user("t1", by="admin")
    with pytest.raises(PermissionDenied, match="create project"):
        catalog.import_file(write_csv([frame_row(project="New")]), by="t1", project="New")
    assert catalog.projects().empty


def test_global_paths(catalog, project, tmp_path, write_csv):
    """export_global writes to the global export path; import_global reads the global
    import path (here a file with a new project Q; a dry run only reports it)."""
    out = tmp_path / "all.json"
    incoming = write_csv([frame_row(project="Q")], name="incoming.csv")
    catalog.set_global_paths(by="admin", import_path=str(incoming), export_path=str(out))
    assert catalog.global_paths() == {"import_path": str(incoming), "export_path": str(out)}
    assert catalog.export_global(by="admin") == out
    assert list(json.loads(out.read_text())["projects"]) == ["P"]
    before = _snapshot(catalog)
    report = catalog.import_global(by="admin", dry_run=True)
    assert report.file == str(incoming) and not report.errors
    assert report.changes.set_index("level").loc["projects", "added"] == 1
    assert _snapshot(catalog) == before  # a dry run
    catalog.add_user("t1", by="admin")
    with pytest.raises(PermissionDenied):
        catalog.set_global_paths(by="t1", import_path="/x.csv")


def test_miqa_samples_import(catalog, samples):
    report = catalog.import_file(samples / "samples" / "demo_project.csv", by="admin")
    assert report.counts["frames"] == 13 and len(report.warnings) == 13
    scans = catalog.scans()
    assert len(scans) == 9 and set(scans["type"]) == {"DTI", "MRA", "PD", "T1", "T2"}
    exp = catalog.sql("SELECT note FROM experiments WHERE name = 'IXI002'").note[0]
    assert exp.startswith("This dataset was made publicly available")


def test_miqa_json_with_history(make_catalog, samples):
    cat = make_catalog("c", data_roots=["/opt"])
    cat.add_user("admin")
    cat.import_file(samples / "miqa" / "core" / "tests" / "data" / "test_import.json", by="admin")
    (decision,) = cat.decisions().itertuples()
    assert decision.decision == "Q?" and decision.creator is None and pd.isna(decision.created)
    assert cat.scans().loc[0, "state"] == "needs tier-2 review"


def test_first_user_is_superuser_and_users_are_unique(make_catalog):
    cat = make_catalog("c")
    cat.add_user("first")
    assert cat.users().superuser.tolist() == [True]
    with pytest.raises(MiqaError, match="exists"):
        cat.add_user("first", by="first")
    with pytest.raises(PermissionDenied):
        cat.add_user("second")


def test_summary(catalog, project):
    text = catalog.summary()
    assert "P: 2 experiments, 3 scans, 4 frames; 2/3 reviewed, 1 complete" in text


def test_claims_steer_reviewers_and_expire(make_catalog, write_csv):
    now = [datetime(2026, 1, 1, 12, 0, tzinfo=UTC)]
    cat = make_catalog("c", clock=lambda: now[0])
    cat.add_user("admin")
    cat.import_file(write_csv([frame_row(), frame_row(experiment="E2")]), by="admin")
    for user in ("ana", "ben"):
        cat.add_user(user, by="admin")
        cat.set_role("P", user, "tier1", by="admin")
    assert cat.claim("P", "E1", by="ana").mine
    held = cat.claim("P", "E1", by="ben")
    assert not held.mine and held.user == "ana"
    assert cat.claims("P")["user"].tolist() == ["ana"]
    with pytest.raises(PermissionDenied, match="superusers"):
        cat.claim("P", "E1", by="ben", take_over=True)
    assert cat.claim("P", "E1", by="admin", take_over=True).mine
    now[0] = now[0].replace(minute=10)  # claims last 5 minutes
    assert cat.claims("P").empty
    assert cat.claim("P", "E1", by="ben").mine
    cat.release("P", "E1", by="ben")
    assert cat.claims().empty


def test_places_resume_review(catalog, project):
    assert catalog.place("P", by="admin") is None
    catalog.set_place("P", "E2", "S3", by="admin")
    assert catalog.place("P", by="admin") == ("E2", "S3")


def test_user_settings_are_per_user_and_kept(catalog, tmp_path):
    catalog.add_user("ben", by="admin")
    assert catalog.user_setting("review_keys", by="ben") is None
    catalog.set_user_setting("review_keys", "miqa", by="ben")
    catalog.set_user_setting("review_keys", "miqa_nb", by="admin")
    again = Catalog(catalog.location, retry_seconds=20)  # read back from the file
    assert again.user_setting("review_keys", by="ben") == "miqa"
    assert again.user_setting("review_keys", by="admin") == "miqa_nb"
    again.set_user_setting("review_keys", "miqa_nb", by="ben")  # replaced, not added
    assert again.sql("SELECT count(*) AS n FROM user_settings")["n"].tolist() == [2]
    with pytest.raises(PermissionDenied, match="nobody"):
        catalog.set_user_setting("review_keys", "miqa", by="nobody")
    with pytest.raises(MiqaError, match="at most"):
        catalog.set_user_setting("review_keys", "x" * 201, by="ben")


def test_a_catalog_without_the_settings_table_reads_no_settings(tmp_path):
    catalog = Catalog(tmp_path / "old.duckdb")  # a file made before the table existed
    catalog.add_user("admin", superuser=True)
    catalog.sql("DROP TABLE user_settings")
    assert catalog.user_setting("review_keys", by="admin") is None


def test_a_catalog_learns_scan_types(catalog, write_csv, tmp_path):
    path = write_csv(
        [
            frame_row(scan="S1", scan_type="FLAIR"),
            frame_row(scan="S2", scan_type="flair3d"),
            frame_row(scan="S3", scan_type="3D-T1"),
        ]
    )
    with pytest.raises(ImportFileError) as info:
        catalog.import_file(path, by="admin")
    assert {p.value for p in info.value.report.errors} == {"FLAIR", "flair3d", "3D-T1"}

    catalog.add_scan_type("FLAIR", by="admin")
    catalog.add_scan_type("flair3d", alias_of="flair", by="admin")  # any case
    catalog.add_scan_type("3D-T1", alias_of="t1w", by="admin")  # an alias leads to its type
    catalog.add_scan_type("Flair", by="admin")  # already so: nothing changes
    catalog.add_scan_type("mprage", alias_of="T1", by="admin")
    assert catalog.sql(
        "SELECT name, coalesce(alias_of, '') FROM scan_types ORDER BY 1"
    ).values.tolist() == [
        ["3D-T1", "T1"],
        ["FLAIR", ""],
        ["flair3d", "FLAIR"],
    ]
    catalog.import_file(path, by="admin")
    assert catalog.scans()["type"].tolist() == ["FLAIR", "FLAIR", "T1"]
    exported = pd.read_csv(catalog.export_file(tmp_path / "out.csv", by="admin"))
    assert exported["scan_type"].tolist() == ["FLAIR", "FLAIR", "T1"]

    again = Catalog(catalog.location)  # another process, later
    assert again.scan_types().parse("FLAIR3D") == "FLAIR"
    assert again.scan_types().aliases_of("FLAIR") == ("flair3d",)
    assert again.scan_types().names()[-1] == "FLAIR"  # after MIQA's own


def test_scan_type_refusals_change_nothing(catalog):
    catalog.add_user("t1", by="admin")
    catalog.add_scan_type("FLAIR", by="admin")
    before = catalog.sql("SELECT * FROM scan_types ORDER BY 1")
    with pytest.raises(PermissionDenied):
        catalog.add_scan_type("SWI", by="t1")
    with pytest.raises(MiqaError, match=r"'t1w' is already a name of 'T1'"):
        catalog.add_scan_type("t1w", by="admin")  # MIQA's alias cannot become a type
    with pytest.raises(MiqaError, match=r"'t2' is already the scan type 'T2'"):
        catalog.add_scan_type("t2", alias_of="T1", by="admin")
    with pytest.raises(MiqaError, match=r"'FLAIR' is already the scan type 'FLAIR'"):
        catalog.add_scan_type("FLAIR", alias_of="T2", by="admin")
    with pytest.raises(MiqaError, match="scan type 'T7' is not known"):
        catalog.add_scan_type("SWI", alias_of="T7", by="admin")
    with pytest.raises(MiqaError, match="one line"):
        catalog.add_scan_type("SWI\nT1", by="admin")
    with pytest.raises(MiqaError, match="one of MIQA's names"):
        catalog.remove_scan_type("mprage", by="admin")
    with pytest.raises(MiqaError, match="not one this catalog added"):
        catalog.remove_scan_type("SWI", by="admin")
    with pytest.raises(PermissionDenied):
        catalog.remove_scan_type("FLAIR", by="t1")
    pd.testing.assert_frame_equal(catalog.sql("SELECT * FROM scan_types ORDER BY 1"), before)


def test_removing_a_scan_type(catalog, write_csv):
    catalog.add_scan_type("FLAIR", by="admin")
    catalog.add_scan_type("flair3d", alias_of="FLAIR", by="admin")
    catalog.add_scan_type("3D-T1", alias_of="T1", by="admin")
    catalog.import_file(write_csv([frame_row(scan_type="flair")]), by="admin")
    with pytest.raises(MiqaError, match=r"1 scan\(s\) have type 'FLAIR'"):
        catalog.remove_scan_type("flair", by="admin")
    assert catalog.remove_scan_type("3d-t1", by="admin") == ["3D-T1"]
    catalog.import_file(write_csv([frame_row(scan_type="T2")]), by="admin")  # replaces P
    assert catalog.remove_scan_type("FLAIR", by="admin") == ["FLAIR", "flair3d"]
    assert catalog.sql("SELECT count(*) AS n FROM scan_types").n[0] == 0
    with pytest.raises(MiqaError, match="not known"):
        catalog.scan_types().parse("flair3d")


def test_global_transfer_without_a_path_says_where_to_set_it(catalog, project):
    """The refusal names the dashboard control, not a Python function."""
    with pytest.raises(MiqaError) as refused:
        catalog.import_global(by="admin")
    message = str(refused.value)
    assert message == (
        "no global import path is set; a superuser sets it first (the dashboard's "
        "Administration tab, 'Global import and export', Import path)"
    )
    assert "()" not in message


def test_experiment_notes_are_read_and_changed_by_those_allowed(catalog, project, tmp_path):
    assert catalog.experiment_notes("P") == {"E2": 'second, "quoted"'}
    for name in ("t1", "t2", "collab", "creator", "nobody"):
        catalog.add_user(name, by="admin")
    catalog.set_role("P", "t1", "tier1", by="admin")
    catalog.set_role("P", "t2", "tier2", by="admin")
    catalog.set_role("P", "collab", "collaborator", by="admin")
    write_sql(catalog, "UPDATE projects SET creator = 'creator' WHERE name = 'P'")
    for n, user in enumerate(("t1", "t2", "creator", "admin")):
        catalog.set_experiment_note("P", "E1", f"<i>note {n}</i>\tby {user}", by=user)
        assert catalog.experiment_notes("P")["E1"] == f"<i>note {n}</i>\tby {user}"
    before = _snapshot(catalog)
    for user in ("collab", "nobody"):
        with pytest.raises(PermissionDenied, match="may not change experiment notes"):
            catalog.set_experiment_note("P", "E1", "mine", by=user)
    with pytest.raises(MiqaError, match="control character"):
        catalog.set_experiment_note("P", "E1", "bell\x07", by="t1")
    with pytest.raises(MiqaError, match="no experiment 'E9'"):
        catalog.set_experiment_note("P", "E9", "x", by="t1")
    assert _snapshot(catalog) == before
    catalog.set_experiment_note("P", "E2", "", by="t1")  # empty: no note
    assert catalog.experiment_notes("P") == {"E1": "<i>note 3</i>\tby admin"}
    # an export carries the note MIQA's way, and reads back the same
    out = tmp_path / "notes.json"
    catalog.export_file(out, by="admin", project="P")
    experiments = json.loads(out.read_text())["projects"]["P"]["experiments"]
    assert experiments["E1"]["notes"] == "<i>note 3</i>\tby admin"
    assert experiments["E2"]["notes"] == ""


def test_with_data_roots_shares_the_open_connection(tmp_path, make_catalog):
    """A catalog with other data roots finds files there, and works inside a connection
    its original holds (a second Catalog of the file would wait for the file's lock)."""
    cat = make_catalog("c", retry_seconds=2)
    cat.add_user("ana", superuser=True)
    data = tmp_path / "data"
    data.mkdir()
    (data / "s.nii.gz").write_bytes(b"")
    (tmp_path / "lists").mkdir()
    listing = tmp_path / "lists" / "import.csv"
    listing.write_text(
        "project_name,experiment_name,scan_name,scan_type,frame_number,file_location\n"
        f"P,E1,S1,T1,0,{data / 's.nii.gz'}\n"
    )
    with pytest.raises(ImportFileError, match="outside the data roots"):
        cat.import_file(listing, by="ana")  # the default root: the listing's folder
    rooted = cat.with_data_roots([data])
    assert rooted.store is cat.store and cat.data_roots is None
    with cat.store.connect():
        rooted.import_file(listing, by="ana")
    assert list(cat.scans("P")["scan"]) == ["S1"]
    assert cat.frames("P")["location"].tolist() == [str(data / "s.nii.gz")]

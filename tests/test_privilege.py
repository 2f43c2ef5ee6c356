"""Hostile use of privilege (issue 17, points 10-12): an import may only add or remove
decisions its user could record or remove itself, decisions are credited to users
only, claims need a role that decides and end within the bound, places need a role.
Each refusal names the value and the reason, and changes nothing."""

import json
import math

import pytest
from support import frame_row

from miqa_nb import Catalog, ImportFileError, MiqaError, NotFound, PermissionDenied
from miqa_nb.catalog import MAX_CLAIM_MINUTES
from miqa_nb.exchange.validation import check

SCANS = [f"S{n}" for n in range(10)]  # decided Q? by t2; S10 is undecided


def _snapshot(cat: Catalog) -> dict:
    tables = ("projects", "experiments", "scans", "frames", "decisions", "users", "roles")
    tables += ("claims", "positions")
    return {
        t: cat.sql(f"SELECT * FROM {t} ORDER BY ALL").astype(str).values.tolist() for t in tables
    }


def _decided(scan: str, code: str, creator: str) -> dict[str, str]:
    note = {} if code == "U" else {"last_decision_note": "why"}
    return frame_row(
        scan=scan,
        last_decision=code,
        last_decision_creator=creator,
        last_decision_created="2022-01-01 10:00:00",
        **note,
    )


def _file(write_csv, name: str, s10: dict[str, str] | None = None, code: str = "Q?", by="t2"):
    """P as the catalog holds it (or every decision ``code`` by ``by``), with S10 as given."""
    rows = [_decided(s, code, by) for s in SCANS]
    return write_csv([*rows, s10 or frame_row(scan="S10")], name=name)


@pytest.fixture
def reviewed(catalog, write_csv):
    """Project P (created by admin): S0-S9, each with a Q? of tier-2 reviewer t2, and
    S10 undecided; tier-1 reviewer t1, collaborator col, and nobody (no role)."""
    for user in ("t1", "t2", "col", "nobody"):
        catalog.add_user(user, by="admin")
    catalog.import_file(_file(write_csv, "p.csv"), by="admin")
    for user, role in (("t1", "tier1"), ("t2", "tier2"), ("col", "collaborator")):
        catalog.set_role("P", user, role, by="admin")
    return catalog


# --------------------------------------------------------------- point 10: imports


@pytest.mark.parametrize("mode", ["replace", "append"])
@pytest.mark.parametrize("dry_run", [False, True])
def test_tier1_cannot_import_decisions_credited_to_admin(reviewed, write_csv, mode, dry_run):
    """The reported attack: every scan decided 'UN' by admin, through a tier-1
    reviewer's project import, to make every scan complete."""
    path = _file(write_csv, "hostile.csv", _decided("S10", "UN", "admin"), "UN", "admin")
    before = _snapshot(reviewed)
    with pytest.raises(PermissionDenied) as info:
        reviewed.import_file(path, by="t1", project="P", mode=mode, dry_run=dry_run)
    message = str(info.value)
    removed = 10 if mode == "replace" else 0
    assert f"would add 11 and remove {removed} decisions" in message
    assert 'first add "UN" by "admin" on E1/S0;' in message
    assert "user 't1'" in message and "project 'P'" in message
    assert _snapshot(reviewed) == before
    assert reviewed.backups() == []


def test_tier1_cannot_remove_others_decisions(reviewed, write_csv):
    undecided = write_csv([frame_row(scan=s) for s in [*SCANS, "S10"]], name="undecided.csv")
    before = _snapshot(reviewed)
    with pytest.raises(PermissionDenied, match=r"add 0 and remove 10 decisions") as info:
        reviewed.import_file(undecided, by="t1", project="P")
    assert 'first remove "Q?" by "t2" on E1/S0;' in str(info.value)
    assert _snapshot(reviewed) == before


def test_tier1_cannot_import_a_code_it_may_not_record_even_as_its_own(reviewed, write_csv):
    path = _file(write_csv, "own-un.csv", _decided("S10", "UN", "t1"))
    before = _snapshot(reviewed)
    with pytest.raises(
        PermissionDenied,
        match=r"add 1 and remove 0 .* its own U and Q\? only\), first add \"UN\" by \"t1\"",
    ):
        reviewed.import_file(path, by="t1", project="P")
    assert _snapshot(reviewed) == before


def test_a_reviewer_imports_its_own_decisions(reviewed, write_csv):
    """What a reviewer could record itself, it may import: the file keeps the others'
    decisions as they are and adds its own."""
    reviewed.import_file(
        _file(write_csv, "mine.csv", _decided("S10", "U", "t1")), by="t1", project="P"
    )
    decisions = reviewed.decisions("P")
    assert len(decisions) == 11
    assert decisions[decisions.creator == "t1"]["decision"].tolist() == ["U"]
    # Removing its own decision again (a replace without it) is allowed too.
    reviewed.import_file(_file(write_csv, "plain.csv"), by="t1", project="P")
    assert set(reviewed.decisions("P")["creator"]) == {"t2"}


def test_tier2_may_record_any_code_but_only_as_itself(reviewed, write_csv):
    path = _file(write_csv, "t2.csv", _decided("S10", "UN", "t2"))
    reviewed.import_file(path, by="t2", project="P", mode="append")
    assert len(reviewed.decisions("P")) == 11
    other = _file(write_csv, "t2b.csv", _decided("S10", "U", "t1"))
    with pytest.raises(
        PermissionDenied,
        match=r'add 1 and remove 0 .*own decisions only\), first add "U" by "t1" on E1/S10;',
    ):
        reviewed.import_file(other, by="t2", project="P")


def test_anonymous_decisions_are_not_a_reviewers_own(reviewed, write_csv):
    path = _file(write_csv, "anon.csv", _decided("S10", "U", ""))
    with pytest.raises(PermissionDenied, match=r'add "U" by nobody on E1/S10'):
        reviewed.import_file(path, by="t1", project="P")


def test_superuser_imports_anyones_decisions(reviewed, write_csv):
    path = _file(write_csv, "all-un.csv", _decided("S10", "UN", "t2"), "UN", "t2")
    reviewed.import_file(path, by="admin", project="P")
    assert set(reviewed.scans("P")["state"]) == {"complete"}


# ------------------------------------------------------ point 10: unknown creators


def test_an_unknown_creator_is_a_validation_error_naming_the_row(reviewed, write_csv):
    path = _file(write_csv, "ghost.csv", _decided("S10", "U", "mallory"))
    before = _snapshot(reviewed)
    with pytest.raises(ImportFileError) as info:
        reviewed.import_file(path, by="admin", project="P", mode="append")
    (problem,) = info.value.report.errors
    assert problem.check == "unknown-creator" and problem.value == "mallory"
    assert problem.row == 12 and problem.column == "last_decision_creator"
    assert "users add mallory" in problem.message
    assert _snapshot(reviewed) == before
    assert [p.check for p in reviewed.validate(path).errors] == ["unknown-creator"]
    # Without a catalog the users are not known: that check is not made.
    assert check(path).ok


def test_an_unknown_creator_in_json_names_its_path(reviewed, tmp_path):
    other = Catalog(tmp_path / "other.duckdb")
    other.add_user("admin")
    other.add_user("mallory", by="admin")
    other.add_user("t2", by="admin")
    exported = reviewed.export_file(tmp_path / "p.json", by="admin", project="P")
    data = json.loads(exported.read_text())
    scan = data["projects"]["P"]["experiments"]["E1"]["scans"]["S3"]
    scan["decisions"][0]["creator"] = "mallory"
    exported.write_text(json.dumps(data))
    with pytest.raises(ImportFileError) as info:
        reviewed.import_file(exported, by="admin", project="P")
    (problem,) = info.value.report.errors
    assert problem.check == "unknown-creator" and problem.value == "mallory"
    assert "S3" in problem.path and "decisions" in problem.path
    other.import_file(exported, by="admin")  # a catalog that has the user takes it
    assert "mallory" in set(other.decisions()["creator"])


# ------------------------------------------------------------- point 11: claims


def test_a_collaborator_cannot_claim(reviewed):
    before = _snapshot(reviewed)
    with pytest.raises(PermissionDenied, match="user 'col' may not claim experiments"):
        reviewed.claim("P", "E1", by="col", minutes=1)
    with pytest.raises(PermissionDenied):
        reviewed.claim("P", "E1", by="nobody")
    assert _snapshot(reviewed) == before


@pytest.mark.parametrize("minutes", [1e6, MAX_CLAIM_MINUTES + 1, 0, -5, math.nan, math.inf])
def test_a_claim_has_a_bounded_length(reviewed, minutes):
    before = _snapshot(reviewed)
    with pytest.raises(MiqaError, match=r"at most 60 minutes; .* was provided"):
        reviewed.claim("P", "E1", by="t1", minutes=minutes)
    assert _snapshot(reviewed) == before


def test_the_longest_claim_still_lets_others_in_after_an_hour(reviewed):
    held = reviewed.claim("P", "E1", by="t1", minutes=MAX_CLAIM_MINUTES)
    assert held.mine
    later = Catalog(reviewed.path, clock=lambda: held.expires_utc.replace(tzinfo=None).astimezone())
    assert later.claim("P", "E1", by="t2").user == "t2"


def test_claims_name_an_experiment_of_the_project(reviewed):
    with pytest.raises(NotFound, match="no experiment 'E9' in project 'P'"):
        reviewed.claim("P", "E9", by="t1")
    with pytest.raises(NotFound):
        reviewed.claim("Q", "E1", by="admin")
    assert reviewed.claims().empty


# --------------------------------------------------------------- point 12: places


def test_set_place_needs_a_role_in_the_project(reviewed):
    with pytest.raises(PermissionDenied, match="user 'nobody' may not see the scans"):
        reviewed.set_place("P", "E1", "S1", by="nobody")
    assert reviewed.place("P", by="nobody") is None
    with pytest.raises(NotFound):
        reviewed.set_place("P", "E1", "S99", by="t1")
    reviewed.set_place("P", "E1", "S1", by="col")  # a collaborator may look, and resume
    assert reviewed.place("P", by="col") == ("E1", "S1")

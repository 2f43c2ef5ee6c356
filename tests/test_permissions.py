import pytest

from miqa_nb.core.errors import PermissionDenied
from miqa_nb.core.permissions import (
    Standing,
    require_claim,
    require_decision,
    require_own_decisions,
    require_project_admin,
    require_transfer,
)
from miqa_nb.core.vocabulary import Decision, Role


def test_allowed_decisions_by_role():
    assert Standing("a", role=Role.TIER1).allowed_decisions() == (
        Decision.USABLE,
        Decision.QUESTIONABLE,
    )
    assert Standing("a", role=Role.TIER2).allowed_decisions() == tuple(Decision)
    assert Standing("a", superuser=True).allowed_decisions() == tuple(Decision)
    assert Standing("a", role=Role.COLLABORATOR).allowed_decisions() == ()


def test_refusals_say_who_may():
    with pytest.raises(PermissionDenied, match="tier-2 reviewers and superusers"):
        require_decision(Standing("t1", project="P", role=Role.TIER1), Decision.UNUSABLE)
    with pytest.raises(PermissionDenied, match="user 'c' may not import of project 'P'"):
        require_transfer(Standing("c", project="P", role=Role.COLLABORATOR), "import")
    require_project_admin(Standing("c", project="P", creator=True), "change the paths")


@pytest.mark.parametrize(
    ("standing", "admin", "transfer", "read"),
    [
        (Standing("s", superuser=True, project="P"), True, True, True),
        (Standing("c", project="P", creator=True), True, True, True),
        (Standing("t2", project="P", role=Role.TIER2), False, True, True),
        (Standing("t1", project="P", role=Role.TIER1), False, True, True),
        (Standing("co", project="P", role=Role.COLLABORATOR), False, False, True),
        (Standing("x", project="P"), False, False, False),
    ],
)
def test_what_each_standing_allows(standing, admin, transfer, read):
    assert (standing.project_admin, standing.can_transfer, standing.can_read) == (
        admin,
        transfer,
        read,
    )


@pytest.mark.parametrize(
    ("standing", "may_claim"),
    [
        (Standing("s", superuser=True, project="P"), True),
        (Standing("t2", project="P", role=Role.TIER2), True),
        (Standing("t1", project="P", role=Role.TIER1), True),
        (Standing("c", project="P", creator=True), False),
        (Standing("co", project="P", role=Role.COLLABORATOR), False),
        (Standing("x", project="P"), False),
    ],
)
def test_only_those_who_decide_claim(standing, may_claim):
    if may_claim:
        require_claim(standing)
    else:
        with pytest.raises(PermissionDenied, match="only tier-1 and tier-2 reviewers"):
            require_claim(standing)


def test_only_creators_and_superusers_import_others_decisions():
    for admin in (
        Standing("s", superuser=True, project="P"),
        Standing("c", project="P", creator=True),
    ):
        require_own_decisions(admin, 11, 10, ["add 'UN' by 'admin' on E1/S1"])
    tier2 = Standing("t2", project="P", role=Role.TIER2)
    require_own_decisions(tier2, 0, 0)
    with pytest.raises(PermissionDenied) as info:
        require_own_decisions(tier2, 0, 3, ["remove 'U' by 't1' on E1/S1"])
    assert str(info.value) == (
        "user 't2' may not import decisions it could not record itself into project 'P': "
        "the import would add 0 and remove 3 decisions of other users or of codes it may not "
        "record (it records its own decisions only), first remove 'U' by 't1' on E1/S1; only "
        "the project's creator and superusers may: import only your own decisions, or ask "
        "them to import this file"
    )

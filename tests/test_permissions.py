import pytest

from miqa_nb.core.errors import PermissionDenied
from miqa_nb.core.permissions import (
    Standing,
    require_decision,
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

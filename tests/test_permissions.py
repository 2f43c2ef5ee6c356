import pytest

from miqa_nb.core.errors import PermissionDenied
from miqa_nb.core.permissions import (
    Standing,
    require_claim,
    require_decision,
    require_own_decisions,
    require_project_admin,
    require_read,
    require_superuser,
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


SUPERUSER = Standing("su", superuser=True, project="P")
CREATOR = Standing("cr", project="P", creator=True)
TIER1 = Standing("t1", project="P", role=Role.TIER1)
TIER2 = Standing("t2", project="P", role=Role.TIER2)
COLLABORATOR = Standing("c", project="P", role=Role.COLLABORATOR)
STRANGER = Standing("x", project="P")
EVERYONE = (SUPERUSER, CREATOR, TIER1, TIER2, COLLABORATOR, STRANGER)

NO_DECISIONS = (
    "record decisions of project 'P': only tier-1 and tier-2 reviewers and superusers may do that"
)
#: rule -> (its check, who passes it, how its refusal ends)
RULES = {
    "superuser": (
        lambda s: require_superuser(s, "add users"),
        {SUPERUSER},
        "add users of project 'P': only superusers may do that",
    ),
    "project admin": (
        lambda s: require_project_admin(s, "change the paths"),
        {SUPERUSER, CREATOR},
        "change the paths of project 'P': only the project's creator and superusers may do that",
    ),
    "transfer": (
        lambda s: require_transfer(s, "export"),
        {SUPERUSER, CREATOR, TIER1, TIER2},
        "export of project 'P': only the project's reviewers, its creator and superusers may do that",
    ),
    "read": (
        require_read,
        {SUPERUSER, CREATOR, TIER1, TIER2, COLLABORATOR},
        "see the scans of project 'P': only users with a role in the project may do that",
    ),
    "decision U": (
        lambda s: require_decision(s, Decision.USABLE),
        {SUPERUSER, TIER1, TIER2},
        NO_DECISIONS,
    ),
    "decision UN": (
        lambda s: require_decision(s, Decision.UNUSABLE),
        {SUPERUSER, TIER2},
        # a tier-1 reviewer hears which decisions are theirs; the others as above
        "record 'UN' of project 'P': only tier-2 reviewers and superusers "
        "may do that (tier-1 reviewers record U and Q? only)",
    ),
}


def _who_may(rule: str, standing: Standing) -> str:
    ending = RULES[rule][2]
    return NO_DECISIONS if rule == "decision UN" and standing != TIER1 else ending


@pytest.mark.parametrize("rule", list(RULES))
def test_each_rule_admits_exactly_who_it_names(rule):
    check, admitted, _ = RULES[rule]
    passed = set()
    for standing in EVERYONE:
        try:
            check(standing)
        except PermissionDenied:
            continue
        passed.add(standing)
    assert passed == admitted


@pytest.mark.parametrize("rule", list(RULES))
def test_refusals_say_who_may(rule):
    """Every refusal names the user, what they may not do, where, and who may."""
    check, admitted, _ = RULES[rule]
    for standing in set(EVERYONE) - admitted:
        with pytest.raises(PermissionDenied) as refused:
            check(standing)
        message = str(refused.value)
        assert message.startswith(f"user {standing.user!r} may not "), message
        assert message.endswith(_who_may(rule, standing)), message


def test_tier1_refusal_names_the_decision():
    with pytest.raises(PermissionDenied, match=r"^user 't1' may not record 'UN' of project"):
        require_decision(TIER1, Decision.UNUSABLE)
    with pytest.raises(PermissionDenied, match=r"^user 'c' may not record decisions"):
        require_decision(COLLABORATOR, Decision.UNUSABLE)


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
        "the project's creator and superusers may import them: import only your own decisions, or ask "
        "them to import this file"
    )

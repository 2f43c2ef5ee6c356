"""Who may do what: MIQA's roles, as pure functions.

A user is a superuser or not; in each project a user may be its creator and may hold
one :class:`~miqa_nb.core.vocabulary.Role`. A :class:`Standing` says which, and its
properties say what that allows; each ``require_*`` function raises
:class:`~miqa_nb.core.errors.PermissionDenied` with a sentence saying who may do it.
The catalog calls them before it changes anything; the dashboard asks the same ones
before it offers an action.

Examples
--------
>>> creator = Standing("ana", project="P", creator=True)
>>> creator.project_admin, creator.reviewer
(True, False)
>>> require_decision(creator, Decision.USABLE)
Traceback (most recent call last):
...
miqa_nb.core.errors.PermissionDenied: user 'ana' may not record decisions of project 'P': only tier-1 and tier-2 reviewers and superusers may do that
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from miqa_nb.core.errors import PermissionDenied
from miqa_nb.core.vocabulary import Decision, Role

__all__ = [
    "Standing",
    "require_claim",
    "require_decision",
    "require_experiment_note",
    "require_own_decisions",
    "require_project_admin",
    "require_read",
    "require_release",
    "require_self_or_superuser",
    "require_superuser",
    "require_transfer",
]


@dataclass(frozen=True)
class Standing:
    """A user's standing in one project (or globally, when ``project`` is None)."""

    user: str
    superuser: bool = False
    project: str | None = None
    creator: bool = False
    role: Role | None = None

    @property
    def reviewer(self) -> bool:
        """Tier-1 or tier-2 reviewer of the project."""
        return self.role in (Role.TIER1, Role.TIER2)

    @property
    def tier2(self) -> bool:
        """May make second-tier decisions (tier-2 reviewers and superusers).

        >>> Standing("t", role=Role.TIER2).tier2, Standing("s", superuser=True).tier2
        (True, True)
        """
        return self.superuser or self.role == Role.TIER2

    @property
    def can_read(self) -> bool:
        """May see the project's scans: anyone with a role in it, its creator, superusers."""
        return self.superuser or self.creator or self.role is not None

    @property
    def project_admin(self) -> bool:
        """May change the project's paths and roles: its creator and superusers.

        >>> Standing("t", project="P", role=Role.TIER2).project_admin
        False
        """
        return self.superuser or self.creator

    @property
    def can_transfer(self) -> bool:
        """May import and export the project: its reviewers, its creator, superusers."""
        return self.superuser or self.creator or self.reviewer

    def allowed_decisions(self) -> tuple[Decision, ...]:
        """Decisions this user may record: tier-1 ``U`` and ``Q?``; tier-2 and superusers all.

        >>> [d.value for d in Standing("t", role=Role.TIER1).allowed_decisions()]
        ['U', 'Q?']
        """
        if self.tier2:
            return tuple(Decision)
        if self.role == Role.TIER1:
            return (Decision.USABLE, Decision.QUESTIONABLE)
        return ()


def _deny(standing: Standing, action: str, who: str, aside: str = "") -> PermissionDenied:
    """The refusal, a sentence: who may not do what, where, and who may do it."""
    where = f" of project {standing.project!r}" if standing.project else ""
    aside = f" ({aside})" if aside else ""
    return PermissionDenied(
        f"user {standing.user!r} may not {action}{where}: only {who} may do that{aside}"
    )


def require_superuser(standing: Standing, action: str) -> None:
    """Global import/export, users: superusers only.

    >>> require_superuser(Standing("bo"), "add users")
    Traceback (most recent call last):
    ...
    miqa_nb.core.errors.PermissionDenied: user 'bo' may not add users: only superusers may do that
    """
    if not standing.superuser:
        raise _deny(standing, action, "superusers")


def require_self_or_superuser(standing: Standing, user: str, action: str) -> None:
    """A user's own credentials (password, tokens, sign-in links): the user itself, or
    a superuser.

    >>> require_self_or_superuser(Standing("bo"), "bo", "set the password")
    >>> require_self_or_superuser(Standing("bo"), "ana", "set the password")
    Traceback (most recent call last):
    ...
    miqa_nb.core.errors.PermissionDenied: user 'bo' may not set the password of user 'ana': only 'ana' itself and superusers may do that
    """
    if standing.user != user and not standing.superuser:
        raise _deny(standing, f"{action} of user {user!r}", f"{user!r} itself and superusers")


def require_project_admin(standing: Standing, action: str) -> None:
    """Changing a project's paths and roles: its creator or a superuser."""
    if not standing.project_admin:
        raise _deny(standing, action, "the project's creator and superusers")


def require_release(standing: Standing, action: str) -> None:
    """Putting an experiment in quarantine and releasing it: the project's creator and
    superusers (the people who administer a project in MIQA)."""
    if not standing.project_admin:
        raise _deny(
            standing,
            action,
            "the project's creator and superusers",
            "ask one of them",
        )


def require_transfer(standing: Standing, action: str) -> None:
    """Project import/export: its reviewers, its creator, superusers."""
    if not standing.can_transfer:
        raise _deny(standing, action, "the project's reviewers, its creator and superusers")


def require_read(standing: Standing) -> None:
    """Seeing a project: anyone with a role in it, its creator, superusers."""
    if not standing.can_read:
        raise _deny(standing, "see the scans", "users with a role in the project")


def require_decision(standing: Standing, decision: Decision) -> None:
    """Recording a decision: tier-1 ``U``/``Q?``, tier-2 and superusers all four.

    >>> require_decision(Standing("t", project="P", role=Role.TIER1), Decision.QUESTIONABLE)
    >>> require_decision(Standing("t", project="P", role=Role.TIER1), Decision.UNUSABLE)
    Traceback (most recent call last):
    ...
    miqa_nb.core.errors.PermissionDenied: user 't' may not record 'UN' of project 'P': only tier-2 reviewers and superusers may do that (tier-1 reviewers record U and Q? only)
    """
    allowed = standing.allowed_decisions()
    if decision not in allowed:
        if not allowed:
            raise _deny(standing, "record decisions", "tier-1 and tier-2 reviewers and superusers")
        raise _deny(
            standing,
            f"record {decision.value!r}",
            "tier-2 reviewers and superusers",
            "tier-1 reviewers record U and Q? only",
        )


def require_claim(standing: Standing) -> None:
    """Claiming an experiment for review: users who may record decisions in the
    project (tier-1 and tier-2 reviewers, superusers). A claim keeps other reviewers
    out, so one who only looks may not hold one.

    >>> require_claim(Standing("c", project="P", role=Role.COLLABORATOR))
    Traceback (most recent call last):
    ...
    miqa_nb.core.errors.PermissionDenied: user 'c' may not claim experiments of project 'P': only tier-1 and tier-2 reviewers and superusers may do that
    """
    if not standing.allowed_decisions():
        raise _deny(standing, "claim experiments", "tier-1 and tier-2 reviewers and superusers")


def require_experiment_note(standing: Standing) -> None:
    """Changing an experiment's note: its reviewers (MIQA lets them), the project's
    creator and superusers; collaborators only read it.

    >>> require_experiment_note(Standing("t", project="P", role=Role.TIER1))
    >>> require_experiment_note(Standing("c", project="P", role=Role.COLLABORATOR))
    Traceback (most recent call last):
    ...
    miqa_nb.core.errors.PermissionDenied: user 'c' may not change experiment notes of project 'P': only the project's reviewers, its creator and superusers may do that
    """
    if not (standing.reviewer or standing.project_admin):
        raise _deny(
            standing,
            "change experiment notes",
            "the project's reviewers, its creator and superusers",
        )


def require_own_decisions(
    standing: Standing, added: int, removed: int, examples: Sequence[str] = ()
) -> None:
    """A project import by a reviewer adds and removes only decisions the reviewer
    could record itself: its own, of the codes it may record. Decisions credited to
    another user (or to nobody), or of other codes, need the project's creator or a
    superuser. ``added`` and ``removed`` count the import's other decisions;
    ``examples`` describe the first of them.

    >>> tier1 = Standing("t", project="P", role=Role.TIER1)
    >>> require_own_decisions(tier1, 0, 0)
    >>> require_own_decisions(tier1, 11, 10, ["add 'UN' by 'admin' on E1/S1"])
    Traceback (most recent call last):
    ...
    miqa_nb.core.errors.PermissionDenied: user 't' may not import decisions it could not record itself into project 'P': the import would add 11 and remove 10 decisions of other users or of codes it may not record (it records its own U and Q? only), first add 'UN' by 'admin' on E1/S1; only the project's creator and superusers may import them: import only your own decisions, or ask them to import this file
    """
    if standing.project_admin or not (added or removed):
        return
    allowed = standing.allowed_decisions()
    if not allowed:
        own = "it records no decisions"
    elif allowed == tuple(Decision):
        own = "it records its own decisions only"
    else:
        own = f"it records its own {' and '.join(d.value for d in allowed)} only"
    first = f", first {'; '.join(examples)}" if examples else ""
    raise PermissionDenied(
        f"user {standing.user!r} may not import decisions it could not record itself into "
        f"project {standing.project!r}: the import would add {added} and remove {removed} "
        f"decisions of other users or of codes it may not record ({own}){first}; only the project's creator and superusers may import them: import only "
        "your own decisions, or ask them to import this file"
    )

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
miqa_nb.core.errors.PermissionDenied: user 'ana' may not record decisions of project 'P': only tier-1 and tier-2 reviewers and superusers may
"""

from __future__ import annotations

from dataclasses import dataclass

from miqa_nb.core.errors import PermissionDenied
from miqa_nb.core.vocabulary import Decision, Role

__all__ = [
    "Standing",
    "require_decision",
    "require_project_admin",
    "require_read",
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


def _deny(standing: Standing, action: str, who: str) -> PermissionDenied:
    where = f" of project {standing.project!r}" if standing.project else ""
    return PermissionDenied(f"user {standing.user!r} may not {action}{where}: only {who} may")


def require_superuser(standing: Standing, action: str) -> None:
    """Global import/export, users: superusers only.

    >>> require_superuser(Standing("bo"), "add users")
    Traceback (most recent call last):
    ...
    miqa_nb.core.errors.PermissionDenied: user 'bo' may not add users: only superusers may
    """
    if not standing.superuser:
        raise _deny(standing, action, "superusers")


def require_project_admin(standing: Standing, action: str) -> None:
    """Changing a project's paths and roles: its creator or a superuser."""
    if not standing.project_admin:
        raise _deny(standing, action, "the project's creator and superusers")


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
    miqa_nb.core.errors.PermissionDenied: user 't' may not record 'UN' of project 'P': only tier-2 reviewers and superusers (tier-1 reviewers record U and Q?) may
    """
    allowed = standing.allowed_decisions()
    if decision not in allowed:
        if not allowed:
            raise _deny(standing, "record decisions", "tier-1 and tier-2 reviewers and superusers")
        raise _deny(
            standing,
            f"record {decision.value!r}",
            "tier-2 reviewers and superusers (tier-1 reviewers record U and Q?)",
        )

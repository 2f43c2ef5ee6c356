"""Who may do what: MIQA's roles, as pure functions.

A user is a superuser or not; in each project a user may be its creator and may hold
one :class:`~miqa_nb.core.vocabulary.Role`. Each ``require_*`` function raises
:class:`~miqa_nb.core.errors.PermissionDenied` with a sentence saying who may do it.
The catalog calls them before it changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from miqa_nb.core.errors import PermissionDenied
from miqa_nb.core.vocabulary import Decision, Role


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
        """May make second-tier decisions (tier-2 reviewers and superusers)."""
        return self.superuser or self.role == Role.TIER2

    @property
    def can_read(self) -> bool:
        return self.superuser or self.creator or self.role is not None

    def allowed_decisions(self) -> tuple[Decision, ...]:
        """Decisions this user may record: tier-1 ``U`` and ``Q?``; tier-2 and superusers all."""
        if self.tier2:
            return tuple(Decision)
        if self.role == Role.TIER1:
            return (Decision.USABLE, Decision.QUESTIONABLE)
        return ()


def _deny(standing: Standing, action: str, who: str) -> PermissionDenied:
    where = f" of project {standing.project!r}" if standing.project else ""
    return PermissionDenied(f"user {standing.user!r} may not {action}{where}: only {who} may")


def require_superuser(standing: Standing, action: str) -> None:
    """Global import/export, users: superusers only."""
    if not standing.superuser:
        raise _deny(standing, action, "superusers")


def require_project_admin(standing: Standing, action: str) -> None:
    """Changing a project's paths and roles: its creator or a superuser."""
    if not (standing.superuser or standing.creator):
        raise _deny(standing, action, "the project's creator and superusers")


def require_transfer(standing: Standing, action: str) -> None:
    """Project import/export: its reviewers, its creator, superusers."""
    if not (standing.superuser or standing.creator or standing.reviewer):
        raise _deny(standing, action, "the project's reviewers, its creator and superusers")


def require_read(standing: Standing) -> None:
    """Seeing a project: anyone with a role in it, its creator, superusers."""
    if not standing.can_read:
        raise _deny(standing, "see the scans", "users with a role in the project")


def require_decision(standing: Standing, decision: Decision) -> None:
    """Recording a decision: tier-1 ``U``/``Q?``, tier-2 and superusers all four."""
    allowed = standing.allowed_decisions()
    if decision not in allowed:
        if not allowed:
            raise _deny(standing, "record decisions", "tier-1 and tier-2 reviewers and superusers")
        raise _deny(
            standing,
            f"record {decision.value!r}",
            "tier-2 reviewers and superusers (tier-1 reviewers record U and Q?)",
        )

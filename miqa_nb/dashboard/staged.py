"""What the staging-area panel shows and does, without widgets.

:class:`StagingActions` is the staging area (XNAT's prearchive,
:mod:`miqa_nb.ingest.prearchive`) as one dashboard user may see and change it: the
entries of the projects they may import into (superusers: all, the Unassigned part
too), each scan's preview (:mod:`miqa_nb.ingest.previews`), and the actions XNAT
offers for an entry's status (:func:`entry_actions`):

==================  ==============================================
status              actions
==================  ==============================================
READY               archive, move, delete, rebuild
CONFLICT            append (archive adding new series), delete, rebuild
ERROR, RECEIVING    delete, rebuild
anything else       none (the entry is being worked on)
==================  ==============================================

An Unassigned entry names no project, so it cannot be archived: it can be moved to a
project (then archived there), deleted or rebuilt.

Every action names its entry by ``(project, timestamp, folder)``, reads it again (the
page is untrusted: a crafted widget message reaches these methods with any entry),
refuses an action its status does not allow, and leaves the permission checks to the
prearchive functions, which refuse anyone who may not import into the entry's project.

Contract: nothing here imports ipywidgets.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from miqa_nb.catalog import Catalog
from miqa_nb.core.errors import MiqaError
from miqa_nb.core.permissions import Standing
from miqa_nb.core.vocabulary import Role
from miqa_nb.ingest import prearchive
from miqa_nb.ingest.archiving import ArchiveConflict, Archived
from miqa_nb.ingest.prearchive import CONFLICT, ERROR, READY, UNASSIGNED, Entry
from miqa_nb.ingest.previews import scan_preview

__all__ = ["ACTIONS", "EntryKey", "StagingActions", "entry_actions"]

log = logging.getLogger(__name__)

#: XNAT's status of an entry still being received.
RECEIVING = "RECEIVING"

#: What each action is called on a button.
ACTIONS: dict[str, str] = {
    "archive": "Archive",
    "append": "Archive (append)",
    "move": "Move",
    "delete": "Delete",
    "rebuild": "Rebuild",
}

_BY_STATUS: dict[str, tuple[str, ...]] = {
    READY: ("archive", "move", "delete", "rebuild"),
    CONFLICT: ("append", "delete", "rebuild"),
    ERROR: ("delete", "rebuild"),
    RECEIVING: ("delete", "rebuild"),
}

_ROLES = {r.value for r in Role}

#: An entry's address: ``(project, timestamp, folder)``.
EntryKey = tuple[str, str, str]


def entry_actions(entry: Entry) -> tuple[str, ...]:
    """The actions XNAT allows on ``entry`` in its status (see the module's table).

    >>> from pathlib import Path
    >>> e = Entry("P", "20240517_093000000", "S1", "CONFLICT", "", "S1", "", (), "", "",
    ...           "", "", "", Path("."))
    >>> entry_actions(e)
    ('append', 'delete', 'rebuild')
    """
    allowed = _BY_STATUS.get(entry.status, ())
    if entry.project == UNASSIGNED:  # no project to archive into: move it first
        allowed = tuple(a for a in allowed if a not in ("archive", "append"))
    return allowed


def key_of(entry: Entry) -> EntryKey:
    """The entry's address."""
    return (entry.project, entry.timestamp, entry.folder)


@dataclass
class StagingActions:
    """The staging area on behalf of ``user``."""

    catalog: Catalog
    user: str

    @property
    def allowed(self) -> bool:
        """True when the user may import somewhere (so may see a staging area): a
        superuser, or a reviewer or creator of some project."""
        if self.catalog.standing(self.user).superuser:
            return True
        return bool(self.import_projects())

    def import_projects(self) -> list[str]:
        """The projects the user may import into (sorted).

        Read from the catalog's projects and roles at once (a standing per project
        would ask the catalog once per project), then judged by the one rule,
        :attr:`Standing.can_transfer`.
        """
        projects = self.catalog.projects()
        superuser = self.catalog.standing(self.user).superuser
        roles = self.catalog.roles()
        held = {
            str(p): Role(r)
            for p, u, r in zip(roles["project"], roles["user"], roles["role"], strict=True)
            if u == self.user and r in _ROLES
        }
        allowed = [
            str(p)
            for p, creator in zip(projects["project"], projects["creator"], strict=True)
            if Standing(
                self.user, superuser, str(p), creator=creator == self.user, role=held.get(str(p))
            ).can_transfer
        ]
        return sorted(allowed)

    def entries(self) -> list[Entry]:
        """The entries the user may see, oldest first."""
        return prearchive.entries(self.catalog, self.user)

    def actions(self, entry: Entry) -> tuple[str, ...]:
        """The actions offered for ``entry``."""
        return entry_actions(entry)

    def move_targets(self, entry: Entry) -> list[str]:
        """The projects ``entry`` may be moved to: those the user may import into,
        except its own."""
        return [p for p in self.import_projects() if p != entry.project]

    def preview(self, entry: Entry, scan: dict[str, Any]) -> bytes:
        """The PNG preview of one of ``entry``'s scans (``VolumeError`` if none)."""
        return scan_preview(entry.path, str(scan.get("folder", ""))).read_bytes()

    # ------------------------------------------------------------------ actions

    def _checked(self, key: EntryKey, action: str) -> Entry:
        """The entry as it is now, once the user may see it and its status allows
        ``action``; else a refusal naming what to do."""
        entry = prearchive.get_entry(self.catalog, self.user, *key)
        allowed = self.actions(entry)
        if action not in allowed:
            offered = ", ".join(ACTIONS[a] for a in allowed) or "nothing until it is done"
            raise MiqaError(
                f"session {entry.label!r} ({entry.url}) is {entry.status}: it cannot be "
                f"given '{ACTIONS.get(action, action)}'; it offers {offered}. Refresh the list."
            )
        return entry

    def archive(self, key: EntryKey, *, append: bool = False) -> list[Archived]:
        """Archive a READY entry (``append``: a CONFLICT one, adding the series its
        experiment lacks) into its project."""
        entry = self._checked(key, "append" if append else "archive")
        overwrite = "append" if append else "none"
        try:
            archived = prearchive.archive_entry(self.catalog, self.user, *key, overwrite=overwrite)
        except ArchiveConflict:
            # archived by another way since the list was read: say so in its status
            prearchive.rebuild_entry(self.catalog, self.user, *key)
            raise ArchiveConflict(
                f"session {entry.label!r} is already archived in project {entry.project!r}, "
                "so it is now CONFLICT: press 'Archive (append)' to add the series it "
                "lacks, or Delete"
            ) from None
        log.info("%s archived %s (overwrite=%s)", self.user, "/".join(key), overwrite)
        return archived

    def delete(self, key: EntryKey) -> None:
        """Delete an entry and its files."""
        self._checked(key, "delete")
        prearchive.delete_entry(self.catalog, self.user, *key)
        log.info("%s deleted staged session %s", self.user, "/".join(key))

    def rebuild(self, key: EntryKey) -> Entry:
        """Read an entry's files again and set its status."""
        self._checked(key, "rebuild")
        return prearchive.rebuild_entry(self.catalog, self.user, *key)

    def move(self, key: EntryKey, project: str) -> Entry:
        """Move an entry to ``project`` (the prearchive checks the user may import
        there)."""
        self._checked(key, "move")
        if not project:
            raise MiqaError("choose the project to move the session to, then press Move")
        moved = prearchive.move_entry(self.catalog, self.user, *key, project)
        log.info("%s moved %s to %s", self.user, "/".join(key), project)
        return moved

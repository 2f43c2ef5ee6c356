"""The staging-area panel: sessions waiting in the prearchive, with previews and actions.

A thin view over :class:`~miqa_nb.dashboard.staged.StagingActions`. The dashboard
builds it only for users who may import somewhere (reviewers and creators of a project,
superusers); it lists the entries they may see, each with its project, session label,
subject, status, scan date, upload time and its scans (ID, type, description, number
of files, and a preview of the middle slice, drawn once and cached beside the entry),
and the buttons its status allows. After each action the list is read again; an error
shows beside the entry's buttons, naming the session and what to do. Every name shown
(labels, descriptions, subjects) is escaped.

Stable classes: ``miqa-staging`` (the panel), ``miqa-staging-refresh``,
``miqa-staging-result`` (what the last action did), ``miqa-staging-empty``;
per entry ``miqa-staging-entry`` (also ``miqa-staging-status-<STATUS>``),
``miqa-staging-info``, ``miqa-staging-scan``, ``miqa-staging-thumbnail``,
``miqa-staging-archive``, ``miqa-staging-append``, ``miqa-staging-delete`` (a second
click, on "Really delete", deletes), ``miqa-staging-rebuild``, ``miqa-staging-move``
with ``miqa-staging-move-to`` (only when the prearchive can move entries), and
``miqa-staging-error``.
"""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from miqa_nb.dashboard._status import StatusBar
from miqa_nb.dashboard.model import readable_error
from miqa_nb.dashboard.staged import ACTIONS, EntryKey, StagingActions, key_of
from miqa_nb.ingest.prearchive import Entry

__all__ = ["StagingPanel"]

log = logging.getLogger("miqa_nb.dashboard")

THUMB_WIDTH = "96px"


def _button(action: str) -> widgets.Button:
    button = widgets.Button(
        description=ACTIONS[action],
        tooltip=ACTIONS[action],
        button_style="danger" if action == "delete" else "",
        layout=widgets.Layout(width="auto", min_width="7em"),
    )
    button.add_class(f"miqa-staging-{action}")
    return button


def _info_html(entry: Entry) -> str:
    """The entry's description; every value escaped."""
    fields = [
        ("Project", entry.project),
        ("Subject", entry.subject or "-"),
        ("Scan date", entry.scan_date or "-"),
        ("Uploaded", entry.uploaded + (f" by {entry.by}" if entry.by else "")),
    ]
    parts = " · ".join(f"{k} <b>{html.escape(v)}</b>" for k, v in fields)
    status = html.escape(entry.status)
    message = f"<br><i>{html.escape(entry.message)}</i>" if entry.message else ""
    return (
        f"<div><b class='miqa-staging-label'>{html.escape(entry.label)}</b> "
        f"<span class='miqa-staging-state'>[{status}]</span><br>{parts}{message}</div>"
    )


def _scan_html(scan: dict[str, Any]) -> str:
    files = scan.get("files", "")
    return (
        f"Scan <b>{html.escape(str(scan.get('id', '')))}</b> · "
        f"{html.escape(str(scan.get('type', '')) or 'type unknown')} · "
        f"{html.escape(str(scan.get('description', '')))} · {html.escape(str(files))} file(s)"
    )


class StagingPanel:
    """The staging area of one user, with its actions.

    Parameters
    ----------
    actions : StagingActions
    status : StatusBar, optional
    on_change : callable, optional
        Called after an entry was archived (the projects' scans changed).
    on_list : callable, optional
        Called with the number of entries each time the list is read.
    background : bool
        Draw the previews in a worker thread (False in tests).
    """

    def __init__(
        self,
        actions: StagingActions,
        status: StatusBar | None = None,
        *,
        on_change: Callable[[], None] | None = None,
        on_list: Callable[[int], None] | None = None,
        background: bool = True,
    ) -> None:
        self.actions = actions
        self.status = status or StatusBar()
        self.on_change = on_change or (lambda: None)
        self.on_list = on_list or (lambda _n: None)
        self.background = background
        #: Errors shown beside an entry's buttons, kept across a refresh.
        self.errors: dict[EntryKey, str] = {}
        self.entries: list[Entry] = []
        self.rows: dict[EntryKey, widgets.VBox] = {}
        self.images: dict[EntryKey, list[widgets.Image]] = {}
        #: Entries whose Delete was pressed once (it now says "Really delete").
        self.confirming: set[EntryKey] = set()
        self._generation = 0
        self.refresh_button = widgets.Button(
            description="Refresh", icon="refresh", layout=widgets.Layout(width="auto")
        )
        self.refresh_button.add_class("miqa-staging-refresh")
        self.refresh_button.on_click(self.status.guard(lambda _b: self.refresh()))
        self.result = widgets.HTML()
        self.result.add_class("miqa-staging-result")
        self.list = widgets.VBox()
        self.widget = widgets.VBox(
            [
                widgets.HTML(
                    "<p>Sessions sent to the import service wait here until they are "
                    "archived as scans to review.</p>"
                ),
                widgets.HBox([self.refresh_button, self.result]),
                self.list,
            ]
        )
        self.widget.add_class("miqa-staging")
        self.refresh()

    # ------------------------------------------------------------------- list

    def refresh(self) -> None:
        """Read the staging area again and show it."""
        self.entries = self.actions.entries()
        present = {key_of(e) for e in self.entries}
        self.errors = {k: v for k, v in self.errors.items() if k in present}
        self.confirming &= present
        self._generation += 1  # previews still being drawn are for the old rows
        for row in self.rows.values():
            row.close()
        self.images = {}
        self.rows = {key_of(e): self._row(e) for e in self.entries}
        if self.rows:
            self.list.children = list(self.rows.values())
        else:
            empty = widgets.HTML("<p>No session waits in the staging area.</p>")
            empty.add_class("miqa-staging-empty")
            self.list.children = [empty]
        self.on_list(len(self.entries))
        self._load_previews()

    def _row(self, entry: Entry) -> widgets.VBox:
        key = key_of(entry)
        info = widgets.HTML(_info_html(entry))
        info.add_class("miqa-staging-info")
        scans = []
        self.images[key] = []
        for scan in entry.scans:
            image = widgets.Image(format="png", layout=widgets.Layout(width=THUMB_WIDTH))
            image.add_class("miqa-staging-thumbnail")
            self.images[key].append(image)
            line = widgets.HBox(
                [image, widgets.HTML(_scan_html(scan))],
                layout=widgets.Layout(align_items="center"),
            )
            line.add_class("miqa-staging-scan")
            scans.append(line)
        buttons: list[widgets.Widget] = []
        for action in self.actions.actions(entry):
            button = _button(action)
            if action == "move":
                target = widgets.Dropdown(
                    options=self.actions.move_targets(entry),
                    value=None,
                    description="to",
                    layout=widgets.Layout(width="16em"),
                    style={"description_width": "2em"},
                )
                target.add_class("miqa-staging-move-to")
                button.on_click(
                    self.status.guard(
                        lambda _b, k=key, t=target: self._act(
                            k, lambda: self._move(k, str(t.value or ""))
                        )
                    )
                )
                buttons.extend([button, target])
                continue
            if action == "delete":
                if key in self.confirming:
                    button.description = "Really delete"
                button.on_click(self.status.guard(lambda b, k=key: self._delete_clicked(k, b)))
            else:
                button.on_click(
                    self.status.guard(
                        lambda _b, k=key, a=action: self._act(k, lambda: self._run(k, a))
                    )
                )
            buttons.append(button)
        error = widgets.HTML(self._error_html(key))
        error.add_class("miqa-staging-error")
        bar = widgets.HBox([*buttons, error], layout=widgets.Layout(align_items="center"))
        row = widgets.VBox(
            [info, *scans, bar],
            layout=widgets.Layout(border="1px solid #ddd", padding="4px", margin="4px 0"),
        )
        row.add_class("miqa-staging-entry")
        row.add_class("miqa-staging-status-" + "".join(c for c in entry.status if c.isalnum()))
        return row

    def _error_html(self, key: EntryKey) -> str:
        text = self.errors.get(key, "")
        return f"<span style='color:#b71c1c'>{html.escape(text)}</span>" if text else ""

    # ---------------------------------------------------------------- previews

    def _load_previews(self) -> None:
        generation = self._generation
        jobs = [
            (entry, scan, image)
            for entry in self.entries
            for scan, image in zip(entry.scans, self.images[key_of(entry)], strict=True)
        ]

        def work() -> None:
            for entry, scan, image in jobs:
                if generation != self._generation:
                    return  # the list was read again; these rows are gone
                try:
                    image.value = self.actions.preview(entry, scan)
                except Exception as exc:  # one unreadable scan must not stop the others
                    log.warning("no preview of %s scan %s: %s", entry.url, scan.get("id"), exc)
                    image.layout.visibility = "hidden"

        if self.background:
            threading.Thread(target=work, name="miqa-staging-previews", daemon=True).start()
        else:
            work()

    # ----------------------------------------------------------------- actions

    def _act(self, key: EntryKey, action: Callable[[], str]) -> None:
        """Run an entry's action: its result in the result line and the list read
        again, or its error beside the entry's buttons."""
        self.errors.pop(key, None)
        try:
            done = action()
        except Exception as exc:
            self.status.error(exc)  # logs what is not a MiqaError
            label = next((e.label for e in self.entries if key_of(e) == key), key[2])
            url = f"/prearchive/projects/{key[0]}/{key[1]}/{key[2]}"
            self.errors[key] = f"Session {label} ({url}): {readable_error(exc)}"
            self.result.value = ""
        else:
            self.result.value = f"<span style='color:#1b5e20'>{html.escape(done)}</span>"
            self.status.ok(done)
        self.status.run(self.refresh)

    def _run(self, key: EntryKey, action: str) -> str:
        if action in ("archive", "append"):
            archived = self.actions.archive(key, append=action == "append")
            self.on_change()
            return " ".join(
                f"Archived session {a.experiment} into project {a.project} "
                f"(scans {', '.join(a.scans) or 'none new'})."
                for a in archived
            )
        if action == "rebuild":
            entry = self.actions.rebuild(key)
            return f"Rebuilt session {entry.label}: {entry.status}."
        raise ValueError(f"unknown staging action {action!r}")

    def _delete_clicked(self, key: EntryKey, button: widgets.Button) -> None:
        """The first click asks again (the button says "Really delete"); the second
        deletes."""
        if key not in self.confirming:
            self.confirming.add(key)
            button.description = "Really delete"
            return
        self.confirming.discard(key)
        self._act(key, lambda: self._delete(key))

    def _delete(self, key: EntryKey) -> str:
        label = next((e.label for e in self.entries if key_of(e) == key), key[2])
        self.actions.delete(key)
        return f"Deleted session {label} and its files from the staging area."

    def _move(self, key: EntryKey, project: str) -> str:
        entry = self.actions.move(key, project)
        return f"Moved session {entry.label} to project {entry.project}."

    def close(self) -> None:
        """Stop drawing previews and close the panel's widgets."""
        self._generation += 1
        self.widget.close()

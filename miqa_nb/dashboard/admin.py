"""The administration panel of one project (``miqa-admin``).

A thin view over :class:`~miqa_nb.dashboard.model.AdminActions`: every button calls
one of its methods, which refuse anyone but superusers and the project's creator
(and the catalog checks again). The dashboard builds this panel only for them; a
refusal that still happens shows in the status bar.

Paths typed here are checked by the actions, not by these widgets (the page is
untrusted): import files inside the data roots, exports inside the export folder
(:mod:`miqa_nb.dashboard.folders`); the panel says which folders those are.

Stable classes: paths ``miqa-import-path``, ``miqa-export-path``, ``miqa-save-paths``,
``miqa-path-rules`` (where paths may point);
import ``miqa-import-mode``, ``miqa-import-dry-run``, ``miqa-import-run`` (enabled
only after a dry run of the same mode), ``miqa-import-report``; ``miqa-export``,
``miqa-export-result``, ``miqa-export-safe`` (the exports' form: spreadsheet-safe,
ticked by default, or MIQA's exact form); global (superusers, ``miqa-admin-global``):
``miqa-global-import-path``, ``miqa-global-export-path``, ``miqa-save-global-paths``,
``miqa-global-dry-run``, ``miqa-global-import``, ``miqa-global-export``; users and
roles: ``miqa-roles``, ``miqa-role-user``, ``miqa-role``, ``miqa-set-role``,
``miqa-new-user``, ``miqa-new-superuser``, ``miqa-add-user``; quarantine
(``miqa-admin-quarantine``): ``miqa-quarantined`` (the experiments held, a table),
``miqa-quarantine-experiment``, ``miqa-release-quarantine``; and for superusers the
sign-in section ``miqa-admin-credentials`` (passwords, one-time sign-in links, API
tokens: :mod:`miqa_nb.dashboard.credentials`); scan types (superusers,
``miqa-admin-scan-types``): ``miqa-scan-types``, ``miqa-scan-type-name``,
``miqa-scan-type-of``, ``miqa-add-scan-type``, ``miqa-remove-scan-type``.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as widgets
import pandas as pd

from miqa_nb.core.report import Report
from miqa_nb.core.vocabulary import Role
from miqa_nb.dashboard._status import StatusBar
from miqa_nb.dashboard.credentials import CredentialsSection
from miqa_nb.dashboard.model import AdminActions

__all__ = ["AdminPanel", "report_html", "table_html"]

#: The "means" of a name that is a new scan type (not another name for one).
NEW_TYPE = "(a new type)"


def table_html(frame: pd.DataFrame) -> str:
    """A DataFrame as an HTML table; every cell is escaped."""
    return frame.to_html(index=False, escape=True, border=0, na_rep="")


def report_html(report: Report, *, dry_run: bool) -> str:
    """An import report: what would change (or changed), then its problems."""
    head = "Dry run: nothing was written." if dry_run else "Imported."
    parts = [f"<p><b>{html.escape(head)}</b> {html.escape(report.summary())}</p>"]
    if report.changes is not None and len(report.changes):
        parts.append(table_html(report.changes))
    if report.problems:
        text = "\n".join(str(p) for p in report.problems[:50])
        more = len(report.problems) - 50
        if more > 0:
            text += f"\n... and {more} more"
        parts.append(f"<pre>{html.escape(text)}</pre>")
    return "".join(parts)


def _button(description: str, css: str, *, style: str = "", tooltip: str = "") -> widgets.Button:
    button = widgets.Button(
        description=description,
        button_style=style,
        tooltip=tooltip or description,
        layout=widgets.Layout(width="auto", min_width="8em"),
    )
    button.add_class(css)
    return button


#: What the path fields suggest typing.
IMPORT_PLACEHOLDER = "/absolute/path/in/a/data/root/file.csv or .json"
EXPORT_PLACEHOLDER = "file.csv or .json, in the export folder"


def _text(description: str, css: str, value: str | None, placeholder: str) -> widgets.Text:
    # The value goes to the kernel when the field is left (or on Enter), not with each
    # key: a page holds a model's updates back while one is unanswered, and a click is
    # sent at once, so typing fast and clicking Save could save the path's first letters.
    text = widgets.Text(
        value=value or "",
        description=description,
        placeholder=placeholder,
        continuous_update=False,
        layout=widgets.Layout(width="40em"),
        style={"description_width": "8em"},
    )
    text.add_class(css)
    return text


class AdminPanel:
    """Paths, import (with dry run), export, global transfer, users and roles."""

    def __init__(
        self,
        actions: AdminActions,
        status: StatusBar | None = None,
        *,
        on_change: Callable[[], None] | None = None,
        upload: widgets.Widget | None = None,
        on_scan_types: Callable[[], None] | None = None,
    ) -> None:
        self.actions = actions
        self.status = status or StatusBar()
        self.on_change = on_change or (lambda: None)
        #: Called after the scan types changed (the upload panel offers them).
        self.on_scan_types = on_scan_types or (lambda: None)
        guard = self.status.guard
        paths = actions.paths()

        self.import_path = _text(
            "Import path", "miqa-import-path", paths["import_path"], IMPORT_PLACEHOLDER
        )
        self.export_path = _text(
            "Export path", "miqa-export-path", paths["export_path"], EXPORT_PLACEHOLDER
        )
        self.path_rules = widgets.HTML(
            f"<p>{html.escape(actions.confined.describe())}</p>",
        )
        self.path_rules.add_class("miqa-path-rules")
        self.save_paths = _button("Save paths", "miqa-save-paths")
        self.save_paths.on_click(guard(lambda _b: self._save_paths()))

        self.mode = widgets.ToggleButtons(options=["replace", "append"], value="replace")
        self.mode.add_class("miqa-import-mode")
        self.mode.observe(lambda _c: self._forget_preview(), names="value")
        self.dry_run = _button("Preview import (dry run)", "miqa-import-dry-run")
        self.dry_run.on_click(guard(lambda _b: self._import(dry_run=True)))
        self.run_import = _button(
            "Import", "miqa-import-run", style="warning", tooltip="Preview first"
        )
        self.run_import.disabled = True
        self.run_import.on_click(guard(lambda _b: self._import(dry_run=False)))
        self.import_report = widgets.HTML()
        self.import_report.add_class("miqa-import-report")
        self._previewed: str | None = None

        self.export = _button("Export", "miqa-export")
        self.export.on_click(guard(lambda _b: self._export()))
        self.export_result = widgets.Label()
        self.export_result.add_class("miqa-export-result")
        # One choice for both exports: a CSV for a spreadsheet (a ' before values that
        # would run as formulas), or MIQA's exact form, to import back.
        self.export_safe = widgets.Checkbox(
            value=True,
            description="Spreadsheet-safe CSV (untick for MIQA's exact form)",
            indent=False,
            layout=widgets.Layout(width="auto"),
        )
        self.export_safe.add_class("miqa-export-safe")

        sections: list[tuple[str, widgets.Widget]] = [
            (
                "Paths",
                widgets.VBox(
                    [self.path_rules, self.import_path, self.export_path, self.save_paths]
                ),
            ),
            (
                "Import and export",
                widgets.VBox(
                    [
                        widgets.HBox([self.mode, self.dry_run, self.run_import]),
                        self.import_report,
                        widgets.HBox([self.export, self.export_safe, self.export_result]),
                    ]
                ),
            ),
            ("Users and roles", self._roles_section()),
            ("Quarantine", self._quarantine_section()),
        ]
        self.global_box: widgets.VBox | None = None
        if actions.global_allowed:
            sections.append(("Global import and export (superusers)", self._global_section()))
            sections.append(("Scan types (superusers)", self._scan_types_section()))
        if upload is not None:
            sections.append(("Upload scans", upload))
        children: list[widgets.Widget] = [
            widgets.HTML(f"<h3>Administration of {html.escape(str(actions.project))}</h3>")
        ]
        for title, box in sections:
            children.append(widgets.HTML(f"<h4>{html.escape(title)}</h4>"))
            children.append(box)
        self.widget = widgets.VBox(children)
        self.widget.add_class("miqa-admin")

    # ------------------------------------------------------------------ project

    def _save_paths(self) -> None:
        self.actions.set_paths(self.import_path.value, self.export_path.value)
        paths = self.actions.paths()
        self.import_path.value = paths["import_path"] or ""
        self.export_path.value = paths["export_path"] or ""
        self._forget_preview()
        self.status.ok("Paths saved.")

    def _forget_preview(self) -> None:
        self._previewed = None
        self.run_import.disabled = True

    def _import(self, *, dry_run: bool) -> None:
        mode = str(self.mode.value)
        if not dry_run and self._previewed != mode:
            self.status.info("Preview the import (dry run) first.")
            return
        self._forget_preview()
        self.status.info("Importing..." if not dry_run else "Checking the import file...")
        report = self.actions.import_project(mode=mode, dry_run=dry_run)
        self.import_report.value = report_html(report, dry_run=dry_run)
        if dry_run:
            self._previewed = mode
            self.run_import.disabled = False
            self.run_import.description = f"Import ({mode})"
            self.status.ok("Dry run done: read the changes, then import.")
        else:
            self.status.ok(f"Imported {report.file}.")
            self.on_change()

    def _export(self) -> None:
        path = self.actions.export_project(spreadsheet_safe=self.export_safe.value)
        self.export_result.value = f"wrote {path}"
        self.status.ok(f"Exported to {path}.")

    # ------------------------------------------------------------------- global

    def _global_section(self) -> widgets.VBox:
        guard = self.status.guard
        paths = self.actions.global_paths()
        self.global_import_path = _text(
            "Import path", "miqa-global-import-path", paths["import_path"], IMPORT_PLACEHOLDER
        )
        self.global_export_path = _text(
            "Export path", "miqa-global-export-path", paths["export_path"], EXPORT_PLACEHOLDER
        )
        save = _button("Save global paths", "miqa-save-global-paths")
        save.on_click(guard(lambda _b: self._save_global_paths()))
        self.global_dry_run = _button("Preview global import (dry run)", "miqa-global-dry-run")
        self.global_dry_run.on_click(guard(lambda _b: self._global_import(dry_run=True)))
        self.global_import = _button(
            "Global import (replace)", "miqa-global-import", style="danger"
        )
        self.global_import.disabled = True
        self.global_import.on_click(guard(lambda _b: self._global_import(dry_run=False)))
        self.global_export = _button("Global export", "miqa-global-export")
        self.global_export.on_click(guard(lambda _b: self._global_export()))
        self.global_report = widgets.HTML()
        self.global_report.add_class("miqa-global-report")
        self.global_box = widgets.VBox(
            [
                self.global_import_path,
                self.global_export_path,
                save,
                widgets.HBox([self.global_dry_run, self.global_import, self.global_export]),
                self.global_report,
            ]
        )
        self.global_box.add_class("miqa-admin-global")
        return self.global_box

    def _save_global_paths(self) -> None:
        self.actions.set_global_paths(self.global_import_path.value, self.global_export_path.value)
        paths = self.actions.global_paths()
        self.global_import_path.value = paths["import_path"] or ""
        self.global_export_path.value = paths["export_path"] or ""
        self.global_import.disabled = True
        self.status.ok("Global paths saved.")

    def _global_import(self, *, dry_run: bool) -> None:
        self.global_import.disabled = True
        report = self.actions.import_global(dry_run=dry_run)
        self.global_report.value = report_html(report, dry_run=dry_run)
        if dry_run:
            self.global_import.disabled = False
            self.status.ok("Global dry run done: read the changes, then import.")
        else:
            self.status.ok(f"Imported {report.file}.")
            self.on_change()

    def _global_export(self) -> None:
        path = self.actions.export_global(spreadsheet_safe=self.export_safe.value)
        self.global_report.value = f"<p>wrote {html.escape(str(path))}</p>"
        self.status.ok(f"Exported every project to {path}.")

    # ------------------------------------------------------------- users, roles

    def _roles_section(self) -> widgets.VBox:
        guard = self.status.guard
        self.credentials: CredentialsSection | None = None
        self.roles = widgets.HTML()
        self.roles.add_class("miqa-roles")
        self.role_user = widgets.Dropdown(description="User", options=[])
        self.role_user.add_class("miqa-role-user")
        self.role = widgets.Dropdown(
            description="Role", options=[*(r.value for r in Role), "none"], value=Role.TIER1.value
        )
        self.role.add_class("miqa-role")
        set_role = _button("Set role", "miqa-set-role")
        set_role.on_click(guard(lambda _b: self._set_role()))
        children: list[widgets.Widget] = [
            self.roles,
            widgets.HBox([self.role_user, self.role, set_role]),
        ]
        if self.actions.global_allowed:
            # sent when the field is left, not with each key (see _text)
            self.new_user = widgets.Text(
                description="New user", placeholder="name", continuous_update=False
            )
            self.new_user.add_class("miqa-new-user")
            self.new_superuser = widgets.Checkbox(description="superuser", value=False)
            self.new_superuser.add_class("miqa-new-superuser")
            add = _button("Add user", "miqa-add-user")
            add.on_click(guard(lambda _b: self._add_user()))
            children.append(widgets.HBox([self.new_user, self.new_superuser, add]))
            self.credentials = CredentialsSection(self.actions, self.status)
            children.append(self.credentials.widget)
        self._refresh_roles()
        return widgets.VBox(children)

    def _refresh_roles(self) -> None:
        self.roles.value = table_html(self.actions.roles())
        self.role_user.options = [str(n) for n in self.actions.users()["name"]]
        if self.credentials is not None:
            self.credentials.refresh()  # a new user; and a shown secret goes

    def _set_role(self) -> None:
        if self.role_user.value is None:
            self.status.info("Choose a user first.")
            return
        self.actions.set_role(self.role_user.value, self.role.value)
        self._refresh_roles()
        self.status.ok(
            f"{self.role_user.value} is now {self.role.value} in {self.actions.project}."
        )

    def _add_user(self) -> None:
        name = self.new_user.value.strip()
        self.actions.add_user(name, superuser=self.new_superuser.value)
        self.new_user.value = ""
        self._refresh_roles()
        self.status.ok(f"Added user {name}.")

    # --------------------------------------------------------------- quarantine

    def _quarantine_section(self) -> widgets.VBox:
        self.quarantined = widgets.HTML()
        self.quarantined.add_class("miqa-quarantined")
        self.quarantine_experiment = widgets.Dropdown(description="Experiment", options=[])
        self.quarantine_experiment.add_class("miqa-quarantine-experiment")
        self.release_button = _button(
            "Release into review",
            "miqa-release-quarantine",
            tooltip="Show the experiment's scans to reviewers",
        )
        self.release_button.on_click(self.status.guard(lambda _b: self._release()))
        self.refresh_quarantine()
        box = widgets.VBox(
            [
                widgets.HTML(
                    "<p>Experiments archived in quarantine are hidden from every review "
                    "queue until released.</p>"
                ),
                self.quarantined,
                widgets.HBox([self.quarantine_experiment, self.release_button]),
            ]
        )
        box.add_class("miqa-admin-quarantine")
        return box

    def refresh_quarantine(self) -> None:
        """Show the experiments held in quarantine now."""
        held = self.actions.quarantined()
        self.quarantined.value = (
            table_html(held) if len(held) else "<p>No experiment is in quarantine.</p>"
        )
        names = [str(e) for e in held["experiment"]]
        chosen = self.quarantine_experiment.value
        self.quarantine_experiment.options = names
        self.quarantine_experiment.value = (
            chosen if chosen in names else names[0] if names else None
        )
        self.release_button.disabled = held.empty

    def _release(self) -> None:
        experiment = self.quarantine_experiment.value
        if experiment is None:
            self.status.info("No experiment is in quarantine.")
            return
        self.actions.release_quarantine(experiment)
        self.refresh_quarantine()
        self.on_change()
        self.status.ok(f"Released {experiment} into review.")

    # --------------------------------------------------------------- scan types

    def _scan_types_section(self) -> widgets.VBox:
        guard = self.status.guard
        self.scan_types = widgets.HTML()
        self.scan_types.add_class("miqa-scan-types")
        self.scan_type_name = widgets.Text(
            description="Name", placeholder="FLAIR", continuous_update=False
        )
        self.scan_type_name.add_class("miqa-scan-type-name")
        self.scan_type_of = widgets.Dropdown(description="Means", options=[])
        self.scan_type_of.add_class("miqa-scan-type-of")
        add = _button("Add", "miqa-add-scan-type")
        add.on_click(guard(lambda _b: self._add_scan_type()))
        remove = _button("Remove", "miqa-remove-scan-type")
        remove.on_click(guard(lambda _b: self._remove_scan_type()))
        self._refresh_scan_types()
        box = widgets.VBox(
            [self.scan_types, widgets.HBox([self.scan_type_name, self.scan_type_of, add, remove])]
        )
        box.add_class("miqa-admin-scan-types")
        return box

    def _refresh_scan_types(self) -> None:
        own = self.actions.scan_types()
        self.scan_types.value = (
            table_html(own) if len(own) else "<p>This catalog accepts MIQA's scan types only.</p>"
        )
        names = self.actions.scan_type_names()
        self.scan_type_of.options = [(NEW_TYPE, ""), *((n, n) for n in names)]
        self.scan_type_of.value = ""

    def _add_scan_type(self) -> None:
        name = self.scan_type_name.value.strip()
        means = self.actions.add_scan_type(name, self.scan_type_of.value)
        self._scan_types_changed(
            f"{name} is a scan type." if means == name else f"{name} means {means}."
        )

    def _remove_scan_type(self) -> None:
        removed = self.actions.remove_scan_type(self.scan_type_name.value.strip())
        self._scan_types_changed("Removed " + ", ".join(removed) + ".")

    def _scan_types_changed(self, message: str) -> None:
        self.scan_type_name.value = ""
        self._refresh_scan_types()
        self.on_scan_types()
        self.status.ok(message)

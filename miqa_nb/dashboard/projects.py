"""The project list: one row per project the user may see, with review progress.

A thin view over :func:`~miqa_nb.dashboard.model.visible_projects`. Each row is
``miqa-project-row`` holding a button ``miqa-project`` + ``miqa-project-<n>`` (n counts
rows from 0) that opens the project, a progress bar ``miqa-project-progress`` and a
label ``miqa-project-progress-text``. Names are shown as text (button descriptions and
labels are not HTML). :meth:`ProjectList.show_progress` changes one project's progress
in place (the dashboard calls it as a review goes on, so it never shows a stale count).
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets
import pandas as pd

from miqa_nb.catalog import Catalog
from miqa_nb.dashboard._status import StatusBar
from miqa_nb.dashboard.model import visible_projects

__all__ = ["ProjectList"]


class ProjectList:
    """Projects with progress; ``on_open(project)`` is called when one is clicked."""

    def __init__(
        self,
        catalog: Catalog,
        user: str,
        on_open: Callable[[str], None],
        status: StatusBar | None = None,
    ) -> None:
        self.catalog = catalog
        self.user = user
        self.on_open = on_open
        self.status = status or StatusBar()
        self.table = pd.DataFrame()
        self.buttons: list[widgets.Button] = []
        #: project -> (its progress bar, its label, the user's role there)
        self._progress: dict[str, tuple[widgets.IntProgress, widgets.Label, str]] = {}
        self.rows = widgets.VBox()
        self.rows.add_class("miqa-project-rows")
        refresh = widgets.Button(description="Refresh", icon="refresh", tooltip="Reload progress")
        refresh.add_class("miqa-projects-refresh")
        refresh.on_click(self.status.guard(lambda _: self.refresh()))
        title = widgets.HTML("<b>Projects</b>")
        self.widget = widgets.VBox([widgets.HBox([title, refresh]), self.rows])
        self.widget.add_class("miqa-projects")
        self.refresh()

    def refresh(self) -> None:
        """Reload the projects and their progress from the catalog."""
        self.table = visible_projects(self.catalog, self.user)
        old = list(self.rows.children)
        self.buttons = []
        self._progress = {}
        rows: list[widgets.Widget] = []
        for n, row in enumerate(self.table.itertuples(index=False)):
            rows.append(self._row(n, row))
        if not rows:
            empty = widgets.Label(
                "You have no projects yet: a superuser or a project's creator gives you a role."
            )
            empty.add_class("miqa-projects-empty")
            rows.append(empty)
        self.rows.children = rows
        # close the old rows only once the new ones are shown (no flicker, no leak)
        for widget in old:
            for child in getattr(widget, "children", ()):
                child.close()
            widget.close()

    def _row(self, n: int, row: object) -> widgets.Widget:
        name = str(row.project)  # type: ignore[attr-defined]
        scans = int(row.scans)  # type: ignore[attr-defined]
        reviewed = int(row.reviewed)  # type: ignore[attr-defined]
        complete = int(row.complete)  # type: ignore[attr-defined]
        button = widgets.Button(
            description=name, tooltip=f"Open {name}", layout=widgets.Layout(width="20em")
        )
        button.add_class("miqa-project")
        button.add_class(f"miqa-project-{n}")
        button.on_click(self.status.guard(lambda _b, p=name: self.on_open(p)))
        self.buttons.append(button)
        bar = widgets.IntProgress(
            value=reviewed, min=0, max=max(scans, 1), layout=widgets.Layout(width="12em")
        )
        bar.add_class("miqa-project-progress")
        role = str(row.my_role) if row.my_role else ""  # type: ignore[attr-defined]
        label = widgets.Label(_progress_text(reviewed, scans, complete, role))
        label.add_class("miqa-project-progress-text")
        self._progress[name] = (bar, label, role)
        box = widgets.HBox([button, bar, label])
        box.add_class("miqa-project-row")
        return box

    def show_progress(self, project: str, reviewed: int, scans: int, complete: int) -> None:
        """Show ``project``'s progress as given (nothing happens for a project not listed)."""
        found = self._progress.get(project)
        if found is None:
            return
        bar, label, role = found
        bar.max = max(scans, 1)
        bar.value = min(reviewed, bar.max)
        label.value = _progress_text(reviewed, scans, complete, role)


def _progress_text(reviewed: int, scans: int, complete: int, role: str) -> str:
    """``'3/11 reviewed, 2 complete · tier1'``."""
    return f"{reviewed}/{scans} reviewed, {complete} complete" + (f" · {role}" if role else "")

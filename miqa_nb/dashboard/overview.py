"""The overview of one project: its scans with thumbnail, state and last decision.

A thin view over :func:`~miqa_nb.dashboard.model.overview_table` and
:func:`~miqa_nb.dashboard.model.filter_overview`. Filters: ``miqa-filter-state``,
``miqa-filter-type`` (dropdowns) and ``miqa-filter-experiment`` (text). Each shown
scan is a ``miqa-overview-row`` whose button ``miqa-overview-open`` calls
``on_open_scan(project, experiment, scan)``. Rows are shown ``page_size`` at a time
(``miqa-overview-more`` shows more).

Claims are shown as they stand at each refresh: ``miqa-overview-holds`` names every
experiment someone holds, by whom and until when (local time), and each row of a held
experiment says so in its ``miqa-overview-hold`` cell. Names are shown as text.

Thumbnails come from :func:`miqa_nb.volumes.thumbnail` (cached on disk, so a second
visit never decodes a scan); with ``background=True`` the rows appear at once and the
pictures fill in from a worker thread.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import ipywidgets as widgets
import pandas as pd

from miqa_nb.catalog import Catalog
from miqa_nb.dashboard._status import StatusBar
from miqa_nb.dashboard.model import ALL, filter_overview, overview_table, state_options
from miqa_nb.volumes import LoadLimits, thumbnail

__all__ = ["Overview"]

log = logging.getLogger("miqa_nb.dashboard")

OpenScan = Callable[[str, str, str], None]
THUMB_WIDTH = "144px"


class Overview:
    """The scans of ``project``; click one to open it."""

    def __init__(
        self,
        catalog: Catalog,
        project: str,
        on_open_scan: OpenScan,
        *,
        thumbnail_dir: str | os.PathLike[str] | None = None,
        status: StatusBar | None = None,
        page_size: int = 50,
        background: bool = True,
    ) -> None:
        self.catalog = catalog
        self.project = project
        self.on_open_scan = on_open_scan
        self.thumbnail_dir = None if thumbnail_dir is None else Path(thumbnail_dir)
        self._load = LoadLimits.from_environ(data_roots=catalog.data_roots).load
        self.status = status or StatusBar()
        self.page_size = page_size
        self.background = background
        self.limit = page_size
        self.table = pd.DataFrame()
        self.shown = pd.DataFrame()
        #: Live claims as of the last refresh: experiment -> (user, until, local time).
        self.holds: dict[str, tuple[str, datetime]] = {}
        self.row_widgets: list[widgets.HBox] = []
        self._generation = 0

        narrow = widgets.Layout(width="18em")
        self.state = widgets.Dropdown(
            options=state_options(), value=ALL, description="State", layout=narrow
        )
        self.state.add_class("miqa-filter-state")
        self.scan_type = widgets.Dropdown(
            options=[ALL], value=ALL, description="Type", layout=widgets.Layout(width="14em")
        )
        self.scan_type.add_class("miqa-filter-type")
        self.experiment = widgets.Text(
            placeholder="experiment contains...", description="Experiment", continuous_update=True
        )
        self.experiment.add_class("miqa-filter-experiment")
        for control in (self.state, self.scan_type, self.experiment):
            control.observe(self.status.guard(lambda _c: self._show()), names="value")
        self.count = widgets.Label()
        self.count.add_class("miqa-overview-count")
        self.holds_line = widgets.Label()
        self.holds_line.add_class("miqa-overview-holds")
        self.more = widgets.Button(description="Show more", layout=widgets.Layout(display="none"))
        self.more.add_class("miqa-overview-more")
        self.more.on_click(self.status.guard(lambda _b: self._more()))
        self.rows = widgets.VBox()
        self.rows.add_class("miqa-overview-rows")
        header = widgets.HBox(
            [
                _cell("", THUMB_WIDTH),
                *(_cell(t, w) for t, w in zip(_HEADERS, _WIDTHS, strict=True)),
            ]
        )
        header.add_class("miqa-overview-header")
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.state, self.scan_type, self.experiment]),
                self.count,
                self.holds_line,
                header,
                self.rows,
                self.more,
            ]
        )
        self.widget.add_class("miqa-overview")
        self.refresh()

    def refresh(self) -> None:
        """Reload the project's scans and claims from the catalog and show them."""
        with self.catalog.store.connect():  # one opening of the file for both reads
            self.table = overview_table(self.catalog, self.project)
            claims = self.catalog.claims(self.project)
        self.holds = {
            str(row.experiment): (str(row.user), _local(row.expires_utc))
            for row in claims.itertuples(index=False)
        }
        self.holds_line.value = (
            "Being reviewed now: "
            + "; ".join(
                f"{experiment} by {user} until {until:%H:%M}"
                for experiment, (user, until) in sorted(self.holds.items())
            )
            + "."
            if self.holds
            else "Nobody is reviewing an experiment of this project now."
        )
        types = sorted({str(t) for t in self.table["type"].dropna()})
        keep = self.scan_type.value if self.scan_type.value in types else ALL
        self.scan_type.options = [ALL, *types]
        self.scan_type.value = keep
        self._show()

    def _more(self) -> None:
        self.limit += self.page_size
        self._show(reset_limit=False)

    def _show(self, reset_limit: bool = True) -> None:
        if reset_limit:
            self.limit = self.page_size
        self.shown = filter_overview(
            self.table,
            state=self.state.value,
            scan_type=self.scan_type.value,
            experiment=self.experiment.value,
        )
        page = self.shown.iloc[: self.limit]
        for row_widget in self.row_widgets:
            row_widget.close()
        self.row_widgets = [self._row(r) for r in page.itertuples(index=False)]
        self.rows.children = self.row_widgets
        total, n = len(self.table), len(self.shown)
        self.count.value = f"{n} of {total} scans" + (
            f" (showing the first {len(page)})" if len(page) < n else ""
        )
        self.more.layout.display = "" if len(page) < n else "none"
        self._load_thumbnails(page)

    def _row(self, row: object) -> widgets.HBox:
        experiment, scan = str(row.experiment), str(row.scan)  # type: ignore[attr-defined]
        image = widgets.Image(format="png", layout=widgets.Layout(width=THUMB_WIDTH))
        image.add_class("miqa-overview-thumbnail")
        button = widgets.Button(
            description=scan, tooltip=f"Open {scan}", layout=widgets.Layout(width=_WIDTHS[0])
        )
        button.add_class("miqa-overview-open")
        button.on_click(
            self.status.guard(
                lambda _b, e=experiment, s=scan: self.on_open_scan(self.project, e, s)
            )
        )
        decision = row.last_decision  # type: ignore[attr-defined]
        creator = row.last_decision_creator  # type: ignore[attr-defined]
        last = "" if pd.isna(decision) else str(decision)
        if last and not pd.isna(creator):
            last += f" by {creator}"
        held = self.holds.get(experiment)
        hold = _cell("" if held is None else f"{held[0]} until {held[1]:%H:%M}", _WIDTHS[5])
        hold.add_class("miqa-overview-hold")
        cells = [
            button,
            _cell(experiment, _WIDTHS[1]),
            _cell("" if pd.isna(row.type) else str(row.type), _WIDTHS[2]),  # type: ignore[attr-defined]
            _cell(str(row.state), _WIDTHS[3]),  # type: ignore[attr-defined]
            _cell(last, _WIDTHS[4]),
            hold,
        ]
        box = widgets.HBox([image, *cells], layout=widgets.Layout(align_items="center"))
        box.add_class("miqa-overview-row")
        box.add_class("miqa-state-" + str(row.state).replace(" ", "-"))  # type: ignore[attr-defined]
        return box

    # ---------------------------------------------------------------- thumbnails

    def _load_thumbnails(self, page: pd.DataFrame) -> None:
        if self.thumbnail_dir is None:
            return
        self._generation += 1
        generation = self._generation
        jobs = list(zip(self.row_widgets, page["location"], strict=True))

        def work() -> None:
            for row_widget, location in jobs:
                if generation != self._generation:
                    return  # the filter changed; these rows are gone
                png = self._thumbnail_bytes(location)
                if png is not None:
                    row_widget.children[0].value = png
                else:  # a blank cell rather than the browser's broken-image icon
                    row_widget.children[0].layout.visibility = "hidden"

        if self.background:
            threading.Thread(target=work, name="miqa-thumbnails", daemon=True).start()
        else:
            work()

    def _thumbnail_bytes(self, location: object) -> bytes | None:
        if not isinstance(location, str):
            return None
        assert self.thumbnail_dir is not None
        try:
            return thumbnail(location, self.thumbnail_dir, loader=self._load).read_bytes()
        except Exception as exc:  # a broken file must not stop the other rows
            log.warning("no thumbnail for %s: %s", location, exc)
            return None

    def close(self) -> None:
        self._generation += 1
        self.widget.close()


_HEADERS = ("Scan", "Experiment", "Type", "State", "Last decision", "Being reviewed by")
_WIDTHS = ("14em", "12em", "6em", "12em", "14em", "12em")


def _local(utc: object) -> datetime:
    """A claim's expiry (UTC, naive or aware) in this machine's local time."""
    stamp = pd.Timestamp(utc)  # type: ignore[arg-type]
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize(UTC)
    return stamp.to_pydatetime().astimezone()


def _cell(text: str, width: str) -> widgets.Label:
    label = widgets.Label(text, layout=widgets.Layout(width=width), tooltip=text or None)
    label.add_class("miqa-cell")
    return label

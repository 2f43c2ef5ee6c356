"""Upload scans from the reviewer's computer into an experiment (MIQA's "Add Scans").

A thin view over :class:`~miqa_nb.dashboard.uploads.UploadStager`, which checks names,
writes only inside the upload folder and imports with ``mode='append'``.

Stable classes: ``miqa-upload`` (the panel), ``miqa-upload-experiment``,
``miqa-upload-type``, ``miqa-upload-files`` (the file chooser), ``miqa-upload-run``,
``miqa-upload-progress``, ``miqa-upload-result``.

The browser sends the chosen files to the kernel over the widget websocket before
the upload button is pressed; ``voila_app/voila.json`` raises Tornado's message limit
(10 MiB by default) so whole scans fit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import ipywidgets as widgets

from miqa_nb.dashboard._status import StatusBar
from miqa_nb.dashboard.uploads import UPLOAD_SUFFIXES, UploadFile, UploadStager

__all__ = ["UploadPanel", "uploaded_files"]


def uploaded_files(value: Iterable[Mapping[str, Any]]) -> list[UploadFile]:
    """The files of a ``FileUpload.value`` (ipywidgets 8: dicts with name and content)."""
    return [UploadFile(str(item["name"]), bytes(item["content"])) for item in value]


class UploadPanel:
    """Choose an experiment, a scan type and files; upload them into ``project``."""

    def __init__(
        self,
        stager: UploadStager,
        project: str,
        status: StatusBar | None = None,
        *,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.stager = stager
        self.project = project
        self.status = status or StatusBar()
        self.on_change = on_change or (lambda: None)
        catalog = stager.catalog
        experiments = sorted(set(catalog.scans(project)["experiment"].astype(str)))
        self.experiment = widgets.Combobox(
            options=experiments,
            placeholder="existing or new experiment",
            description="Experiment",
            ensure_option=False,
        )
        self.experiment.add_class("miqa-upload-experiment")
        self.scan_type = widgets.Dropdown(description="Scan type")
        self.scan_type.add_class("miqa-upload-type")
        self.refresh_scan_types()
        self.files = widgets.FileUpload(
            accept=",".join(sorted({*UPLOAD_SUFFIXES, ".gz"})),
            multiple=True,
            description="Choose files",
        )
        self.files.add_class("miqa-upload-files")
        self.run = widgets.Button(description="Upload", button_style="primary", icon="upload")
        self.run.add_class("miqa-upload-run")
        self.run.on_click(self.status.guard(lambda _b: self.upload()))
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="Progress")
        self.progress.add_class("miqa-upload-progress")
        self.result = widgets.Label()
        self.result.add_class("miqa-upload-result")
        note = widgets.Label(
            f"Files ending in {', '.join(UPLOAD_SUFFIXES)}; each file becomes one scan "
            "named after the file."
        )
        self.widget = widgets.VBox(
            [
                note,
                widgets.HBox([self.experiment, self.scan_type]),
                widgets.HBox([self.files, self.run]),
                self.progress,
                self.result,
            ]
        )
        self.widget.add_class("miqa-upload")

    def refresh_scan_types(self) -> None:
        """Offer the scan types the catalog accepts now (keeping the one chosen)."""
        chosen = self.scan_type.value
        names = list(self.stager.catalog.scan_types().names())
        self.scan_type.options = names
        self.scan_type.value = chosen if chosen in names else "T1"

    def _progress(self, done: int, total: int, message: str) -> None:
        self.progress.max = max(total, 1)
        self.progress.value = done
        self.result.value = message

    def upload(self, files: list[UploadFile] | None = None) -> None:
        """Upload the chosen files (or ``files``); the stager checks everything."""
        chosen = uploaded_files(self.files.value) if files is None else files
        self.progress.value = 0
        staged = self.stager.upload(
            self.project,
            self.experiment.value,
            chosen,
            scan_type=str(self.scan_type.value),
            progress=self._progress,
        )
        self.files.value = ()
        names = ", ".join(p.name for p in staged.files)
        self.result.value = (
            f"Uploaded {len(staged.files)} scan(s) into {self.experiment.value}: {names}"
        )
        self.status.ok(self.result.value)
        experiments = set(self.experiment.options) | {self.experiment.value.strip()}
        self.experiment.options = sorted(experiments)
        self.on_change()

"""Fixtures of the dashboard widget tests: a fresh small catalog, no stray widgets,
and a failure for any exception ipywidgets would swallow in a callback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import ipywidgets as widgets
import pytest
from widgets_dashboard.dashboard_catalog import DashboardCatalog, build


@pytest.fixture
def dash(tmp_path: Path) -> DashboardCatalog:
    """A catalog with projects Alpha and Beta<script>, users in every role."""
    return build(tmp_path)


@pytest.fixture(autouse=True)
def _no_swallowed_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test when a widget callback raised (ipywidgets only logs it), or when
    the dashboard logged an unexpected error."""
    caplog.set_level(logging.WARNING)
    yield
    bad = [
        r
        for r in caplog.records
        if "Exception in callback" in r.getMessage()
        or (r.name.startswith("miqa_nb") and r.levelno >= logging.ERROR)
    ]
    assert not bad, [r.getMessage() for r in bad]


@pytest.fixture(autouse=True)
def _close_widgets() -> Iterator[None]:
    yield
    widgets.Widget.close_all()

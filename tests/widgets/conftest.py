"""Fixtures of the headless widget tests.

``_fail_on_widget_errors`` (autouse) fails any test during which a widget callback
raised: ipywidgets only logs "Exception in callback" (on the ``traitlets`` logger)
and our panels log errors on ``miqa_nb.widgets`` / ``miqa_nb.review.session`` instead of
raising. Every widget is closed after each test.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import ipywidgets
import pytest
from test_review_support import PROJECT, build_template, copy_catalog

from miqa_nb.catalog import Catalog
from miqa_nb.review.session import ReviewSession
from miqa_nb.volumes import VolumeCache


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Exception in callback" in message or (
            record.levelno >= logging.ERROR and record.name.startswith("miqa_nb")
        ):
            self.records.append(record)


@pytest.fixture(autouse=True)
def widget_errors() -> Iterator[list[logging.LogRecord]]:
    """Records of failed widget callbacks; the test fails if any is left at its end."""
    collector = _Collector()
    loggers = [logging.getLogger(name) for name in ("traitlets", "miqa_nb")]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(collector)
        lg.setLevel(logging.DEBUG if lg.name == "miqa_nb" else logging.WARNING)
    try:
        yield collector.records
    finally:
        for lg, level in saved:
            lg.removeHandler(collector)
            lg.setLevel(level)
        ipywidgets.Widget.close_all()
    if collector.records:
        details = "\n".join(
            f"{r.name}: {r.getMessage()}\n{logging.Formatter().formatException(r.exc_info) if r.exc_info else ''}"
            for r in collector.records
        )
        pytest.fail(f"a widget callback raised:\n{details}")


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory.mktemp("review-widgets"))


@pytest.fixture
def project(template: Path, tmp_path: Path) -> Catalog:
    """A fresh copy of project P (see tests/test_review_support.py)."""
    return copy_catalog(template, tmp_path)


@pytest.fixture(scope="session")
def cache() -> Iterator[VolumeCache]:
    with VolumeCache(max_bytes=64 << 20) as c:
        yield c


@pytest.fixture
def start(project: Catalog, cache: VolumeCache) -> Iterator[Callable[..., ReviewSession]]:
    """``start(user, **options)``: a session without background threads."""
    sessions: list[ReviewSession] = []

    def make(user: str, **options: object) -> ReviewSession:
        options.setdefault("background", False)
        options.setdefault("cache", cache)
        session = ReviewSession(project, PROJECT, user, **options)  # type: ignore[arg-type]
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()


@pytest.fixture
def browser() -> Callable[..., None]:
    """``browser(event_widget, type='click', dataX=..)``: deliver a DOM event to an
    ipyevents ``Event`` the way the front end does (a custom comm message)."""

    def send(widget_event: object, **content: object) -> None:
        widget_event._handle_mouse_msg(None, content, [])  # type: ignore[attr-defined]

    return send

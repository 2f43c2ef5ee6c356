"""The dashboard's status bar: one line saying what happened, errors in words.

Panels run their actions through :meth:`StatusBar.guard`, so an exception never
escapes into ipywidgets (which would only log it): the bar shows
:func:`~miqa_nb.dashboard.model.readable_error` and the traceback of anything that is
not a :class:`~miqa_nb.core.errors.MiqaError` goes to the ``miqa_nb`` logger (the server
log under Voila), never to the page.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import ipywidgets as widgets

from miqa_nb.core.errors import MiqaError
from miqa_nb.dashboard.model import readable_error

__all__ = ["StatusBar"]

log = logging.getLogger("miqa_nb.dashboard")

Level = Literal["info", "ok", "error"]
T = TypeVar("T")

_COLORS = {"info": "#333", "ok": "#1b5e20", "error": "#b71c1c"}


class StatusBar:
    """A one-message status line (``miqa-status``; ``miqa-status-error`` on errors)."""

    def __init__(self) -> None:
        self.widget = widgets.HTML(value="")
        self.widget.add_class("miqa-status")
        self.level: Level = "info"
        self.message = ""

    def show(self, message: str, level: Level = "info") -> None:
        """Show ``message`` (plain text: it is escaped)."""
        self.level, self.message = level, message
        if level == "error":
            self.widget.add_class("miqa-status-error")
        else:
            self.widget.remove_class("miqa-status-error")
        style = f"color:{_COLORS[level]};white-space:pre-wrap;font-family:inherit;margin:0"
        self.widget.value = f'<pre style="{style}">{html.escape(message)}</pre>' if message else ""

    def info(self, message: str) -> None:
        self.show(message, "info")

    def ok(self, message: str) -> None:
        self.show(message, "ok")

    def error(self, exc: BaseException) -> None:
        """Show an exception in words; log its traceback unless it is a MiqaError."""
        if isinstance(exc, MiqaError):
            log.info("refused or failed: %s", exc)
        else:
            log.error("unexpected error in the dashboard", exc_info=exc)
        self.show(readable_error(exc), "error")

    def clear(self) -> None:
        self.show("", "info")

    def run(self, action: Callable[[], T]) -> T | None:
        """Call ``action``; on an exception show it and return None."""
        try:
            return action()
        except Exception as exc:
            self.error(exc)
            return None

    def guard(self, handler: Callable[..., Any]) -> Callable[..., None]:
        """Wrap a widget callback (``on_click``, ``observe``) so errors reach the bar."""

        def guarded(*args: Any, **kwargs: Any) -> None:
            self.run(lambda: handler(*args, **kwargs))

        guarded.__name__ = getattr(handler, "__name__", "guarded")
        return guarded

"""What every panel shares: safe callbacks, CSS classes, escaping untrusted text.

- :func:`safe` wraps every widget callback: an exception is logged (with its
  traceback) on the ``miqa_nb.widgets`` logger and never reaches ipywidgets, which
  would only log "Exception in callback" where nobody looks. Tests fail on those logs.
- :func:`css` gives widgets the stable ``miqa-...`` classes browser tests select.
- :func:`text` escapes untrusted text (names, notes, types) for ``ipywidgets.HTML``;
  :func:`link` makes a link only of http(s) URLs, anything else is shown as text.
"""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ipywidgets as w

__all__ = ["close_tree", "css", "is_web_link", "link", "log", "safe", "text"]

log = logging.getLogger("miqa_nb.widgets")

F = TypeVar("F", bound=Callable[..., Any])


def safe(fn: F) -> F:
    """Run a widget callback; log (never raise) what it raised."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception:
            log.exception("widget callback %s failed", getattr(fn, "__qualname__", fn))
            return None

    return wrapper  # type: ignore[return-value]


def css(widget: w.DOMWidget, *classes: str) -> Any:
    """Add CSS classes to a widget and return it."""
    for name in classes:
        widget.add_class(name)
    return widget


def text(value: object) -> str:
    """Untrusted text, escaped for HTML (None -> empty).

    >>> text("<b>R&D</b>"), text(None)
    ('&lt;b&gt;R&amp;D&lt;/b&gt;', '')
    """
    return "" if value is None else html.escape(str(value), quote=True)


def is_web_link(value: str | None) -> bool:
    """True for an http or https URL with a host.

    >>> is_web_link(" https://example.org/scan "), is_web_link("javascript:alert(1)")
    (True, False)
    """
    if not value:
        return False
    parts = urlsplit(value.strip())
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def link(label: object, url: str | None) -> str:
    """``label`` as a link to ``url`` when it is http(s), else as plain text.

    >>> link("scan <1>", "javascript:alert(1)")
    'scan &lt;1&gt;'
    >>> link("MIQA", "https://example.org/?a=1&b=2")
    '<a class="miqa-link" href="https://example.org/?a=1&amp;b=2" target="_blank" rel="noopener noreferrer">MIQA</a>'
    """
    if url is None or not is_web_link(url):
        return text(label)
    return (
        f'<a class="miqa-link" href="{text(url.strip())}" target="_blank" '
        f'rel="noopener noreferrer">{text(label)}</a>'
    )


def close_tree(widget: w.Widget) -> None:
    """Close a widget and every widget inside it."""
    for child in getattr(widget, "children", ()):
        close_tree(child)
    widget.close()

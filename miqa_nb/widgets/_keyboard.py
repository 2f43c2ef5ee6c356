"""The review page's keyboard: one listener for the page, a "keys on/off" sign, help.

:class:`PageKeys` listens to the key presses of the whole document (scope ``'page'``,
the Voila dashboard) or of the review panel under the mouse or last clicked (scope
``'panel'``, a notebook, whose own keys must keep working elsewhere). In the browser:

- keys typed in a text field (input, textarea, select, contenteditable) and keys with
  Ctrl, Alt or Meta are left alone; Esc in a text field of the panel leaves it (blur),
  so the keys work again. Arrow keys on a focused slider, and Enter or Space on a
  focused button or check box, keep their own meaning; a button clicked with the mouse
  gives up the focus, so a following Enter submits instead of pressing it again;
- the note key focuses the note's text area *at once*, in the page (no round trip to
  the kernel: letters typed right after it land in the note whatever the kernel is
  doing); ``?`` shows or hides the list of keys (constant text, set as text, never
  as markup);
- the other keys of the chosen key set (:attr:`PageKeys.bound`) are sent to the kernel
  as custom messages, which go out at once and in order with the note's typing (also
  custom messages, see :mod:`~miqa_nb.widgets._note`), with the plane under the mouse
  and the *generation* of the scan shown when the key was pressed.

In the kernel, :meth:`PageKeys.new_scan` starts a new generation whenever another scan
is shown; a key of an older generation arrives late, and is dropped: a key typed for
one scan never acts on the next.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import anywidget
import traitlets

from miqa_nb.volumes import PLANES, Plane

__all__ = ["PageKeys"]

_ESM = """
const TEXT_INPUTS = new Set(["", "text", "search", "email", "number", "password", "tel",
  "url", "date", "datetime-local", "month", "time", "week"]);
const SLIDER_KEYS = new Set(["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", "Home",
  "End", "PageUp", "PageDown"]);

function isTextField(t) {
  if (!t || !t.tagName) return false;
  if (t.isContentEditable) return true;
  if (t.tagName === "TEXTAREA" || t.tagName === "SELECT") return true;
  return t.tagName === "INPUT" && TEXT_INPUTS.has((t.getAttribute("type") || "").toLowerCase());
}

function keepsItsOwnMeaning(t, key) {
  if (!t || !t.closest) return false;
  if (SLIDER_KEYS.has(key) && t.closest("[role=slider]")) return true;
  return (key === "Enter" || key === " ") && t.closest("button, input, a[href], [role=button]");
}

function keyId(e) {
  if (e.shiftKey && /^Digit[0-9]$/.test(e.code)) return "Shift+" + e.code;
  return /^[A-Za-z]$/.test(e.key) ? e.key.toLowerCase() : e.key;
}

function render({ model, el }) {
  const badge = document.createElement("span");
  badge.className = "miqa-keys-badge";
  const helpButton = document.createElement("button");
  helpButton.className = "miqa-keys-help-button";
  helpButton.type = "button";
  helpButton.textContent = "?";
  helpButton.title = "list the keys (?)";
  const help = document.createElement("div");
  help.className = "miqa-keys-help";
  help.hidden = true;
  el.append(badge, helpButton, help);

  let hoveredPlane = null;
  let inside = false;
  const panel = () => el.closest(".miqa-review") || document.body;
  const shown = () => el.isConnected && el.getClientRects().length > 0;
  const live = () => shown() && (model.get("scope") === "page" || inside);

  const showBadge = () => {
    const typing = isTextField(document.activeElement);
    const on = live() && !typing;
    badge.textContent = on ? "keys on" : "keys off";
    badge.classList.toggle("miqa-keys-on", on);
    badge.classList.toggle("miqa-keys-off", !on);
    badge.title = on
      ? model.get("label") + ": press ? for the list"
      : typing
        ? "typing in a field: Esc leaves it and turns the keys on"
        : "click the review panel to use the keys";
  };
  const fillHelp = () => {
    help.replaceChildren();
    const title = document.createElement("div");
    title.className = "miqa-keys-help-title";
    title.textContent = model.get("label");
    const table = document.createElement("table");
    for (const [keys, what] of model.get("help_rows")) {
      const row = table.insertRow();
      const k = document.createElement("kbd");
      k.textContent = keys;
      row.insertCell().append(k);
      row.insertCell().textContent = what;
    }
    help.append(title, table);
  };
  const toggleHelp = (show) => {
    if (show) fillHelp();
    help.hidden = !show;
  };

  const onKey = (e) => {
    if (!live() || e.ctrlKey || e.altKey || e.metaKey) return;
    const t = e.target;
    if (isTextField(t)) {
      if (e.key === "Escape" && panel().contains(t)) {
        e.preventDefault();
        t.blur();
        showBadge();
      }
      return;
    }
    if (e.key === "Escape" && !help.hidden) { e.preventDefault(); toggleHelp(false); return; }
    if (e.key === "?") { e.preventDefault(); toggleHelp(help.hidden); return; }
    if (keepsItsOwnMeaning(t, e.key)) return;
    const id = keyId(e);
    if (id === model.get("note_key")) {
      const area = panel().querySelector(".miqa-note textarea");
      if (area && !area.disabled) {
        e.preventDefault();
        area.focus();
        showBadge();
      }
      return;
    }
    if (!model.get("bound").includes(id)) return;
    e.preventDefault();
    model.send({ key: id, plane: hoveredPlane, generation: model.get("generation") });
  };
  const onOver = (e) => {
    const t = e.target;
    const box = t && t.closest ? t.closest(".miqa-plane-box") : null;
    const found = box ? [...box.classList].find((c) => c.startsWith("miqa-plane-box-")) : null;
    hoveredPlane = found ? found.slice("miqa-plane-box-".length) : null;
    const now = panel().contains(t);
    if (now !== inside && model.get("scope") !== "page") { inside = now; showBadge(); }
  };
  const onPointerDown = (e) => {
    inside = panel().contains(e.target);
    showBadge();
  };
  const onClick = (e) => {
    // a control clicked with the mouse (detail > 0) gives the focus up: Enter then
    // submits instead of pressing the control again
    if (e.detail > 0 && e.target && e.target.closest && panel().contains(e.target)) {
      const control = e.target.closest("button, input[type=checkbox], input[type=radio]");
      if (control) setTimeout(() => { control.blur(); showBadge(); }, 0);
    }
  };
  const onFocus = () => setTimeout(showBadge, 0);
  helpButton.addEventListener("click", () => toggleHelp(help.hidden));
  help.addEventListener("click", () => toggleHelp(false));
  document.addEventListener("keydown", onKey, true);
  document.addEventListener("mouseover", onOver, true);
  document.addEventListener("pointerdown", onPointerDown, true);
  document.addEventListener("click", onClick, true);
  document.addEventListener("focusin", onFocus, true);
  document.addEventListener("focusout", onFocus, true);
  const changed = () => { showBadge(); if (!help.hidden) fillHelp(); };
  model.on("change:label change:help_rows change:scope", changed);
  // shown once the panel is in the page (render runs before the element is attached)
  const observer = new IntersectionObserver(showBadge);
  observer.observe(el);
  showBadge();
  return () => {
    observer.disconnect();
    model.off("change:label change:help_rows change:scope", changed);
    document.removeEventListener("keydown", onKey, true);
    document.removeEventListener("mouseover", onOver, true);
    document.removeEventListener("pointerdown", onPointerDown, true);
    document.removeEventListener("click", onClick, true);
    document.removeEventListener("focusin", onFocus, true);
    document.removeEventListener("focusout", onFocus, true);
  };
}
export default { render };
"""

_CSS = """
.miqa-keys-badge {
  display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
  border: 1px solid #999; color: #555; background: #eee; margin-right: 4px;
}
.miqa-keys-badge.miqa-keys-on { border-color: #2e7d32; color: #fff; background: #2e7d32; }
.miqa-keys-help-button { font-size: 12px; padding: 0 6px; cursor: pointer; }
.miqa-keys-help {
  position: fixed; z-index: 10000; top: 10%; left: 50%; transform: translateX(-50%);
  max-width: 44em; max-height: 80vh; overflow-y: auto; background: #fff; color: #222;
  border: 1px solid #888; border-radius: 6px; padding: 12px 16px;
  box-shadow: 0 4px 24px rgba(0, 0, 0, 0.3); font-size: 14px;
}
.miqa-keys-help[hidden] { display: none; }
.miqa-keys-help-title { font-weight: bold; margin-bottom: 6px; }
.miqa-keys-help td { padding: 2px 10px 2px 0; vertical-align: top; }
.miqa-keys-help kbd { white-space: nowrap; }
"""


class PageKeys(anywidget.AnyWidget):
    """The review page's keyboard listener (see the module docstring).

    ``on_key(key, plane)`` is called in the kernel with each current key of
    :attr:`bound` (the plane under the mouse, or None); stale keys never reach it.
    """

    _esm = traitlets.Unicode(_ESM).tag(sync=True)
    _css = traitlets.Unicode(_CSS).tag(sync=True)
    #: Key ids the page sends to the kernel (see :mod:`~miqa_nb.widgets._shortcuts`).
    bound = traitlets.List(traitlets.Unicode()).tag(sync=True)
    #: The key the page answers itself by focusing the note.
    note_key = traitlets.Unicode("t").tag(sync=True)
    #: The key set's name as people read it, and its (keys, what they do) rows.
    label = traitlets.Unicode("").tag(sync=True)
    help_rows = traitlets.List(traitlets.List(traitlets.Unicode())).tag(sync=True)
    #: ``'page'``: every key of the document; ``'panel'``: only while the mouse is
    #: over the panel or the panel was clicked last.
    scope = traitlets.Enum(("page", "panel"), default_value="panel").tag(sync=True)
    #: The scan shown, as a count of scans shown: keys carry it, stale ones are dropped.
    generation = traitlets.Int(0).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: Called with (key id, plane under the mouse or None) for each current key.
        self.on_key: Callable[[str, Plane | None], Any] | None = None
        #: How many keys arrived too late for the scan they were typed on.
        self.stale = 0
        self.on_msg(self._pressed)

    def new_scan(self) -> None:
        """Another scan is shown: keys typed before now are stale from now on."""
        self.generation += 1

    def _pressed(self, _widget: Any, content: Any, _buffers: Sequence[bytes]) -> None:
        """A key the page sent: act on it if it was typed on the scan shown now."""
        if not isinstance(content, dict) or not isinstance(content.get("key"), str):
            return
        if content.get("generation") != self.generation:
            self.stale += 1
            return
        plane = content.get("plane")
        if self.on_key is not None:
            self.on_key(content["key"], plane if plane in PLANES else None)

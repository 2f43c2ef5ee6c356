"""The note field: a text area whose typing reaches the kernel in order with the keys.

``ipywidgets.Textarea`` sends its value as state, and a page holds a model's state
updates back while one is unanswered (one at a time per model); the page's keys
(:mod:`~miqa_nb.widgets._keyboard`) are custom messages, which go at once. So a
reviewer who types a note and presses Enter on a busy kernel could submit the note
without its last words, and those words would then land on the next scan's note.

:class:`NoteArea` sends what is typed as custom messages too: the kernel gets them, and
the keys, in the order they were typed. Each message carries the *generation* of the
text it edits: when the kernel replaces the text, or another scan is shown
(:meth:`NoteArea.new_generation`, even when both notes are empty), it starts a new
generation and ignores what was typed in the old one and arrives late.

The page's note key focuses the text area in the browser itself (no round trip);
:meth:`NoteArea.focus` does it from the kernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anywidget
import traitlets

__all__ = ["NoteArea"]

_ESM = """
function render({ model, el }) {
  const area = document.createElement("textarea");
  area.className = "miqa-note-text";
  const show = () => { area.value = model.get("value"); };
  const state = () => {
    area.placeholder = model.get("placeholder");
    area.disabled = model.get("disabled");
  };
  const typed = () => {
    model.send({ value: area.value, generation: model.get("generation") });
  };
  const focus = (message) => { if (message && message.do === "focus-note") area.focus(); };
  show();
  state();
  area.addEventListener("input", typed);
  model.on("change:generation", show);
  model.on("change:placeholder change:disabled", state);
  model.on("msg:custom", focus);
  el.appendChild(area);
  return () => {
    area.removeEventListener("input", typed);
    model.off("change:generation", show);
    model.off("change:placeholder change:disabled", state);
    model.off("msg:custom", focus);
  };
}
export default { render };
"""

_CSS = """
.miqa-note-text {
  width: 100%; height: 100%; box-sizing: border-box; resize: vertical; font: inherit;
}
"""


class NoteArea(anywidget.AnyWidget):
    """A text area for a note. ``value`` is the text; observe it to hear the typing.

    Setting ``value`` from Python replaces the text on the page (a new generation).
    """

    _esm = traitlets.Unicode(_ESM).tag(sync=True)
    _css = traitlets.Unicode(_CSS).tag(sync=True)
    value = traitlets.Unicode("").tag(sync=True)
    generation = traitlets.Int(0).tag(sync=True)
    placeholder = traitlets.Unicode("").tag(sync=True)
    disabled = traitlets.Bool(False).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        self._from_page = False
        super().__init__(**kwargs)
        self.on_msg(self._typed)

    @traitlets.observe("value")
    def _replaced(self, change: dict[str, Any]) -> None:
        if not self._from_page:
            self.generation += 1

    def _typed(self, _widget: Any, content: Any, _buffers: Sequence[bytes]) -> None:
        """What the page sent: the text as typed, in the generation it was typed in."""
        if not isinstance(content, dict) or content.get("generation") != self.generation:
            return  # typed before the text was replaced: it belongs to what came before
        value = content.get("value")
        if isinstance(value, str):
            self._from_page = True
            try:
                self.value = value  # the page ignores this echo: same generation
            finally:
                self._from_page = False

    def new_generation(self) -> None:
        """Typing from now on is new: what was typed before and arrives late is dropped."""
        self.generation += 1

    def focus(self) -> None:
        """Put the cursor in the text area."""
        self.send({"do": "focus-note"})

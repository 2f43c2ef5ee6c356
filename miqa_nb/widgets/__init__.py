"""Review panels for notebooks and the Voila dashboard: thin ipywidgets views over a
:class:`~miqa_nb.review.session.ReviewSession`.

- :class:`ViewerPanel` -- three planes, crosshair, sliders, window/level, frames, 3D.
- :class:`DecisionPanel` -- decisions, artifacts, note, location, submit, shortcuts.
- :class:`ScanHeader` -- where the scan sits, what it is, its claim and its history.
- :class:`ReviewPanel` -- all of them with a toolbar, progress and a status line.
- :func:`open_review` / :func:`notebook_catalog` -- one-call front doors for notebooks.

Every widget carries stable ``miqa-...`` CSS classes for browser tests; callbacks never
raise (they log on ``miqa_nb.widgets``); untrusted text is escaped.
"""

from miqa_nb.widgets.decision import DecisionPanel
from miqa_nb.widgets.header import ScanHeader
from miqa_nb.widgets.notebook import notebook_catalog, open_review
from miqa_nb.widgets.panel import ReviewPanel
from miqa_nb.widgets.viewer import ViewerPanel

__all__ = [
    "DecisionPanel",
    "ReviewPanel",
    "ScanHeader",
    "ViewerPanel",
    "notebook_catalog",
    "open_review",
]

"""The reviewer dashboard served by Voila: its model (no widgets) and its widgets.

- :mod:`~miqa_nb.dashboard.app` -- :class:`~miqa_nb.dashboard.app.Dashboard`, the
  page: tabs for projects, overview, review, upload and administration.
- :mod:`~miqa_nb.dashboard.projects`, :mod:`~miqa_nb.dashboard.overview`,
  :mod:`~miqa_nb.dashboard.upload`, :mod:`~miqa_nb.dashboard.admin` -- its panels.
- ``_status`` (private) -- the status line every panel reports through.
- :mod:`~miqa_nb.dashboard.model` -- what the panels do and show, without widgets:
  who the user is, tables, administration actions, staged uploads.

Nothing is re-exported here: the server (:mod:`miqa_nb.serve`) reads the model's
settings, and importing the package must not load ipywidgets for it.
"""

__all__: list[str] = []

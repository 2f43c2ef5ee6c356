"""Front doors for notebooks: the catalog to work on, and a review panel in one call.

:func:`notebook_catalog` opens the catalog named by ``MIQA_NB_CATALOG`` (or a path);
only when none is given does it build the small demo project (``miqa-nb demo``) in a
folder, once. :func:`open_review` makes a :class:`~miqa_nb.review.session.ReviewSession` for
the user named by the environment and returns its :class:`ReviewPanel`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from miqa_nb.catalog import Catalog
from miqa_nb.core.identity import current_user
from miqa_nb.demo.setup import build_demo
from miqa_nb.review.session import ReviewSession
from miqa_nb.store.database import CATALOG_ENV
from miqa_nb.widgets.panel import ReviewPanel

__all__ = ["notebook_catalog", "open_review"]

DEMO_DIR = "miqa-demo"


def notebook_catalog(
    path: str | os.PathLike[str] | None = None,
    *,
    demo_dir: str | os.PathLike[str] | None = None,
    user: str | None = None,
) -> Catalog:
    """The catalog a notebook works on.

    ``path``, else ``MIQA_NB_CATALOG``; else the demo catalog in ``demo_dir`` (default
    ``./miqa-demo``), built the first time with the notebook's user as its superuser.
    """
    chosen = path or os.environ.get(CATALOG_ENV)
    if chosen:
        return Catalog(chosen)
    folder = Path(demo_dir or DEMO_DIR)
    catalog_path = folder / "catalog.duckdb"
    if not catalog_path.exists():
        build_demo(folder, catalog_path, admin=current_user(user))
    return Catalog(catalog_path)


def open_review(
    catalog: Catalog | None = None,
    project: str | None = None,
    user: str | None = None,
    *,
    auto_refresh: float | None = 5.0,
    **options: Any,
) -> ReviewPanel:
    """A review panel for ``user`` (default from the environment) on ``project``.

    ``options`` go to :class:`~miqa_nb.review.session.ReviewSession` (``filter``,
    ``scan_type``, ``prefetch``, ...).
    """
    catalog = catalog if catalog is not None else notebook_catalog(user=user)
    session = ReviewSession(catalog, project, user, **options)
    return ReviewPanel(session, auto_refresh=auto_refresh)

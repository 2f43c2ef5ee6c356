"""The demo project, ready to review: files built by :mod:`miqa_nb.demo._files`, imported.

``miqa-nb demo`` calls :func:`build_demo`: it writes the demo images and import file,
creates the catalog with a few users in every role, and imports the project.
"""

from __future__ import annotations

import os
from pathlib import Path

from miqa_nb.catalog import Catalog
from miqa_nb.core.report import Report
from miqa_nb.demo._files import build_demo_files

__all__ = ["DEMO_USERS", "PROJECT", "build_demo"]

#: Name of the demo project.
PROJECT = "Demo"

#: Demo reviewers and their roles in the demo project.
DEMO_USERS: dict[str, str] = {
    "ana": "tier1",
    "ben": "tier2",
    "carla": "collaborator",
}


def build_demo(
    folder: str | os.PathLike[str],
    catalog_path: str | os.PathLike[str],
    *,
    admin: str,
    progress: bool = False,
) -> Report:
    """Write the demo files under ``folder`` and import them into ``catalog_path``.

    ``admin`` is added as a superuser (and creates the project); the demo reviewers in
    :data:`DEMO_USERS` get their roles. Running it again re-imports the files
    (``replace``): earlier decisions are kept in the catalog's backups.
    """
    folder = Path(folder)
    csv_path = build_demo_files(folder / "files", project=PROJECT, progress=progress)
    catalog = Catalog(catalog_path, data_roots=[csv_path.parent])
    known = set(catalog.users()["name"])
    if admin not in known:
        catalog.add_user(admin, superuser=True, by=next(iter(known), admin))
    for name in DEMO_USERS:
        if name not in known:
            catalog.add_user(name, by=admin)
    report = catalog.import_file(csv_path, by=admin, project=PROJECT, progress=progress)
    for name, role in DEMO_USERS.items():
        catalog.set_role(PROJECT, name, role, by=admin)
    return report

"""Helpers for tests (a module of its own: several conftest.py files share one name)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb


def write_sql(catalog: Any, sql: str, params: list[Any] | None = None) -> None:
    """Change a catalog behind its API, as a test's setup does (portable SQL; on both
    backends: :meth:`Catalog.sql` only reads a catalog on PostgreSQL)."""
    with catalog.store.transaction() as con:
        con.execute(sql, params)


def frame_row(
    project: str = "P",
    experiment: str = "E1",
    scan: str = "S1",
    frame: int | str = 0,
    **more: str,
) -> dict[str, str]:
    """One import row with sensible defaults."""
    row = {
        "project_name": project,
        "experiment_name": experiment,
        "scan_name": scan,
        "scan_type": "T1",
        "frame_number": str(frame),
        "file_location": f"images/{experiment}/{scan}/f{frame}.nii.gz",
    }
    row.update(more)
    return row


def page_sets(widget: Any, **state: Any) -> None:
    """What a page's ``update`` message does: set traits, whatever the widget shows
    (a hostile page sends any value, to any widget, enabled or not)."""
    data = {"method": "update", "state": state, "buffer_paths": []}
    widget._handle_msg({"content": {"data": data}, "buffers": []})


def page_clicks(button: Any) -> None:
    """What a page's click message does (a disabled button too: the kernel does not know)."""
    data = {"method": "custom", "content": {"event": "click"}}
    button._handle_msg({"content": {"data": data}, "buffers": []})


def catalog_tables(path: Path) -> set[str]:
    """The tables of the DuckDB catalog file at ``path`` (read-only)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {name for (name,) in con.execute("SHOW TABLES").fetchall()}
    finally:
        con.close()

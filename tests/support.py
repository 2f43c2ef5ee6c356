"""Helpers for tests (a module of its own: several conftest.py files share one name)."""

from __future__ import annotations


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

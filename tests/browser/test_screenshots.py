"""The screenshot folder holds this run's pictures only (no browser needed)."""

from __future__ import annotations


def test_screenshots_of_earlier_runs_are_removed(screenshots) -> None:
    """A picture older than the session's emptying of the folder would be a stale one."""
    assert screenshots.folder.is_dir()
    older = [
        p.name for p in screenshots.folder.iterdir() if p.stat().st_mtime < screenshots.cleared_at
    ]
    assert older == []

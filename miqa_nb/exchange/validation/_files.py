"""The check of frame files: where :func:`~miqa_nb.exchange.locations.resolve` found them.

This module owns :data:`FILE_CHECKS`. The rules for a location (inside the data roots
after resolving ``..`` and symlinks, a frame suffix, MIQA's folder above) are
:mod:`miqa_nb.exchange.locations`' business; this check turns its statuses into
problems: one per distinct location (at most :data:`MAX_LISTED` per status), with
its first row and count, and one that counts the rest.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow.compute as pc

from miqa_nb.core import arrow
from miqa_nb.core.report import Severity
from miqa_nb.exchange import locations
from miqa_nb.exchange.validation._battery import MAX_LISTED, Check, Finding, reads
from miqa_nb.exchange.validation._staging import Staging

__all__ = ["FILE_CHECKS", "files_found"]


@reads("frames", "locations")
def files_found(staging: Staging) -> Iterator[Finding]:
    """Every frame file is inside the data roots, has a frame suffix, and exists (a
    missing file, or one found only where MIQA looks, is a warning)."""
    frames = staging.frames
    values = frames.column("file_location")
    resolved = staging.resolved
    for status in resolved.statuses():
        if status in (locations.OK, locations.S3, locations.EMPTY):
            continue
        rows = np.flatnonzero(resolved.is_(status))
        # The first distinct values with this problem, in file order.
        first = arrow.from_numpy(rows[: MAX_LISTED * 20])
        listed: dict[str, tuple[str | None, int, str | None]] = {}
        texts = values.take(first).to_pylist()
        for value, looked_at, row, jpath in zip(
            texts,
            resolved.paths(texts, rows[: MAX_LISTED * 20]),
            frames.column("_row").take(first).to_pylist(),
            frames.column("_path").take(first).to_pylist(),
            strict=True,
        ):
            if value not in listed and len(listed) < MAX_LISTED:
                listed[value] = (looked_at, row, jpath)
        among = pc.is_in(values, value_set=arrow.texts(list(listed)))
        counts = {
            c["values"].as_py(): c["counts"].as_py() for c in pc.value_counts(values.filter(among))
        }
        severity: Severity = "error" if status in locations.ERRORS else "warning"
        check = "missing-file" if status == locations.MISSING else f"location-{status}"
        for value, (looked_at, row, jpath) in listed.items():
            yield staging.problem(
                severity,
                check,
                locations.describe(status, looked_at, staging.file, staging.roots),
                row=row,
                path=jpath,
                column="file_location",
                value=value,
                count=counts.get(value, 1),
            )
        more = len(rows) - sum(counts.values())
        if more:
            yield staging.problem(
                severity,
                check,
                f"{more:,} more rows have the same problem ({status})",
                column="file_location",
                count=more,
            )


#: The checks of frame files.
FILE_CHECKS: tuple[Check, ...] = (files_found,)

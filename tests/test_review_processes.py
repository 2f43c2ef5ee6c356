"""Many reviewers: four processes review one project at once through one catalog file.

Each process (spawned, like a separate Jupyter kernel) runs a ReviewSession for its own
tier-2 user and records "U" on every scan its queue gives it until nothing is left.
Claims must keep reviewers apart (no scan is decided twice), every decision must be
stored, and each session's refresh() must see everybody's progress.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest
from test_review_support import build_many

from miqa_nb.catalog import Catalog

N = 4


def _review(path: str, user: str, start, done, results) -> None:  # runs in a child process
    from miqa_nb.catalog import Catalog
    from miqa_nb.review.session import ReviewSession
    from miqa_nb.volumes import VolumeCache

    catalog = Catalog(path, retry_seconds=60)
    with VolumeCache(max_bytes=64 << 20) as cache:
        # background=True: decisions are written on the session's own thread, as in a kernel
        session = ReviewSession(catalog, "Q", user, cache=cache, prefetch=1)
        start.wait(60)
        accepted, refused = [], 0
        deadline = time.monotonic() + 60
        while session.key is not None and time.monotonic() < deadline:
            session.flush()  # the reviewer looks at the scan: header, claim, history
            if session.current.state != "unreviewed":  # decided by someone meanwhile
                if not session.next():
                    break
                continue
            session.set_decision("U")
            key = session.key
            if session.submit():
                accepted.append(key)
                if session.message.startswith("decision stored; no more"):
                    break
                continue
            refused += 1  # held by someone else (or the scan was decided meanwhile)
            session.refresh()
            if not session.next():
                break
            time.sleep(0.02)
        session.close()  # writes what was accepted, gives the claims back
        done.wait(60)  # everybody has finished: now each must see all the others' work
        begin = time.monotonic()
        progress = session.refresh()
        results.put((user, accepted, session.unsaved, progress.reviewed, time.monotonic() - begin))


@pytest.mark.slow
def test_four_reviewers_at_once(catalog: Catalog, tmp_path: Path) -> None:
    total = build_many(catalog, tmp_path, experiments=6, scans=3)
    ctx = multiprocessing.get_context("spawn")
    start, done, results = ctx.Barrier(N), ctx.Barrier(N), ctx.Queue()
    users = [f"r{n}" for n in range(N)]
    procs = [
        ctx.Process(target=_review, args=(catalog.location, user, start, done, results))
        for user in users
    ]
    for proc in procs:
        proc.start()
    reports = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0

    decisions = catalog.decisions("Q")
    assert all(unsaved == [] for _, _, unsaved, *_ in reports)
    accepted = sorted(key for _, keys, *_ in reports for key in keys)
    assert accepted == sorted(decisions[["experiment", "scan"]].itertuples(index=False, name=None))
    assert len(decisions) == total  # every scan decided ...
    assert not decisions.duplicated(["experiment", "scan"]).any()  # ... by one reviewer
    assert set(decisions["creator"]) <= set(users) and decisions["creator"].nunique() >= 2
    for user, _, _, seen, _seconds in reports:
        assert seen == total, f"{user} saw {seen} of {total} after refresh"
    assert (catalog.scans("Q")["state"] == "complete").all()
    assert catalog.claims("Q").empty  # closed sessions give their claims back

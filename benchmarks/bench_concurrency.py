"""Benchmark: many processes recording decisions into one catalog file at once.

Usage::

    .venv/bin/python benchmarks/bench_concurrency.py [--procs 8] [--decisions 50] [--keep]
    .venv/bin/python benchmarks/bench_concurrency.py --quick   # 4 processes x 20

A tiny project (a few scans whose frame files exist, as empty ``.nii.gz`` files in a
temporary folder outside the repository) is imported into a fresh catalog, one user per
process is added with a role in the project (tier-1 and tier-2 alternately), and then
``--procs`` processes (multiprocessing, spawn), each with its own
:class:`~miqa_nb.catalog.Catalog` on the same file, each record ``--decisions``
decisions as fast as they can, on overlapping scans.

DuckDB lets one process hold the file at a time; the catalog opens it for each unit of
work and retries while another process holds it. Afterwards the script checks that no
decision was lost (the catalog holds exactly procs x decisions, each process's ids are
there with its creator and note, ids are unique) and prints the p50/p95/max latency of
``record_decision`` and the total throughput. It exits 1 when a decision is lost or a
call failed. The targets are correctness: no decision lost, no call failed; the
latencies and the throughput (against one process alone on a catalog of its own,
measured in the same run) are information.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from _common import against, machine, percentile

PROJECT = "conc"
ADMIN = "admin"
EXPERIMENTS = {"e1": ["s1", "s2", "s3"], "e2": ["s4", "s5"], "e3": ["s6"]}
FRAMES = 2


def make_project(folder: Path) -> Path:
    """Write a tiny import CSV whose frame files exist (empty ``.nii.gz`` files)."""
    import pandas as pd

    from miqa_nb.exchange.formats import MIQA_COLUMNS

    rows = []
    for experiment, scans in EXPERIMENTS.items():
        for scan in scans:
            for frame in range(FRAMES):
                location = f"images/{experiment}/{scan}/f{frame}.nii.gz"
                (folder / location).parent.mkdir(parents=True, exist_ok=True)
                (folder / location).touch()
                rows.append(
                    {
                        "project_name": PROJECT,
                        "experiment_name": experiment,
                        "scan_name": scan,
                        "scan_type": "T1",
                        "frame_number": frame,
                        "file_location": location,
                        "subject_id": f"sub-{experiment}",
                        "session_id": "ses-01",
                    }
                )
    path = folder / "import.csv"
    pd.DataFrame(rows, columns=list(MIQA_COLUMNS)).to_csv(path, index=False)
    return path


def worker(
    index: int,
    user: str,
    tier2: bool,
    catalog: str,
    n: int,
    barrier: Any,
    results: Any,
) -> None:
    """Record ``n`` decisions as ``user``; put ids, latencies and failures on ``results``."""
    out: dict[str, Any] = {"index": index, "user": user, "ids": [], "latencies": [], "errors": []}
    try:
        from miqa_nb.catalog import Catalog

        cat = Catalog(catalog, retry_seconds=120)
        scans = [(e, s) for e, names in EXPERIMENTS.items() for s in names]
        codes = ["U", "UE", "Q?", "UN"] if tier2 else ["U", "Q?"]
        rng = random.Random(index)
        barrier.wait()
        out["start"] = time.time()
        for k in range(n):
            experiment, scan = rng.choice(scans)
            code = rng.choice(codes)
            artifacts = ["ghosting_motion"] if code != "U" and k % 3 == 0 else []
            started = time.perf_counter()
            try:
                new_id = cat.record_decision(
                    PROJECT,
                    experiment,
                    scan,
                    code,
                    by=user,
                    note=f"{user} #{k}",
                    artifacts=artifacts,
                    location=(rng.uniform(-50, 50), 0.0, 12.5) if k % 2 else None,
                )
            except Exception as exc:  # report every failure; the parent decides
                out["errors"].append(f"#{k}: {type(exc).__name__}: {exc}")
                continue
            out["latencies"].append(time.perf_counter() - started)
            out["ids"].append((new_id, k))
        out["end"] = time.time()
    except Exception:
        out["errors"].append(traceback.format_exc())
    results.put(out)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procs", type=int, default=8)
    parser.add_argument("--decisions", type=int, default=50, help="per process")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--quick", action="store_true", help="4 processes x 20 decisions")
    args = parser.parse_args(argv)
    if args.quick:
        args.procs, args.decisions = 4, 20

    folder = Path(tempfile.mkdtemp(prefix="miqa_bench_concurrency_"))
    try:
        csv = make_project(folder)
        print(
            f"bench_concurrency: {args.procs} processes (spawn) x {args.decisions} decisions "
            f"into one catalog; {sum(len(s) for s in EXPERIMENTS.values())} scans shared by "
            f"all (overlapping); each process its own Catalog on the same file; {machine()}"
        )
        # Baseline, same run: one process alone, on a catalog of its own.
        base_cat, _ = setup_catalog(folder / "baseline.duckdb", csv, folder, 1)
        base = run_workers(base_cat, 1, args.decisions)
        base_lat = [s for o in base for s in o["latencies"]]
        base_rate = len(base_lat) / (base[0]["end"] - base[0]["start"])
        print(
            f"baseline, 1 process alone: p50 {percentile(base_lat, 50) * 1e3:.0f} ms, "
            f"p95 {percentile(base_lat, 95) * 1e3:.0f} ms, max {max(base_lat) * 1e3:.0f} ms; "
            f"{base_rate:.1f} decisions/s"
        )
        cat, report = setup_catalog(folder / "catalog.duckdb", csv, folder, args.procs)
        print(f"import of the shared project: {report.summary()}")
        outs = run_workers(cat, args.procs, args.decisions)
        return _check_and_print(cat, outs, args.procs * args.decisions, base_rate)
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def setup_catalog(path: Path, csv: Path, root: Path, n_users: int) -> tuple[Any, Any]:
    """A fresh catalog with the project imported and users w0.. (tier-1/tier-2 alternately)."""
    from miqa_nb.catalog import Catalog

    cat = Catalog(path, data_roots=[root])
    cat.add_user(ADMIN, superuser=True)
    report = cat.import_file(csv, by=ADMIN)
    for i in range(n_users):
        cat.add_user(f"w{i}", by=ADMIN)
        cat.set_role(PROJECT, f"w{i}", "tier2" if i % 2 else "tier1", by=ADMIN)
    return cat, report


def run_workers(cat: Any, procs: int, n: int) -> list[dict[str, Any]]:
    """Start ``procs`` spawned workers at once (a barrier) and collect their results."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(procs)
    results = ctx.Queue()
    workers = [
        ctx.Process(
            target=worker, args=(i, f"w{i}", bool(i % 2), cat.location, n, barrier, results)
        )
        for i in range(procs)
    ]
    for p in workers:
        p.start()
    outs = [results.get(timeout=900) for _ in workers]
    for p in workers:
        p.join(timeout=60)
    return sorted(outs, key=lambda o: o["index"])


def _check_and_print(cat: Any, outs: list[dict[str, Any]], expected: int, base_rate: float) -> int:
    latencies = [s for o in outs for s in o["latencies"]]
    errors = [(o["user"], e) for o in outs for e in o["errors"]]
    started = [o["start"] for o in outs if "start" in o]
    ended = [o["end"] for o in outs if "end" in o]
    wall = max(ended) - min(started) if started and ended else float("nan")

    decisions = cat.decisions(PROJECT)
    by_id = decisions.set_index("id")
    lost: list[str] = []
    for o in outs:
        for new_id, k in o["ids"]:
            if new_id not in by_id.index:
                lost.append(f"{o['user']} #{k}: id {new_id} not in the catalog")
                continue
            found = by_id.loc[new_id]
            if found["creator"] != o["user"] or found["note"] != f"{o['user']} #{k}":
                lost.append(
                    f"{o['user']} #{k}: id {new_id} holds {found['creator']!r} / {found['note']!r}"
                )
    returned = [i for o in outs for i, _ in o["ids"]]
    duplicate_ids = len(returned) - len(set(returned))
    notes = set(decisions["note"])
    missing_notes = [
        f"{o['user']} #{k}"
        for o in outs
        for k in range(len(o["ids"]) + len(o["errors"]))
        if f"{o['user']} #{k}" not in notes
    ]

    print()
    print(f"decisions in the catalog: {len(decisions)} (expected {expected})")
    print(
        f"ids returned: {len(returned)}, unique: {len(set(returned))}; ids not found: {len(lost)}"
    )
    n_lost = len({problem.split(":")[0] for problem in lost} | set(missing_notes))
    print(f"decisions lost or wrong: {n_lost}   {against(n_lost, 0)}")
    print(f"failed calls: {len(errors)}   {against(len(errors), 0)}")
    for user, error in errors[:10]:
        print(f"  {user}: {error.strip().splitlines()[-1]}")
    print(
        f"record_decision latency (information, n={len(latencies)}): p50 {percentile(latencies, 50) * 1e3:.0f} ms, "
        f"p95 {percentile(latencies, 95) * 1e3:.0f} ms, max {max(latencies, default=0) * 1e3:.0f} ms"
    )
    per_proc = ", ".join(
        f"{o['user']} {percentile(o['latencies'], 50) * 1e3:.0f}/{max(o['latencies'], default=0) * 1e3:.0f}"
        for o in outs
    )
    print(f"per process p50/max ms: {per_proc}")
    rate = len(latencies) / wall
    print(
        f"throughput (information): {rate:.1f} decisions/s ({len(latencies)} in {wall:.2f} s), "
        f"{rate / base_rate:.2f}x one process alone"
    )
    ok = (
        len(decisions) == expected
        and not lost
        and not errors
        and not duplicate_ids
        and not missing_notes
    )
    if not ok:
        for problem in (lost + missing_notes)[:20]:
            print(f"  LOST: {problem}")
    print("RESULT:", "OK, no decision lost" if ok else "FAILED: decisions lost or calls failed")
    print(f"load at the end: {machine()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

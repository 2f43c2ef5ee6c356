"""Benchmark: the catalog on PostgreSQL against the DuckDB file, many reviewers at once.

Usage::

    .venv/bin/python benchmarks/bench_scale.py [--procs 32] [--decisions 50]
                                               [--duck-decisions 10] [--rows 1000000]
                                               [--repeat 3] [--quick]

A PostgreSQL server of its own (Debian's, started in a temporary folder on a free
loopback port, as the tests start theirs: ``tests/pg_support.py``) and a DuckDB file,
in the same run:

**Decisions.** ``--procs`` reviewer processes (spawned; each its own
:class:`~miqa_nb.catalog.Catalog`) record decisions as fast as they can on the scans of
one project (``bench_concurrency``'s project and workers): ``--decisions`` each on
PostgreSQL, ``--duck-decisions`` each on the DuckDB file (it takes one writer at a time:
fewer, so that the run ends; its rate is what is compared). Checked: no decision lost
or wrong, none failed. Printed: p50/p95/max latency of ``record_decision`` (target
p95 <= 100 ms on PostgreSQL), throughput on both (target >= 10x the file's), and a
projection of how many reviewers one PostgreSQL server carries at one decision each
10 s, from the server's own CPU time per decision (its processes' user + system time
during the run, over the decisions) and from the throughput reached here.

**A 1M-frame import.** ``bench_import``'s seeded MIQA CSV (``--rows`` frames), imported
by ``Catalog.import_file`` into a fresh PostgreSQL catalog, whole process (interpreter
start and imports included), against PostgreSQL's own ``COPY`` of the same rows (the
experiments, scans, frames and decisions the import wrote, dumped untimed) into a fresh
database of the same schema by one ``psql`` process: target <= 3x. Alternating runs,
medians.

The first view of a frame in object storage is ``bench_storage.py``'s figure (target
1.5x fetching its bytes alone). Every figure is printed beside its target with PASS or
MISS; nothing is asserted.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from _common import Process, against, machine, measure_processes, percentile, row
from bench_concurrency import PROJECT, make_project, run_workers, setup_catalog
from bench_import import ADMIN, REVIEWERS, write_files

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from pg_support import PgServer  # the tests' server, shared

P95_TARGET = 0.100  # seconds
THROUGHPUT_RATIO = 10.0  # x the DuckDB file's
IMPORT_RATIO = 3.0  # x PostgreSQL's COPY of the same rows
EVERY = 10.0  # seconds between one reviewer's decisions, for the projection
TABLES = ("experiments", "scans", "frames", "decisions")


def server_cpu(server: PgServer) -> float:
    """CPU seconds (user + system) the server's processes have used so far."""
    pid = int((server.data / "postmaster.pid").read_text().split()[0])
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def decisions_run(label: str, location: str, csv: Path, root: Path, procs: int, n: int):
    """Run the workers against ``location``; return (figures, problems)."""
    cat, _ = setup_catalog_at(location, csv, root, procs)
    outs = run_workers(cat, procs, n)
    latencies = [s for o in outs for s in o["latencies"]]
    errors = [e for o in outs for e in o["errors"]]
    wall = max(o["end"] for o in outs if "end" in o) - min(o["start"] for o in outs if "start" in o)
    stored = cat.decisions(PROJECT)
    by_id = stored.set_index("id")
    wrong = [
        (o["user"], k)
        for o in outs
        for new_id, k in o["ids"]
        if new_id not in by_id.index
        or by_id.at[new_id, "creator"] != o["user"]
        or by_id.at[new_id, "note"] != f"{o['user']} #{k}"
    ]
    expected = procs * n
    lost = expected - len(stored) + len(wrong)
    print(
        f"{label}: {len(stored)} decisions stored of {expected}; lost or wrong {lost} "
        f"({against(lost, 0)}); failed calls {len(errors)} ({against(len(errors), 0)})"
    )
    for error in errors[:5]:
        print(f"  {error.strip().splitlines()[-1]}")
    rate = len(latencies) / wall
    print(
        f"  record_decision: p50 {percentile(latencies, 50) * 1e3:.0f} ms, "
        f"p95 {percentile(latencies, 95) * 1e3:.0f} ms, max {max(latencies) * 1e3:.0f} ms; "
        f"{rate:.1f} decisions/s ({len(latencies)} in {wall:.1f} s)"
    )
    return {"p95": percentile(latencies, 95), "rate": rate, "n": len(latencies)}, lost + len(errors)


def setup_catalog_at(location: str, csv: Path, root: Path, procs: int) -> tuple[Any, Any]:
    return setup_catalog(location, csv, root, procs)  # type: ignore[arg-type]


IMPORT = """
from miqa_nb.catalog import Catalog
catalog = Catalog(ARGS["catalog"], data_roots=[ARGS["root"]])
report = catalog.import_file(ARGS["csv"], by=ARGS["by"])
FACTS["errors"] = len(report.errors)
FACTS["counts"] = report.counts
"""

PSQL_COPY = """
import subprocess
script = "".join(
    f"\\\\copy {table} FROM '{path}' WITH (FORMAT csv)\\n" for table, path in ARGS["files"]
)
subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", ARGS["url"]], input=script,
               text=True, check=True)
"""


def import_run(server: PgServer, folder: Path, rows: int, repeat: int) -> bool:
    """Import ``rows`` frames into PostgreSQL against COPY of the same rows; True: PASS."""
    csv, _ = write_files(folder, rows, local_files=min(rows, 10_000))
    print(f"\nimport of {rows:,} frames ({csv.stat().st_size / 1e6:.0f} MB CSV) into PostgreSQL")

    def fresh_catalog(args: dict[str, Any]) -> None:
        from miqa_nb.catalog import Catalog

        args["catalog"] = server.new_database()
        made = Catalog(args["catalog"])
        made.add_user(ADMIN, superuser=True)
        for reviewer in REVIEWERS:  # the file's decisions are credited to them
            made.add_user(str(reviewer), by=ADMIN)

    # The rows the import writes, dumped once (untimed) for COPY.
    first: dict[str, Any] = {}
    fresh_catalog(first)
    from miqa_nb.catalog import Catalog

    Catalog(first["catalog"], data_roots=[str(folder)]).import_file(csv, by=ADMIN)
    files = []
    for table in TABLES:
        path = folder / f"{table}.copy.csv"
        subprocess.run(
            ["psql", "-q", first["catalog"], "-c", f"\\copy {table} TO '{path}' WITH (FORMAT csv)"],
            check=True,
        )
        files.append((table, str(path)))

    def fresh_copy(args: dict[str, Any]) -> None:
        fresh_catalog(args)
        args["url"] = args["catalog"]

    base = Process(
        "COPY of the same rows (psql)",
        PSQL_COPY,
        {"files": files},
        prepare=fresh_copy,
    )
    imp = Process(
        "Catalog.import_file into PostgreSQL",
        IMPORT,
        {"csv": str(csv), "root": str(folder), "by": ADMIN},
        prepare=fresh_catalog,
    )
    base_fig, imp_fig = measure_processes([base, imp], repeat)
    print(row(base_fig))
    print(row(imp_fig, base_fig, IMPORT_RATIO))
    print(f"  the import's counts: {imp_fig.runs[-1]['counts']}")
    return imp_fig.median / base_fig.median <= IMPORT_RATIO


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procs", type=int, default=32)
    parser.add_argument("--decisions", type=int, default=50, help="per process, PostgreSQL")
    parser.add_argument("--duck-decisions", type=int, default=10, help="per process, DuckDB")
    parser.add_argument("--rows", type=int, default=1_000_000, help="frames to import")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="8 x 20, 4 x 5, 100,000 rows")
    args = parser.parse_args(argv)
    if args.quick:
        args.procs, args.decisions, args.duck_decisions, args.rows = 8, 20, 5, 100_000
    folder = Path(tempfile.mkdtemp(prefix="miqa_bench_scale_"))
    server = PgServer()
    try:
        print(f"bench_scale: {machine()}; PostgreSQL on port {server.port}")
        csv = make_project(folder)
        duck, duck_bad = decisions_run(
            f"DuckDB file, {args.procs} processes x {args.duck_decisions}",
            str(folder / "catalog.duckdb"),
            csv,
            folder,
            args.procs,
            args.duck_decisions,
        )
        url = server.new_database()
        cpu_before = server_cpu(server)
        pg, pg_bad = decisions_run(
            f"PostgreSQL, {args.procs} processes x {args.decisions}",
            url,
            csv,
            folder,
            args.procs,
            args.decisions,
        )
        # The set-up's work (import, users) is in the server's time too: small beside
        # the decisions, and it only makes the projection more cautious.
        per_decision = (server_cpu(server) - cpu_before) / pg["n"]
        ratio = pg["rate"] / duck["rate"]
        print(f"\nPostgreSQL p95 {pg['p95'] * 1e3:.0f} ms: {against(pg['p95'] * 1e3, 100, ' ms')}")
        print(
            f"throughput {pg['rate']:.1f}/s against the file's {duck['rate']:.1f}/s: "
            f"{ratio:.1f}x, {against(ratio, THROUGHPUT_RATIO, 'x', at_least=True)}"
        )
        print(
            f"projection: the server spent {per_decision * 1e3:.2f} ms of CPU per decision; "
            f"at one decision each {EVERY:g} s a reviewer costs {per_decision / EVERY * 100:.3f}% "
            f"of a core: one core carries about {EVERY / per_decision:,.0f} reviewers "
            f"({psutil.cpu_count()} cores here: about {psutil.cpu_count() * EVERY / per_decision:,.0f}). "
            f"Reached in this run (clients on the same {psutil.cpu_count()} cores): "
            f"{pg['rate']:.0f} decisions/s, i.e. {pg['rate'] * EVERY:,.0f} reviewers"
        )
        imported = import_run(server, folder, args.rows, args.repeat)
        ok = (
            not duck_bad
            and not pg_bad
            and pg["p95"] <= P95_TARGET
            and ratio >= THROUGHPUT_RATIO
            and imported
        )
        print(f"\nbench_scale: {'PASS' if ok else 'MISS'} (first view from object storage: "
              "benchmarks/bench_storage.py)")  # fmt: skip
        return 0 if not (duck_bad or pg_bad) else 1
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    start = time.perf_counter()
    code = main(sys.argv[1:])
    print(f"({time.perf_counter() - start:.0f} s)")
    sys.exit(code)

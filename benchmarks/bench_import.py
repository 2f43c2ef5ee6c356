"""Benchmark: import, validate and export a large MIQA CSV (1,000,000 frames by default).

Usage::

    .venv/bin/python benchmarks/bench_import.py [--rows N] [--local-files M] [--repeat K]
                                                [--quick] [--keep]

A seeded CSV of ``N`` rows (``N / 10`` scans of 10 frames, all 16 MIQA columns, in
MIQA's order) is written to a temporary folder outside the repository. Its first ``M``
frames (100,000 by default) are files that exist on disk (empty ``.nii.gz`` files in a
folder per scan under ``images/`` beside the CSV, so resolving the locations costs what
it costs on a real disk: a folder's real path, its listing, every file found in it); the
others are ``s3://`` objects (kept as given). No frame file is missing.

**The import, as a person waits for it**: whole processes (interpreter start and imports
included) on the same file, run alternately ``K`` times each, medians:

- the baseline: DuckDB's bare load of the file into a table in a DuckDB file,
  ``CREATE TABLE AS SELECT * FROM read_csv(...)``, with no check at all;
- ``Catalog.import_file`` (a global import by a superuser) into a fresh catalog file
  (copied, untimed, from one that holds only the superuser); target <= 2x the baseline;
- for information: ``pandas.read_csv`` of the file (pandas 3 reads on several threads
  into Arrow strings; a reader, not an import), and the start-up alone of each side
  (``import duckdb``; ``from miqa_nb.catalog import Catalog``).

**The rest**, each timed inside a fresh process around the work only (``K`` runs):

- ``miqa_nb.exchange.validation.validate`` of the file (what ``miqa-nb validate`` does);
- ``Catalog.export_file`` to CSV, against two baselines writing the same rows (read once
  from the exported CSV, untimed): DuckDB's ``COPY ... TO`` of a table holding them (the
  limit) and ``DataFrame.to_csv`` (target <= 3x);
- ``Catalog.export_file`` to JSON.

And the peak memory (RSS high-water mark) of the import's process: target <= 1.5 GB.
Every figure is printed beside its target with PASS or MISS; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _common import (
    Figure,
    Process,
    against,
    machine,
    mb,
    measure,
    measure_processes,
    row,
    stage_main,
    timed,
)

SCRIPT = os.path.abspath(__file__)
FRAMES_PER_SCAN = 10
SEED = 20240611
IMPORT_RATIO = 2.0  # x DuckDB's bare load, whole process against whole process
EXPORT_RATIO = 3.0  # x DataFrame.to_csv
PEAK_LIMIT = 1.5e9
ADMIN = "admin"
S3_PREFIX = "s3://miqa-bench-bucket/"

PROJECTS = np.array(["p1", "p2", "p3", "p4"])
PROJECT_WEIGHTS = [0.4, 0.3, 0.2, 0.1]
# MIQA's scan types, plus lower-case spellings and common aliases (t1, t2w, bold...).
MIQA_TYPES = ["T1", "T2", "FMRI", "DTI", "DWI", "PD", "MRA", "ncanda-mprage-v1"]
SCAN_TYPES = np.array([*MIQA_TYPES, "t1", "t2", "fmri", "T1w", "bold", "mprage"])
SCAN_TYPE_WEIGHTS = np.array([20, 15, 10, 5, 5, 3, 2, 2, 10, 8, 6, 6, 4, 4], dtype=float)
EXPERIMENT_NOTES = np.array(
    [
        "",
        "",
        "Routine follow-up",
        "Subject moved during the second run, repeat requested",
        'Patient reported "claustrophobia", scan stopped early',
        "Contrast given; see protocol v2, section 3",
        'Coil upgrade, "32ch" head coil from this session on',
    ]
)
DECISIONS = np.array(["U", "UE", "Q?", "UN"])
DECISION_WEIGHTS = [0.5, 0.15, 0.2, 0.15]
REVIEWERS = np.array(["ana", "bo", "chen", "dita", "eli"])
DECISION_NOTES = np.array(
    [
        "motion in the last volumes",
        'ghosting, "mild"',
        "wrap-around at the nose, frontal lobe fine",
        'lesion near the ventricle; "check with PI"',
    ]
)
ARTIFACT_SETS = np.array(
    [
        "lesions;ghosting_motion",
        "ghosting_motion",
        "inhomogeneity",
        "swap_wraparound;partial_brain_coverage",
        "susceptibility_metal",
        "",
    ]
)


# ----------------------------------------------------------------- the file


def make_table(n_rows: int, local_files: int, seed: int = SEED) -> pd.DataFrame:
    """A realistic MIQA import table of ``n_rows`` frames (10 per scan), seeded; the
    first ``local_files`` frames are files under ``images/`` beside the file, the others
    ``s3://`` objects."""
    from miqa_nb.exchange.formats import MIQA_COLUMNS

    rng = np.random.default_rng(seed)
    n_scans = max(1, n_rows // FRAMES_PER_SCAN)
    # Experiments of 3-7 scans (about 5).
    sizes = rng.integers(3, 8, size=n_scans)
    n_exp = int(np.searchsorted(np.cumsum(sizes), n_scans)) + 1
    sizes = sizes[:n_exp]
    sizes[-1] -= sizes.sum() - n_scans
    exp_of_scan = np.repeat(np.arange(n_exp), sizes)

    exp_project = np.sort(rng.choice(len(PROJECTS), size=n_exp, p=PROJECT_WEIGHTS))
    exp_names = pd.Series(np.arange(n_exp)).map("e{:06d}".format).to_numpy()
    exp_subject = pd.Series(rng.integers(0, n_exp // 2 + 1, n_exp)).map("sub-{:05d}".format)
    exp_session = pd.Series(rng.integers(1, 4, n_exp)).map("ses-{:02d}".format)
    exp_note = EXPERIMENT_NOTES[rng.integers(0, len(EXPERIMENT_NOTES), n_exp)]

    project = PROJECTS[exp_project[exp_of_scan]]
    experiment = exp_names[exp_of_scan]
    scan = pd.Series(np.arange(n_scans)).map("s{:06d}".format).to_numpy()
    weights = SCAN_TYPE_WEIGHTS / SCAN_TYPE_WEIGHTS.sum()
    scan_type = SCAN_TYPES[rng.choice(len(SCAN_TYPES), size=n_scans, p=weights)]
    link = (
        "https://xnat.example.org/data/projects/" + pd.Series(project) + "/experiments/"
        + experiment + "/scans/" + scan
    )  # fmt: skip

    # A decision on half of the scans (the same on all the scan's rows).
    decided = rng.random(n_scans) < 0.5
    code = np.where(decided, DECISIONS[rng.choice(4, size=n_scans, p=DECISION_WEIGHTS)], "")
    usable = code == "U"
    creator = np.where(decided, REVIEWERS[rng.integers(0, len(REVIEWERS), n_scans)], "")
    note = np.where(
        decided & (~usable | (rng.random(n_scans) < 0.2)),
        DECISION_NOTES[rng.integers(0, len(DECISION_NOTES), n_scans)],
        "",
    )
    seconds = rng.integers(0, 3 * 365 * 86400, n_scans)
    created = np.datetime_as_string(np.datetime64("2021-01-01T08:00:00") + seconds, unit="s")
    created = np.where(decided, np.char.replace(created.astype(str), "T", " "), "")
    artifacts = np.where(
        decided & ~usable, ARTIFACT_SETS[rng.integers(0, len(ARTIFACT_SETS), n_scans)], ""
    )
    ijk = rng.normal(0, 40, (n_scans, 3)).round(1)
    location = (
        "i=" + pd.Series(ijk[:, 0]).astype(str) + ";j=" + pd.Series(ijk[:, 1]).astype(str)
        + ";k=" + pd.Series(ijk[:, 2]).astype(str)
    )  # fmt: skip
    location = np.where(decided & (rng.random(n_scans) < 0.6), location, "")

    per_scan = {
        "project_name": project,
        "experiment_name": experiment,
        "scan_name": scan,
        "scan_type": scan_type,
        "experiment_notes": exp_note[exp_of_scan],
        "subject_id": exp_subject.to_numpy()[exp_of_scan],
        "session_id": exp_session.to_numpy()[exp_of_scan],
        "scan_link": np.asarray(link, dtype=object),
        "last_decision": code,
        "last_decision_creator": creator,
        "last_decision_note": note,
        "last_decision_created": created,
        "identified_artifacts": artifacts,
        "location_of_interest": np.asarray(location, dtype=object),
    }
    table = pd.DataFrame(
        {k: np.repeat(np.asarray(v, dtype=object), FRAMES_PER_SCAN) for k, v in per_scan.items()}
    )
    table["frame_number"] = np.tile(np.arange(FRAMES_PER_SCAN), n_scans)
    key = (
        table["project_name"] + "/" + table["experiment_name"] + "/" + table["scan_name"]
        + "/f" + table["frame_number"].astype(str) + ".nii.gz"
    )  # fmt: skip
    local = np.arange(len(table)) < local_files
    table["file_location"] = np.where(local, "images/" + key, S3_PREFIX + key)
    return table[list(MIQA_COLUMNS)]


def write_files(folder: Path, n_rows: int, local_files: int) -> tuple[Path, int]:
    """Write the import CSV and its local frame files; return (CSV path, files made)."""
    table = make_table(n_rows, local_files)
    path = folder / "import.csv"
    table.to_csv(path, index=False, lineterminator="\n")
    made = 0
    for location in table["file_location"].iloc[:local_files]:
        target = folder / location
        if made % FRAMES_PER_SCAN == 0:
            target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()
        made += 1
    return path, made


# ---------------------------------------------- whole processes (python -c programs)

DUCKDB_LOAD = """
import duckdb
con = duckdb.connect(ARGS["db"])
con.execute(f"CREATE TABLE frames AS SELECT * FROM read_csv('{ARGS['csv']}')")
con.close()
"""

IMPORT = """
import time
from miqa_nb.catalog import Catalog
catalog = Catalog(ARGS["catalog"], data_roots=[ARGS["root"]])
start = time.perf_counter()
report = catalog.import_file(ARGS["csv"], by=ARGS["by"])
FACTS["import_file"] = time.perf_counter() - start
FACTS["errors"] = len(report.errors)
FACTS["warnings"] = {}
for problem in report.warnings:
    FACTS["warnings"][problem.check] = FACTS["warnings"].get(problem.check, 0) + problem.count
FACTS["counts"] = report.counts
"""

READ_CSV = """
import pandas as pd
FACTS["rows"] = len(pd.read_csv(ARGS["csv"]))
"""

DUCKDB_START = "import duckdb\n"
CATALOG_START = "from miqa_nb.catalog import Catalog\n"


def fresh(*paths: str) -> None:
    """Remove the DuckDB files a run is about to create (and their WAL)."""
    for path in paths:
        for stale in (Path(path), Path(path + ".wal")):
            stale.unlink(missing_ok=True)


def import_processes(folder: Path, csv: str) -> list[Process]:
    """The whole-process contenders, baseline first."""
    from miqa_nb.catalog import Catalog

    template = folder / "template.duckdb"
    cat = Catalog(template)
    cat.add_user(ADMIN, superuser=True)
    for reviewer in REVIEWERS:  # an import credits decisions to the catalog's users only
        cat.add_user(str(reviewer), by=ADMIN)

    def new_catalog(args: dict[str, Any]) -> None:
        fresh(args["catalog"])
        shutil.copyfile(template, args["catalog"])

    return [
        Process(
            "DuckDB bare load (baseline)",
            DUCKDB_LOAD,
            {"csv": csv, "db": str(folder / "load.duckdb")},
            lambda args: fresh(args["db"]),
        ),
        Process(
            "import (global, superuser)",
            IMPORT,
            {
                "csv": csv,
                "root": str(folder),
                "by": ADMIN,
                "catalog": str(folder / "catalog-{i}.duckdb"),
            },
            new_catalog,
        ),
        Process("pandas.read_csv (information)", READ_CSV, {"csv": csv}),
        Process("start-up: import duckdb", DUCKDB_START),
        Process("start-up: from miqa_nb.catalog import", CATALOG_START),
    ]


# ------------------------------------------------------------------- stages
# Each runs in its own interpreter (see _common.stage_main) and times only the work.


def stage_validate(csv: str, root: str) -> dict[str, Any]:
    from miqa_nb.exchange.validation import check

    seconds, report = timed(lambda: check(csv, roots=[root]))
    return {"seconds": seconds, "errors": len(report.errors)}


def stage_export(catalog: str, out: str) -> dict[str, Any]:
    from miqa_nb.catalog import Catalog

    cat = Catalog(catalog)
    seconds, _ = timed(lambda: cat.export_file(out, by=ADMIN))
    return {"seconds": seconds, "bytes": os.path.getsize(out)}


def stage_to_csv(exported: str, out: str) -> dict[str, Any]:
    df = pd.read_csv(exported, dtype=str, keep_default_na=False)  # untimed
    seconds, _ = timed(lambda: df.to_csv(out, index=False))
    return {"seconds": seconds, "rows": len(df), "bytes": os.path.getsize(out)}


def stage_copy(exported: str, out: str) -> dict[str, Any]:
    """DuckDB's ``COPY`` of a table holding the exported rows: the limit of an export."""
    import duckdb

    con = duckdb.connect()
    con.execute(  # untimed: the rows the export wrote, as text
        f"CREATE TABLE rows AS SELECT * FROM read_csv('{exported}', all_varchar = true)"
    )
    seconds, _ = timed(lambda: con.execute(f"COPY rows TO '{out}' (HEADER)"))
    return {"seconds": seconds, "bytes": os.path.getsize(out)}


STAGES = {
    "validate": stage_validate,
    "export": stage_export,
    "to_csv": stage_to_csv,
    "copy": stage_copy,
}


# ------------------------------------------------------------------- parent


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--local-files", type=int, default=None,
                        help="frames that are files on disk (default: a tenth of the rows)")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="100,000 rows, 3 repeats")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.repeat = 100_000, 3
    local_files = min(args.rows, args.local_files or args.rows // 10)

    folder = Path(tempfile.mkdtemp(prefix="miqa_bench_import_"))
    try:
        seconds, (csv, made) = timed(lambda: write_files(folder, args.rows, local_files))
        csv_s = str(csv)
        print(
            f"bench_import: {args.rows:,} rows ({args.rows // FRAMES_PER_SCAN:,} scans x "
            f"{FRAMES_PER_SCAN} frames), {args.repeat} repeat(s) each; {machine()}"
        )
        print(f"file: {csv} ({mb(csv.stat().st_size)}, seed {SEED}); {made:,} frames are "
              f"files on disk, {args.rows - made:,} s3:// objects (written in {seconds:.1f} s)")  # fmt: skip
        print(", ".join(f"{name} {version(name)}" for name in ("pandas", "pyarrow", "duckdb")))
        print(flush=True)

        k = args.repeat
        base, imp, read, duck_start, cat_start = measure_processes(
            import_processes(folder, csv_s), k
        )
        val = measure(SCRIPT, "validate (in process)", "validate", k, csv=csv_s, root=str(folder))
        catalog = str(folder / f"catalog-{k - 1}.duckdb")
        exported = str(folder / "export.csv")
        exp_csv = measure(SCRIPT, "export CSV (in process)", "export", k, catalog=catalog,
                          out=exported)  # fmt: skip
        copy = measure(SCRIPT, "DuckDB COPY (limit)", "copy", k, exported=exported,
                       out=str(folder / "copy.csv"))  # fmt: skip
        to_csv = measure(SCRIPT, "DataFrame.to_csv (baseline)", "to_csv", k, exported=exported,
                         out=str(folder / "to_csv.csv"))  # fmt: skip
        exp_json = measure(SCRIPT, "export JSON (in process)", "export", k, catalog=catalog,
                           out=str(folder / "export.json"))  # fmt: skip

        print(f"the import, whole processes (start to exit), alternating; {machine()}")
        print(row(base))
        print(row(imp, base, IMPORT_RATIO))
        print(row(read, base))
        print(row(duck_start))
        print(row(cat_start))
        inner = Figure("  of which import_file itself", [{**r, "seconds": r["import_file"]}
                                                           for r in imp.runs])  # fmt: skip
        print(row(inner))
        print(f"  import / pandas.read_csv (information): {imp.median / read.median:5.2f}x")
        facts = imp.runs[-1]
        print(
            f"  import report: {facts['errors']} errors, warnings {facts['warnings'] or 'none'}"
            f"; counts {facts['counts']}"
        )
        print()
        print("in process, around the work only:")
        print(row(val))
        print(row(copy))
        print(row(to_csv))
        print(row(exp_csv, to_csv, EXPORT_RATIO))
        print(f"  export CSV / DuckDB COPY (the limit): {exp_csv.median / copy.median:5.2f}x")
        print(row(exp_json, to_csv))
        print(
            f"export CSV {mb(exp_csv.runs[-1]['bytes'])} ({to_csv.runs[-1]['rows']:,} rows), "
            f"export JSON {mb(exp_json.runs[-1]['bytes'])}"
        )
        print()
        _summary(base, imp, to_csv, exp_csv)
        print(f"load at the end: {machine()}")
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


def _summary(base: Figure, imp: Figure, to_csv: Figure, exp_csv: Figure) -> None:
    print("targets:")
    r = imp.median / base.median
    print(
        f"  import / DuckDB bare load (whole processes) {r:8.2f}x  {against(r, IMPORT_RATIO, 'x')}"
    )
    r = exp_csv.median / to_csv.median
    print(
        f"  CSV export / DataFrame.to_csv              {r:8.2f}x  {against(r, EXPORT_RATIO, 'x')}"
    )
    peak = imp.peak_rss / 1e9
    print(
        f"  peak memory of the import's process        {peak:6.2f} GB  {against(peak, PEAK_LIMIT / 1e9, ' GB')}"
    )


if __name__ == "__main__":
    if "--stage" in sys.argv:
        stage_main(STAGES, sys.argv[1:])
    else:
        started = time.perf_counter()
        code = main(sys.argv[1:])
        print(f"(benchmark took {time.perf_counter() - started:.0f} s)")
        sys.exit(code)

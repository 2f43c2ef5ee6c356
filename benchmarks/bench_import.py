"""Benchmark: validate, import and export a large MIQA CSV (1,000,000 frames by default).

Usage::

    .venv/bin/python benchmarks/bench_import.py [--rows N] [--repeat K] [--quick] [--keep]

A seeded CSV of ``N`` rows (``N / 10`` scans of 10 frames, all 16 MIQA columns, in
MIQA's order) is written to a temporary folder outside the repository. Each stage then
runs ``K`` times, every run in a fresh interpreter (see ``_common.py``), and the median
is printed with its ratio to a baseline measured in the same run:

- ``pandas.read_csv`` of the file: the import baseline;
- the floor of any import: pyarrow reads the file and its frame rows are inserted into
  a fresh DuckDB file (names, number, location), with no check at all;
- ``miqa_nb.exchange.validation.validate`` of the file;
- ``Catalog.import_file`` (global import by a superuser) into a fresh catalog;
- ``Catalog.export_file`` to CSV, against ``DataFrame.to_csv`` of the same rows (read
  once from the exported CSV, untimed): the export baseline;
- ``Catalog.export_file`` to JSON;
- the peak memory (RSS high-water mark) of each stage's process.

Targets (from the issue): import <= 3x read_csv; CSV export <= 3x to_csv; peak memory of
the import <= 1.5 GB. Each line says PASS or MISS; nothing is asserted.

The frame files named by ``file_location`` do not exist: validation reports each as a
``missing-file`` warning and the import proceeds (warnings do not stop an import).
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
from _common import Figure, mb, measure, row, stage_main, timed, verdict

SCRIPT = os.path.abspath(__file__)
FRAMES_PER_SCAN = 10
SEED = 20240611
IMPORT_RATIO = 3.0
EXPORT_RATIO = 3.0
PEAK_LIMIT = 1.5e9
ADMIN = "admin"

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


def make_table(n_rows: int, seed: int = SEED) -> pd.DataFrame:
    """A realistic MIQA import table of ``n_rows`` frames (10 per scan), seeded."""
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
    table["file_location"] = (
        "images/" + table["project_name"] + "/" + table["experiment_name"] + "/"
        + table["scan_name"] + "/f" + table["frame_number"].astype(str) + ".nii.gz"
    )  # fmt: skip
    return table[list(MIQA_COLUMNS)]


def write_csv(folder: Path, n_rows: int) -> Path:
    path = folder / "import.csv"
    make_table(n_rows).to_csv(path, index=False, lineterminator="\n")
    return path


# ------------------------------------------------------------------- stages
# Each runs in its own interpreter (see _common.stage_main) and times only the work.


def stage_read_csv(csv: str) -> dict[str, Any]:
    seconds, df = timed(lambda: pd.read_csv(csv))
    return {"seconds": seconds, "rows": len(df)}


def stage_validate(csv: str, root: str) -> dict[str, Any]:
    from miqa_nb.exchange.validation import validate

    def work() -> Any:
        staged = validate(csv, roots=[root])
        staged.close()
        return staged.report

    seconds, report = timed(work)
    return {"seconds": seconds, **_report_facts(report)}


def stage_import(csv: str, root: str, catalog: str) -> dict[str, Any]:
    from miqa_nb.catalog import Catalog

    for stale in (Path(catalog), Path(catalog + ".wal")):
        stale.unlink(missing_ok=True)
    cat = Catalog(catalog, data_roots=[root])
    cat.add_user(ADMIN, superuser=True)
    seconds, report = timed(lambda: cat.import_file(csv, by=ADMIN))
    facts = _report_facts(report)
    facts["catalog_bytes"] = os.path.getsize(catalog)
    return {"seconds": seconds, **facts}


def stage_floor(csv: str, catalog: str) -> dict[str, Any]:
    """What any import must do, and nothing else: read every row, write every frame row
    (names, number, an absolute path) into a fresh DuckDB file, commit. No checks."""
    import duckdb
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    for stale in (Path(catalog), Path(catalog + ".wal")):
        stale.unlink(missing_ok=True)
    con = duckdb.connect(catalog)
    con.execute(
        "CREATE TABLE frames (project VARCHAR, experiment VARCHAR, scan VARCHAR, "
        "frame_number INTEGER, location VARCHAR)"
    )

    def work() -> None:
        table = pa_csv.read_csv(
            csv, convert_options=pa_csv.ConvertOptions(strings_can_be_null=False)
        )
        folder = os.path.dirname(os.path.abspath(csv)) + "/"
        rows = pa.table(
            {
                "project": table["project_name"],
                "experiment": table["experiment_name"],
                "scan": table["scan_name"],
                "frame_number": pc.cast(table["frame_number"], pa.int32()),
                "location": table["file_location"],
            }
        )
        con.register("rows", rows)
        con.execute("BEGIN")
        con.execute(
            f"INSERT INTO frames SELECT project, experiment, scan, frame_number, "
            f"'{folder}' || location FROM rows"
        )
        con.execute("COMMIT")
        con.close()

    seconds, _ = timed(work)
    return {"seconds": seconds}


def stage_export(catalog: str, out: str) -> dict[str, Any]:
    from miqa_nb.catalog import Catalog

    cat = Catalog(catalog)
    seconds, _ = timed(lambda: cat.export_file(out, by=ADMIN))
    return {"seconds": seconds, "bytes": os.path.getsize(out)}


def stage_to_csv(exported: str, out: str) -> dict[str, Any]:
    df = pd.read_csv(exported)  # untimed: the rows the export wrote
    seconds, _ = timed(lambda: df.to_csv(out, index=False))
    return {"seconds": seconds, "rows": len(df), "bytes": os.path.getsize(out)}


def _report_facts(report: Any) -> dict[str, Any]:
    missing = sum(p.count for p in report.warnings if p.check == "missing-file")
    return {
        "errors": len(report.errors),
        "warnings": sum(p.count for p in report.warnings),
        "missing_files": missing,
        "counts": report.counts,
    }


STAGES = {
    "read_csv": stage_read_csv,
    "floor": stage_floor,
    "validate": stage_validate,
    "import": stage_import,
    "export": stage_export,
    "to_csv": stage_to_csv,
}


# ------------------------------------------------------------------- parent


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100,000 rows, 1 repeat")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.repeat = 100_000, 1

    folder = Path(tempfile.mkdtemp(prefix="miqa_bench_import_"))
    root = str(folder)
    try:
        seconds, csv = timed(lambda: write_csv(folder, args.rows))
        csv_s = str(csv)
        print(
            f"bench_import: {args.rows:,} rows ({args.rows // FRAMES_PER_SCAN:,} scans x "
            f"{FRAMES_PER_SCAN} frames), {args.repeat} repeat(s), each run in a fresh process; "
            f"medians"
        )
        print(f"file: {csv} ({mb(csv.stat().st_size)}, written in {seconds:.1f} s, seed {SEED})")
        # The baseline depends on it: pandas 3 reads strings into Arrow, on several threads.
        print(", ".join(f"{name} {version(name)}" for name in ("pandas", "pyarrow", "duckdb")))
        print(
            "note: the frame files do not exist; validation reports them as missing-file "
            "warnings and the import proceeds"
        )
        print(flush=True)

        k = args.repeat
        read = measure(SCRIPT, "pandas.read_csv (baseline)", "read_csv", k, csv=csv_s)
        val = measure(SCRIPT, "validate", "validate", k, csv=csv_s, root=root)
        floor = measure(SCRIPT, "floor: read + write frames, no checks", "floor", k, csv=csv_s,
                        catalog=str(folder / "floor.duckdb"))  # fmt: skip
        catalog = str(folder / "catalog-{i}.duckdb")
        imp = measure(SCRIPT, "import (global, superuser)", "import", k, csv=csv_s, root=root,
                      catalog=catalog)  # fmt: skip
        last_catalog = str(folder / f"catalog-{k - 1}.duckdb")
        exported = str(folder / "export.csv")
        exp_csv = measure(SCRIPT, "export CSV", "export", k, catalog=last_catalog, out=exported)
        to_csv = measure(SCRIPT, "DataFrame.to_csv (baseline)", "to_csv", k, exported=exported,
                         out=str(folder / "to_csv.csv"))  # fmt: skip
        exp_json = measure(SCRIPT, "export JSON", "export", k, catalog=last_catalog,
                           out=str(folder / "export.json"))  # fmt: skip

        facts = imp.runs[-1]
        print(row(read))
        print(row(floor, read))
        print(row(val, read))
        print(row(imp, read, IMPORT_RATIO))
        print(row(to_csv))
        print(row(exp_csv, to_csv, EXPORT_RATIO))
        print(row(exp_json, to_csv))
        print()
        peak = imp.peak_rss
        print(
            f"peak memory of the import: {mb(peak)} (process RSS before the import "
            f"{mb(imp.rss_start)}; read_csv's process peaks at {mb(read.peak_rss)})   "
            f"target <= {mb(PEAK_LIMIT)}: {verdict(peak <= PEAK_LIMIT)}"
        )
        print(
            f"import report: {facts['errors']} errors, {facts['warnings']:,} warnings "
            f"({facts['missing_files']:,} missing-file, as expected); counts {facts['counts']}"
        )
        print(
            f"catalog file {mb(facts['catalog_bytes'])}; export CSV "
            f"{mb(exp_csv.runs[-1]['bytes'])} ({to_csv.runs[-1]['rows']:,} rows), "
            f"export JSON {mb(exp_json.runs[-1]['bytes'])}"
        )
        _summary(read, imp, to_csv, exp_csv, peak)
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


def _summary(read: Figure, imp: Figure, to_csv: Figure, exp_csv: Figure, peak: int) -> None:
    print()
    print("targets:")
    r = imp.median / read.median
    print(f"  import <= {IMPORT_RATIO:g}x read_csv    {r:5.2f}x     {verdict(r <= IMPORT_RATIO)}")
    r = exp_csv.median / to_csv.median
    print(f"  CSV export <= {EXPORT_RATIO:g}x to_csv  {r:5.2f}x     {verdict(r <= EXPORT_RATIO)}")
    print(f"  import peak <= {mb(PEAK_LIMIT)}    {mb(peak):>8}  {verdict(peak <= PEAK_LIMIT)}")


if __name__ == "__main__":
    if "--stage" in sys.argv:
        stage_main(STAGES, sys.argv[1:])
    else:
        started = time.perf_counter()
        code = main(sys.argv[1:])
        print(f"(benchmark took {time.perf_counter() - started:.0f} s)")
        sys.exit(code)

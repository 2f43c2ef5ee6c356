"""Helpers shared by the benchmark scripts: stages in fresh subprocesses, whole-process
timings, medians, ratios, targets.

Two ways to time a piece of work in a fresh interpreter:

- **stages**: a benchmark script registers its stages (plain functions that do their
  set-up, time the work with :func:`time.perf_counter` and return ``{"seconds": ...}``
  plus anything worth printing) and calls :func:`stage_main` when started with
  ``--stage``; :func:`measure` runs each repeat with :func:`run_stage`. Times are
  measured inside the child, around the work only (not interpreter start-up or imports).
- **whole processes**: :func:`measure_processes` runs short ``python -c`` programs
  (:class:`Process`) one after the other, alternating, and times each from spawn to
  exit, interpreter start and imports included: what a person waits for.

Either way each child reports its memory high-water mark (``VmHWM``, see
:func:`peak_rss`), so one stage's peak or warm caches never hide another's.

These machines are noisy: figures are medians of the repeats, and each is compared with
a baseline measured in the same run; :func:`machine` says how loaded the machine was.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

MARKER = "BENCH_RESULT "


# ----------------------------------------------------------------- child side


def stage_main(stages: dict[str, Callable[..., dict[str, Any]]], argv: Sequence[str]) -> None:
    """Run one stage (``--stage NAME --stage-args JSON``) and print its result line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--stage", required=True, choices=sorted(stages))
    parser.add_argument("--stage-args", default="{}")
    args = parser.parse_args(argv)
    result = stages[args.stage](**json.loads(args.stage_args))
    result["peak_rss"] = peak_rss()
    sys.stdout.write(MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()


def peak_rss() -> int:
    """The resident set size's high-water mark of this process since it started, in bytes.

    Read from ``VmHWM`` in ``/proc/self/status``, not from ``ru_maxrss``: Linux carries
    ``ru_maxrss`` over from the parent at fork and keeps it across exec, so a child of a
    parent holding 800 MB reports at least 800 MB whatever it does itself.
    """
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``fn`` once; return (seconds, its result)."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


# ---------------------------------------------------------------- parent side


@dataclass
class Figure:
    """The repeats of one stage."""

    name: str
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def seconds(self) -> list[float]:
        return [r["seconds"] for r in self.runs]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def peak_rss(self) -> int:
        """Highest high-water mark over the repeats, in bytes."""
        return max(r["peak_rss"] for r in self.runs)


def run_stage(script: str, stage: str, **kwargs: Any) -> dict[str, Any]:
    """Run ``script --stage stage`` in a fresh interpreter and return its result."""
    cmd = [sys.executable, script, "--stage", stage, "--stage-args", json.dumps(kwargs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"stage {stage!r} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return json.loads(lines[-1][len(MARKER) :])


def measure(script: str, name: str, stage: str, repeat: int, **kwargs: Any) -> Figure:
    """Run a stage ``repeat`` times, each in a fresh process; print progress to stderr."""
    figure = Figure(name)
    for i in range(repeat):
        args = {k: (v.format(i=i) if isinstance(v, str) else v) for k, v in kwargs.items()}
        figure.runs.append(run_stage(script, stage, **args))
        print(
            f"  .. {name} run {i + 1}/{repeat}: {figure.runs[-1]['seconds']:.2f} s",
            file=sys.stderr,
            flush=True,
        )
    return figure


# ------------------------------------------------------------ whole processes

#: Run before a :class:`Process`'s code: its arguments, and the facts it reports.
PROLOGUE = "import json, sys\nARGS = json.loads(sys.argv[1])\nFACTS = {}\n"
#: Run after it: report the facts and the process's memory high-water mark.
EPILOGUE = f"""
for _line in open("/proc/self/status"):
    if _line.startswith("VmHWM:"):
        FACTS["peak_rss"] = int(_line.split()[1]) * 1024
sys.stdout.write({MARKER!r} + json.dumps(FACTS) + "\\n")
"""


@dataclass
class Process:
    """A program timed as a whole process: ``python -c`` of ``code``, which reads its
    arguments from ``ARGS`` and may add facts to ``FACTS``; ``prepare`` runs (untimed, in
    the parent) before each run, with the run's arguments."""

    name: str
    code: str
    args: dict[str, Any] = field(default_factory=dict)
    prepare: Callable[[dict[str, Any]], None] | None = None


def run_process(process: Process, run: int = 0) -> dict[str, Any]:
    """Run ``process`` once; return its facts with ``seconds`` from spawn to exit."""
    args = {k: (v.format(i=run) if isinstance(v, str) else v) for k, v in process.args.items()}
    if process.prepare is not None:
        process.prepare(args)
    cmd = [sys.executable, "-c", PROLOGUE + process.code + EPILOGUE, json.dumps(args)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"{process.name!r} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    facts: dict[str, Any] = json.loads(lines[-1][len(MARKER) :])
    return {**facts, "seconds": seconds}


def measure_processes(processes: Sequence[Process], repeat: int) -> list[Figure]:
    """Run each process ``repeat`` times, alternating (A B C A B C ...), so that a change
    in the machine's load falls on all of them alike; one :class:`Figure` per process."""
    figures = [Figure(p.name) for p in processes]
    for i in range(repeat):
        for process, figure in zip(processes, figures, strict=True):
            figure.runs.append(run_process(process, i))
            print(
                f"  .. {process.name} run {i + 1}/{repeat}: {figure.runs[-1]['seconds']:.2f} s",
                file=sys.stderr,
                flush=True,
            )
    return figures


# ------------------------------------------------------------------- printing


def machine() -> str:
    """Cores and load average now: how much the machine was shared during a run."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores, load average {load} (1, 5, 15 min)"


def against(value: float, target: float, unit: str = "", *, at_least: bool = False) -> str:
    """``target <= 30 ms: PASS`` (``>=`` with ``at_least``) for ``value`` in ``unit``."""
    ok = value >= target if at_least else value <= target
    sign = ">=" if at_least else "<="
    return f"target {sign} {target:g}{unit}: {verdict(ok)}"


def mb(n_bytes: float) -> str:
    """Bytes as MB (10^6) or GB (10^9), for a person."""
    return f"{n_bytes / 1e9:.2f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.0f} MB"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def row(
    figure: Figure,
    baseline: Figure | None = None,
    target_ratio: float | None = None,
) -> str:
    """One line: median, the repeats, the ratio to ``baseline`` (named by its name up to
    `` (``) and the target's verdict, the peak memory."""
    runs = " ".join(f"{s:.2f}" for s in figure.seconds)
    line = f"{figure.name:<40} {figure.median:7.2f} s  [{runs}]"
    if baseline is not None:
        ratio = figure.median / baseline.median
        line += f"  {ratio:5.2f}x {baseline.name.split(' (')[0]}"
        if target_ratio is not None:
            line += f"  {against(ratio, target_ratio, 'x')}"
    line += f"  peak RSS {mb(figure.peak_rss)}"
    return line


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


# ------------------------------------------------------------ review catalogs


def phantom(seed: int, n: int = 256, blob: bool = False) -> Any:
    """A noisy ellipsoid 'head' (int16, RAS), optionally with a bright blob."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x, y, z = np.ogrid[-1 : 1 : n * 1j, -1 : 1 : n * 1j, -1 : 1 : n * 1j]
    r2 = (x / 0.8) ** 2 + (y / 0.9) ** 2 + (z / 0.85) ** 2
    vol = (600 - 200 * r2 + 300 * (1.0 + x)).astype(np.float32)
    if blob:
        cx, cy = rng.uniform(-0.3, 0.3, 2)
        vol += 400 * (((x - cx) / 0.2) ** 2 + ((y - cy) / 0.3) ** 2 + (z / 0.25) ** 2 < 1)
    vol += rng.normal(0, 20, vol.shape).astype(np.float32)
    vol *= r2 < 1.0
    return vol.astype(np.int16)


def build_review_catalog(
    folder: Any,
    n_scans: int,
    *,
    project: str,
    reviewer: str,
    distinct: int = 5,
    size: int = 256,
    blob: bool = False,
    compresslevel: int | None = None,
) -> Any:
    """``n_scans`` .nii.gz scans (``distinct`` different volumes, the rest byte copies,
    each decoded anew), imported as ``project`` with a tier-2 ``reviewer``; returns the
    catalog path."""
    import shutil
    from pathlib import Path

    import nibabel as nib
    import numpy as np
    from nibabel.openers import Opener

    from miqa_nb.catalog import Catalog

    folder = Path(folder)
    images = folder / "images"
    images.mkdir(parents=True)
    sources = []
    saved_level = Opener.default_compresslevel
    if compresslevel is not None:
        Opener.default_compresslevel = compresslevel
    try:
        for seed in range(min(distinct, n_scans)):
            path = images / f"source{seed}.nii.gz"
            nib.save(nib.Nifti1Image(phantom(seed, size, blob), np.eye(4)), path)
            sources.append(path)
    finally:
        Opener.default_compresslevel = saved_level
    rows = ["project_name,experiment_name,scan_name,scan_type,frame_number,file_location"]
    for i in range(n_scans):
        experiment, scan = f"E{i // 5:02d}", f"S{i % 5}"
        target = images / f"{experiment}_{scan}.nii.gz"
        shutil.copyfile(sources[i % len(sources)], target)
        rows.append(f"{project},{experiment},{scan},T1,0,images/{target.name}")
    csv = folder / "import.csv"
    csv.write_text("\n".join(rows) + "\n")
    catalog = Catalog(folder / "catalog.duckdb")
    catalog.add_user("admin", superuser=True)
    catalog.import_file(csv, by="admin", project=project)
    catalog.add_user(reviewer, by="admin")
    catalog.set_role(project, reviewer, "tier2", by="admin")
    # a password, so a one-time sign-in link goes straight to the page
    catalog.set_password(reviewer, "a benchmark's passphrase", by="admin")
    return catalog.path

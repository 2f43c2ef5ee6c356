"""Dashboard speed in a real browser: serve start, first scan, next scan, 3D view.

The real ``miqa-nb serve`` server (Voila, pre-heated kernels) on a catalog of N
synthetic 256^3 int16 .nii.gz scans (seeded phantoms written by nibabel at gzip level
3; five distinct volumes, the others byte copies, each decoded anew), driven by
Playwright with Debian's Chromium, as tier-2 reviewer ``rev``.

Figures (times measured in the page with ``performance.now()``; "painted" means the
plane ``<img>`` elements hold a new picture that has loaded), each beside its target:

- **serve start**: ``miqa-nb serve`` started as a person starts it, to the moment it
  prints the reviewer's link (which it does once the page is warmed up). <= 10 s.
- **first scan, reviewer's link, pool warm**: the link a reviewer is sent
  (``&user=U&project=P``: the Review tab where they left off) opened on a server whose
  pre-heated kernels are ready (started, and done with the notebook's imports) ->
  three planes painted. p50 <= 3 s. The first page of
  each fresh server ("cold") is shown apart; the others wait for the pool to refill.
- **first scan, reviewer's link, pool used up**: two pages hold the pre-heated kernels,
  a third opens the link (its kernel starts then). p50 <= 6 s.
- **next scan**: key ``n`` pressed with the page focused (``<body>``; the mouse rests
  on the axial plane) -> the three planes of the next scan painted; p50 <= 150 ms,
  p95 <= 300 ms over the queue, after a look at each scan (the prefetch works
  meanwhile, as it does while a person looks).
- **3D view**: the 3D button -> a rendering's canvas in the page. <= 5 s.
- **next slice** (information): ``ArrowUp``/``ArrowDown`` -> the axial picture changes.

Pages are closed as a person closes a tab (``beforeunload`` runs, so the kernel ends).
Each figure is printed with PASS or MISS; nothing is asserted.

Run::

    .venv/bin/python benchmarks/bench_dashboard.py           # 30 scans, 3 servers
    .venv/bin/python benchmarks/bench_dashboard.py --quick   # 8 scans, 2 servers
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from _common import against, build_review_catalog, machine

from miqa_nb.serve import Server, start

# The browser tests' Chromium and flags (a benchmark is run from a checkout).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser.chromium import CHROMIUM, CHROMIUM_ARGS

SIZE = 256
DISTINCT = 5
COMPRESSLEVEL = 3
PROJECT = "Bench"
USER = "rev"
PLANES = ("axial", "coronal", "sagittal")
REVIEW = ".miqa-review-area .miqa-review"
TARGETS = {
    "serve": 10.0,
    "first": 3.0,
    "first_used_up": 6.0,
    "next_p50": 0.150,
    "next_p95": 0.300,
    "view3d": 5.0,
    "slice_p50": 0.100,
}

#: Page helpers: the time of the last key press, and a promise that resolves (with
#: performance.now()) once the given <img> elements all show a new, loaded picture.
WATCH_JS = """
() => {
  if (window.__bench) return;
  window.__bench = {key: null, done: null};
  window.addEventListener('keydown', () => { window.__bench.key = performance.now(); }, true);
  window.__benchWatch = (selectors) => {
    window.__bench.done = null;
    const imgs = selectors.map((s) => document.querySelector(s));
    const old = imgs.map((i) => i.src);
    const check = () => {
      if (window.__bench.done !== null) return;
      const ready = imgs.every((img, n) => img.src !== old[n] && img.src.startsWith('blob:')
        && img.complete && img.naturalWidth > 0);
      if (ready) requestAnimationFrame(() => {
        if (window.__bench.done === null) window.__bench.done = performance.now();
      });
    };
    const observer = new MutationObserver(check);
    for (const img of imgs) {
      observer.observe(img, {attributes: true, attributeFilter: ['src']});
      img.addEventListener('load', check);
    }
  };
}
"""
PLANES_READY_JS = """
(selectors) => selectors.every((s) => { const img = document.querySelector(s);
  return img && img.src.startsWith('blob:') && img.complete && img.naturalWidth > 0; })
  && performance.now()
"""


def build(folder: Path, n_scans: int) -> Path:
    """Images, import CSV and catalog; returns the catalog path."""
    return build_review_catalog(
        folder,
        n_scans,
        project=PROJECT,
        reviewer=USER,
        distinct=DISTINCT,
        size=SIZE,
        blob=True,
        compresslevel=COMPRESSLEVEL,
    )


# ------------------------------------------------------------------- server


def start_server(catalog: Path, folder: Path, run: int) -> tuple[Server, Path]:
    """Start the server as ``miqa-nb serve`` does: two pre-heated kernels, one page
    rendered (the server's warm-up) before the address is printed; return when it
    would print it."""
    log = folder / f"voila-{run}.log"
    server = start(catalog, private_dir=folder / f"jupyter-{run}", log=log, pool_size=2)
    server.wait_ready(timeout=120)  # includes the warm-up
    wait_pool(server, log, 1)
    return server, log


def wait_pool(server: Server, log: Path, fills: int, timeout: float = 60) -> None:
    """Wait until Voila has said ``fills`` times that its kernel pool is filled, and its
    kernels are pre-heated: the notebook's first cell (its imports, see
    ``dashboard.app.preload``) has run, so no kernel is busy (under 5 % of a core over
    half a second). Voila says "filled" when a kernel *starts*, seconds before that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and log.read_text(errors="replace").count("is filled with") >= fills:
            break
        time.sleep(0.1)
    while time.monotonic() < deadline:
        kernels = [child for child in _children(server) if _is_kernel(child)]
        for kernel in kernels:
            kernel.cpu_percent(None)
        time.sleep(0.5)
        try:
            if all(kernel.cpu_percent(None) < 5 for kernel in kernels):
                return
        except psutil.Error:  # a kernel ended meanwhile: look again
            pass


def _children(server: Server) -> list[psutil.Process]:
    return psutil.Process(server.process.pid).children(recursive=True)


def _is_kernel(process: psutil.Process) -> bool:
    try:
        return "ipykernel" in " ".join(process.cmdline())
    except psutil.Error:  # ended meanwhile (a closed page's kernel)
        return False


# ------------------------------------------------------------------ browser


def plane_selectors() -> list[str]:
    return [f"{REVIEW} img.miqa-plane-{plane}" for plane in PLANES]


def open_review_link(browser: Any, server: Server) -> tuple[float, Any, Any]:
    """Open the reviewer's link (``&project=P``: the review, where they left off);
    return (seconds from navigation to the planes painted, page, context)."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(90_000)
    page = context.new_page()
    page.goto(server.signin_link(USER, project=PROJECT))  # a one-time link signs in
    handle = page.wait_for_function(PLANES_READY_JS, arg=plane_selectors())
    return float(handle.json_value()) / 1000, page, context


def close_page(page: Any, context: Any) -> None:
    """Close as a person closes a tab: ``beforeunload`` runs, the kernel ends."""
    page.close(run_before_unload=True)
    context.close()


def focus_page(page: Any) -> None:
    """The page has the focus (``<body>``, no field) and the mouse rests on the axial
    plane: keys reach the review whether it listens on the page or on the plane."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.locator(f"{REVIEW} img.miqa-plane-axial").hover()
    page.locator(f"{REVIEW} .miqa-keys-badge.miqa-keys-on").wait_for(timeout=30_000)


def key_to_pictures(page: Any, key: str, selectors: list[str]) -> float:
    """Seconds from pressing ``key`` to ``selectors`` showing new loaded pictures."""
    page.evaluate("(s) => window.__benchWatch(s)", selectors)
    page.keyboard.press(key)
    page.wait_for_function("window.__bench.done !== null", timeout=30_000)
    return float(page.evaluate("window.__bench.done - window.__bench.key")) / 1000


def next_scans(page: Any, n: int, look: float) -> list[float]:
    page.evaluate(WATCH_JS)
    focus_page(page)
    times = []
    for _ in range(n):
        page.wait_for_timeout(int(look * 1000))  # the reviewer looks; prefetch works
        times.append(key_to_pictures(page, "n", plane_selectors()))
    return times


def slice_keys(page: Any, n: int) -> list[float]:
    page.evaluate(WATCH_JS)
    focus_page(page)
    axial = [f"{REVIEW} img.miqa-plane-axial"]
    times = []
    for i in range(n):
        page.wait_for_timeout(150)
        times.append(key_to_pictures(page, "ArrowUp" if i % 2 == 0 else "ArrowDown", axial))
    return times


def view_3d(page: Any) -> float:
    """Seconds from pressing the 3D button to a rendering's canvas in the page."""
    began = time.perf_counter()
    page.locator(f"{REVIEW} .miqa-3d-toggle").click()
    page.locator(f"{REVIEW} .miqa-3d canvas").first.wait_for(timeout=120_000)
    return time.perf_counter() - began


def pool_used_up(browser: Any, server: Server) -> float:
    """Two pages hold the pre-heated kernels; a third opens the link: its seconds."""
    held = [open_review_link(browser, server) for _ in range(2)]
    try:
        seconds, page, context = open_review_link(browser, server)
        close_page(page, context)
    finally:
        for _, page, context in held:
            close_page(page, context)
    return seconds


# -------------------------------------------------------------- serve start


def serve_link_seconds(catalog: Path, folder: Path) -> float:
    """Seconds from starting ``miqa-nb serve`` to its printing the reviewer's link
    (a one-time sign-in link, ``--link-for``)."""
    env = dict(os.environ, HOME=str(folder), PYTHONPATH=os.pathsep.join(sys.path))
    command = [sys.executable, "-m", "miqa_nb.cli", "serve", "--catalog", str(catalog)]
    command += ["--link-for", USER]
    began = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True
    )
    try:
        assert process.stdout is not None
        for text in process.stdout:
            if "login?link=" in text:
                return time.perf_counter() - began
        raise RuntimeError(f"miqa-nb serve ended without a link (status {process.wait()})")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


# ------------------------------------------------------------------- report


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def line(label: str, seconds: float, target: float | None = None) -> str:
    goal = "" if target is None else f"  {against(seconds * 1000, target * 1000, ' ms')}"
    return f"  {label:<52} {seconds * 1000:8.0f} ms{goal}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 scans and two servers")
    parser.add_argument("--scans", type=int, default=None)
    parser.add_argument("--servers", type=int, default=None, help="fresh servers (3)")
    parser.add_argument("--look", type=float, default=1.0, help="seconds spent on a scan")
    args = parser.parse_args(argv)
    n_scans = args.scans or (8 if args.quick else 30)
    n_servers = args.servers or (2 if args.quick else 3)
    n_warm = 2 if args.quick else 3
    n_slices = 10 if args.quick else 20

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        folder = Path(tmp)
        began = time.perf_counter()
        catalog = build(folder, n_scans)
        print(
            f"{n_scans} scans of {SIZE}^3 int16 .nii.gz (gzip level {COMPRESSLEVEL}), "
            f"catalog built in {time.perf_counter() - began:.1f} s; {machine()}"
        )
        serve_starts = [serve_link_seconds(catalog, folder) for _ in range(2)]
        cold: list[float] = []
        warm: list[float] = []
        used_up: list[float] = []
        nexts: list[float] = []
        slices: list[float] = []
        views: list[float] = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                for run in range(n_servers):
                    server, log = start_server(catalog, folder, run)
                    try:
                        seconds, page, context = open_review_link(browser, server)
                        cold.append(seconds)
                        if run == n_servers - 1:  # the last server also gives the key figures
                            nexts = next_scans(page, min(n_scans - 2, 20), args.look)
                            slices = slice_keys(page, n_slices)
                            views.append(view_3d(page))
                        close_page(page, context)
                        fills = 2
                        for _ in range(n_warm):
                            wait_pool(server, log, fills)  # the pool kernel is pre-heated again
                            fills += 1
                            seconds, page, context = open_review_link(browser, server)
                            warm.append(seconds)
                            close_page(page, context)
                        wait_pool(server, log, fills)
                        used_up.append(pool_used_up(browser, server))
                    finally:
                        server.stop()
            finally:
                browser.close()

    print(
        f"serve start, {len(serve_starts)} runs: " + ", ".join(f"{s:.1f} s" for s in serve_starts)
    )
    print(
        line(
            "miqa-nb serve prints the link: median",
            statistics.median(serve_starts),
            TARGETS["serve"],
        )
    )
    print("first scan by the reviewer's link, seconds from navigation to the planes painted:")
    print("    fresh server: " + ", ".join(f"{s:.2f}" for s in cold))
    print("    pool warm:    " + ", ".join(f"{s:.2f}" for s in warm))
    print("    pool used up: " + ", ".join(f"{s:.2f}" for s in used_up))
    print(line("pool warm: p50", statistics.median(warm), TARGETS["first"]))
    print(line("pool used up: p50", statistics.median(used_up), TARGETS["first_used_up"]))
    print(line("fresh server (information): p50", statistics.median(cold)))
    if nexts:
        print(
            f"next scan (key n, page focused, {args.look:.1f} s look per scan), {len(nexts)} scans:"
        )
        print(line("p50", pct(nexts, 50), TARGETS["next_p50"]))
        print(line("p95", pct(nexts, 95), TARGETS["next_p95"]))
        print(line("max (information)", max(nexts)))
    if views:
        print(line("3D view: button to canvas", views[0], TARGETS["view3d"]))
    if slices:
        print(f"next slice, {len(slices)} presses:")
        print(line("ArrowUp/Down: p50", pct(slices, 50), TARGETS["slice_p50"]))
        print(line("ArrowUp/Down: p95 (information)", pct(slices, 95)))
    print(f"load at the end: {machine()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: what signing every request in costs a signed-in page and a script's call.

Run ``.venv/bin/python benchmarks/bench_signin.py [--requests 300] [--runs 3]``.

Two servers run side by side, started with the same command (``miqa-nb serve``'s,
:func:`miqa_nb.serve.server_command`, in the same environment) on the same catalog:

- **signed**: as served, every request checked by the catalog's identity provider;
- **open**: the same command plus ``--Voila.identity_provider_class`` naming
  :class:`AdmitEveryone` below, the catalog's identity provider with its credential
  checks taken out (every request is one user's): the unauthenticated test server.

Both answer the same handlers with the same work; only the sign-in differs. Requests:

- page: ``GET login/password``, a page for a signed-in user only (a small form; the
  dashboard page itself takes a kernel and seconds, which would drown the difference):
  signed, with the login cookie of the sign-in form;
- API: ``GET data/JSESSION``, XNAT's call that starts a session: signed, with
  ``Authorization: token``, and with HTTP Basic and the token (how curl ``-u`` sends it).

Each pair is asked alternately (signed, open, signed, ...) over keep-alive
connections (``requests.Session``), ``--requests`` times per run, after a warm-up;
each run prints p50/p95 of both and the difference, and the verdict compares the median
of the runs' p50 differences with the target: at most 5 ms more than the open server.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from _common import against, machine, percentile

TARGET_MS = 5.0
USER = "ana"
PASSWORD = "bench-password-1"


def _admit_everyone_class() -> type:
    """The catalog's identity provider admitting every request as :data:`USER`."""
    from jupyter_server.auth.identity import User

    from miqa_nb.server.identity import CatalogIdentityProvider

    class AdmitEveryoneProvider(CatalogIdentityProvider):
        async def _get_user(self, handler: Any) -> User:
            handler._token_authenticated = True
            return User(username=USER, name=USER, display_name=USER)

    return AdmitEveryoneProvider


if os.environ.get("MIQA_NB_BENCH_OPEN") == "1":  # imported by the open server
    AdmitEveryone = _admit_everyone_class()


def start_server(
    catalog: Path, folder: Path, *, open_: bool
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``miqa-nb serve``'s command (the open one with :class:`AdmitEveryone`)."""
    from miqa_nb.serve import APP_DIR, free_port, server_command, server_environment

    port = free_port()
    command = server_command(catalog, port=port, preheat=False)
    private = folder / ("open" if open_ else "signed")
    env = server_environment(catalog, private)
    if open_:
        command.append("--Voila.identity_provider_class=bench_signin.AdmitEveryone")
        env["MIQA_NB_BENCH_OPEN"] = "1"
        here = str(Path(__file__).resolve().parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH", "")) if p)
    log = open(folder / f"{private.name}.log", "wb")  # noqa: SIM115 - the child's
    process = subprocess.Popen(
        command,
        cwd=APP_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(url + "login", timeout=2)
            return process, url
        except requests.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the {'open' if open_ else 'signed'} server did not start: "
                    + (folder / f"{private.name}.log").read_text()[-2000:]
                ) from None
            time.sleep(0.2)


def signed_in(url: str) -> requests.Session:
    """A session signed in with the sign-in form."""
    import re

    client = requests.Session()
    form = client.get(url + "login").text
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', form)
    assert xsrf is not None
    answer = client.post(
        url + "login",
        data={"user": USER, "password": PASSWORD, "_xsrf": xsrf.group(1)},
        allow_redirects=False,
    )
    assert answer.status_code == 302, answer.status_code
    return client


def timed(call: Callable[[], requests.Response]) -> float:
    start = time.perf_counter()
    answer = call()
    seconds = time.perf_counter() - start
    if answer.status_code != 200:
        raise RuntimeError(f"{answer.request.method} {answer.url}: {answer.status_code}")
    return seconds * 1000.0


def compare(
    name: str,
    signed: Callable[[], requests.Response],
    open_: Callable[[], requests.Response],
    n: int,
    runs: int,
) -> bool:
    """Ask both alternately; print each run and the verdict; whether it passed."""
    for _ in range(20):  # warm-up: connections, caches
        timed(signed)
        timed(open_)
    differences = []
    print(f"{name}")
    for run in range(runs):
        a: list[float] = []
        b: list[float] = []
        for _ in range(n):
            a.append(timed(signed))
            b.append(timed(open_))
        p50 = (percentile(a, 50), percentile(b, 50))
        p95 = (percentile(a, 95), percentile(b, 95))
        differences.append(p50[0] - p50[1])
        print(
            f"  run {run + 1}: signed p50 {p50[0]:6.2f} ms p95 {p95[0]:6.2f} ms | "
            f"open p50 {p50[1]:6.2f} ms p95 {p95[1]:6.2f} ms | "
            f"{p50[0] - p50[1]:+6.2f} ms p50 ({p50[0] / p50[1]:.2f}x open), "
            f"{p95[0] - p95[1]:+6.2f} ms p95"
        )
    extra = statistics.median(differences)
    ok = extra <= TARGET_MS
    print(
        f"  signing in costs {extra:+.2f} ms (median of the runs' p50): "
        f"{against(extra, TARGET_MS, ' ms')}"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from miqa_nb.catalog import Catalog

    with tempfile.TemporaryDirectory(prefix="bench-signin-") as tmp:
        folder = Path(tmp)
        catalog = Catalog(folder / "catalog.duckdb")
        catalog.add_user("admin", superuser=True)
        catalog.add_user(USER, by="admin")
        catalog.set_password(USER, PASSWORD, by=USER)
        _, token = catalog.create_token(USER, by=USER)
        servers = [start_server(catalog.path, folder, open_=o) for o in (False, True)]
        try:
            (_, signed_url), (_, open_url) = servers
            # the signed server signs in, the open one admits anybody
            refused = requests.get(signed_url + "data/JSESSION").status_code
            admitted = requests.get(open_url + "data/JSESSION").status_code
            if (refused, admitted) != (401, 200):
                raise RuntimeError(f"signed server answered {refused}, open one {admitted}")
            print(machine())
            print(f"{args.requests} requests per run, {args.runs} runs, keep-alive")
            page, plain = signed_in(signed_url), requests.Session()
            api, api_open = requests.Session(), requests.Session()
            api.headers["Authorization"] = f"token {token}"
            basic, basic_open = requests.Session(), requests.Session()
            basic.auth = (USER, token)
            results = [
                compare(
                    "page: GET login/password (login cookie vs open)",
                    lambda: page.get(signed_url + "login/password", allow_redirects=False),
                    lambda: plain.get(open_url + "login/password", allow_redirects=False),
                    args.requests,
                    args.runs,
                ),
                compare(
                    "API: GET data/JSESSION (Authorization: token vs open)",
                    lambda: api.get(signed_url + "data/JSESSION"),
                    lambda: api_open.get(open_url + "data/JSESSION"),
                    args.requests,
                    args.runs,
                ),
                compare(
                    "API: GET data/JSESSION (Basic user:token vs open)",
                    lambda: basic.get(signed_url + "data/JSESSION"),
                    lambda: basic_open.get(open_url + "data/JSESSION"),
                    args.requests,
                    args.runs,
                ),
            ]
        finally:
            for process, _ in servers:
                process.terminate()
                process.wait(20)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())

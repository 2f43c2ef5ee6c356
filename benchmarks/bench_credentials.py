"""Benchmark: what checking a credential costs, on a real catalog file.

Usage::

    .venv/bin/python benchmarks/bench_credentials.py [--calls 200]

A catalog in a temporary folder gets a superuser and five users, each with a password
and two tokens. Then, one call after the other: :meth:`Catalog.token_user` with a good
token (``--calls`` times; the target is 5 ms, an API call's budget), with a malformed
one (no catalog read at all), :meth:`Catalog.credentials_version`, and
:meth:`Catalog.check_password` (10 times: argon2 costs ~0.1 s on purpose). The floor
beside them is what any catalog read costs: ``Store.connect()`` around one trivial
query, and the DuckDB instance alone (``duckdb.connect()``, closed again), which a
catalog opened for each unit of work pays every time. Medians are printed, with the
machine's load.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
from _common import against, machine

from miqa_nb import Catalog


def median_ms(call: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        cat = Catalog(Path(folder) / "bench.duckdb")
        cat.add_user("admin", superuser=True)
        tokens = []
        for n in range(5):
            name = f"user{n}"
            cat.add_user(name, by="admin")
            cat.set_password(name, f"password-{n}", by="admin")
            tokens += [cat.create_token(name, by="admin")[1] for _ in range(2)]
        token = tokens[3]
        assert cat.token_user(token) == "user1"

        def read() -> None:
            with cat.store.connect() as con:
                con.execute("SELECT 1").fetchall()

        figures = {
            "token_user, a good token": median_ms(lambda: cat.token_user(token), args.calls),
            "token_user, a malformed token": median_ms(lambda: cat.token_user("x"), args.calls),
            "credentials_version": median_ms(cat.credentials_version, args.calls),
            "floor: Store.connect() + SELECT 1": median_ms(read, args.calls),
            "floor: duckdb.connect().close()": median_ms(
                lambda: duckdb.connect().close(), args.calls
            ),
            "check_password (argon2id)": median_ms(
                lambda: cat.check_password("user1", "password-1"), 10
            ),
        }
    print(machine())
    for name, ms in figures.items():
        target = f"  {against(ms, 5, ' ms')}" if name.startswith("token_user, a good") else ""
        print(f"{name:<36} {ms:8.2f} ms (median){target}")


if __name__ == "__main__":
    main()

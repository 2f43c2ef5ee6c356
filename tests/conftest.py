"""Shared fixtures: a real catalog file, the MIQA sample files, small import files."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from support import frame_row  # noqa: F401  (re-exported for older imports)

from miqa_nb.catalog import Catalog
from miqa_nb.exchange.formats import MIQA_COLUMNS

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SAMPLES = Path(os.environ.get("MIQA_NB_SAMPLES", SHARED / "data" / "miqa-samples"))


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's catalog, roots or user settings."""
    for name in (
        "MIQA_NB_CATALOG",
        "MIQA_NB_DATA_ROOTS",
        "MIQA_NB_EXPORT_DIR",
        "MIQA_NB_USER",
        "JUPYTERHUB_USER",
        "MIQA_NB_SERVER_URL",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def samples() -> Path:
    """MIQA's own sample files (shared/data/miqa-samples); skipped where absent."""
    if not SAMPLES.is_dir():
        pytest.skip(f"MIQA sample files not found at {SAMPLES} (set MIQA_NB_SAMPLES)")
    return SAMPLES


#: Test modules whose ``catalog`` runs on both backends: a DuckDB file and PostgreSQL.
BOTH_BACKENDS = frozenset(
    {
        "test_catalog",
        "test_exchange",
        "test_review",
        "test_review_idle",
        "test_review_processes",
        "test_rules",
        "test_permissions",
        "test_quarantine",
        "test_credentials",
        "test_miqa_compat",
        "test_hostile_files",
        "test_postgres",
    }
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rpartition(".")[2]
    if "backend" in metafunc.fixturenames and module in BOTH_BACKENDS:
        metafunc.parametrize("backend", ["duckdb", "postgres"], indirect=True)


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL server for the session (Debian's, on a free loopback port)."""
    from pg_support import PgServer, pg_bin

    if pg_bin() is None and not os.environ.get("CI"):
        pytest.skip("PostgreSQL is not installed here: run bash scripts/system-packages.sh")
    server = PgServer()
    yield server
    server.stop()


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The catalog's backend: ``duckdb``, or ``postgres`` in :data:`BOTH_BACKENDS`."""
    return getattr(request, "param", "duckdb")


@pytest.fixture
def catalog_location(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh catalog is: a DuckDB file, or a new PostgreSQL database's URL."""
    if backend == "postgres":
        server = request.getfixturevalue("pg_server")
        return str(server.new_database())
    return str(tmp_path / "catalog.duckdb")


@pytest.fixture
def catalog(catalog_location: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Catalog:
    """A fresh catalog with a superuser 'admin' (on both backends in the modules of
    :data:`BOTH_BACKENDS`)."""
    monkeypatch.setenv("MIQA_NB_LOCAL_DIR", str(tmp_path / "catalog-local"))
    cat = Catalog(catalog_location, retry_seconds=20)
    cat.add_user("admin", superuser=True)
    return cat


@pytest.fixture
def make_catalog(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Catalog]:
    """``make_catalog(name="made", folder=tmp_path, **options)``: another fresh catalog on
    the test's backend (a DuckDB file in ``folder``, or a new PostgreSQL database)."""
    monkeypatch.setenv("MIQA_NB_LOCAL_DIR", str(tmp_path / "catalog-local"))

    def make(name: str = "made", folder: Path | None = None, **options: object) -> Catalog:
        options.setdefault("retry_seconds", 20)
        if backend == "postgres":
            return Catalog(request.getfixturevalue("pg_server").new_database(), **options)
        return Catalog((folder or tmp_path) / f"{name}.duckdb", **options)

    return make


Row = dict[str, str]


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[..., Path]:
    """Write an import CSV from row dicts; frame files named in rows are created empty."""

    def write(
        rows: Sequence[Row],
        name: str = "import.csv",
        columns: Sequence[str] = MIQA_COLUMNS,
        make_files: bool = True,
        folder: Path | None = None,
    ) -> Path:
        folder = folder or tmp_path
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({c: row.get(c, "") for c in columns})
        if make_files:
            for row in rows:
                location = row.get("file_location", "")
                if location and not location.startswith("s3://") and not os.path.isabs(location):
                    target = path.parent / location
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.touch()
        return path

    return write

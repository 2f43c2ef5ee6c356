"""The catalog's schema: its tables, its version, and making a file ready to use.

:func:`open_schema` creates the tables of a new catalog and stamps its version in
``meta``; for an existing catalog it checks that version. A catalog whose version this
miqa_nb does not read is refused with a message saying so (when the schema changes,
this is where a catalog is upgraded). Text columns hold ``NULL`` for "not given".
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from miqa_nb.core.duck import one
from miqa_nb.core.errors import MiqaError

__all__ = ["SCHEMA", "SCHEMA_VERSION", "open_schema"]

SCHEMA_VERSION = "1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS users (
    name VARCHAR PRIMARY KEY,
    superuser BOOLEAN NOT NULL DEFAULT false,
    created_utc TIMESTAMP NOT NULL DEFAULT timezone('UTC', current_timestamp)
);
CREATE TABLE IF NOT EXISTS projects (
    name VARCHAR PRIMARY KEY,
    creator VARCHAR,
    import_path VARCHAR,
    export_path VARCHAR,
    anatomy_orientation VARCHAR NOT NULL DEFAULT 'neurological',
    created_utc TIMESTAMP NOT NULL DEFAULT timezone('UTC', current_timestamp)
);
CREATE TABLE IF NOT EXISTS roles (
    project VARCHAR NOT NULL,
    user_name VARCHAR NOT NULL,
    role VARCHAR NOT NULL,
    PRIMARY KEY (project, user_name)
);
CREATE TABLE IF NOT EXISTS scan_types (name VARCHAR PRIMARY KEY, alias_of VARCHAR);
CREATE TABLE IF NOT EXISTS experiments (project VARCHAR, name VARCHAR, note VARCHAR);
CREATE TABLE IF NOT EXISTS scans (
    project VARCHAR, experiment VARCHAR, name VARCHAR, type VARCHAR,
    subject_id VARCHAR, session_id VARCHAR, link VARCHAR
);
CREATE TABLE IF NOT EXISTS frames (
    project VARCHAR, experiment VARCHAR, scan VARCHAR, frame_number INTEGER, location VARCHAR
);
CREATE TABLE IF NOT EXISTS decisions (
    id BIGINT NOT NULL,  -- assigned max + 1 under the file lock: the log's order
    project VARCHAR, experiment VARCHAR, scan VARCHAR,
    decision VARCHAR NOT NULL,
    creator VARCHAR,
    note VARCHAR,
    created TIMESTAMP,
    created_utcoffset INTEGER,
    artifacts_present VARCHAR,
    artifacts_absent VARCHAR,
    location VARCHAR,
    loc_i DOUBLE, loc_j DOUBLE, loc_k DOUBLE
);
CREATE TABLE IF NOT EXISTS claims (
    project VARCHAR NOT NULL,
    experiment VARCHAR NOT NULL,
    user_name VARCHAR NOT NULL,
    expires_utc TIMESTAMP NOT NULL,
    PRIMARY KEY (project, experiment)
);
CREATE TABLE IF NOT EXISTS positions (
    user_name VARCHAR NOT NULL,
    project VARCHAR NOT NULL,
    experiment VARCHAR NOT NULL,
    scan VARCHAR NOT NULL,
    updated_utc TIMESTAMP NOT NULL,
    PRIMARY KEY (user_name, project)
);
CREATE TABLE IF NOT EXISTS user_settings (
    user_name VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    value VARCHAR NOT NULL,
    PRIMARY KEY (user_name, key)
);
"""


def open_schema(con: duckdb.DuckDBPyConnection, path: Path, *, read_only: bool = False) -> None:
    """Create the tables of a new catalog, or check an existing catalog's version.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The catalog, open.
    path : Path
        The catalog file, for the message.
    read_only : bool
        The catalog is open read-only: check its version, create nothing.

    Raises
    ------
    MiqaError
        The catalog has a schema version this miqa_nb does not read, or (read-only)
        is not a miqa_nb catalog.
    """
    if read_only:
        try:
            found = one(con, "SELECT value FROM meta WHERE key = 'schema_version'")
        except duckdb.CatalogException as exc:
            raise MiqaError(
                f"{path} is not a miqa_nb catalog (it has no table 'meta'), and it is "
                "read-only for this user"
            ) from exc
    else:
        con.execute(SCHEMA)
        found = one(con, "SELECT value FROM meta WHERE key = 'schema_version'")
    if found is None and read_only:
        raise MiqaError(f"{path} has no catalog schema version, and it is read-only for this user")
    if found is None:
        con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [SCHEMA_VERSION])
    elif found[0] != SCHEMA_VERSION:
        raise MiqaError(
            f"{path} has catalog schema version {found[0]}; this miqa_nb "
            f"reads version {SCHEMA_VERSION}: upgrade miqa_nb"
        )

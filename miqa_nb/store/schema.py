"""The catalog's schema: its tables, its version, and making a file ready to use.

:func:`open_schema` creates the tables of a new catalog and stamps its version in
``meta``; for an existing catalog it checks that version, and upgrades an older one
(:data:`UPGRADES`) when the file is opened writable. A catalog whose version this
miqa_nb does not read is refused with a message saying so. Text columns hold ``NULL``
for "not given".

Versions: "1", the first; "2" adds the sign-in credentials (``passwords``,
``api_tokens``, ``signin_links``; :mod:`miqa_nb.store.credentials`). A version-1
catalog is upgraded on its first writable opening (its users have no password until
one is set); opened read-only it is read as it is, without those tables. "3" adds
``quarantine`` (experiments archived but hidden from review queues until released;
:mod:`miqa_nb.store.quarantine`): a version-2 catalog gets it, empty, on its first
writable opening; read-only, nothing in it is quarantined.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from miqa_nb.core.duck import Connection, one
from miqa_nb.core.errors import MiqaError

__all__ = ["READABLE_VERSIONS", "SCHEMA", "SCHEMA_VERSION", "UPGRADES", "open_schema"]

SCHEMA_VERSION = "3"

#: Version 1's tables.
_TABLES_1 = """
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

#: Version 2 adds the sign-in credentials (:mod:`miqa_nb.store.credentials`).
_CREDENTIALS = """
CREATE TABLE IF NOT EXISTS passwords (
    user_name VARCHAR PRIMARY KEY,
    hash VARCHAR NOT NULL,  -- argon2id, PHC string; never the password
    changed_utc TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS api_tokens (
    id VARCHAR PRIMARY KEY,  -- the token's public part: miqa_<id>_<secret>
    user_name VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,  -- of the whole token, hex
    created_utc TIMESTAMP NOT NULL,
    expires_utc TIMESTAMP,  -- NULL: never
    revoked_utc TIMESTAMP,
    last_used_utc TIMESTAMP
);
CREATE TABLE IF NOT EXISTS signin_links (
    sha256 VARCHAR PRIMARY KEY,  -- of the link's secret, hex
    user_name VARCHAR NOT NULL,
    created_utc TIMESTAMP NOT NULL,
    expires_utc TIMESTAMP NOT NULL,
    used_utc TIMESTAMP
);
"""

#: Version 3 adds the experiments held in quarantine (:mod:`miqa_nb.store.quarantine`).
_QUARANTINE = """
CREATE TABLE IF NOT EXISTS quarantine (
    project VARCHAR NOT NULL,
    experiment VARCHAR NOT NULL,
    quarantined_by VARCHAR,  -- who archived it in quarantine (or put it there)
    since_utc TIMESTAMP NOT NULL,
    PRIMARY KEY (project, experiment)
);
"""

#: Every table of a catalog of :data:`SCHEMA_VERSION` (each made only when missing).
SCHEMA = _TABLES_1 + _CREDENTIALS + _QUARANTINE
#: What upgrades a catalog of each older version: the next version, and its SQL.
UPGRADES: dict[str, tuple[str, str]] = {"1": ("2", _CREDENTIALS), "2": ("3", _QUARANTINE)}
#: The versions this miqa_nb reads: its own, and (read-only, without upgrading) older ones.
READABLE_VERSIONS = frozenset({SCHEMA_VERSION, *UPGRADES})


def open_schema(con: Connection, path: Path, *, read_only: bool = False) -> None:
    """Create the tables of a new catalog, or check an existing catalog's version.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The catalog, open.
    path : Path
        The catalog file, for the message.
    read_only : bool
        The catalog is open read-only: check its version, create and upgrade nothing
        (an older version is read as it is).

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
        return
    version = found[0]
    if version not in READABLE_VERSIONS:
        raise MiqaError(
            f"{path} has catalog schema version {version}; this miqa_nb "
            f"reads versions up to {SCHEMA_VERSION}: upgrade miqa_nb"
        )
    if read_only or version not in UPGRADES:
        return
    con.execute("BEGIN TRANSACTION")
    try:
        while version in UPGRADES:
            version, sql = UPGRADES[version]
            con.execute(sql)
            con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [version])
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")

-- The tables of a schema-version-2 catalog, as miqa_nb made them before quarantine
-- (miqa_nb/store/schema.py at commit 3b63dd7: _TABLES_1 + _CREDENTIALS).
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

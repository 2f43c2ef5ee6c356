"""Sign-in credentials in the catalog: passwords, API tokens, one-time sign-in links,
who may change them, and the upgrade of version-1 catalogs (real DuckDB files)."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from support import catalog_tables

from miqa_nb import Catalog
from miqa_nb.core.errors import MiqaError, NotFound, PermissionDenied, WriteError
from miqa_nb.store import credentials
from miqa_nb.store.schema import SCHEMA_VERSION

PASSWORD = "Correct-Horse-Battery-7"
V1_SQL = Path(__file__).parent / "data" / "catalog-v1.sql"


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cat(make_catalog, clock: Clock) -> Catalog:
    """A catalog with a superuser 'admin' and two users, 'ana' and 'bo' (each backend)."""
    catalog = make_catalog("creds", clock=clock)
    catalog.add_user("admin", superuser=True)
    catalog.add_user("ana", by="admin")
    catalog.add_user("bo", by="admin")
    return catalog


def _file_bytes(path: Path) -> bytes:
    wal = path.with_name(path.name + ".wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


# ------------------------------------------------------------------ passwords


def test_a_password_is_checked(cat):
    assert not cat.has_password("ana")
    cat.set_password("ana", PASSWORD, by="ana")
    assert cat.has_password("ana")
    assert cat.check_password("ana", PASSWORD) is True
    assert cat.check_password("ana", PASSWORD + "x") is False
    assert cat.check_password("ana", "") is False
    assert cat.check_password("bo", PASSWORD) is False  # bo has none
    assert cat.check_password("nobody", PASSWORD) is False  # no such user
    assert cat.check_password("ana", "y" * 5000) is False  # longer than any password
    assert cat.check_password("ana", None) is False  # not even text


def test_users_list_says_who_has_a_password(cat):
    cat.set_password("bo", PASSWORD, by="admin")
    table = cat.users().set_index("name")
    assert table["password"].to_dict() == {"admin": False, "ana": False, "bo": True}
    assert "hash" not in table.columns


@pytest.mark.parametrize("length", [0, 7, 1025])
def test_a_password_of_the_wrong_length_is_refused(cat, length):
    with pytest.raises(MiqaError, match=f"this one has {length}"):
        cat.set_password("ana", "p" * length, by="ana")
    assert not cat.has_password("ana")


@pytest.mark.parametrize("length", [8, 1024])
def test_passwords_of_8_and_1024_characters_are_taken(cat, length):
    cat.set_password("ana", "p" * length, by="ana")
    assert cat.check_password("ana", "p" * length)


def _database_bytes(cat: Catalog) -> bytes:
    """Every row of every table of a catalog on PostgreSQL, as its server writes them."""
    import psycopg

    chunks = []
    with psycopg.connect(cat.location) as con:
        tables = con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
        for (table,) in tables:
            with con.cursor().copy(f"COPY {table} TO STDOUT") as copy:
                chunks.extend(bytes(data) for data in copy)
    return b"".join(chunks)


def test_the_file_holds_an_argon2id_hash_and_never_a_secret(cat, backend):
    cat.set_password("ana", PASSWORD, by="ana")
    _, token = cat.create_token("ana", by="ana")
    link = cat.create_signin_link("ana", by="admin")
    (stored,) = cat.sql("SELECT hash FROM passwords WHERE user_name = 'ana'")["hash"]
    assert stored.startswith("$argon2id$")
    for checkpointed in (False, True):
        if backend == "postgres":
            data = _database_bytes(cat)
        else:
            if checkpointed:
                with cat.store.connect() as con:
                    con.execute("CHECKPOINT")
            data = _file_bytes(cat.path)
        assert stored.encode() in data  # strings are stored readable: the check can fail
        for secret in (PASSWORD, token, token.split("_", 2)[2], link):
            assert secret.encode() not in data
            assert secret.encode("utf-16-le") not in data


def test_an_unknown_user_costs_one_argon2_check_too(cat):
    """Timing does not tell an unknown user from a wrong password."""
    cat.set_password("ana", PASSWORD, by="ana")

    times: dict[str, list[float]] = {"ana": [], "nobody": [], "bo": []}
    for _ in range(5):  # interleaved, so that other work on the machine slows all three
        for user, taken in times.items():
            start = time.perf_counter()
            assert cat.check_password(user, "wrong password") is False
            taken.append(time.perf_counter() - start)
    # the fastest of each: the least disturbed (without the dummy check, an unknown
    # user costs one catalog read, a sixth of an argon2 check)
    wrong, unknown, without = (min(taken) for taken in times.values())
    assert unknown > 0.5 * wrong and without > 0.5 * wrong, (wrong, unknown, without)


# --------------------------------------------------------------------- tokens


def test_a_token_names_its_user_until_revoked(cat):
    token_id, token = cat.create_token("ana", by="ana")
    assert token.startswith(f"miqa_{token_id}_") and len(token_id) == credentials.TOKEN_ID_LENGTH
    assert "_" not in token_id
    assert cat.token_user(token) == "ana"
    listing = cat.tokens("ana", by="ana")
    assert list(listing.columns) == [
        "id",
        "created_utc",
        "expires_utc",
        "revoked_utc",
        "last_used_utc",
    ]
    assert listing["id"].tolist() == [token_id]
    cat.revoke_token("ana", token_id, by="ana")
    assert cat.token_user(token) is None
    assert cat.tokens("ana", by="ana")["revoked_utc"].notna().tolist() == [True]


def test_revoking_an_unknown_token_names_it(cat):
    token_id, _ = cat.create_token("bo", by="bo")
    with pytest.raises(NotFound, match="user 'ana' has no token 'nope123456'"):
        cat.revoke_token("ana", "nope123456", by="admin")
    with pytest.raises(NotFound, match=f"user 'ana' has no token '{token_id}'"):
        cat.revoke_token("ana", token_id, by="admin")  # bo's, not ana's


def test_an_expired_token_is_refused(cat, clock):
    _, token = cat.create_token("ana", by="ana", expires_days=1)
    _, lasting = cat.create_token("ana", by="ana")
    clock.advance(hours=23, minutes=59)
    assert cat.token_user(token) == "ana"
    clock.advance(minutes=1)
    assert cat.token_user(token) is None
    clock.advance(days=3000)
    assert cat.token_user(lasting) == "ana"


@pytest.mark.parametrize("days", [0, -1, float("nan"), float("inf"), 3651])
def test_a_token_lives_more_than_0_and_at_most_ten_years(cat, days):
    with pytest.raises(MiqaError, match="a token expires after more than 0"):
        cat.create_token("ana", by="ana", expires_days=days)
    assert cat.tokens("ana", by="ana").empty


def test_a_known_id_with_another_secret_is_refused(cat):
    ana_id, ana_token = cat.create_token("ana", by="ana")
    _, bo_token = cat.create_token("bo", by="bo")
    bo_secret = bo_token.split("_", 2)[2]
    assert cat.token_user(f"miqa_{ana_id}_{bo_secret}") is None
    flipped = ana_token[:-1] + ("A" if ana_token[-1] != "A" else "B")
    assert cat.token_user(flipped) is None
    assert cat.token_user(ana_token) == "ana" and cat.token_user(bo_token) == "bo"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "miqa",
        "miqa__",
        "miqa_short_" + "x" * 43,
        "miqa_abcdefghij_",
        "miqa_abcdefghij_" + "x" * 10,
        "miqa_abcdefghij_" + "x" * 5000,
        "miqa_abcdefghij_" + "x" * 42 + "!",
        "Bearer miqa_abcdefghij_" + "x" * 43,
        "nope_abcdefghij_" + "x" * 43,
        None,
        123,
    ],
)
def test_a_malformed_token_is_none(cat, token):
    assert cat.token_user(token) is None


def test_last_use_is_written_at_most_once_a_minute(cat, clock):
    token_id, token = cat.create_token("ana", by="ana")

    def last_used() -> datetime:
        return cat.tokens("ana", by="ana").set_index("id").at[token_id, "last_used_utc"]

    version = cat.credentials_version()
    cat.token_user(token)
    first = last_used()
    assert first == clock.now.replace(tzinfo=None)
    clock.advance(seconds=59)
    cat.token_user(token)
    assert last_used() == first
    clock.advance(seconds=1)
    cat.token_user(token)
    assert last_used() == clock.now.replace(tzinfo=None)
    assert cat.credentials_version() == version  # a use is not a change of credentials


# ------------------------------------------------------------- sign-in links


def test_a_sign_in_link_works_once(cat):
    secret = cat.create_signin_link("ana", by="admin")
    assert len(secret) >= 43  # 32 random bytes, url-safe
    assert cat.use_signin_link(secret) == "ana"
    assert cat.use_signin_link(secret) is None


def test_an_expired_link_is_refused(cat, clock):
    secret = cat.create_signin_link("ana", by="ana", minutes=5)
    clock.advance(minutes=5)
    assert cat.use_signin_link(secret) is None


@pytest.mark.parametrize("secret", ["", "x" * 43, "short", "é" * 43, "x" * 5000, None])
def test_an_unknown_or_malformed_link_is_none(cat, secret):
    cat.create_signin_link("ana", by="ana")
    assert cat.use_signin_link(secret) is None


@pytest.mark.parametrize("minutes", [0, -5, float("nan"), 24 * 60 + 1])
def test_a_link_lasts_more_than_0_and_at_most_a_day(cat, minutes):
    with pytest.raises(MiqaError, match="a sign-in link lasts more than 0"):
        cat.create_signin_link("ana", by="ana", minutes=minutes)


_USE_LINK = """
import sys, time
from pathlib import Path
from miqa_nb import Catalog
go = Path(sys.argv[2])
Path(sys.argv[2] + "." + sys.argv[4]).touch()  # ready
while not go.exists():
    time.sleep(0.001)
print(Catalog(sys.argv[1]).use_signin_link(sys.argv[3]))
"""


def test_a_link_used_by_several_processes_at_once_signs_in_one(cat, tmp_path):
    secret = Catalog(cat.location).create_signin_link("ana", by="admin")  # the processes' clock
    go = tmp_path / "go"
    users = [
        subprocess.Popen(
            [sys.executable, "-c", _USE_LINK, cat.location, str(go), secret, str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    deadline = time.monotonic() + 120
    while not all(Path(f"{go}.{n}").exists() for n in range(4)):  # all wait for the go
        assert time.monotonic() < deadline, "the processes did not start"
        time.sleep(0.01)
    go.touch()
    results = []
    for process in users:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        results.append(out.strip())
    assert sorted(results) == ["None", "None", "None", "ana"]


# ----------------------------------------------------------- the fast read

_WRITE = """
import sys
from miqa_nb import Catalog
cat = Catalog(sys.argv[1], retry_seconds=5)
cat.set_password("bo", "another password", by="admin")
print(cat.create_token("bo", by="admin")[1])
"""


def test_a_peek_leaves_the_file_to_other_processes_and_sees_their_writes(cat):
    _, token = cat.create_token("ana", by="ana")
    assert cat.token_user(token) == "ana"  # a peek: attached, read, detached
    version = cat.credentials_version()
    done = subprocess.run(
        [sys.executable, "-c", _WRITE, cat.location], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr  # not kept out for 5 s by this process
    assert Catalog(cat.location).token_user(done.stdout.strip()) == "bo"
    assert cat.token_user(done.stdout.strip()) == "bo"
    assert cat.credentials_version() != version
    assert cat.check_password("bo", "another password")


def test_a_peek_inside_an_open_catalog_uses_its_connection(cat):
    _, token = cat.create_token("ana", by="ana")
    with cat.store.connect():  # would wait for itself if the peek took the lock again
        assert cat.token_user(token) == "ana"
        assert cat.credentials_version() != "0"
    with cat.store.peek():
        assert cat.has_password("ana") is False  # a read inside a peek reads through it


def test_token_user_is_fast(cat):
    """An API call's budget is 5 ms; the check itself must take far less."""
    _, token = cat.create_token("ana", by="ana")
    times = []
    for _ in range(50):
        start = time.perf_counter()
        assert cat.token_user(token) == "ana"
        times.append(time.perf_counter() - start)
    assert min(times) < 0.005, f"fastest of 50 checks took {min(times) * 1000:.1f} ms"


# ---------------------------------------------------------------- permissions


def test_a_user_changes_only_its_own_credentials(cat):
    token_id, _ = cat.create_token("ana", by="ana")
    refusals = [
        lambda: cat.set_password("ana", PASSWORD, by="bo"),
        lambda: cat.create_token("ana", by="bo"),
        lambda: cat.tokens("ana", by="bo"),
        lambda: cat.revoke_token("ana", token_id, by="bo"),
        lambda: cat.create_signin_link("ana", by="bo"),
        lambda: cat.set_password("admin", PASSWORD, by="bo"),
    ]
    for refused in refusals:
        with pytest.raises(PermissionDenied, match=r"user 'bo' may not .* of user '(ana|admin)'"):
            refused()
    assert not cat.has_password("ana") and not cat.has_password("admin")
    assert cat.tokens("ana", by="ana")["revoked_utc"].isna().all()
    cat.set_password("bo", PASSWORD, by="bo")  # its own
    cat.set_password("ana", PASSWORD, by="admin")  # a superuser
    assert cat.check_password("ana", PASSWORD) and cat.check_password("bo", PASSWORD)


def test_credentials_of_an_unknown_user_are_refused_as_elsewhere(cat):
    for refused in (
        lambda: cat.set_password("nobody", PASSWORD, by="admin"),
        lambda: cat.create_token("nobody", by="admin"),
        lambda: cat.create_signin_link("nobody", by="admin"),
        lambda: cat.has_password("nobody"),
        lambda: cat.set_password("ana", PASSWORD, by="nobody"),
    ):
        with pytest.raises(PermissionDenied, match="user 'nobody' is not in the catalog"):
            refused()


def test_the_credentials_version_changes_with_every_credential_write(cat):
    seen = [cat.credentials_version()]

    def changed() -> bool:
        seen.append(cat.credentials_version())
        return seen[-1] not in seen[:-1]

    cat.set_password("ana", PASSWORD, by="ana")
    assert changed()
    token_id, token = cat.create_token("ana", by="ana")
    assert changed()
    cat.check_password("ana", PASSWORD)
    cat.token_user(token)
    assert not changed()  # reads change nothing
    cat.revoke_token("ana", token_id, by="ana")
    assert changed()
    secret = cat.create_signin_link("ana", by="ana")
    assert changed()
    cat.use_signin_link(secret)
    assert changed()


# ---------------------------------------------------------------- version 1


def _version_1_catalog(path: Path) -> Path:
    """A catalog as miqa_nb made them before credentials (schema version 1)."""
    con = duckdb.connect(str(path))
    con.execute(V1_SQL.read_text())
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.execute("INSERT INTO users (name, superuser) VALUES ('admin', true), ('ana', false)")
    con.close()
    return path


def test_a_version_1_catalog_is_upgraded_on_its_first_writable_opening(tmp_path):
    path = _version_1_catalog(tmp_path / "old.duckdb")
    assert not {"passwords", "api_tokens", "signin_links"} & catalog_tables(path)
    cat = Catalog(path)
    # upgraded through every version since (2: credentials, 3: quarantine)
    assert SCHEMA_VERSION == "3"
    assert cat.sql("SELECT value FROM meta WHERE key = 'schema_version'")["value"].tolist() == ["3"]
    assert {"passwords", "api_tokens", "signin_links"} <= catalog_tables(path)
    assert cat.users().set_index("name")["password"].to_dict() == {"admin": False, "ana": False}
    assert cat.check_password("ana", PASSWORD) is False
    cat.set_password("ana", PASSWORD, by="admin")
    assert Catalog(path).check_password("ana", PASSWORD)


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount here (root is needed): {done.stderr.strip()}")


@pytest.fixture
def read_only_version_1(tmp_path: Path):
    """A version-1 catalog seen through a read-only bind mount of its folder."""
    folder = tmp_path / "made"
    folder.mkdir()
    _version_1_catalog(folder / "old.duckdb")
    mounted = tmp_path / "ro"
    mounted.mkdir()
    _mount("--bind", str(folder), str(mounted))
    try:
        _mount("-o", "remount,bind,ro", str(mounted))
        yield mounted / "old.duckdb"
    finally:
        subprocess.run(["umount", "-l", str(mounted)], check=True)


def test_a_read_only_version_1_catalog_reads_and_has_no_credentials(read_only_version_1):
    cat = Catalog(read_only_version_1)
    assert cat.store.read_only
    assert cat.users()["password"].tolist() == [False, False]
    assert cat.check_password("ana", PASSWORD) is False
    assert cat.has_password("ana") is False
    assert cat.token_user("miqa_abcdefghij_" + "x" * 43) is None
    assert cat.use_signin_link("x" * 43) is None
    assert cat.tokens("ana", by="admin").columns.tolist() == list(credentials.TOKEN_COLUMNS)
    assert cat.credentials_version() == "0"
    with pytest.raises(WriteError, match="read-only for this user"):
        cat.set_password("ana", PASSWORD, by="admin")
    with pytest.raises(WriteError, match="read-only for this user"):
        cat.create_token("ana", by="admin")
    assert cat.sql("SELECT value FROM meta WHERE key = 'schema_version'")["value"].tolist() == ["1"]

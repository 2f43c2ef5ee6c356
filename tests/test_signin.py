"""``miqa-nb serve`` signs every request in: one real server, asked the way XNAT's
scripts ask (curl exactly as XNAT's documentation writes it, ``requests``) and the way
a browser asks (the sign-in form, its cookies).

Every failed sign-in counts against the user and the client's address (10 a minute,
then 429), and every test here fails some: each test that fails on purpose talks from
a loopback address of its own (``127.0.0.N``; Linux routes all of 127/8 to ``lo``), so
one test's failures never brake another's.

Every secret handed out or typed (passwords, tokens, session ids, sign-in links) is
collected on the way; the last tests look for them in the server's log and in its
processes' command lines and environments.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import re
import subprocess
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from requests.adapters import HTTPAdapter
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from miqa_nb.catalog import Catalog
from miqa_nb.serve import Server, start

pytestmark = pytest.mark.slow

PROJECT = "P"
ADMIN, TIER1, COLLABORATOR, BRAKED = "admin", "tina", "carl", "bruno"
PASSWORDS = {
    name: f"pw-{name}-{uuid.uuid4().hex[:12]}" for name in (ADMIN, TIER1, COLLABORATOR, BRAKED)
}
_addresses = itertools.count(10)


def fresh_address() -> str:
    """A loopback address no other test talks from."""
    return f"127.0.0.{next(_addresses)}"


@dataclass
class Site:
    """The served catalog, its server, and every secret met so far."""

    server: Server
    catalog: Catalog
    log: Path
    secrets: set[str] = field(default_factory=set)

    @property
    def url(self) -> str:
        return self.server.url

    def keep(self, *secrets: str) -> None:
        self.secrets.update(s for s in secrets if s)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("signin")
    catalog = Catalog(root / "catalog.duckdb", retry_seconds=30)
    catalog.add_user(ADMIN, superuser=True)
    for name in (TIER1, COLLABORATOR, BRAKED):
        catalog.add_user(name, by=ADMIN)
    catalog.create_project(PROJECT, by=ADMIN)
    catalog.set_role(PROJECT, TIER1, "tier1", by=ADMIN)
    catalog.set_role(PROJECT, COLLABORATOR, "collaborator", by=ADMIN)
    catalog.set_role(PROJECT, BRAKED, "tier1", by=ADMIN)
    for name, password in PASSWORDS.items():
        catalog.set_password(name, password, by=name)
    log = root / "server.log"
    server = start(catalog.path, log=log)
    try:
        server.wait_ready()
        found = Site(server, catalog, log)
        found.keep(*PASSWORDS.values())
        yield found
    finally:
        server.stop()


# ------------------------------------------------------------------ clients


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str


def curl(*args: str, address: str = "127.0.0.1") -> Answer:
    """Run curl (from ``address``) as a person would type it; its status, headers, body."""
    proc = subprocess.run(
        ["curl", "-s", "-i", "--interface", address, *args],
        capture_output=True,
        check=True,
        timeout=60,
    )
    raw = proc.stdout.decode()
    head, _, body = raw.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(lines[0].split()[1]), headers, body)


class _FromAddress(HTTPAdapter):
    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def session(address: str = "127.0.0.1") -> requests.Session:
    """A ``requests`` session talking from ``address``."""
    client = requests.Session()
    client.mount("http://", _FromAddress(address))
    return client


def xsrf_of(form_html: str) -> str:
    found = re.search(r'name="_xsrf" value="([^"]+)"', form_html)
    assert found, "the sign-in form has no _xsrf field"
    return found.group(1)


def sign_in(site: Site, user: str, address: str = "127.0.0.1") -> requests.Session:
    """A browser-like session signed in as ``user`` with the sign-in form."""
    client = session(address)
    form = client.get(site.url + "login")
    assert form.status_code == 200
    answer = client.post(
        site.url + "login",
        data={"user": user, "password": PASSWORDS[user], "_xsrf": xsrf_of(form.text)},
        allow_redirects=False,
    )
    assert answer.status_code == 302, answer.text
    cookie = client.cookies.get("miqa-nb-signin")
    assert cookie
    site.keep(cookie, client.cookies.get("_xsrf") or "")
    return client


def jsession(site: Site, *auth: str) -> str:
    answer = curl(*auth, site.url + "data/JSESSION")
    assert answer.status == 200, answer
    site.keep(answer.body)
    return answer.body


# ------------------------------------------------------------------ scripts (XNAT's ways)


def test_basic_with_password_answers_a_session_whose_cookie_works_until_deleted(
    site: Site,
) -> None:
    sid = jsession(site, "-u", f"{TIER1}:{PASSWORDS[TIER1]}")
    assert re.fullmatch(r"[A-Za-z0-9_-]{40,}", sid)
    again = curl("-b", f"JSESSIONID={sid}", site.url + "data/JSESSION")
    assert again.status == 200  # the cookie signs in: its own session, as XNAT answers
    assert again.body == sid
    # a new sign-in with the password, even beside the cookie, is a new session
    other = jsession(site, "-u", f"{TIER1}:{PASSWORDS[TIER1]}", "-b", f"JSESSIONID={sid}")
    assert other != sid
    ended = curl("-X", "DELETE", "-b", f"JSESSIONID={sid}", site.url + "data/JSESSION")
    assert ended.status == 200
    after = curl("-b", f"JSESSIONID={sid}", site.url + "data/JSESSION")
    assert after.status == 401
    assert after.headers["www-authenticate"].startswith("Basic")


def test_unauthenticated_data_calls_get_a_basic_challenge_not_a_redirect(site: Site) -> None:
    for method in ("GET", "DELETE"):
        answer = curl("-X", method, site.url + "data/JSESSION")
        assert answer.status == 401, method
        assert answer.headers["www-authenticate"].startswith("Basic")


def test_requests_session_with_basic_auth(site: Site) -> None:
    client = session()
    answer = client.get(site.url + "data/JSESSION", auth=(COLLABORATOR, PASSWORDS[COLLABORATOR]))
    assert answer.status_code == 200
    site.keep(answer.text)
    assert client.cookies.get("JSESSIONID") == answer.text
    # the session cookie alone (no auth) keeps the client signed in
    assert client.get(site.url + "data/JSESSION").status_code == 200
    site.keep(client.cookies.get("JSESSIONID") or "")
    assert client.delete(site.url + "data/JSESSION").status_code == 200
    assert client.get(site.url + "data/JSESSION").status_code == 401


def test_api_token_by_basic_and_by_token_header(site: Site) -> None:
    _, token = site.catalog.create_token(TIER1, by=TIER1)
    site.keep(token)
    assert curl("-u", f"{TIER1}:{token}", site.url + "data/JSESSION").status == 200
    header = curl("-H", f"Authorization: token {token}", site.url + "data/JSESSION")
    assert header.status == 200
    site.keep(header.body)
    answer = session().get(site.url + "data/JSESSION", auth=(TIER1, token))
    assert answer.status_code == 200
    site.keep(answer.text)
    # another user's name with this token is refused
    assert (
        curl(
            "-u", f"{COLLABORATOR}:{token}", site.url + "data/JSESSION", address=fresh_address()
        ).status
        == 401
    )


def test_wrong_password_and_unknown_user_get_the_same_answer(site: Site) -> None:
    address = fresh_address()
    wrong = curl("-u", f"{TIER1}:not-her-password", site.url + "data/JSESSION", address=address)
    unknown = curl("-u", "nobody:not-a-password", site.url + "data/JSESSION", address=address)
    assert wrong.status == unknown.status == 401
    assert wrong.body == unknown.body
    assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"]
    client = session(address)
    by_requests = client.get(site.url + "data/JSESSION", auth=("nobody", "x" * 12))
    assert by_requests.status_code == 401 and by_requests.text == wrong.body


def test_a_revoked_token_is_refused_at_once(site: Site) -> None:
    token_id, token = site.catalog.create_token(COLLABORATOR, by=COLLABORATOR)
    site.keep(token)
    call = ("-H", f"Authorization: token {token}", site.url + "data/JSESSION")
    first = curl(*call)
    assert first.status == 200  # verified, and remembered by the server
    site.keep(first.body)
    site.catalog.revoke_token(COLLABORATOR, token_id, by=COLLABORATOR)
    assert curl(*call, address=fresh_address()).status == 401


def test_an_expired_token_is_refused(site: Site) -> None:
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    past = Catalog(site.catalog.path, clock=lambda: two_days_ago)
    _, token = past.create_token(TIER1, by=TIER1, expires_days=1)
    site.keep(token)
    address = fresh_address()
    assert (
        curl(
            "-H", f"Authorization: token {token}", site.url + "data/JSESSION", address=address
        ).status
        == 401
    )
    assert curl("-u", f"{TIER1}:{token}", site.url + "data/JSESSION", address=address).status == 401


# ------------------------------------------------------------------ one-time links


def _link_secret(link: str) -> str:
    return parse_qs(urlsplit(link).query)["link"][0]


def test_a_signin_link_signs_in_once(site: Site) -> None:
    link = site.server.signin_link(COLLABORATOR, project=PROJECT)
    site.keep(_link_secret(link))
    client = session(fresh_address())
    first = client.get(link, allow_redirects=False)
    assert first.status_code == 302
    assert urlsplit(first.headers["Location"]).query == f"project={PROJECT}"
    assert client.cookies.get("miqa-nb-signin")
    site.keep(client.cookies.get("miqa-nb-signin") or "")
    again = session(fresh_address()).get(link, allow_redirects=False)
    assert again.status_code == 403
    assert "miqa-nb-signin" not in again.cookies


def test_an_expired_signin_link_is_refused(site: Site) -> None:
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    secret = Catalog(site.catalog.path, clock=lambda: an_hour_ago).create_signin_link(
        TIER1, by=TIER1, minutes=5
    )
    site.keep(secret)
    answer = curl(f"{site.url}login?link={secret}&next=/", address=fresh_address())
    assert answer.status == 403
    assert (
        "set-cookie" not in answer.headers or "miqa-nb-signin" not in answer.headers["set-cookie"]
    )


# ------------------------------------------------------------------ the sign-in form


def test_the_form_signs_in_with_an_httponly_samesite_cookie(site: Site) -> None:
    client = session()
    form = client.get(site.url + "login")
    assert form.status_code == 200 and 'name="_xsrf"' in form.text
    answer = client.post(
        site.url + "login?next=/",
        data={"user": TIER1, "password": PASSWORDS[TIER1], "_xsrf": xsrf_of(form.text)},
        allow_redirects=False,
    )
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/"
    set_cookie = answer.headers["Set-Cookie"]
    assert set_cookie.startswith("miqa-nb-signin=")
    assert "HttpOnly" in set_cookie
    assert re.search(r"SameSite=(Lax|Strict)", set_cookie)
    assert "expires" not in set_cookie.lower()  # ends with the browser
    site.keep(client.cookies.get("miqa-nb-signin") or "")
    # the cookie opens what needs a signed-in user
    assert client.get(site.url + "login/password", allow_redirects=False).status_code == 200


def test_the_form_without_xsrf_is_refused_without_a_cookie(site: Site) -> None:
    client = session()
    client.get(site.url + "login")
    answer = client.post(
        site.url + "login",
        data={"user": TIER1, "password": PASSWORDS[TIER1]},
        allow_redirects=False,
    )
    assert answer.status_code == 403
    assert "miqa-nb-signin" not in answer.headers.get("Set-Cookie", "")
    assert client.cookies.get("miqa-nb-signin") is None


def test_the_form_answers_a_wrong_user_as_a_wrong_password(site: Site) -> None:
    client = session(fresh_address())
    xsrf = xsrf_of(client.get(site.url + "login").text)
    wrong = client.post(
        site.url + "login", data={"user": TIER1, "password": "wrong-one!", "_xsrf": xsrf}
    )
    unknown = client.post(
        site.url + "login", data={"user": "nobody", "password": "wrong-one!", "_xsrf": xsrf}
    )
    assert wrong.status_code == unknown.status_code == 401
    message = "Wrong user name or password."
    assert message in wrong.text and message in unknown.text
    assert client.cookies.get("miqa-nb-signin") is None


@pytest.mark.parametrize("forged", ["anything", "2|1:0|10:1795971706|14:miqa-nb-signin|4:YQ==|00"])
def test_a_forged_login_cookie_is_sent_to_the_signin_page(site: Site, forged: str) -> None:
    answer = curl("-b", f"miqa-nb-signin={forged}", site.url + "login/password")
    assert answer.status == 302
    assert urlsplit(answer.headers["location"]).path == "/login"


def test_a_cookie_signed_by_another_server_is_sent_to_the_signin_page(
    site: Site, tmp_path: Path
) -> None:
    """A real login cookie of another server (its own cookie secret) opens nothing here."""
    other_catalog = Catalog(tmp_path / "other.duckdb")
    other_catalog.add_user(TIER1, superuser=True)
    other_catalog.set_password(TIER1, PASSWORDS[TIER1], by=TIER1)
    other = start(other_catalog.path, preheat=False, log=tmp_path / "other.log")
    try:
        other.wait_ready()
        client = session()
        form = client.get(other.url + "login")
        client.post(
            other.url + "login",
            data={"user": TIER1, "password": PASSWORDS[TIER1], "_xsrf": xsrf_of(form.text)},
            allow_redirects=False,
        )
        cookie = client.cookies.get("miqa-nb-signin")
        assert cookie
        assert client.get(other.url + "login/password", allow_redirects=False).status_code == 200
    finally:
        other.stop()
    site.keep(cookie)
    answer = curl("-b", f"miqa-nb-signin={cookie}", site.url + "login/password")
    assert answer.status == 302
    assert urlsplit(answer.headers["location"]).path == "/login"


def test_after_signing_out_the_old_cookie_opens_nothing(site: Site) -> None:
    client = sign_in(site, COLLABORATOR)
    cookie = client.cookies.get("miqa-nb-signin")
    assert client.get(site.url + "login/password", allow_redirects=False).status_code == 200
    assert client.get(site.url + "logout").status_code == 200
    replayed = curl("-b", f"miqa-nb-signin={cookie}", site.url + "login/password")
    assert replayed.status == 302
    page = curl("-b", f"miqa-nb-signin={cookie}", site.url)
    assert page.status == 302
    assert urlsplit(page.headers["location"]).path == "/login"


# ------------------------------------------------------------------ kernels


@dataclass
class Page:
    client: requests.Session
    kernel_id: str


@pytest.fixture(scope="module")
def tina_page(site: Site) -> Page:
    """The tier-1 reviewer's dashboard page, opened with ``?user=admin`` in its address."""
    client = sign_in(site, TIER1)
    answer = client.get(site.url, params={"user": ADMIN, "project": PROJECT}, timeout=120)
    assert answer.status_code == 200
    found = re.search(r'"kernelId":\s*"([0-9a-f-]{36})"', answer.text)
    assert found, "the page names no kernel"
    return Page(client, found.group(1))


def _kernel_model(site: Site, page: Page) -> dict[str, Any]:
    answer = page.client.get(site.url + f"api/kernels/{page.kernel_id}")
    assert answer.status_code == 200
    model: dict[str, Any] = answer.json()
    return model


def test_another_user_cannot_reach_a_page_kernel(site: Site, tina_page: Page) -> None:
    kernel = tina_page.kernel_id
    assert _kernel_model(site, tina_page)["id"] == kernel
    other = sign_in(site, COLLABORATOR)
    assert other.get(site.url + f"api/kernels/{kernel}").status_code == 403
    xsrf = other.cookies.get("_xsrf") or ""
    shut = other.post(
        site.url + f"voila/api/shutdown/{kernel}",
        headers={"X-XSRFToken": xsrf},
        allow_redirects=False,
    )
    assert shut.status_code == 403
    by_basic = curl(
        "-X", "POST", "-u", f"{ADMIN}:{PASSWORDS[ADMIN]}", site.url + f"voila/api/shutdown/{kernel}"
    )
    assert by_basic.status == 403  # not even a superuser may end another's page
    assert (
        curl(
            "-X", "DELETE", "-u", f"{ADMIN}:{PASSWORDS[ADMIN]}", site.url + f"api/kernels/{kernel}"
        ).status
        == 403
    )
    assert _kernel_model(site, tina_page)["execution_state"] != "dead"


def _ws_url(site: Site, path: str) -> str:
    return "ws" + site.url[len("http") :] + path


async def _open_socket(site: Site, path: str, cookies: dict[str, str | None]) -> Any:
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return await websocket_connect(HTTPRequest(_ws_url(site, path), headers={"Cookie": cookie}))


def run_apart(attempt: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """``asyncio.run(attempt())`` on a thread of its own: the browser tests' Playwright
    keeps an event loop running on the main thread for the whole session."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, attempt()).result(timeout=120)


def test_another_user_cannot_open_a_page_kernel_s_websocket(site: Site, tina_page: Page) -> None:
    other = sign_in(site, COLLABORATOR)

    async def attempt() -> int:
        try:
            socket = await _open_socket(
                site, f"api/kernels/{tina_page.kernel_id}/channels", other.cookies.get_dict()
            )
        except HTTPClientError as exc:
            return exc.code
        socket.close()
        return 101

    assert run_apart(attempt) == 403


def test_voila_query_socket_is_not_served(site: Site, tina_page: Page) -> None:
    path = f"voila/query/{tina_page.kernel_id}"
    answer = tina_page.client.get(site.url + path, allow_redirects=False)
    assert answer.status_code in (302, 404)
    assert TIER1 not in answer.text and PROJECT not in answer.text

    async def attempt() -> int:
        try:
            socket = await _open_socket(site, path, tina_page.client.cookies.get_dict())
        except HTTPClientError as exc:
            return exc.code
        socket.close()
        return 101

    assert run_apart(attempt) != 101


def test_a_kernel_s_own_questions_need_its_key(site: Site, tina_page: Page) -> None:
    kernel = tina_page.kernel_id
    assert curl(site.url + "miqa/kernel/page").status == 403
    assert (
        curl(
            "-H", f"Authorization: kernel {kernel} not-its-key", site.url + "miqa/kernel/page"
        ).status
        == 403
    )
    # a signed-in user's own credentials are no kernel key either
    assert tina_page.client.get(site.url + "miqa/kernel/page").status_code == 403
    assert (
        curl(
            "-X", "DELETE", "-H", f"Authorization: kernel {kernel} x", site.url + "miqa/kernel/"
        ).status
        == 403
    )
    assert _kernel_model(site, tina_page)["execution_state"] != "dead"


# ------------------------------------------------------------------ brakes and secrets


def test_failed_signins_are_braked_per_user(site: Site) -> None:
    address = fresh_address()
    statuses = [
        curl(
            "-u", f"{BRAKED}:wrong-{i}-password", site.url + "data/JSESSION", address=address
        ).status
        for i in range(11)
    ]
    assert statuses[:10] == [401] * 10
    assert statuses[10] == 429
    right = curl("-u", f"{BRAKED}:{PASSWORDS[BRAKED]}", site.url + "data/JSESSION", address=address)
    assert right.status == 429
    assert 1 <= int(right.headers["retry-after"]) <= 61
    # the user is braked from any address, by any way of signing in
    elsewhere = curl(
        "-u", f"{BRAKED}:{PASSWORDS[BRAKED]}", site.url + "data/JSESSION", address=fresh_address()
    )
    assert elsewhere.status == 429
    client = session(fresh_address())
    xsrf = xsrf_of(client.get(site.url + "login").text)
    form = client.post(
        site.url + "login",
        data={"user": BRAKED, "password": PASSWORDS[BRAKED], "_xsrf": xsrf},
        allow_redirects=False,
    )
    assert form.status_code == 429
    assert client.cookies.get("miqa-nb-signin") is None
    # Jupyter Server's and Voila's own handlers say when to try again too
    for path in ("api/kernels/00000000-0000-4000-8000-000000000000", ""):
        braked = curl("-u", f"{BRAKED}:{PASSWORDS[BRAKED]}", site.url + path, address=address)
        assert braked.status == 429, path
        assert 1 <= int(braked.headers["retry-after"]) <= 61, path


def test_failed_signins_are_braked_per_address(site: Site) -> None:
    address = fresh_address()
    statuses = [
        curl("-u", f"nobody{i}:wrong-password", site.url + "data/JSESSION", address=address).status
        for i in range(11)
    ]
    assert statuses[:10] == [401] * 10 and statuses[10] == 429
    right = curl("-u", f"{ADMIN}:{PASSWORDS[ADMIN]}", site.url + "data/JSESSION", address=address)
    assert right.status == 429 and "retry-after" in right.headers
    # another address is not braked
    assert jsession(site, "-u", f"{ADMIN}:{PASSWORDS[ADMIN]}")


def _process_tree(pid: int) -> list[int]:
    pids = [pid]
    for line in subprocess.run(
        ["ps", "-eo", "pid=,ppid="], capture_output=True, text=True, check=True
    ).stdout.splitlines():
        child, parent = map(int, line.split())
        if parent == pid:
            pids += _process_tree(child)
    return pids


def test_no_secret_in_the_log_or_the_processes(site: Site, tina_page: Page) -> None:
    secrets = {s for s in site.secrets if len(s) >= 8}
    assert len(secrets) >= 15, secrets  # the tests above ran and handed out secrets
    log = site.log.read_text(errors="replace")
    assert "401 GET /data/JSESSION" in log  # refused sign-ins are logged, by path
    assert [s for s in secrets if s in log] == []
    pids = _process_tree(site.server.process.pid)
    assert len(pids) >= 2  # the server and at least one kernel
    args = subprocess.run(
        ["ps", "-o", "args=", "-p", ",".join(map(str, pids))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "miqa_nb.server" in args
    assert [s for s in secrets if s in args] == []
    for pid in pids:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        except FileNotFoundError:
            continue  # ended meanwhile
        assert [s for s in secrets if s in environ] == [], pid

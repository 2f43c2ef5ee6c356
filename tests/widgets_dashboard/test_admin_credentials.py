"""The administration's sign-in section: a superuser makes one-time sign-in links,
sets passwords, makes, lists and revokes API tokens, through the real widgets on a
real catalog; secrets are shown once and never logged. A project's creator who is
not a superuser has no such controls, and a crafted page reaching the actions is
refused."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pytest
from ipywidgets.widgets.widget import _instances as widget_instances
from support import page_clicks, page_sets
from widgets_dashboard.dashboard_catalog import (
    ADMIN,
    COLLABORATOR,
    PROJECT,
    TIER1,
    TIER2,
    DashboardCatalog,
    build,
)

from miqa_nb.catalog import Catalog
from miqa_nb.dashboard._status import StatusBar
from miqa_nb.dashboard.admin import AdminPanel
from miqa_nb.dashboard.app import Dashboard
from miqa_nb.dashboard.credentials import CredentialsSection
from miqa_nb.dashboard.model import AdminActions

SERVER = "http://127.0.0.1:8866/review/"
PASSWORD = "horse-battery-staple-7"
SHOWN = re.compile(r"<pre[^>]*>([^<]+)</pre>")


@pytest.fixture
def site(tmp_path: Path) -> DashboardCatalog:
    return build(tmp_path / "site")


def _panel(site: DashboardCatalog) -> tuple[Catalog, StatusBar, AdminPanel, CredentialsSection]:
    cat = site.catalog()
    status = StatusBar()
    panel = AdminPanel(AdminActions(cat, ADMIN, PROJECT, server_url=SERVER), status)
    assert panel.credentials is not None
    return cat, status, panel, panel.credentials


def _shown(section: CredentialsSection) -> str:
    [text] = SHOWN.findall(section.secret.value)
    return text


def _every_widget_state() -> str:
    """Everything the kernel holds for the page: every live widget's synced state."""
    states = [w.get_state() for w in list(widget_instances.values())]
    return repr(states)


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)


def test_a_superuser_sees_who_has_a_password(site: DashboardCatalog) -> None:
    cat = site.catalog()
    cat.set_password(TIER2, PASSWORD, by=ADMIN)
    *_, section = _panel(site)
    rows = re.findall(
        r"<tr>\s*<td>([^<]+)</td>\s*<td>[^<]*</td>\s*<td>(\w+)</td>", section.table.value
    )
    assert dict(rows) == {ADMIN: "no", TIER1: "no", TIER2: "yes", COLLABORATOR: "no"}


def test_a_sign_in_link_works_once_and_goes_when_another_user_is_chosen(
    site: DashboardCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cat, status, _, section = _panel(site)
    section.user.value = TIER1
    section.minutes.value = 10
    section.make_link.click()
    assert status.level == "ok", status.message
    link = _shown(section)
    assert link.startswith(SERVER + "signin?link=")
    secret = link.split("link=", 1)[1]
    assert len(secret) >= 40
    assert "works once, until" in section.secret.value and TIER1 in section.secret.value
    assert secret not in status.message and secret not in _logged(caplog)
    assert cat.use_signin_link(secret) == TIER1
    assert cat.use_signin_link(secret) is None  # once
    section.user.value = TIER2
    assert section.secret.value == ""
    assert secret not in _every_widget_state()


def test_a_shown_secret_goes_when_the_panel_is_refreshed(site: DashboardCatalog) -> None:
    _cat, status, panel, section = _panel(site)
    section.user.value = TIER1
    section.new_token.click()
    token = _shown(section)
    panel.new_user.value = "newcomer"
    [add] = _find(panel.widget, "miqa-add-user")
    add.click()
    assert status.level == "ok", status.message
    assert section.secret.value == "" and token not in _every_widget_state()
    assert "newcomer" in section.user.options and section.user.value == TIER1


def _find(root: widgets.Widget, css: str) -> list[Any]:
    found: list[Any] = []
    if css in getattr(root, "_dom_classes", ()):
        found.append(root)
    for child in getattr(root, "children", ()):
        found.extend(_find(child, css))
    return found


def test_setting_a_password_keeps_it_nowhere(
    site: DashboardCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cat, status, _, section = _panel(site)
    section.user.value = COLLABORATOR
    section.password.value = PASSWORD
    section.password_again.value = PASSWORD + "x"
    section.set_password.click()
    assert status.level == "error" and "the two passwords differ" in status.message
    assert section.password.value == "" and section.password_again.value == ""
    assert not cat.has_password(COLLABORATOR)
    section.password.value = section.password_again.value = "short"
    section.set_password.click()
    assert status.level == "error" and "at least 8 characters" in status.message
    assert "short" not in status.message and not cat.has_password(COLLABORATOR)
    page_sets(section.password, value=PASSWORD)  # as a page sends it
    page_sets(section.password_again, value=PASSWORD)
    page_clicks(section.set_password)
    assert status.level == "ok", status.message
    assert status.message == f"Set the password of {COLLABORATOR}."
    assert cat.check_password(COLLABORATOR, PASSWORD)
    assert section.password.value == "" and section.password_again.value == ""
    assert PASSWORD not in _every_widget_state()
    assert PASSWORD not in _logged(caplog) and PASSWORD + "x" not in _logged(caplog)
    assert f"{ADMIN} set the password of {COLLABORATOR}" in _logged(caplog)
    assert re.search(rf"<td>{COLLABORATOR}</td>\s*<td></td>\s*<td>yes</td>", section.table.value)


def test_a_token_is_made_listed_and_revoked(
    site: DashboardCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cat, status, _, section = _panel(site)
    section.user.value = TIER2
    assert "No API tokens" in section.tokens.value and section.token_id.options == ()
    section.token_days.value = "2"
    section.new_token.click()
    assert status.level == "ok", status.message
    token = _shown(section)
    assert cat.token_user(token) == TIER2
    [token_id] = section.token_id.options
    assert token_id in status.message and token not in status.message
    assert f"(id {token_id})" in section.secret.value and "expires: 20" in section.secret.value
    assert f"<td>{token_id}</td>" in section.tokens.value and token not in section.tokens.value
    assert token not in _logged(caplog)
    listing = cat.tokens(TIER2, by=ADMIN)
    created, expires = listing.at[0, "created_utc"], listing.at[0, "expires_utc"]
    assert abs((expires - created).total_seconds() - 2 * 86400) < 1
    section.token_id.value = token_id
    section.revoke.click()
    assert status.level == "ok", status.message
    assert status.message == f"Revoked API token {token_id} of {TIER2}."
    assert cat.token_user(token) is None
    assert section.token_id.options == () and section.secret.value == ""
    assert cat.tokens(TIER2, by=ADMIN)["revoked_utc"].notna().all()
    section.token_days.value = "soon"
    section.new_token.click()
    assert status.level == "error" and "'soon' was provided" in status.message
    assert len(cat.tokens(TIER2, by=ADMIN)) == 1


def test_without_a_known_address_the_link_says_where_to_put_it(site: DashboardCatalog) -> None:
    cat = site.catalog()
    status = StatusBar()
    section = CredentialsSection(AdminActions(cat, ADMIN, PROJECT), status)
    section.user.value = TIER1
    section.make_link.click()
    link = _shown(section)
    assert link.startswith("http://127.0.0.1:PORT/signin?link=")
    assert cat.use_signin_link(link.split("link=", 1)[1]) == TIER1


@pytest.fixture
def creator_board(site: DashboardCatalog) -> Dashboard:
    """TIER2 made Alpha's creator (only superusers create projects: hand it over)."""
    cat = site.catalog()
    cat.sql("UPDATE projects SET creator = ? WHERE name = ?", [TIER2, PROJECT])
    board = Dashboard(cat, TIER2, background=False, thumbnail_dir=site.root / "t")
    board.open_project(PROJECT, overview=False)
    return board


def test_a_creator_who_is_not_a_superuser_has_no_sign_in_controls(
    creator_board: Dashboard,
) -> None:
    assert creator_board.admin is not None  # the creator administers the project
    assert creator_board.admin.credentials is None
    state = _every_widget_state()
    for css in ("miqa-admin-credentials", "miqa-signin-link", "miqa-set-password"):
        assert not _find(creator_board.widget, css)
        assert css not in state
    creator_board.close()


def test_a_crafted_page_of_a_creator_is_refused(
    site: DashboardCatalog, creator_board: Dashboard
) -> None:
    """The widgets do not exist for the creator; a page that reached the actions anyway
    (its own panel's AdminActions) is refused, for others' accounts and its own."""
    cat = site.catalog()
    assert creator_board.admin is not None
    actions, status = creator_board.admin.actions, creator_board.status
    calls = {
        "set passwords": lambda member: actions.set_password(member, PASSWORD, PASSWORD),
        "make sign-in links": lambda member: actions.signin_link(member),
        "make API tokens": lambda member: actions.create_token(member, "3"),
        "see API tokens": lambda member: actions.tokens(member),
        "revoke API tokens": lambda member: actions.revoke_token(member, "anything"),
    }
    for member in (TIER1, ADMIN, TIER2):
        for action, call in calls.items():
            status.clear()
            assert status.run(lambda call=call, member=member: call(member)) is None
            assert status.level == "error"
            assert status.message == (
                f"Refused: user {TIER2!r} may not {action}: only superusers may do that"
            ), status.message
    status.run(actions.credentials)
    assert status.message.startswith("Refused:")
    for member in (TIER1, ADMIN, TIER2):
        assert not cat.has_password(member)
        assert cat.tokens(member, by=ADMIN).empty
    assert cat.sql("SELECT count(*) AS n FROM signin_links").at[0, "n"] == 0
    creator_board.close()

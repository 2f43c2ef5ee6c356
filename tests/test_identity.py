"""Who the user is: one rule (miqa_nb.core.identity) for every entry point."""

from __future__ import annotations

import doctest
import getpass

import pytest

from miqa_nb.core import identity
from miqa_nb.core.identity import current_user, named_user

HUB = {"JUPYTERHUB_USER": "hub", "LOGNAME": "login"}


@pytest.mark.parametrize(
    ("explicit", "environ", "expected"),
    [
        ("flag", {"MIQA_NB_USER": "env", **HUB}, "flag"),
        (None, {"MIQA_NB_USER": "env", **HUB}, "env"),
        ("", {"MIQA_NB_USER": "env", **HUB}, "env"),  # an empty flag is no flag
        (None, HUB, "hub"),
        (None, {"MIQA_NB_USER": "", **HUB}, "hub"),  # an empty variable is unset
        (None, {"LOGNAME": "login", "USER": "other"}, "login"),
        (None, {"USER": "other"}, "other"),
    ],
)
def test_order_is_explicit_then_miqa_nb_user_then_hub_then_login(explicit, environ, expected):
    assert current_user(explicit, environ) == expected


def test_named_user_stops_before_the_login_name():
    assert named_user(None, {"LOGNAME": "login", "USER": "login"}) is None
    assert named_user(None, HUB) == "hub"


def test_without_a_name_in_the_environment_the_login_name_comes_from_the_system(monkeypatch):
    for name in identity.LOGIN_ENVS:
        monkeypatch.delenv(name, raising=False)
    assert current_user(None, {}) == getpass.getuser()


def test_the_process_environment_is_the_default(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_USER", "hub-user")
    assert current_user() == "hub-user"
    monkeypatch.setenv("MIQA_NB_USER", "me")
    assert current_user() == "me" and named_user() == "me"


def test_the_examples_in_the_module_run():
    result = doctest.testmod(identity, raise_on_error=False)
    assert result.attempted == 4 and result.failed == 0

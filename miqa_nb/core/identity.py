"""Who the user is: one rule for the command line, notebooks and review sessions.

The order is fixed: the name given explicitly (``--user``, a ``user=`` argument), then
``MIQA_NB_USER``, then ``JUPYTERHUB_USER`` (JupyterHub sets it in every single-user
server), then the login name. The environment is passed in (``os.environ`` when not
given), so callers and tests say which one they mean.

:func:`named_user` stops before the login name: a served dashboard page must not
fall back to the account the server runs under, so :mod:`miqa_nb.dashboard.model`
builds its own page-specific rule (the ``?user=`` query, JupyterHub first when served
under a hub) on top of it. :func:`current_user` is the full rule.

No catalog is read here: whether the catalog knows the name is the caller's check
(``Catalog.standing`` raises ``PermissionDenied`` naming the fix).

>>> named_user(None, {"JUPYTERHUB_USER": "ana", "MIQA_NB_USER": "ben"})
'ben'
>>> named_user("cleo", {"MIQA_NB_USER": "ben"})
'cleo'
>>> named_user(None, {}) is None
True
>>> current_user(None, {"LOGNAME": "dora"})
'dora'
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping

__all__ = ["LOGIN_ENVS", "USER_ENVS", "current_user", "named_user"]

#: Environment variables naming the user, first found wins (JupyterHub sets the second).
USER_ENVS: tuple[str, ...] = ("MIQA_NB_USER", "JUPYTERHUB_USER")
#: Where the login name is looked up before the password database (as
#: :func:`getpass.getuser` does, but in the environment given).
LOGIN_ENVS: tuple[str, ...] = ("LOGNAME", "USER", "LNAME", "USERNAME")


def named_user(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """The user named explicitly or by the environment, else None.

    Parameters
    ----------
    explicit : str, optional
        A name given on purpose (``--user``, ``user=``); wins when not empty.
    environ : mapping, optional
        The environment to read :data:`USER_ENVS` from (default ``os.environ``).

    Returns
    -------
    str or None
        The first non-empty of ``explicit``, ``MIQA_NB_USER``, ``JUPYTERHUB_USER``.
    """
    if explicit:
        return explicit
    env = os.environ if environ is None else environ
    for name in USER_ENVS:
        if env.get(name):
            return env[name]
    return None


def current_user(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The user: :func:`named_user`, else the login name.

    Parameters
    ----------
    explicit : str, optional
        A name given on purpose; wins when not empty.
    environ : mapping, optional
        The environment (default ``os.environ``). The login name is taken from its
        :data:`LOGIN_ENVS` first, then from the operating system
        (:func:`getpass.getuser`).

    Returns
    -------
    str
        The user's name (never empty).
    """
    env = os.environ if environ is None else environ
    named = named_user(explicit, env)
    if named:
        return named
    for name in LOGIN_ENVS:
        if env.get(name):
            return env[name]
    return getpass.getuser()

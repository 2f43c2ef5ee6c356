"""Where a one-time sign-in link points: one rule for the command line and the server.

``miqa-nb users link NAME`` prints a link that the served dashboard answers at
:data:`LINK_PATH`, with the secret in the query parameter :data:`LINK_PARAM`
(the catalog keeps only its SHA-256; see ``Catalog.create_signin_link``).

>>> link_url("http://127.0.0.1:8866/", "abc-DEF_123")
'http://127.0.0.1:8866/signin?link=abc-DEF_123'
>>> link_url("https://review.example.org/miqa", "s")
'https://review.example.org/miqa/signin?link=s'
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from miqa_nb.core.errors import MiqaError

__all__ = ["LINK_PARAM", "LINK_PATH", "SERVER_URL_ENV", "link_url"]

#: The server's path (below its base URL) that takes a sign-in link.
LINK_PATH = "signin"
#: The query parameter holding the link's secret.
LINK_PARAM = "link"
#: The environment variable naming the served dashboard's address (for links).
SERVER_URL_ENV = "MIQA_NB_SERVER_URL"


def link_url(server_url: str, secret: str) -> str:
    """The sign-in link for ``secret`` on the server at ``server_url``.

    Parameters
    ----------
    server_url : str
        The dashboard's address, ``http://`` or ``https://``, with its base path if
        any; a missing final ``/`` is added.
    secret : str
        The link's secret (url-safe already; quoted all the same).

    Returns
    -------
    str
        ``{server_url}signin?link={secret}``.

    Raises
    ------
    MiqaError
        ``server_url`` is not an http(s) address with a host, or has a query or
        fragment.
    """
    parts = urlsplit(server_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise MiqaError(
            f"the server address must look like http://HOST:PORT/ (with the base path, if "
            f"any, and no query); {server_url!r} was provided"
        )
    base = server_url if server_url.endswith("/") else server_url + "/"
    return f"{base}{LINK_PATH}?{LINK_PARAM}={quote(secret, safe='')}"

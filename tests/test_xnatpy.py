"""The ``xnat`` Python client (xnatpy) against the real served site.

``xnat.connect(server, user=, password=, no_parse_model=True, detect_redirect=False)``
signs in (``GET /``, ``PUT /data/services/auth``, ``GET /data/auth``, ``/data/JSESSION`` as its
heartbeat), ``services.import_`` sends a session to the prearchive and gives back
xnatpy's prearchive session (it asks ``/data/version`` first), whose data and scans
it reads; ``prearchive.sessions()`` lists it; ``delete()`` removes it. What xnatpy needs beyond that (its archive objects) is in
docs/design.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from test_xnat_import import PASSWORD, PROJECT, TIER1, Site, served_site, session_zip

xnat = pytest.importorskip("xnat")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with served_site(tmp_path_factory.mktemp("xnatpy")) as served:
        yield served


def connect(site: Site, user: str, password: str) -> Any:
    """xnatpy's session. ``detect_redirect=False``: the site's address sends whoever is
    not signed in to the sign-in page, which xnatpy would take for the site's new address."""
    return xnat.connect(
        site.url.rstrip("/"),
        user=user,
        password=password,
        no_parse_model=True,
        detect_redirect=False,
    )


def test_xnatpy_imports_to_the_prearchive_and_lists_it(site: Site) -> None:
    session = connect(site, TIER1, PASSWORD)
    try:
        assert session.logged_in_user == TIER1
        assert session.prearchive.sessions() == []
        archive = session_zip(site, "x1", session="S1_X1")
        staged = session.services.import_(archive, destination=f"/prearchive/projects/{PROJECT}")
        assert staged.uri.startswith(f"/data/prearchive/projects/{PROJECT}/")
        assert (staged.project, staged.label, staged.subject) == (PROJECT, "S1_X1", "S1")
        assert staged.status == "READY"
        assert sorted(scan.id for scan in staged.scans.values()) == ["2", "3"]
        listed = session.prearchive.sessions()
        assert [s.uri for s in listed] == [staged.uri]
        staged.delete(asynchronous=False)
        assert session.prearchive.sessions() == []
    finally:
        session.disconnect()


def test_xnatpy_refuses_a_wrong_password(site: Site) -> None:
    with pytest.raises(xnat.exceptions.XNATLoginFailedError):
        connect(site, TIER1, "wrong")

"""An idle review gives its claims up, says so, and claims again when the reviewer goes
on (:mod:`miqa_nb.review.sync`), on a real catalog file with a controlled clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_review_support import PROJECT, build_template, copy_to_backend

from miqa_nb.catalog import Catalog
from miqa_nb.core.errors import MiqaError
from miqa_nb.review.session import ReviewSession
from miqa_nb.volumes import VolumeCache


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory.mktemp("idle"))


@pytest.fixture
def clocked(
    template: Path, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> Iterator[tuple[list[datetime], Catalog, Callable[..., ReviewSession]]]:
    """(now, catalog, start): a catalog (on each backend) and sessions on one clock
    that tests move."""
    now = [datetime(2024, 5, 1, 12, 0, tzinfo=UTC)]
    copied = copy_to_backend(template, tmp_path, backend, request)
    catalog = Catalog(copied.location, clock=lambda: now[0])
    sessions: list[ReviewSession] = []
    with VolumeCache(max_bytes=64 << 20) as cache:

        def start(user: str, **options: object) -> ReviewSession:
            session = ReviewSession(
                catalog,
                PROJECT,
                user,
                clock=lambda: now[0],
                background=False,
                cache=cache,
                filter="all",
                **options,  # type: ignore[arg-type]
            )
            sessions.append(session)
            return session

        yield now, catalog, start
        for session in sessions:
            session.close()


def holders(catalog: Catalog) -> dict[str, str]:
    return catalog.claims(PROJECT).set_index("experiment")["user"].to_dict()


def test_an_idle_session_gives_its_claim_up_and_says_so(clocked):
    now, catalog, start = clocked
    ana = start("t2", idle_minutes=10)
    experiment = ana.key[0]
    assert holders(catalog) == {experiment: "t2"}
    now[0] += timedelta(minutes=9, seconds=59)
    ana.refresh()
    assert holders(catalog) == {experiment: "t2"}  # not idle yet: renewed
    now[0] += timedelta(minutes=10)
    ana.refresh()
    assert holders(catalog) == {}
    assert ana.claim is None
    assert "no action for 10 minutes" in ana.message and repr(experiment) in ana.message
    now[0] += timedelta(minutes=30)
    ana.refresh()  # idle: nothing is renewed or claimed behind the reviewer's back
    assert holders(catalog) == {}


def test_going_on_claims_again_when_still_free(clocked):
    now, catalog, start = clocked
    ana = start("t2", idle_minutes=1)
    experiment = ana.key[0]
    now[0] += timedelta(minutes=2)
    ana.refresh()
    assert holders(catalog) == {}
    ana.move_slice("axial", 1)  # any action
    assert holders(catalog) == {experiment: "t2"}
    assert ana.claim is not None and ana.claim.mine
    assert "yours again" in ana.message


def test_going_on_after_a_colleague_took_the_scan_says_who_holds_it(clocked):
    now, catalog, start = clocked
    ana = start("t2", idle_minutes=1)
    experiment, scan = ana.key
    now[0] += timedelta(minutes=2)
    ana.refresh()
    ben = start("t2b", idle_minutes=None)
    ben.open((experiment, scan))
    assert holders(catalog) == {experiment: "t2b"}
    ana.set_note("still here")
    assert holders(catalog) == {experiment: "t2b"}
    assert ana.claim is None
    assert "being reviewed by 't2b'" in ana.message


def test_actions_keep_a_session_from_idling(clocked):
    now, catalog, start = clocked
    ana = start("t2", idle_minutes=5)
    experiment = ana.key[0]
    for _ in range(4):
        now[0] += timedelta(minutes=3)
        ana.set_note("typing")
        ana.refresh()
    assert holders(catalog) == {experiment: "t2"}


def test_idle_minutes_must_be_positive(clocked):
    _now, _catalog, start = clocked
    with pytest.raises(MiqaError, match="'idle_minutes' must be more than 0"):
        start("t2", idle_minutes=0)

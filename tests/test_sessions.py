"""Sign-in sessions and the brake on failed sign-ins, on a clock the test turns."""

from __future__ import annotations

from miqa_nb.server.sessions import Sessions, Throttle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_ends_when_idle_or_old_and_when_signed_out() -> None:
    clock = Clock()
    sessions = Sessions(idle=60, lifetime=300, clock=clock)
    sid = sessions.start("ana")
    assert len(sid) >= 40 and sessions.get(sid).user == "ana"  # type: ignore[union-attr]
    clock.now += 59  # used within the idle time: renewed
    assert sessions.get(sid) is not None
    clock.now += 60  # idle for a minute: an expired cookie opens nothing
    assert sessions.get(sid) is None
    busy = sessions.start("ana")
    for _ in range(6):  # used every 50 s, but never longer than its lifetime
        clock.now += 50
        found = sessions.get(busy)
    assert found is None
    gone = sessions.start("ben", "api")
    assert sessions.end(gone) is not None and sessions.get(gone) is None
    assert sessions.end(gone) is None
    a, b = sessions.start("cleo"), sessions.start("cleo")
    assert sessions.end_user("cleo") == 2 and sessions.get(a) is None and sessions.get(b) is None


def test_the_brake_counts_failures_per_key_within_a_window() -> None:
    clock = Clock()
    throttle = Throttle(limit=3, window=60, clock=clock)
    keys = ["addr:10.0.0.1", "user:ana"]
    for _ in range(3):
        assert throttle.retry_after(keys) == 0
        throttle.fail(keys)
        clock.now += 1
    assert 57 <= throttle.retry_after(keys) <= 58  # the oldest failure leaves at 60 s
    assert throttle.retry_after(["user:ana"]) > 0  # another address, the same user
    assert throttle.retry_after(["addr:10.0.0.1", "user:ben"]) > 0  # the same address
    assert throttle.retry_after(["addr:10.0.0.2", "user:ben"]) == 0
    clock.now += 58
    assert throttle.retry_after(keys) == 0

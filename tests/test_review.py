"""The review session without widgets: queue, navigation, roles, rules, claims, views."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from test_review_support import BROKEN, PROJECT, build_template, copy_to_backend, phantom

from miqa_nb.catalog import Catalog
from miqa_nb.core.errors import MiqaError, PermissionDenied, VolumeError
from miqa_nb.core.identity import current_user
from miqa_nb.core.vocabulary import Decision, ScanState
from miqa_nb.review.session import ReviewSession
from miqa_nb.volumes import VolumeCache

ALL = [
    ("E1", "S1"),
    ("E1", "S2"),
    ("E1", "S3"),
    ("E2", "S4"),
    ("E2", "S5"),
    ("E3", "S6"),
    ("E3", "S7"),
]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory.mktemp("review"))


@pytest.fixture
def project(template: Path, tmp_path: Path, backend: str, request, monkeypatch) -> Catalog:
    """A fresh copy of project P (see test_review_support), on each backend."""
    monkeypatch.setenv("MIQA_NB_LOCAL_DIR", str(tmp_path / "local"))
    return copy_to_backend(template, tmp_path, backend, request)


@pytest.fixture
def cache():
    with VolumeCache(max_bytes=64 << 20) as c:
        yield c


@pytest.fixture
def start(project: Catalog, cache: VolumeCache):
    """``start(user, **options)``: a session without background threads."""
    sessions: list[ReviewSession] = []

    def make(user: str, **options) -> ReviewSession:
        options.setdefault("background", False)
        options.setdefault("cache", cache)
        session = ReviewSession(options.pop("catalog", project), PROJECT, user, **options)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()


def decide(session: ReviewSession, code: str, note: str = "") -> bool:
    session.set_decision(code)
    if note:
        session.set_note(note)
    return session.submit()


# ------------------------------------------------------------------- queue


def test_queue_is_in_miqa_order_and_starts_at_the_first_scan(start):
    session = start("t2", filter="all")
    assert session.queue.keys() == ALL
    assert session.key == ("E1", "S1")
    assert session.position == 0
    assert len(session) == 7
    assert session.progress.total == 7 and session.progress.reviewed == 0


def test_filters_by_type_experiment_and_state(start, project):
    assert start("t2", scan_type="t2", filter="all").queue.keys() == [("E1", "S2"), ("E3", "S6")]
    assert start("t2", experiment="E2", filter="all").queue.keys() == [("E2", "S4"), ("E2", "S5")]
    project.record_decision(PROJECT, "E1", "S1", "Q?", by="t1", note="blurry")
    project.record_decision(PROJECT, "E1", "S2", "U", by="t1")
    unreviewed = start("t2", resume=False)
    assert ("E1", "S1") not in unreviewed.queue and ("E1", "S2") not in unreviewed.queue
    assert unreviewed.key == ("E1", "S3")
    tier2 = start("t2b", filter="needs tier-2")
    assert tier2.queue.keys() == [("E1", "S1")]
    with pytest.raises(MiqaError, match="filter"):
        start("t2", filter="mine")


def test_next_and_previous(start):
    session = start("t2", filter="all")
    assert session.next() and session.key == ("E1", "S2")
    assert session.next() and session.key == ("E1", "S3")
    assert session.previous() and session.key == ("E1", "S2")
    assert session.previous() and session.key == ("E1", "S1")
    assert not session.previous()
    assert "first" in session.message
    assert session.open(("E3", "S7"))
    assert not session.next() and session.key == ("E3", "S7")  # stops, as previous does
    assert "last" in session.message


def test_next_skips_scans_reviewed_meanwhile(start, project):
    session = start("t2")
    project.record_decision(PROJECT, "E1", "S2", "U", by="t1")
    session.refresh()
    assert session.next() and session.key == ("E1", "S3")


def test_resume_where_the_user_left_off(start):
    first = start("t2", filter="all")
    first.next()
    first.next()
    first.close()
    again = start("t2", filter="all")
    assert again.key == ("E1", "S3")
    fresh = start("t2", filter="all", resume=False)
    assert fresh.key == ("E1", "S1")


def test_resume_on_a_reviewed_scan_goes_to_the_next_unreviewed(start, project):
    first = start("t2")
    first.next()  # at S2
    first.close()
    project.record_decision(PROJECT, "E1", "S2", "U", by="t1")
    assert start("t2").key == ("E1", "S3")


def test_empty_queue_says_so(start, project):
    session = start("t2", filter="needs tier-2")
    assert session.key is None and session.current is None
    assert "nothing to review" in session.message
    assert not session.submit()
    assert session.render() == {}


# ------------------------------------------------------------------- roles


def test_collaborator_reads_only(start, project):
    session = start("col")
    assert session.read_only and session.allowed_decisions == ()
    assert session.volume is not None  # may look
    assert not session.set_decision("U")
    assert isinstance(session.last_exception, PermissionDenied)
    session._pending = dataclasses.replace(session.pending, decision=Decision.USABLE)  # forged
    assert not session.submit()
    assert isinstance(session.last_exception, PermissionDenied)
    assert project.decisions(PROJECT).empty
    assert project.claims(PROJECT).empty  # looking does not hold experiments


def test_tier1_records_u_and_questionable_only(start, project):
    session = start("t1")
    assert session.allowed_decisions == (Decision.USABLE, Decision.QUESTIONABLE)
    assert not session.set_decision("UN")
    assert "tier-2" in session.last_error
    assert session.pending.decision is None
    assert decide(session, "U")
    assert decide(session, "Q?", note="motion?")
    assert project.decisions(PROJECT)["decision"].tolist() == ["U", "Q?"]


def test_tier2_and_superuser_record_all_four(start):
    for user in ("t2", "admin"):
        session = start(user, filter="all", resume=False)
        assert set(session.allowed_decisions) == set(Decision)


def test_users_must_exist_and_have_a_role(project, cache):
    with pytest.raises(PermissionDenied, match="users add ghost"):
        ReviewSession(project, PROJECT, "ghost", cache=cache, background=False)
    with pytest.raises(PermissionDenied):
        ReviewSession(project, PROJECT, "nobody", cache=cache, background=False)


def test_user_comes_from_the_environment(monkeypatch, start):
    monkeypatch.setenv("JUPYTERHUB_USER", "t1")
    assert current_user() == "t1"
    assert start(None).user == "t1"
    monkeypatch.setenv("MIQA_NB_USER", "t2")
    assert current_user() == "t2"
    assert current_user("col") == "col"
    monkeypatch.setenv("LOGNAME", "login-name")  # what getpass reads first
    assert current_user(environ={}) == "login-name"  # the environment given, then the login


# ------------------------------------------------------------ decision rules


def test_decisions_other_than_u_need_a_note_or_an_artifact(start, project):
    session = start("t2")
    assert not decide(session, "UN")
    assert "needs a note or at least one artifact" in session.last_error
    session.set_artifact("ghosting_motion", "absent")  # absent does not count
    assert not session.submit()
    assert project.decisions(PROJECT).empty
    session.set_artifact("ghosting", "present")  # aliases are accepted
    assert session.submit()
    stored = project.decisions(PROJECT).iloc[0]
    assert stored["decision"] == "UN" and stored["ghosting_motion"] == "present"
    assert session.last_error is None


def test_a_note_with_a_control_character_is_refused_before_anything_is_sent(start, project):
    session = start("t2")
    session.set_note("noisy\x00")
    assert not decide(session, "Q?")
    assert "control character" in session.last_error
    session.flush()
    assert session.unsaved == [] and project.decisions(PROJECT).empty
    session.set_note("noisy\tbut\nusable")  # tabs and line breaks are text
    assert session.submit()
    session.flush()
    assert project.decisions(PROJECT)["note"].tolist() == ["noisy\tbut\nusable"]


def test_submit_needs_a_decision(start):
    session = start("t2")
    assert not session.submit()
    assert "choose a decision" in session.last_error


def test_states_after_tier1_questionable_then_tier2_unusable(start, project):
    tier1 = start("t1")
    assert decide(tier1, "Q?", note="ghosting?")
    state = project.scans(PROJECT).set_index("scan").loc["S1", "state"]
    assert state == ScanState.NEEDS_TIER2
    assert tier1.queue.info(("E1", "S1")).state == ScanState.NEEDS_TIER2
    tier1.close()
    tier2 = start("t2", filter="needs tier-2")
    assert tier2.key == ("E1", "S1")
    assert decide(tier2, "UN", note="confirmed")
    assert project.scans(PROJECT).set_index("scan").loc["S1", "state"] == ScanState.COMPLETE
    assert tier2.queue.info(("E1", "S1")).state == ScanState.COMPLETE


def test_submit_stores_location_and_advances(start, project):
    session = start("t2")
    session.set_slice("axial", 3)
    crosshair = session.crosshair
    assert decide(session, "U")
    stored = project.decisions(PROJECT).iloc[0]
    assert session.last_submitted == (("E1", "S1"), stored["id"])
    assert (stored["i"], stored["j"], stored["k"]) == pytest.approx(crosshair)
    assert session.key == ("E1", "S2")
    assert session.pending.decision is None and session.pending.store_location
    assert session.progress.reviewed == 1


def test_submit_without_location_or_advance(start, project):
    session = start("t2", advance_after_submit=False)
    session.set_store_location(False)
    assert decide(session, "U")
    assert session.key == ("E1", "S1")
    assert session.pending.decision is None
    assert project.decisions(PROJECT)["location"].isna().all()


def test_last_scan_submitted_says_the_queue_is_done(start):
    session = start("t2", experiment="E3")
    assert decide(session, "U")
    assert decide(session, "U")
    assert "no more scans" in session.message
    assert session.next() is False


# ------------------------------------------------------------------ claims


def test_claims_steer_reviewers_apart(start, project):
    ana = start("t2")
    assert ana.claim is not None and ana.claim.mine
    ben = start("t2b")
    assert ben.key[0] == "E2"  # E1 is held by t2
    assert ben.held_by is None
    assert ben.open(("E1", "S2"))
    assert ben.held_by == "t2"
    assert not decide(ben, "U")
    assert "t2 is reviewing experiment E1 until " in ben.last_error
    assert ben.error_about == "decision" and ben.pending.decision is None
    assert ben.next() and ben.key[0] != "E1"


def test_claims_expire_and_superusers_take_over(start, project, tmp_path):
    now = [datetime(2024, 5, 1, 12, 0, tzinfo=UTC)]
    clock = lambda: now[0]  # noqa: E731
    timed = Catalog(project.location, clock=clock)
    ana = start("t2", catalog=timed, clock=clock)
    assert ana.key[0] == "E1"
    admin = start("admin", catalog=timed, clock=clock, filter="all")
    assert admin.key[0] == "E2"
    admin.open(("E1", "S1"))
    assert admin.held_by == "t2"
    assert admin.take_over()
    assert admin.held_by is None and admin.claim.mine
    ana.refresh()
    assert ana.held_by == "admin"
    ben = start("t2b", catalog=timed, clock=clock, filter="all")
    ben.open(("E1", "S1"))
    assert not ben.take_over()  # not a superuser
    assert isinstance(ben.last_exception, PermissionDenied)
    now[0] += timedelta(minutes=6)  # the admin's claim has expired
    ben.refresh()
    assert ben.held_by is None
    assert decide(ben, "U")


def test_claims_are_renewed_past_half_life_and_released_on_leaving(start, project):
    now = [datetime(2024, 5, 1, 12, 0, tzinfo=UTC)]
    clock = lambda: now[0]  # noqa: E731
    timed = Catalog(project.location, clock=clock)
    ana = start("t2", catalog=timed, clock=clock, filter="all")
    first = ana.claim.expires_utc
    now[0] += timedelta(minutes=1)
    ana.next()  # same experiment, young claim: kept
    assert ana.claim.expires_utc == first
    now[0] += timedelta(minutes=2)
    ana.refresh()  # older than half its life: renewed
    assert ana.claim.expires_utc > first
    ana.open(("E2", "S4"))
    held = timed.claims(PROJECT).set_index("experiment")["user"].to_dict()
    assert held == {"E2": "t2"}
    ana.close()
    assert timed.claims(PROJECT).empty


def test_refresh_sees_another_reviewers_decisions(start, project):
    ana = start("t2")
    ben = start("t2b", filter="all", resume=False)
    ben.open(("E3", "S6"))
    assert decide(ben, "UN", note="wrap")
    assert ana.progress.reviewed == 0
    progress = ana.refresh()
    assert progress.reviewed == 1 and progress.by_reviewer == {"t2b": 1}
    ana.open(("E3", "S6"))
    history = ana.history
    assert history["creator"].tolist() == ["t2b"]
    assert history["note"].tolist() == ["wrap"]


def test_a_write_that_fails_later_is_reported_and_the_scan_comes_back(project, cache):
    session = ReviewSession(project, PROJECT, "t2", cache=cache, background=True)
    errors: list[str] = []
    session.observe(lambda event: errors.append(session.last_error or ""), events={"error"})
    try:
        session.flush()
        project.set_role(PROJECT, "t2", "tier1", by="admin")  # demoted meanwhile
        session.set_decision("UN")
        session.set_note("motion")
        assert session.submit()  # accepted by what the session knew
        assert session.key == ("E1", "S2")
        session.flush()
        assert "NOT stored" in errors[-1] and "tier-2" in errors[-1]
        assert [(key, pending.note) for key, pending, _ in session.unsaved] == [
            (("E1", "S1"), "motion")
        ]
        assert project.decisions(PROJECT).empty
        assert session.queue.info(("E1", "S1")).state == ScanState.UNREVIEWED  # refreshed
    finally:
        session.close()


def test_background_bookkeeping(project, cache):
    session = ReviewSession(project, PROJECT, "t2", cache=cache, background=True)
    try:
        session.flush()
        assert project.place(PROJECT, by="t2") == ("E1", "S1")
        assert project.claims(PROJECT)["user"].tolist() == ["t2"]
        assert decide(session, "U")
        session.flush()
        assert session.progress.reviewed == 1
        assert project.place(PROJECT, by="t2") == ("E1", "S2")
    finally:
        session.close()
    assert project.claims(PROJECT).empty


def test_auto_refresh_runs_in_the_background(project, cache):
    session = ReviewSession(project, PROJECT, "t2", cache=cache, background=True)
    seen = []
    session.observe(lambda event: seen.append((event, threading.get_ident())), events={"queue"})
    try:
        project.record_decision(PROJECT, "E3", "S7", "U", by="t1")
        session.start_auto_refresh(0.05)
        deadline = datetime.now() + timedelta(seconds=5)
        while session.progress.reviewed == 0 and datetime.now() < deadline:
            time.sleep(0.05)
        assert session.progress.reviewed == 1
        session.sync.wait()  # the refresh that read it has raised its events (it sets
        # the progress first, then raises them)
        assert seen == []  # no loop runs here: the event waits for this thread
        assert session.deliver() >= 1
        assert seen == [("queue", threading.get_ident())]  # waiting events are not repeated
    finally:
        session.close()


# ----------------------------------------------------------------- volumes


def test_broken_file_is_an_error_and_the_session_moves_on(start, project):
    session = start("t2", filter="all")
    assert not session.open(BROKEN)
    assert isinstance(session.last_exception, VolumeError)
    assert "S5" in session.last_error
    assert session.volume is None and session.render() == {}
    # a broken scan can still be judged, without a location
    assert decide(session, "UN", note="file is truncated")
    assert project.decisions(PROJECT)["location"].isna().all()
    assert session.key == ("E3", "S6") and session.last_error is None
    assert session.volume is not None


def test_s3_frames_are_reported(start, project):
    session = start("t2", filter="all")
    session.queue._frames[("E1", "S1")] = ("s3://bucket/x.nii.gz",)  # as imported from MIQA
    session.queue.update(project.scans(PROJECT))
    assert not session.open(("E1", "S1"))
    assert "S3" in session.last_error


def test_prefetch_asks_the_cache_for_the_next_scans(project, tmp_path):
    class Spy(VolumeCache):
        def __init__(self) -> None:
            super().__init__(max_bytes=64 << 20)
            self.asked: list[str] = []

        def prefetch(self, paths):
            paths = list(paths)
            self.asked.extend(paths)
            return super().prefetch(paths)

    spy = Spy()
    with ReviewSession(project, PROJECT, "t2", cache=spy, background=False, prefetch=2) as s:
        assert [Path(p).parent.name for p in spy.asked] == ["S2", "S3"]
        s.flush()
        assert spy.stats().loads >= 3  # S1, and the two prefetched
    lazy = Spy()
    with ReviewSession(project, PROJECT, "t2", cache=lazy, background=False, prefetch=0) as s:
        assert lazy.asked == []
        decide(s, "U")
        # submit starts decoding the scan it goes to while the decision is written
        assert [Path(p).parent.name for p in lazy.asked] == ["S2"]
    spy.close()
    lazy.close()


def test_views_crosshair_slices_frames_and_window(start):
    session = start("t2", filter="all")
    volume = session.volume
    assert volume.shape == (32, 40, 24)
    assert session.slices == volume.center()
    images = session.render()
    assert set(images) == {"axial", "coronal", "sagittal"}
    assert all(png.startswith(b"\x89PNG") for png in images.values())
    session.set_slice("axial", 100)
    assert session.slices.axial == 23
    session.move_slice("axial", -3)
    assert session.slices.axial == 20
    assert session.plane_images()["axial"].image_shape == (50, 32)  # square 1 mm pixels
    session.click("axial", 0, 0)  # top-left corner of the axial picture
    assert session.slices.axial == 20
    assert session.convention == "neurological"
    # neurological: the patient's left (x = -16 mm, sagittal slice 0) on the left, anterior at top
    assert (session.slices.sagittal, session.slices.coronal) == (0, 39)
    assert session.crosshair[:2] == pytest.approx((-16.0, 23.75))
    session.set_window("brain")
    assert session.window_spec == "brain"
    session.set_window((100, 200))
    assert (session.window.low, session.window.high) == (100, 200)
    assert session.window_limits()[0] <= 100
    session.set_window((5, 1))
    assert session.last_error and session.window_spec == (100, 200)
    session.set_window("nope")
    assert "window must be one of" in session.last_error


def test_frames_of_a_multi_file_scan(start):
    session = start("t2", filter="all")
    session.open(("E1", "S3"))
    assert session.n_frames == 2
    first = session.volume
    session.set_slice("coronal", 5)
    session.set_frame(1)
    assert session.frame == 1 and session.volume is not first
    assert session.slices.coronal == 5  # the crosshair stays
    session.set_frame(9)
    assert session.frame == 1


def test_a_4d_file_gives_one_frame_per_volume(catalog, tmp_path, cache):
    data = np.stack([phantom(s, (10, 12, 8)) for s in range(3)], axis=-1)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "four.nii.gz")
    (tmp_path / "i.csv").write_text(
        "project_name,experiment_name,scan_name,scan_type,frame_number,file_location\n"
        "D,E,S,FMRI,0,four.nii.gz\n"
    )
    catalog.import_file(tmp_path / "i.csv", by="admin", project="D")
    with ReviewSession(catalog, "D", "admin", cache=cache, background=False) as session:
        assert session.n_frames == 3
        session.set_frame(2)
        assert session.frame == 2 and len(session.render()) == 3


def test_location_of_interest_moves_the_crosshair(start):
    from miqa_nb.core.vocabulary import Location

    session = start("t2", filter="all")
    session.go_to(Location.parse("i=-10;j=5;k=4"))
    assert session.crosshair == pytest.approx((-10.0, 5.0, 4.0))
    session.go_to((1000.0, 1000.0, 1000.0))  # clipped to the volume
    assert session.slices == (31, 39, 23)


def test_volume_preview_for_3d(start):
    session = start("t2", filter="all")
    data, extent = session.volume_preview(max_side=16)
    assert max(data.shape) <= 16 and data.dtype == np.float32
    assert data.min() >= 0.0 and data.max() <= 1.0
    assert extent[0] == pytest.approx((-16.0, 15.0))


# --------------------------------------------------------------- observers


def test_observers_get_events_and_their_bugs_are_contained(start, caplog):
    session = start("t2", filter="all")
    events: list[str] = []
    stop = session.observe(events.append)

    def broken(event: str) -> None:
        raise RuntimeError("observer bug")

    session.observe(broken, events={"view"})
    with caplog.at_level(logging.ERROR, logger="miqa_nb.review"):
        session.next()
        session.set_slice("axial", 2)
        session.set_decision("U")
    # next(): the scan, then (inline background work) its claim, states and history
    assert events == ["scan", "claim", "queue", "history", "view", "pending"]
    [failure] = [r for r in caplog.records if r.name == "miqa_nb.review.session"]
    assert failure.getMessage().endswith("failed on 'view'")
    assert failure.exc_info[0] is RuntimeError and str(failure.exc_info[1]) == "observer bug"
    stop()
    session.next()
    assert events == ["scan", "claim", "queue", "history", "view", "pending"]  # no more


def test_observers_run_on_the_owning_thread_when_a_background_write_completes(project, cache):
    owner = threading.get_ident()
    session = ReviewSession(project, PROJECT, "t2", cache=cache, background=True)
    seen: list[tuple[str, int]] = []
    session.observe(lambda event: seen.append((event, threading.get_ident())))
    try:
        session.flush()
        seen.clear()
        writer: list[int] = []
        session.sync.run(lambda: writer.append(threading.get_ident()))
        assert decide(session, "U")  # accepted at once; written on the session's thread
        session.sync.wait()
        assert writer and writer[0] != owner  # catalog work runs on another thread
        session.flush()  # no loop runs here: events wait for the owner to call in
        assert ("stored", owner) in seen
        assert {thread for _, thread in seen} == {owner}
        assert project.decisions(PROJECT)["decision"].tolist() == ["U"]
    finally:
        session.close()


def test_observers_run_on_the_owning_thread_when_a_background_write_fails(project, cache):
    owner = threading.get_ident()
    session = ReviewSession(project, PROJECT, "t2", cache=cache, background=True)
    errors: list[tuple[str, int]] = []
    session.observe(
        lambda _event: errors.append((session.last_error or "", threading.get_ident())),
        events={"error"},
    )
    try:
        session.flush()
        project.set_role(PROJECT, "t2", "tier1", by="admin")  # demoted meanwhile
        assert decide(session, "UN", note="motion")  # accepted by what the session knew
        session.sync.wait()
        assert "NOT stored" in (session.last_error or "")  # failed on the writer thread
        session.flush()  # no loop runs here: events wait for the owner to call in
        assert len(errors) == 1
        text, thread = errors[0]
        assert thread == owner and "NOT stored" in text and "tier-2" in text
    finally:
        session.close()


def test_observers_are_scheduled_on_the_owners_running_loop(project, cache):
    """As in a kernel: a loop runs in the owning thread; nobody calls flush(). (The
    owner is a thread of its own: other tests may leave a loop marked running here.)"""
    seen: list[tuple[str, int]] = []

    async def review() -> list[tuple[str, int]]:
        session = ReviewSession(project, PROJECT, "t2", cache=cache, background=True)
        try:
            session.observe(
                lambda event: seen.append((event, threading.get_ident())),
                events={"stored"},
            )
            assert decide(session, "U")
            deadline = time.monotonic() + 20
            while not seen and time.monotonic() < deadline:
                await asyncio.sleep(0.01)  # the kernel is idle: the loop delivers
            return list(seen)  # before close(), which would deliver them itself
        finally:
            session.close()

    outcome: dict[str, object] = {}

    def owner() -> None:
        outcome["owner"] = threading.get_ident()
        try:
            outcome["seen"] = asyncio.run(review())
        except BaseException as exc:  # reported below, on the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=owner)
    thread.start()
    thread.join(60)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["seen"] == [("stored", outcome["owner"])]


def test_real_ixi_dti_frames(catalog, samples, tmp_path, cache):
    """MIQA's own sample: one DTI scan, five frames in five files (stored LAS)."""
    folder = samples / "samples" / "Demo Project" / "IXI002" / "0828-DTI"
    files = sorted(folder.glob("*.nii.gz"))
    if len(files) != 5:
        pytest.skip(f"the IXI frames are not at {folder}")
    rows = ["project_name,experiment_name,scan_name,scan_type,frame_number,file_location"]
    rows += [f"IXI,IXI002,0828-DTI,DTI,{n},{path}" for n, path in enumerate(files)]
    (tmp_path / "ixi.csv").write_text("\n".join(rows) + "\n")
    Catalog(catalog.location, data_roots=[folder]).import_file(
        tmp_path / "ixi.csv", by="admin", project="IXI"
    )
    with ReviewSession(catalog, "IXI", "admin", cache=cache, background=False) as session:
        assert session.n_frames == 5 and session.volume.shape == (128, 128, 56)
        session.set_frame(4)
        images = session.plane_images()
        assert images["axial"].labels["left"] == "L"  # neurological display
        assert session.volume.path.name.endswith("04.nii.gz")
        assert decide(session, "UE", note="real data")
    stored = catalog.decisions("IXI").iloc[0]
    assert stored["decision"] == "UE" and stored["location"].startswith("i=")


# ------------------------------------------------- resume, holds, notes, messages


def test_resume_skips_held_and_complete_scans(start, project):
    """Where a reviewer left off is complete, the next experiment is held: the review
    resumes at the first scan this reviewer can decide, after both."""
    project.record_decision(PROJECT, "E1", "S2", "U", by="t2b")  # complete
    project.set_place(PROJECT, "E1", "S2", by="t2")
    holder = start("t2b", filter="all", resume=False)
    holder.open(("E2", "S4"))  # claims E2
    assert holder.claim is not None
    session = start("t2", filter="all")
    assert session.key == ("E1", "S3")  # the next scan after S2, unreviewed, E1 free
    project.record_decision(PROJECT, "E1", "S3", "UN", by="t2", note="motion")
    project.set_place(PROJECT, "E1", "S3", by="t2")
    session.close()
    again = start("t2", filter="all")
    assert again.key == ("E3", "S6")  # E1 done, E2 held by t2b


def test_tier1_resumes_past_scans_waiting_for_tier2(start, project):
    project.record_decision(PROJECT, "E1", "S1", "Q?", by="t1", note="?")
    t1 = start("t1", filter="all")
    assert t1.key == ("E1", "S2")  # S1 needs tier-2 review: not for a tier-1 reviewer
    t1.close()  # gives up E1
    t2 = start("t2b", filter="all")
    assert t2.key == ("E1", "S1")


def test_resume_stays_where_it_was_when_nothing_is_left_to_decide(start, project):
    for experiment, scan in ALL:
        project.record_decision(PROJECT, experiment, scan, "U", by="t2b")
    project.set_place(PROJECT, "E2", "S4", by="t2")
    assert start("t2", filter="all").key == ("E2", "S4")


def test_the_hold_is_known_at_once_in_local_time(start):
    ana = start("t2")
    ben = start("t2b", filter="all", resume=False)
    ben.open(("E1", "S2"))
    holder, until = ben.hold
    assert holder == "t2" and until.tzinfo is not None
    assert until == ana.claim.expires_utc.replace(tzinfo=UTC).astimezone()
    assert not ben.can_decide and ana.can_decide
    ben.open(("E2", "S4"))
    assert ben.hold is None and ben.can_decide


def test_errors_and_messages_belong_to_their_scan(start):
    session = start("t1", filter="all", resume=False)
    assert not session.set_decision("UN")
    assert session.error_about == "decision" and "may do that" in session.last_error
    assert session.set_decision("U")  # an accepted choice answers the refusal
    assert session.last_error is None and session.error_about is None
    assert not session.previous()
    assert "first scan" in session.message
    session.open(("E1", "S2"))
    assert session.message == "" and session.last_error is None


def test_experiment_notes_in_the_session(start, project):
    reviewer = start("t1")
    assert reviewer.experiment_note == "" and reviewer.can_edit_experiment_note
    assert reviewer.set_experiment_note("re-scan planned")
    assert project.experiment_notes(PROJECT) == {"E1": "re-scan planned"}
    other = start("t2b", filter="all", resume=False)
    other.open(("E1", "S3"))
    assert other.experiment_note == "re-scan planned"
    reviewer.set_experiment_note("re-scan done")
    other.refresh()  # a colleague's change arrives with the next refresh
    assert other.experiment_note == "re-scan done"
    reader = start("col")
    assert not reader.can_edit_experiment_note
    assert not reader.set_experiment_note("mine")
    assert reader.error_about == "experiment-note" and "may not change" in reader.last_error
    assert project.experiment_notes(PROJECT) == {"E1": "re-scan done"}

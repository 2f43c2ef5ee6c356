"""Faults of the disk under the catalog (issue 17, points 13-14): a full disk, and a
catalog this user may only read. Each ends in one sentence naming the file and the
reason, and the catalog is as it was.

Both are made for real, not mocked. The tests run as root in CI, and root ignores
file modes, so:

- a full disk is a small ``tmpfs`` mounted for the test and filled up (root may mount);
- a read-only mount is a read-only bind mount of a folder holding a catalog;
- a file the user may only read is a ``chmod`` 444 copy read by a process started
  with ``setpriv`` without the capabilities that let root ignore file modes
  (``CAP_DAC_OVERRIDE``, ``CAP_DAC_READ_SEARCH``): that process is root, and file
  modes bind it as they bind any user.

Where mounting or ``setpriv`` is not possible (not root, no util-linux) the test is
skipped and says why.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support import frame_row

from miqa_nb import Catalog, WriteError

ROOT = Path(__file__).resolve().parents[1]


def _snapshot(cat: Catalog) -> dict:
    tables = ("projects", "experiments", "scans", "frames", "decisions", "users", "roles")
    tables += ("claims", "positions")
    return {
        t: cat.sql(f"SELECT * FROM {t} ORDER BY ALL").astype(str).values.tolist() for t in tables
    }


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount here (root is needed): {done.stderr.strip()}")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 8 MiB tmpfs at ``tmp_path/disk``."""
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount("-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk))
    yield disk
    _umount(disk)


def _fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; return the file that fills it."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for block in (1 << 16, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * block)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def _project(cat: Catalog, write_csv, n: int = 5) -> None:
    cat.add_user("t2", by="admin")
    rows = [
        frame_row(scan=f"S{i}", last_decision="U", last_decision_creator="t2") for i in range(n)
    ]
    cat.import_file(write_csv(rows), by="admin")
    cat.set_role("P", "t2", "tier2", by="admin")


# ------------------------------------------------------------ point 13: full disk


def test_a_full_disk_is_one_sentence_and_changes_nothing(small_disk, tmp_path, write_csv):
    cat = Catalog(small_disk / "c.duckdb", data_roots=[tmp_path])
    cat.add_user("admin")
    _project(cat, write_csv)
    before = _snapshot(cat)
    many = [frame_row(experiment=f"X{i // 50}", scan=f"S{i}", frame=0) for i in range(3000)]
    bigger = write_csv(many, name="bigger.csv", make_files=False)
    filler = _fill(small_disk)

    with pytest.raises(WriteError) as info:
        cat.record_decision("P", "E1", "S1", "UN", by="t2", note="motion")
    assert str(info.value).startswith(f"no space left on device at {small_disk / 'c.duckdb'}")
    assert str(info.value).endswith("free space on that disk and try again; nothing was changed")

    with pytest.raises(WriteError, match=r"^no space left on device at .*nothing was changed$"):
        cat.import_file(bigger, by="admin", mode="append")

    with pytest.raises(WriteError, match=r"No space left on device"):
        cat.import_file(bigger, by="admin")  # replace: the backup fails first
    assert cat.backups() == []

    with pytest.raises(WriteError) as info:
        cat.export_file(small_disk / "out.csv", by="admin")
    # DuckDB names the temporary file it was writing, beside the export
    assert str(info.value).startswith(f"no space left on device at {small_disk}/")
    assert ".out.csv." in str(info.value)
    left = sorted(p.name for p in small_disk.iterdir())
    # no temporary files, and no backup folder the failed backup would have started
    assert left == ["c.duckdb", "c.duckdb.lock", "filler"]

    assert _snapshot(cat) == before
    filler.unlink()  # with space again, the same catalog takes the same writes
    cat.record_decision("P", "E1", "S1", "UN", by="t2", note="motion")
    cat.import_file(bigger, by="admin", mode="append")
    assert len(cat.scans()) == 5 + 3000


# -------------------------------------------------------- point 14: read-only


@pytest.fixture
def made(tmp_path: Path, write_csv) -> Path:
    """A catalog with project P in ``tmp_path/src`` (with its lock file)."""
    cat = Catalog(tmp_path / "src" / "c.duckdb", data_roots=[tmp_path])
    cat.add_user("admin")
    _project(cat, write_csv)
    cat.export_file(tmp_path / "p.csv", by="admin", project="P")
    return cat.path


@pytest.fixture
def read_only_mount(tmp_path: Path, made: Path):
    """The folder of ``made`` bind-mounted read-only at ``tmp_path/ro``."""
    mounted = tmp_path / "ro"
    mounted.mkdir()
    _mount("--bind", str(made.parent), str(mounted))
    try:
        _mount("-o", "remount,bind,ro", str(mounted))
        yield mounted / made.name
    finally:
        _umount(mounted)


@pytest.mark.parametrize("lock_file", [True, False], ids=["lock-file", "no-lock-file"])
def test_a_catalog_on_a_read_only_mount_reads_and_refuses_writes(
    read_only_mount, made, tmp_path, lock_file
):
    if not lock_file:  # none can be made on the mount either: reads go without
        made.with_name(made.name + ".lock").unlink()
    writable = Catalog(made)
    before = _snapshot(writable)
    cat = Catalog(read_only_mount)
    assert cat.store.read_only
    assert cat.projects()["project"].tolist() == ["P"]
    assert len(cat.scans("P")) == 5 and cat.place("P", by="admin") is None
    assert cat.export_file(tmp_path / "out.json", by="admin").exists()
    assert cat.import_file(tmp_path / "p.csv", by="admin", project="P", dry_run=True).ok
    sentence = (
        f"the catalog {read_only_mount} is read-only for this user (it is on a read-only "
        "file system); ask its owner for write access, or work on a copy; nothing was changed"
    )
    for write in (
        lambda: cat.add_user("bo", by="admin"),
        lambda: cat.import_file(tmp_path / "p.csv", by="admin", project="P"),
        lambda: cat.record_decision("P", "E1", "S1", "U", by="t2"),
        lambda: cat.claim("P", "E1", by="t2"),
        lambda: cat.set_place("P", "E1", "S1", by="t2"),
        lambda: cat.create_project("Q", by="admin"),
    ):
        with pytest.raises(WriteError) as info:
            write()
        assert str(info.value) == sentence
    assert _snapshot(writable) == before
    assert not made.with_name(made.name + ".wal").exists()


def _without_dac(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``miqa-nb ARGS`` as root without the capabilities that ignore file modes."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
    command = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [*command, sys.executable, "-m", "miqa_nb.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


def test_a_catalog_file_the_user_may_only_read(made, tmp_path):
    lock = made.with_name(made.name + ".lock")
    before = _snapshot(Catalog(made))
    modes = {p: p.stat().st_mode for p in (made, lock, made.parent)}
    read_only = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
    try:
        made.chmod(read_only)
        lock.chmod(read_only)
        made.parent.chmod(read_only | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        listed = _without_dac("--catalog", str(made), "projects")
        imported = _without_dac(
            "--catalog", str(made), "--user", "admin", "import", str(tmp_path / "p.csv"),
            "--project", "P",
        )  # fmt: skip
    finally:
        for path, mode in modes.items():
            path.chmod(mode)
    assert listed.returncode == 0, listed.stderr
    assert "P " in listed.stdout and "Traceback" not in listed.stderr
    assert imported.returncode == 1
    assert imported.stderr.strip() == (
        f"miqa-nb: the catalog {made} is read-only for this user (the file is not writable "
        "by this user); ask its owner for write access, or work on a copy; nothing was changed"
    )
    assert _snapshot(Catalog(made)) == before

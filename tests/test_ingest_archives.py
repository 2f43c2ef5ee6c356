"""Uploaded archives unpack exactly, and every hostile member is refused leaving nothing."""

from __future__ import annotations

import io
import random
import stat
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest

from miqa_nb.core.errors import MiqaError
from miqa_nb.ingest.archives import ArchiveError, UploadLimits, archive_kind, unpack

#: Small bounds, so the attacks stay small and fast.
SMALL = UploadLimits(
    max_total_bytes=1 << 20,
    max_members=5,
    max_member_ratio=50,
    max_total_ratio=50,
    ratio_floor_bytes=64 << 10,
    max_depth=4,
    max_name_bytes=64,
)

NESTED = {
    "S1/scan1/1.dcm": b"first" * 100,
    "S1/scan1/2.dcm": b"second",
    "S1/scan2/deeper/3.dcm": bytes(range(256)) * 8,
    "top.dcm": b"",
}


def _random(n: int) -> bytes:
    return random.Random(n).randbytes(n)


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def make_tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def add_tar_special(path: Path, name: str, kind: bytes, linkname: str = "") -> Path:
    """A tar.gz holding a good file, then one member of the given type."""
    with tarfile.open(path, "w:gz") as tf:
        good = tarfile.TarInfo("good.dcm")
        good.size = 4
        tf.addfile(good, io.BytesIO(b"good"))
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = linkname
        tf.addfile(info)
    return path


def unpacked(staging: Path) -> dict[str, bytes]:
    return {
        p.relative_to(staging).as_posix(): p.read_bytes()
        for p in sorted(staging.rglob("*"))
        if p.is_file()
    }


def assert_refused(archive: Path, staging: Path, reason: str, limits: UploadLimits = SMALL) -> None:
    """``unpack`` refuses with ``reason`` in the message, and no staging folder is left."""
    with pytest.raises(ArchiveError, match=reason) as caught:
        unpack(archive, staging, limits)
    assert archive.name in str(caught.value)
    assert not staging.exists(), sorted(staging.rglob("*"))


# --- good archives ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz", "tar.bz2", "tar.xz"])
def test_nested_folders_unpack_exactly(tmp_path: Path, kind: str) -> None:
    archive = tmp_path / f"upload.{kind}"
    if kind == "zip":
        make_zip(archive, NESTED)
    else:
        make_tar(archive, NESTED, "w:" + kind.removeprefix("tar").removeprefix("."))
    staging = tmp_path / "staging"
    files = unpack(archive, staging, SMALL)
    assert unpacked(staging) == NESTED
    assert [f.relative_to(staging).as_posix() for f in files] == list(NESTED)


def test_kind_is_read_from_the_content_not_the_name(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "scans.zip", {"a/1.dcm": b"one"})
    assert archive_kind(archive) == "gz"
    assert unpack(archive, tmp_path / "s1") == [tmp_path / "s1" / "a" / "1.dcm"]
    plain = make_tar(tmp_path / "scans.tgz", {"b/2.dcm": b"two"}, "w")
    assert archive_kind(plain) == "tar"
    assert unpack(plain, tmp_path / "s2") == [tmp_path / "s2" / "b" / "2.dcm"]
    assert unpacked(tmp_path / "s2") == {"b/2.dcm": b"two"}


def test_a_single_file_that_is_not_an_archive_is_kept_as_it_is(tmp_path: Path) -> None:
    data = b"\0" * 128 + b"DICM" + _random(3000)
    upload = tmp_path / "upload-x1.part"
    upload.write_bytes(data)
    assert archive_kind(upload) == "file"
    files = unpack(upload, tmp_path / "staging", SMALL, name="C:\\scans\\image.dcm")
    assert files == [tmp_path / "staging" / "image.dcm"]
    assert files[0].read_bytes() == data
    assert upload.read_bytes() == data  # the upload itself is only read


def test_folder_entries_and_repeated_folders_are_fine(tmp_path: Path) -> None:
    archive = tmp_path / "dirs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a/", b"")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # zipfile warns of the duplicate
            zf.writestr("a/", b"")
        zf.writestr("a/b.dcm", b"b")
    assert unpack(archive, tmp_path / "s") == [tmp_path / "s" / "a" / "b.dcm"]
    assert (tmp_path / "s" / "a").is_dir()


# --- names --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../evil", "'\\.\\.' part"),
        ("/abs/evil", "absolute"),
        ("a/../../evil", "'\\.\\.' part"),
        ("a\\..\\..\\evil", "'\\.\\.' part"),
        ("a/b/c/d/e/deep.dcm", "more than 4 folders deep"),
        ("n" * 65, "longer than 64 bytes"),
        ("bad\x01name", "control character"),
    ],
)
@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_a_bad_name_is_refused_and_nothing_is_left(
    tmp_path: Path, name: str, reason: str, kind: str
) -> None:
    members = {"first.dcm": b"written before the bad member", name: b"evil"}
    archive = tmp_path / f"bad.{kind}"
    make_zip(archive, members) if kind == "zip" else make_tar(archive, members)
    assert_refused(archive, tmp_path / "staging", reason)
    assert not (tmp_path / "evil").exists() and not Path("/abs/evil").exists()


def test_the_error_names_the_archive_and_the_member(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "export.zip", {"ok.dcm": b"1", "../evil": b"2"})
    with pytest.raises(ArchiveError) as caught:
        unpack(archive, tmp_path / "staging")
    error = caught.value
    assert isinstance(error, MiqaError) and isinstance(error, ValueError)
    assert (error.archive, error.member) == (archive, "../evil")
    assert "member '../evil' of 'export.zip'" in str(error)


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    zipped = tmp_path / "dup.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns of the duplicate
        with zipfile.ZipFile(zipped, "w") as zf:
            zf.writestr("a/x.dcm", b"first")
            zf.writestr("a/x.dcm", b"second")
    assert_refused(zipped, tmp_path / "s1", "same name")
    tarred = make_tar(tmp_path / "dup.tar", {"x.dcm": b"1"}, "w")
    with tarfile.open(tarred, "a") as tf:
        info = tarfile.TarInfo("./x.dcm")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"2"))
    assert_refused(tarred, tmp_path / "s2", "same name")


def test_a_file_and_a_folder_of_the_same_name_are_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "clash.zip", {"a": b"file", "a/b.dcm": b"under it"})
    assert_refused(archive, tmp_path / "s1", "folder 'a' is a file")
    archive = make_zip(tmp_path / "clash2.zip", {"a/b.dcm": b"under it", "a": b"file"})
    assert_refused(archive, tmp_path / "s2", "same name")


# --- member types ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "linkname", "reason"),
    [
        (tarfile.SYMTYPE, "/etc/passwd", "symbolic link"),
        (tarfile.SYMTYPE, "good.dcm", "symbolic link"),
        (tarfile.LNKTYPE, "good.dcm", "hard link"),
        (tarfile.FIFOTYPE, "", "device, FIFO"),
        (tarfile.CHRTYPE, "", "device, FIFO"),
        (tarfile.BLKTYPE, "", "device, FIFO"),
    ],
)
def test_tar_links_and_special_files_are_refused(
    tmp_path: Path, kind: bytes, linkname: str, reason: str
) -> None:
    archive = add_tar_special(tmp_path / "special.tar.gz", "special", kind, linkname)
    assert_refused(archive, tmp_path / "staging", reason)


@pytest.mark.parametrize(
    ("mode", "reason"),
    [(stat.S_IFLNK | 0o777, "symbolic link"), (stat.S_IFIFO | 0o644, "device, FIFO")],
)
def test_zip_symlinks_and_special_files_are_refused(tmp_path: Path, mode: int, reason: str) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("good.dcm", b"good")
        info = zipfile.ZipInfo("link")
        info.create_system = 3
        info.external_attr = mode << 16
        zf.writestr(info, b"/etc/passwd")
    assert_refused(archive, tmp_path / "staging", reason)


# --- bombs and bounds -------------------------------------------------------------


def test_a_zip_bomb_is_refused_by_its_ratio(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "bomb.zip", {"ok.dcm": b"ok", "zeros.dcm": bytes(4 << 20)})
    assert archive.stat().st_size < 20_000
    limits = UploadLimits(max_member_ratio=100, max_total_ratio=1e9, ratio_floor_bytes=64 << 10)
    assert_refused(archive, tmp_path / "staging", "times its compressed size", limits)
    # the same archive passes with a ratio above its own: the ratio is what refused it
    lenient = UploadLimits(max_member_ratio=1e6, max_total_ratio=1e6, ratio_floor_bytes=64 << 10)
    assert len(unpack(archive, tmp_path / "fine", lenient)) == 2


def test_a_tar_gz_bomb_is_refused_by_the_overall_ratio(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "bomb.tgz", {"zeros.dcm": bytes(4 << 20)})
    limits = UploadLimits(max_total_ratio=100, ratio_floor_bytes=64 << 10)
    assert_refused(archive, tmp_path / "staging", "archive unpacks to .* times", limits)
    lenient = UploadLimits(max_total_ratio=1e6, ratio_floor_bytes=64 << 10)
    assert len(unpack(archive, tmp_path / "fine", lenient)) == 1


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_the_total_size_is_bounded(tmp_path: Path, kind: str) -> None:
    members = {f"{i}.dcm": _random(300_000 + i) for i in range(4)}  # 1.2 MB, over 1 MiB
    archive = tmp_path / f"big.{kind}"
    make_zip(archive, members) if kind == "zip" else make_tar(archive, members)
    assert_refused(archive, tmp_path / "staging", "more than 1048576 bytes")
    three = dict(list(members.items())[:3])
    make_zip(archive, three) if kind == "zip" else make_tar(archive, three)
    assert len(unpack(archive, tmp_path / "fine", SMALL)) == 3


def test_a_single_file_over_the_total_is_refused_while_it_is_copied(tmp_path: Path) -> None:
    upload = tmp_path / "one.dcm"
    upload.write_bytes(_random((1 << 20) + 1))
    assert_refused(upload, tmp_path / "staging", "more than 1048576 bytes")


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_too_many_members_are_refused(tmp_path: Path, kind: str) -> None:
    members = {f"m{i}.dcm": b"x" for i in range(6)}
    archive = tmp_path / f"many.{kind}"
    make_zip(archive, members) if kind == "zip" else make_tar(archive, members)
    assert_refused(archive, tmp_path / "staging", "more than 5")
    del members["m5.dcm"]
    make_zip(archive, members) if kind == "zip" else make_tar(archive, members)
    assert len(unpack(archive, tmp_path / "fine", SMALL)) == 5


# --- broken archives and the staging folder -------------------------------------------


@pytest.mark.parametrize("kind", ["zip", "tar.gz", "tar"])
def test_a_truncated_archive_is_an_error_leaving_nothing(tmp_path: Path, kind: str) -> None:
    members = {"first.dcm": b"small", "second.dcm": _random(200_000)}
    archive = tmp_path / f"cut.{kind}"
    make_zip(archive, members) if kind == "zip" else make_tar(archive, members, "w:" + kind[4:])
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) * 3 // 4])
    assert_refused(archive, tmp_path / "staging", "corrupt or cut short")


def test_a_corrupt_zip_member_is_an_error_leaving_nothing(tmp_path: Path) -> None:
    archive = tmp_path / "corrupt.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("first.dcm", b"fine")
        zf.writestr("second.dcm", b"A" * 5000)
    data = bytearray(archive.read_bytes())
    at = data.index(b"A" * 5000)
    data[at + 2500] = ord("B")  # the CRC no longer matches
    archive.write_bytes(bytes(data))
    assert_refused(archive, tmp_path / "staging", "corrupt or cut short")


def test_an_existing_empty_staging_folder_is_emptied_again(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    archive = make_zip(tmp_path / "bad.zip", {"a/ok.dcm": b"ok", "../evil": b"x"})
    with pytest.raises(ArchiveError):
        unpack(archive, staging)
    assert staging.is_dir() and list(staging.iterdir()) == []


def test_a_staging_folder_with_files_in_it_is_refused_untouched(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "other.dcm").write_bytes(b"someone else's")
    archive = make_zip(tmp_path / "good.zip", {"a.dcm": b"a"})
    with pytest.raises(ArchiveError, match="not an empty folder"):
        unpack(archive, staging)
    assert unpacked(staging) == {"other.dcm": b"someone else's"}

"""Atomic writes (miqa_nb.core.files): whole or not at all, on a real folder."""

import os

import pytest

from miqa_nb.core.files import atomic_path, write_atomic


def test_a_write_replaces_the_file_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "deep" / "a.csv"
    write_atomic(target, b"old")
    assert write_atomic(target, b"new") == target
    assert target.read_bytes() == b"new"
    assert os.listdir(target.parent) == ["a.csv"]


def test_a_failed_write_keeps_the_earlier_file(tmp_path):
    target = tmp_path / "a.csv"
    target.write_bytes(b"earlier")
    with pytest.raises(RuntimeError, match="half way"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("half way")
    assert target.read_bytes() == b"earlier"
    assert os.listdir(tmp_path) == ["a.csv"]


def test_without_replace_an_existing_file_is_refused(tmp_path):
    target = tmp_path / "scan.nii.gz"
    write_atomic(target, b"first", replace=False)
    with pytest.raises(FileExistsError):
        write_atomic(target, b"second", replace=False)
    assert target.read_bytes() == b"first"
    assert os.listdir(tmp_path) == ["scan.nii.gz"]


def test_an_unwritable_folder_raises_and_leaves_nothing(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(OSError):
        write_atomic(tmp_path / "file" / "a.csv", b"x")
    assert os.listdir(tmp_path) == ["file"]

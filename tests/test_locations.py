"""The data roots (miqa_nb.exchange.locations): one rule, for one path or many."""

import os

import pyarrow as pa
import pytest

from miqa_nb.exchange.locations import ROOTS_ENV, DataRoots, inside, roots_setting


@pytest.fixture
def tree(tmp_path):
    """roots/ (with a symlink out and a sibling that shares its name's start) and outside/."""
    (tmp_path / "roots" / "sub").mkdir(parents=True)
    (tmp_path / "roots-sibling").mkdir()
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", tmp_path / "roots" / "out")
    os.symlink(tmp_path / "roots" / "sub", tmp_path / "outside" / "back")
    return tmp_path


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("roots", True),
        ("roots/", True),
        ("roots/sub/a.nii", True),
        ("roots/sub/../a.nii", True),
        ("roots/../outside/a.nii", False),
        ("roots-sibling/a.nii", False),
        ("roots/out/a.nii", False),  # a symlink that leads out
        ("outside/back/a.nii", True),  # a symlink that leads in
        ("outside", False),
    ],
)
def test_inside_resolves_dotdot_and_symlinks(tree, path, expected):
    assert inside(tree / path, [tree / "roots"]) is expected


def test_one_rule_for_one_path_and_for_many(tree):
    """DataRoots.contains (one resolved path) and contains_many (an Arrow array of
    them) give the same answer for every path, also for the file-system root."""
    paths = [
        os.path.realpath(tree / p)
        for p in ("roots", "roots/sub/a", "roots-sibling", "outside/a", "roots/out/a", "")
    ] + ["/", "/etc/passwd"]
    for folders in ([tree / "roots"], [tree / "roots", tree / "outside"], ["/"], []):
        roots = DataRoots.of(folders)
        one_by_one = [roots.contains(p) for p in paths]
        assert roots.contains_many(pa.array(paths)).tolist() == one_by_one
        assert one_by_one == [inside(p, folders) for p in paths]
    assert DataRoots.of(["/"]).contains_many(pa.array(paths)).all()


def test_the_roots_setting(tmp_path, monkeypatch):
    monkeypatch.delenv(ROOTS_ENV, raising=False)
    assert roots_setting(None, tmp_path) == [tmp_path]
    assert roots_setting([], tmp_path) == []  # given, even empty, wins
    monkeypatch.setenv(ROOTS_ENV, os.pathsep.join(["/a", "", "/b"]))
    assert roots_setting(None, tmp_path) == ["/a", "/b"]
    assert roots_setting([tmp_path / "x"], tmp_path) == [tmp_path / "x"]
    assert DataRoots.from_setting(None, tmp_path).folders == ("/a", "/b")

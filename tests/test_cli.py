"""The miqa-nb command line, run as a user would (a real subprocess for the entry point)."""

import os
import subprocess
import sys

import pandas as pd
import pytest
from support import frame_row

from miqa_nb import Catalog
from miqa_nb.cli import main


@pytest.fixture
def cli(tmp_path, monkeypatch):
    catalog = tmp_path / "cli.duckdb"
    monkeypatch.setenv("MIQA_NB_CATALOG", str(catalog))
    monkeypatch.setenv("MIQA_NB_USER", "admin")
    assert main(["users", "add", "admin", "--superuser"]) == 0
    return catalog


def test_user_comes_from_flag_then_environment(cli, monkeypatch, capsys):
    """Who acts: --user, else MIQA_NB_USER, else JUPYTERHUB_USER (only admin may add)."""
    assert main(["users", "add", "bob"]) == 0  # MIQA_NB_USER=admin
    monkeypatch.delenv("MIQA_NB_USER")
    monkeypatch.setenv("JUPYTERHUB_USER", "bob")
    assert main(["users", "add", "eve"]) == 1
    assert "only superusers may" in capsys.readouterr().err
    monkeypatch.setenv("MIQA_NB_USER", "admin")  # before JUPYTERHUB_USER
    assert main(["users", "add", "eve"]) == 0
    assert main(["--user", "bob", "users", "add", "fay"]) == 1  # the flag before both
    assert main(["users", "add", "fay", "--user", "bob"]) == 1
    assert "only superusers may" in capsys.readouterr().err
    assert Catalog(cli).users()["name"].tolist() == ["admin", "bob", "eve"]


def test_validate_import_export_projects(cli, write_csv, tmp_path, capsys):
    path = write_csv([frame_row(frame=n) for n in range(2)])
    assert main(["validate", str(path)]) == 0
    assert "0 error(s)" in capsys.readouterr().out
    assert main(["import", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run: nothing was written" in out and "frames" in out
    assert Catalog(cli).projects().empty
    assert main(["import", str(path), "--project", "P"]) == 0
    assert "P: 1 experiments, 1 scans, 2 frames" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "out.csv"), "--project", "P"]) == 0
    assert len(pd.read_csv(tmp_path / "out.csv")) == 2
    assert capsys.readouterr().out == f"wrote {tmp_path / 'out.csv'}\n"
    assert main(["projects"]) == 0
    header, row = capsys.readouterr().out.splitlines()  # one project, nothing else
    assert header.split() == list(Catalog(cli).projects().columns)
    fields = row.split()  # project, creator, ..., experiments, scans, frames, reviewed, complete
    assert fields[:2] == ["P", "admin"] and fields[-5:] == ["1", "1", "2", "0", "0"]


def test_errors_exit_non_zero_with_the_report(cli, write_csv, capsys):
    path = write_csv([frame_row(frame="abc")])
    assert main(["import", str(path)]) == 1
    err = capsys.readouterr().err
    assert "row 2" in err and "'abc'" in err and "nothing was imported" in err
    assert main(["validate", str(path)]) == 1


def test_permission_refusal_is_a_message(cli, write_csv, capsys, monkeypatch):
    assert main(["users", "add", "bob"]) == 0
    monkeypatch.setenv("MIQA_NB_USER", "bob")
    assert main(["import", str(write_csv([frame_row()]))]) == 1
    assert "only superusers may" in capsys.readouterr().err
    assert main(["users", "add", "eve"]) == 1


def test_roles(cli, write_csv, capsys):
    main(["import", str(write_csv([frame_row()]))])
    assert main(["users", "add", "bob"]) == 0
    assert main(["roles", "set", "P", "bob", "tier2"]) == 0
    assert main(["roles", "list", "--project", "P"]) == 0
    assert "tier2" in capsys.readouterr().out
    assert main(["roles", "set", "P", "bob", "boss"]) == 1


def test_console_script_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "miqa_nb.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "validate" in result.stdout and "import" in result.stdout


def test_render_writes_three_planes(tmp_path, samples, capsys):
    image = samples / "miqa" / "core" / "tests" / "data" / "example.nii.gz"
    assert main(["render", str(image), "--out", str(tmp_path / "r"), "--window", "0,400"]) == 0
    from PIL import Image

    sizes = {
        p: Image.open(tmp_path / "r" / f"{p}.png").size for p in ("axial", "coronal", "sagittal")
    }
    assert sizes["axial"] == (128, 128) and sizes["coronal"][1] < sizes["coronal"][0]
    assert main(["render", str(tmp_path / "missing.nii.gz"), "--out", str(tmp_path)]) == 1
    assert "missing.nii.gz" in capsys.readouterr().err
    assert main(["render", str(image), "--out", str(tmp_path), "--at", "1,2"]) == 1


def test_scan_types(cli, write_csv, capsys):
    assert main(["scan-types", "add", "FLAIR"]) == 0
    assert main(["scan-types", "add", "flair3d", "--alias-of", "flair"]) == 0
    assert "'flair3d' means 'FLAIR'" in capsys.readouterr().out
    assert main(["scan-types", "add", "bold", "--alias-of", "T1"]) == 1
    assert "'bold' is already a name of 'FMRI'" in capsys.readouterr().err
    assert main(["scan-types", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["T1", "(MIQA)", "also:", "t1w,", "t1-weighted,", "mprage"]
    assert lines[-1].split() == ["FLAIR", "(this", "catalog)", "also:", "flair3d"]
    assert main(["import", str(write_csv([frame_row(scan_type="FLAIR3D")]))]) == 0
    assert Catalog(cli).scans()["type"].tolist() == ["FLAIR"]
    assert main(["scan-types", "remove", "flair3d"]) == 0
    assert "removed 'flair3d'" in capsys.readouterr().out


@pytest.mark.parametrize(
    "command",
    [["projects"], ["users", "list"], ["roles", "list"], ["export", "out.csv"], ["import", "in.csv"],
     ["scan-types", "list"], ["roles", "set", "P", "bob", "tier1"]],
)  # fmt: skip
def test_a_mistyped_catalog_is_an_error_not_a_new_catalog(tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MIQA_NB_USER", "admin")
    assert main(["--catalog", "lab.duckbd", *command]) == 1
    err = capsys.readouterr().err
    assert "no catalog file at lab.duckbd" in err and "users add NAME" in err
    assert list(tmp_path.iterdir()) == []


def test_validate_needs_no_catalog_and_starts_none(tmp_path, write_csv, monkeypatch, capsys):
    path = write_csv([frame_row(), frame_row(frame=1)])
    monkeypatch.chdir(tmp_path)
    before = set(tmp_path.iterdir())
    assert main(["--catalog", "none.duckdb", "validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "checked against MIQA's scan types" in out and "0 error(s)" in out
    assert set(tmp_path.iterdir()) == before


def test_empty_listings_say_what_to_do(cli, capsys):
    assert main(["projects"]) == 0
    assert "no projects yet; import a file" in capsys.readouterr().out
    assert main(["roles", "list", "--project", "P"]) == 0
    assert "no roles in project 'P' yet; `miqa-nb roles set PROJECT USER ROLE`" in (
        capsys.readouterr().out
    )


def test_an_export_to_a_folder_is_a_message(cli, tmp_path, capsys):
    assert main(["export", str(tmp_path)]) == 1
    assert f"cannot write {tmp_path}: it is a folder" in capsys.readouterr().err


# ------------------------------------------------- global options, before or after


def test_demo_takes_its_catalog_after_the_command(tmp_path):
    """The command a reviewer types from the README: options after the command."""
    env = {**os.environ, "MIQA_NB_USER": "lead", "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-m", "miqa_nb.cli", "demo", "--dir", "D", "--catalog", "C.duckdb"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "catalog: C.duckdb"
    assert not (tmp_path / "D" / "demo.duckdb").exists()
    users = Catalog(tmp_path / "C.duckdb").users().set_index("name")["superuser"]
    assert bool(users["lead"]) is True


def _commands(tmp_path, write_csv):
    """Every command that reads the catalog, with arguments that succeed on it."""
    image = tmp_path / "outside" / "f0.nii.gz"
    importing = write_csv([frame_row(file_location=str(image))], folder=tmp_path / "files")
    image.parent.mkdir(parents=True, exist_ok=True)
    image.write_bytes(b"")
    return {
        "validate": ["validate", str(importing)],
        "import": ["import", str(importing), "--dry-run"],
        "export": ["export", str(tmp_path / "out.csv")],
        "projects": ["projects"],
        "users add": ["users", "add", "bob"],
        "users list": ["users", "list"],
        "roles set": ["roles", "set", "P", "admin", "tier2"],
        "roles list": ["roles", "list"],
        "scan-types list": ["scan-types", "list"],
        "scan-types add": ["scan-types", "add", "FLAIR"],
        "scan-types remove": ["scan-types", "remove", "FLAIR"],
    }


@pytest.mark.parametrize("where", ["before", "after"])
def test_every_global_option_may_come_after_the_command(
    tmp_path, write_csv, monkeypatch, capsys, where
):
    """--catalog, --user and --data-root work before and after every command. Nothing
    else names them (no catalog or user in the environment or the working folder), and
    the import file names a frame outside its own folder: without each option, each
    command would fail."""
    catalog = tmp_path / "lab.duckdb"
    assert main(["--catalog", str(catalog), "--user", "admin", "users", "add", "admin"]) == 0
    assert main(["--catalog", str(catalog), "--user", "admin", "import", str(write_csv([frame_row()]))]) == 0  # fmt: skip
    commands = _commands(tmp_path, write_csv)
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    for name, command in commands.items():
        options = ["--catalog", str(catalog), "--user", "admin"]
        options += ["--data-root", str(tmp_path / "outside")]
        argv = [*options, *command] if where == "before" else [*command, *options]
        assert main(argv) == 0, f"{name}: {capsys.readouterr().err}"
    assert Catalog(catalog).users()["name"].tolist() == ["admin", "bob"]


def test_options_after_the_command_override_those_before(cli, write_csv, tmp_path, capsys):
    """As on any command line, the last --user or --catalog given wins; --data-root
    collects every folder, from before and after the command."""
    inside, outside = tmp_path / "a", tmp_path / "b"
    rows = [
        frame_row(file_location=str(inside / "f0.nii.gz")),
        frame_row(frame=1, file_location=str(outside / "f1.nii.gz")),
    ]
    for folder in (inside, outside):
        folder.mkdir()
    (inside / "f0.nii.gz").write_bytes(b"")
    (outside / "f1.nii.gz").write_bytes(b"")
    path = write_csv(rows, folder=tmp_path / "files")
    assert main(["--data-root", str(inside), "validate", str(path)]) == 1  # f1 is outside
    capsys.readouterr()
    both = ["--data-root", str(inside), "validate", str(path), "--data-root", str(outside)]
    assert main(both) == 0
    assert "0 error(s)" in capsys.readouterr().out
    assert main(["--user", "admin", "users", "add", "bob", "--user", "nobody"]) == 1
    assert "nobody" in capsys.readouterr().err
    elsewhere = tmp_path / "elsewhere.duckdb"
    assert main(["--catalog", str(elsewhere), "projects", "--catalog", str(cli)]) == 0
    assert not elsewhere.exists()


def test_serve_and_render_accept_global_options_after_the_command(tmp_path, samples, capsys):
    missing = tmp_path / "nothere.duckdb"
    assert main(["serve", "--catalog", str(missing)]) == 1
    assert f"no catalog file at {missing}" in capsys.readouterr().err
    image = samples / "miqa" / "core" / "tests" / "data" / "example.nii.gz"
    out = tmp_path / "r"
    assert main(["render", str(image), "--out", str(out), "--user", "ana"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["axial.png", "coronal.png", "sagittal.png"]

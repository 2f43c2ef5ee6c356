"""The miqa-nb command line, run as a user would (a real subprocess for the entry point)."""

import os
import pty
import select
import shlex
import subprocess
import sys
import time

import pandas as pd
import pytest
from support import frame_row

from miqa_nb import Catalog
from miqa_nb.cli import main
from miqa_nb.core.errors import MiqaError


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
    lines = result.stdout.splitlines()
    assert "catalog: C.duckdb" in lines
    # how to serve it with one-time sign-in links for the admin and a demo reviewer
    assert lines[-2] == "serve it: miqa-nb --catalog C.duckdb serve --link-for lead --link-for ana"
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


# ------------------------------------------------------------------ credentials

SECRET = "Correct-Horse-Battery-7"


def _cli_env(catalog, user="admin", **more):
    return {
        **os.environ,
        "MIQA_NB_CATALOG": str(catalog),
        "MIQA_NB_USER": user,
        "PYTHONPATH": os.pathsep.join(sys.path),
        **more,
    }


def _run_cli(catalog, *argv, stdin=None, user="admin"):
    return subprocess.run(
        [sys.executable, "-m", "miqa_nb.cli", *argv],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        env=_cli_env(catalog, user),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _on_a_terminal(catalog, argv, answers):
    """Run the command line on a terminal (a pseudo-terminal), answering each prompt
    in turn; returns the exit status and everything the terminal showed."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command line, with the terminal as its own
        os.execve(sys.executable, [sys.executable, "-m", "miqa_nb.cli", *argv], _cli_env(catalog))
    shown = b""
    deadline = time.monotonic() + 120

    def read() -> bool:
        nonlocal shown
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"no prompt within the time; the terminal showed {shown!r}"
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the command ended and closed the terminal
            return False
        shown += chunk
        return bool(chunk)

    try:
        for answer in answers:
            asked = shown.count(b": ")
            while shown.count(b": ") == asked and read():
                pass
            os.write(fd, answer.encode() + b"\n")
        while read():
            pass
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def test_passwd_asks_twice_on_a_terminal_and_shows_nothing_typed(cli):
    main(["users", "add", "ana"])
    status, shown = _on_a_terminal(cli, ["users", "passwd", "ana"], [SECRET, SECRET])
    assert status == 0, shown
    assert "new password for ana: " in shown and "again: " in shown
    assert "password set for ana" in shown
    assert SECRET not in shown
    assert Catalog(cli).check_password("ana", SECRET)


def test_passwd_refuses_two_different_passwords(cli):
    main(["users", "add", "ana"])
    status, shown = _on_a_terminal(cli, ["users", "passwd", "ana"], [SECRET, SECRET + "x"])
    assert status == 1
    assert "the two passwords differ; nothing was changed" in shown
    assert not Catalog(cli).has_password("ana")


def test_passwd_reads_one_line_from_stdin_and_says_only_that(cli):
    main(["users", "add", "ana"])
    done = _run_cli(cli, "users", "passwd", "ana", "--password-stdin", stdin=f"{SECRET}\nnext\n")
    assert (done.returncode, done.stdout, done.stderr) == (0, "password set for ana\n", "")
    assert Catalog(cli).check_password("ana", SECRET)


@pytest.mark.parametrize(
    ("argv", "stdin", "said"),
    [
        ([], None, "stdin is not one: give it on stdin with --password-stdin"),
        (["--password-stdin"], "\n", "no password was given; nothing was changed"),
        (["--password-stdin"], "short\n", "a password needs at least 8 characters"),
    ],
)
def test_passwd_without_a_password_changes_nothing(cli, argv, stdin, said):
    main(["users", "add", "ana"])
    done = _run_cli(cli, "users", "passwd", "ana", *argv, stdin=stdin)
    assert done.returncode == 1 and said in done.stderr and done.stdout == ""
    assert not Catalog(cli).has_password("ana")


def test_a_token_is_printed_alone_on_stdout(cli):
    main(["users", "add", "ana"])
    command = shlex.join([sys.executable, "-m", "miqa_nb.cli", "users", "token", "ana"])
    done = subprocess.run(
        ["sh", "-c", f'TOKEN=$({command} --expires 2) && printf "%s" "$TOKEN"'],
        env=_cli_env(cli),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout
    assert Catalog(cli).token_user(token) == "ana"
    (token_id,) = Catalog(cli).tokens("ana", by="ana")["id"]
    assert f"token {token_id} for ana, expires " in done.stderr
    assert token not in done.stderr


def test_tokens_are_listed_and_revoked(cli, capsys):
    main(["users", "add", "ana"])
    capsys.readouterr()  # what adding them printed
    token_id, token = Catalog(cli).create_token("ana", by="ana")
    assert main(["users", "tokens", "ana"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["id", "created_utc", "expires_utc", "revoked_utc", "last_used_utc"]
    assert row.split()[0] == token_id and token.split("_", 2)[2] not in row
    assert main(["users", "revoke", "ana", token_id]) == 0
    assert capsys.readouterr().out == f"revoked token {token_id} of ana\n"
    assert Catalog(cli).token_user(token) is None
    assert main(["users", "revoke", "ana", "XXXXXXXXXX"]) == 1
    assert "user 'ana' has no token 'XXXXXXXXXX'" in capsys.readouterr().err


def test_a_user_makes_its_own_tokens_only(cli, capsys):
    main(["users", "add", "ana"])
    main(["users", "add", "bo"])
    capsys.readouterr()  # what adding them printed
    assert main(["--user", "bo", "users", "token", "ana"]) == 1
    assert "user 'bo' may not make tokens of user 'ana'" in capsys.readouterr().err
    assert main(["users", "link", "ana", "--user", "bo"]) == 1
    assert main(["users", "tokens", "ana", "--user", "bo"]) == 1
    assert Catalog(cli).tokens("ana", by="admin").empty
    assert main(["--user", "bo", "users", "token", "bo"]) == 0
    assert Catalog(cli).token_user(capsys.readouterr().out.strip()) == "bo"


def test_a_sign_in_link_names_the_server(cli, capsys, monkeypatch):
    main(["users", "add", "ana"])
    capsys.readouterr()  # what adding them printed
    assert main(["users", "link", "ana", "--server", "https://review.example.org/miqa"]) == 0
    (link,) = capsys.readouterr().out.splitlines()
    prefix = "https://review.example.org/miqa/signin?link="
    assert link.startswith(prefix)
    assert Catalog(cli).use_signin_link(link.removeprefix(prefix)) == "ana"
    monkeypatch.setenv("MIQA_NB_SERVER_URL", "http://127.0.0.1:8866/")
    assert main(["users", "link", "ana", "--minutes", "5"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("http://127.0.0.1:8866/signin?link=")
    assert "it works once, for 5 minutes" in err


def test_a_sign_in_link_without_a_server_says_to_put_in_the_port(cli, capsys):
    main(["users", "add", "ana"])
    capsys.readouterr()  # what adding them printed
    assert main(["users", "link", "ana"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("http://127.0.0.1:PORT/signin?link=")
    assert "replace PORT by the port `miqa-nb serve` printed" in err


def test_a_wrong_server_address_makes_no_link(cli, capsys):
    main(["users", "add", "ana"])
    capsys.readouterr()  # what adding them printed
    assert main(["users", "link", "ana", "--server", "review.example.org"]) == 1
    assert "the server address must look like http://HOST:PORT/" in capsys.readouterr().err
    assert Catalog(cli).sql("SELECT count(*) AS n FROM signin_links")["n"].tolist() == [0]


def test_users_list_says_who_has_a_password(cli, capsys):
    main(["users", "add", "ana"])
    capsys.readouterr()  # what adding them printed
    Catalog(cli).set_password("ana", SECRET, by="ana")
    assert main(["users", "list"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split()[-1] == "password"
    assert {row.split()[0]: row.split()[-1] for row in rows} == {"admin": "False", "ana": "True"}


@pytest.mark.parametrize(
    ("where", "command"),
    [
        ("flag", ["users", "add", "admin", "--superuser"]),
        ("environment", ["users", "add", "admin", "--superuser"]),
        ("flag", ["serve"]),
        ("environment", ["serve"]),
    ],
)
def test_a_url_miqa_nb_does_not_read_is_refused_not_taken_for_a_file(
    where, command, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MIQA_NB_USER", "admin")
    url = "mysql://ana:secret@db.lab:3306/miqa"
    if where == "flag":
        argv = ["--catalog", url, *command]
    else:
        monkeypatch.setenv("MIQA_NB_CATALOG", url)
        argv = command
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "'mysql://db.lab:3306/miqa' is a URL miqa_nb does not read" in err
    assert "a PostgreSQL database's URL (postgresql://" in err
    assert "secret" not in err and "ana" not in err  # the URL's user and password
    assert list(tmp_path.iterdir()) == []  # no folder "mysql:", no catalog


def test_a_postgresql_url_nobody_answers_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    url = f"postgresql://ana:secret@127.0.0.1:{_closed_port()}/miqa"
    assert main(["--catalog", url, "--user", "admin", "users", "add", "admin"]) == 1
    err = capsys.readouterr().err
    assert "cannot connect to the catalog postgresql://ana@127.0.0.1:" in err
    assert "check that the server runs" in err and "secret" not in err
    monkeypatch.setenv("MIQA_NB_CATALOG", url)
    with pytest.raises(MiqaError, match="cannot connect to the catalog"):
        Catalog()
    assert list(tmp_path.iterdir()) == []  # no folder "postgresql:", no file


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed once returned: nobody listens there

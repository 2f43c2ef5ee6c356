"""The ``miqa-nb`` command line.

Thin: each command parses its arguments, calls the library, prints what a person reads,
and exits non-zero with the report or a clear message on errors (no tracebacks for
expected failures). The user is ``--user``, else ``MIQA_NB_USER``, else
``JUPYTERHUB_USER``, else the login name (:func:`miqa_nb.core.identity.current_user`);
the catalog is ``--catalog``, else ``MIQA_NB_CATALOG``, else ``./miqa.duckdb``.

The global options (:data:`GLOBAL_OPTIONS`: ``--catalog``, ``--user``, ``--data-root``)
may come before the command or anywhere after it (``miqa-nb demo --dir D --catalog C``
is ``miqa-nb --catalog C demo --dir D``); given twice, the last one wins, and every
``--data-root`` counts.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from miqa_nb.catalog import Catalog, catalog_file, catalog_location, default_catalog_path
from miqa_nb.core.errors import ImportFileError, MiqaError
from miqa_nb.core.identity import current_user
from miqa_nb.core.report import Report
from miqa_nb.core.signin import SERVER_URL_ENV, link_url
from miqa_nb.core.vocabulary import Role
from miqa_nb.exchange.validation import check

__all__ = ["GLOBAL_OPTIONS", "main"]

#: Prefix of the names a command's parser stores global options under.
_LATE = "_global_"
#: Options of every command, accepted before the command or anywhere after it:
#: ``(flag, dest, argparse options)``.
GLOBAL_OPTIONS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (
        "--catalog",
        "catalog",
        # a string: a Path would fold a URL's // into one, and it is refused as a URL
        {"help": "catalog file (default: $MIQA_NB_CATALOG or ./miqa.duckdb)"},
    ),
    (
        "--user",
        "user",
        {"help": "act as this user (default: $MIQA_NB_USER, $JUPYTERHUB_USER or the login name)"},
    ),
    (
        "--data-root",
        "data_roots",
        {
            "action": "append",
            "help": "a folder frame files may live in (repeatable; default "
            "$MIQA_NB_DATA_ROOTS or the import file's folder)",
        },
    ),
)


def _add_global_options(parser: argparse.ArgumentParser, depth: int) -> None:
    """Give ``parser`` the global options. At the top (``depth`` 0) they fill their own
    names; a command's parser writes them under names of its depth, which
    :func:`_merge_global_options` folds in (argparse would otherwise let a command's
    defaults overwrite what was given before the command)."""
    title = "options" if depth == 0 else "global options (also before the command)"
    group = parser.add_argument_group(title) if depth else parser
    for flag, dest, options in GLOBAL_OPTIONS:
        if depth == 0:
            group.add_argument(flag, dest=dest, default=None, **options)
        else:
            group.add_argument(
                flag,
                dest=_at_depth(dest, depth),
                metavar=dest.upper(),
                default=argparse.SUPPRESS,
                **options,
            )


def _at_depth(dest: str, depth: int) -> str:
    return f"{_LATE}{depth}_{dest}"


def _merge_global_options(args: argparse.Namespace) -> argparse.Namespace:
    """Fold global options given after a command into their own names, outer commands
    first: a repeatable option collects every value in command-line order; another
    takes the last one given."""
    found = vars(args)
    repeatable = {dest for _, dest, options in GLOBAL_OPTIONS if options.get("action") == "append"}
    late = [key for key in found if key.startswith(_LATE)]
    for key in sorted(late, key=lambda k: int(k[len(_LATE) :].split("_", 1)[0])):
        dest = key[len(_LATE) :].split("_", 1)[1]
        value = found.pop(key)
        found[dest] = [*(found[dest] or []), *value] if dest in repeatable else value
    return args


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="miqa-nb", description="Review the quality of MRI scans: catalog, imports, exports."
    )
    _add_global_options(parser, 0)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check an import file; write nothing")
    p.add_argument("file", type=Path)
    p.add_argument("--project", help="the file must hold only this project")

    p = sub.add_parser("import", help="import a MIQA CSV or JSON file")
    p.add_argument("file", type=Path)
    p.add_argument(
        "--project",
        help="import into this project only (default: every project in the file, a global import)",
    )
    p.add_argument("--mode", choices=("replace", "append"), default="replace")
    p.add_argument("--dry-run", action="store_true", help="report what would change; write nothing")

    p = sub.add_parser("export", help="export to a MIQA CSV (or .json) file")
    p.add_argument("file", type=Path)
    p.add_argument("--project", help="export this project only (default: every project)")
    p.add_argument(
        "--relative-paths",
        action="store_true",
        help="write file locations under the folder above the export file's folder "
        "relative to that folder, where MIQA resolves them (default: absolute paths)",
    )
    p.add_argument(
        "--spreadsheet-safe",
        action="store_true",
        help="put a ' before CSV values a spreadsheet would run as formulas (those beginning "
        "with =, +, -, @, a tab or a carriage return), to open the file in Excel or "
        "LibreOffice; not for importing back (default: every value exact, MIQA's form)",
    )

    sub.add_parser("projects", help="list projects and their review progress")

    users = sub.add_parser("users", help="manage users").add_subparsers(
        dest="action", required=True
    )
    p = users.add_parser("add", help="add a user (the first user of a catalog is a superuser)")
    p.add_argument("name")
    p.add_argument("--superuser", action="store_true")
    users.add_parser("list", help="list users (and whether each has a password)")
    p = users.add_parser(
        "passwd", help="set NAME's password (asked twice on a terminal; never an argument)"
    )
    p.add_argument("name")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin (for scripts)",
    )
    p = users.add_parser("token", help="make an API token for NAME; printed once, on stdout")
    p.add_argument("name")
    p.add_argument(
        "--expires", type=float, metavar="DAYS", help="it expires after DAYS (default: never)"
    )
    p = users.add_parser("tokens", help="list NAME's tokens (never the tokens themselves)")
    p.add_argument("name")
    p = users.add_parser("revoke", help="revoke NAME's token TOKEN_ID")
    p.add_argument("name")
    p.add_argument("token_id")
    p = users.add_parser("link", help="make a one-time sign-in link for NAME")
    p.add_argument("name")
    p.add_argument(
        "--minutes", type=float, default=30, metavar="M", help="it expires after M minutes (30)"
    )
    p.add_argument(
        "--server",
        metavar="URL",
        help=f"the dashboard's address (default: ${SERVER_URL_ENV}; else the link says PORT)",
    )

    roles = sub.add_parser("roles", help="manage project roles").add_subparsers(
        dest="action", required=True
    )
    p = roles.add_parser("set", help="give USER a ROLE in PROJECT")
    p.add_argument("project")
    p.add_argument("member", metavar="USER")
    p.add_argument("role", help=", ".join(r.value for r in Role) + " or none")
    p = roles.add_parser("list", help="list roles")
    p.add_argument("--project")

    types = sub.add_parser("scan-types", help="list or extend the scan types").add_subparsers(
        dest="action", required=True
    )
    types.add_parser("list", help="list the scan types and their other names")
    p = types.add_parser("add", help="accept a new scan type, or another name for one")
    p.add_argument("name")
    p.add_argument("--alias-of", metavar="TYPE", help="make NAME another name of TYPE")
    p = types.add_parser("remove", help="remove a scan type or name this catalog added")
    p.add_argument("name")

    held = sub.add_parser(
        "quarantine", help="experiments archived in quarantine (hidden from review)"
    ).add_subparsers(dest="action", required=True)
    p = held.add_parser("list", help="list the quarantined experiments (of PROJECT)")
    p.add_argument("project", nargs="?")
    p = held.add_parser(
        "release", help="release EXPERIMENT of PROJECT into review (its creator, superusers)"
    )
    p.add_argument("project")
    p.add_argument("experiment")

    copies = sub.add_parser("catalog", help="the catalog as a whole").add_subparsers(
        dest="action", required=True
    )
    p = copies.add_parser(
        "copy",
        help="copy catalog SOURCE into TARGET, a new file or empty PostgreSQL database "
        "(either way; a superuser), checked by comparing their exports",
    )
    p.add_argument("source", help="a DuckDB file or postgresql://user@host:port/database")
    p.add_argument("target", help="a new DuckDB file or an empty PostgreSQL database's URL")

    p = sub.add_parser("serve", help="serve the reviewer dashboard behind sign-in (127.0.0.1)")
    from miqa_nb.serve import add_serve_options

    add_serve_options(p)

    p = sub.add_parser(
        "hub", help="JupyterHub for the catalog's reviewers: sign in there, one server each"
    )
    # the options are here: miqa_nb.hub imports JupyterHub, which every command would pay
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--ip", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="the hub's working folder: its database and cookie secret (default: "
        "CATALOG-hub beside the catalog file)",
    )

    p = sub.add_parser("render", help="write axial.png, coronal.png and sagittal.png of an image")
    p.add_argument("file", type=Path)
    p.add_argument("--frame", type=int, default=0, help="volume of a 4D file (0)")
    p.add_argument(
        "--window", default="auto", help="auto, full, brain, contrast, or LOW,HIGH (default auto)"
    )
    p.add_argument("--convention", choices=("neurological", "radiological"), default="neurological")
    p.add_argument("--at", default=None, metavar="X,Y,Z", help="world point in mm (the middle)")
    p.add_argument("--out", type=Path, required=True, help="folder to write the pictures to")

    p = sub.add_parser(
        "demo", help="build the demo project from images that packages ship, and import it"
    )
    p.add_argument("--dir", type=Path, default=Path("demo"), help="where to write it (./demo)")
    for command in sub.choices.values():  # global options after the command, too
        _add_global_options(command, 1)
    for group in (users, roles, types, held):
        for action in group.choices.values():
            _add_global_options(action, 2)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _merge_global_options(_parser().parse_args(argv))
    try:
        return _run(args)
    except ImportFileError as exc:
        print(exc.report if exc.report is not None else exc, file=sys.stderr)
        print("nothing was imported", file=sys.stderr)
        return 1
    except MiqaError as exc:
        print(f"miqa-nb: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _catalog_path(args: argparse.Namespace) -> Path | str:
    """The catalog's file, or its PostgreSQL database's URL."""
    return catalog_location(args.catalog) if args.catalog else default_catalog_path()


def _exists(location: Path | str) -> bool:
    """Whether the catalog is there (a database: its server says when connecting)."""
    return isinstance(location, str) or location.exists()


def _catalog(args: argparse.Namespace) -> Catalog:
    """The catalog; only ``users add`` starts a new file (a mistyped path would otherwise
    become an empty catalog, and every listing an empty one)."""
    path = _catalog_path(args)
    if not _exists(path) and (args.command, getattr(args, "action", None)) != ("users", "add"):
        raise MiqaError(
            f"no catalog file at {path}; give the right --catalog (or MIQA_NB_CATALOG), or "
            f"start one with `miqa-nb --catalog {path} users add NAME` (the first user is a "
            "superuser) or `miqa-nb demo`"
        )
    return Catalog(path, data_roots=args.data_roots)


def _validate(args: argparse.Namespace) -> Report:
    """Check against the catalog's scan types and users; without a catalog, against
    MIQA's scan types, and decision creators are not checked."""
    path = _catalog_path(args)
    if _exists(path):
        return _catalog(args).validate(args.file, project=args.project, progress=True)
    print(f"(no catalog at {path}: checked against MIQA's scan types; creators not checked)")
    return check(args.file, roots=args.data_roots, project=args.project, progress=True)


def _table(df: pd.DataFrame, empty: str) -> str:
    return empty if df.empty else df.to_string(index=False)


def _run(args: argparse.Namespace) -> int:
    if args.command == "render":
        return _render(args)
    if args.command == "serve":
        from miqa_nb.serve import serve_main

        return serve_main(args)
    if args.command == "hub":
        from miqa_nb.hub import hub_main

        return hub_main(args)
    user = current_user(args.user)
    if args.command == "demo":
        return _demo(args, user)
    if args.command == "validate":
        report = _validate(args)
        print(report)
        return 0 if report.ok else 1
    if args.command == "catalog":
        return _copy(args, user)
    catalog = _catalog(args)
    if args.command == "import":
        report = catalog.import_file(
            args.file,
            by=user,
            project=args.project,
            mode=args.mode,
            dry_run=args.dry_run,
            progress=True,
        )
        print(report)
        print("dry run: nothing was written" if args.dry_run else catalog.summary())
        return 0
    if args.command == "export":
        path = catalog.export_file(
            args.file,
            by=user,
            project=args.project,
            relative_paths=args.relative_paths,
            spreadsheet_safe=args.spreadsheet_safe,
        )
        print(f"wrote {path}")
        return 0
    if args.command == "projects":
        print(_table(catalog.projects(), "no projects yet; import a file: `miqa-nb import FILE`"))
        return 0
    if args.command == "users":
        return _users(args, catalog, user)
    if args.command == "roles":
        if args.action == "set":
            role = None if args.role.lower() == "none" else args.role
            catalog.set_role(args.project, args.member, role, by=user)
            print(f"{args.member} is now {role or 'without a role'} in {args.project}")
        else:
            where = f" in project {args.project!r}" if args.project else ""
            print(
                _table(
                    catalog.roles(args.project),
                    f"no roles{where} yet; `miqa-nb roles set PROJECT USER ROLE`",
                )
            )
        return 0
    if args.command == "scan-types":
        return _scan_types(args, catalog, user)
    if args.command == "quarantine":
        return _quarantine(args, catalog, user)
    raise AssertionError(args.command)  # pragma: no cover - argparse rejects the rest


def _copy(args: argparse.Namespace, user: str) -> int:
    source = catalog_location(args.source)
    if not _exists(source):
        raise MiqaError(f"no catalog file at {source}; name the catalog to copy")
    target = catalog_location(args.target)
    if isinstance(target, Path) and target.exists():
        raise MiqaError(f"{target} exists; copy into a new file (or an empty PostgreSQL database)")
    catalog = Catalog(source, data_roots=args.data_roots)
    try:
        counts = catalog.copy_to(target, by=user)
    except BaseException:
        if isinstance(target, Path):  # a copy that failed leaves no file behind
            for leftover in (target, target.with_name(target.name + ".wal")):
                leftover.unlink(missing_ok=True)
        raise
    rows = ", ".join(f"{n} {t}" for t, n in counts.items() if n and t != "meta")
    print(f"copied {catalog.name} to {Catalog(target).name}: {rows or 'an empty catalog'}")
    print("checked: both catalogs export the same projects, scans, frames and decisions")
    return 0


def _users(args: argparse.Namespace, catalog: Catalog, user: str) -> int:
    if args.action == "add":
        catalog.add_user(args.name, superuser=args.superuser, by=user)
        print(f"added user {args.name!r}")
    elif args.action == "passwd":
        catalog.set_password(args.name, _new_password(args.name, args.password_stdin), by=user)
        print(f"password set for {args.name}")
    elif args.action == "token":
        token_id, token = catalog.create_token(args.name, by=user, expires_days=args.expires)
        print(token)
        expires = str(_tokens(catalog, args.name, user).set_index("id").at[token_id, "expires_utc"])
        until = "never expires" if expires == "-" else f"expires {expires} UTC"
        print(
            f"token {token_id} for {args.name}, {until}; it is shown only now: keep it secret",
            file=sys.stderr,
        )
    elif args.action == "tokens":
        listing = _tokens(catalog, args.name, user)
        print(_table(listing, f"{args.name} has no tokens; `miqa-nb users token {args.name}`"))
    elif args.action == "revoke":
        catalog.revoke_token(args.name, args.token_id, by=user)
        print(f"revoked token {args.token_id} of {args.name}")
    elif args.action == "link":
        server = args.server or os.environ.get(SERVER_URL_ENV) or ""
        link_url(server or "http://127.0.0.1/", "")  # a wrong address before any link
        secret = catalog.create_signin_link(args.name, by=user, minutes=args.minutes)
        print(link_url(server or "http://127.0.0.1:PORT/", secret))
        where = (
            ""
            if server
            else f"; replace PORT by the port `miqa-nb serve` printed (or give --server URL, "
            f"or set {SERVER_URL_ENV})"
        )
        print(
            f"a sign-in link for {args.name}: it works once, for {args.minutes:g} minutes{where}",
            file=sys.stderr,
        )
    else:
        print(_table(catalog.users(), "no users yet; `miqa-nb users add NAME`"))
    return 0


def _tokens(catalog: Catalog, name: str, user: str) -> pd.DataFrame:
    """``name``'s tokens, times to the second ("-" for none)."""
    listing = catalog.tokens(name, by=user)
    for column in listing.columns.drop("id"):
        listing[column] = listing[column].dt.strftime("%Y-%m-%d %H:%M:%S").fillna("-")
    return listing


def _new_password(name: str, from_stdin: bool) -> str:
    """The new password: the first line of stdin, or typed twice on the terminal
    (never an argument, which other users see in ``ps``)."""
    if from_stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    else:
        if not sys.stdin.isatty():
            raise MiqaError(
                "the password is typed on a terminal, and stdin is not one: give it on stdin "
                "with --password-stdin; nothing was changed"
            )
        password = getpass.getpass(f"new password for {name}: ")
        if password and getpass.getpass("again: ") != password:
            raise MiqaError("the two passwords differ; nothing was changed")
    if not password:
        raise MiqaError("no password was given; nothing was changed")
    return password


def _scan_types(args: argparse.Namespace, catalog: Catalog, user: str) -> int:
    if args.action == "add":
        means = catalog.add_scan_type(args.name, alias_of=args.alias_of, by=user)
        print(f"{args.name!r} " + ("is a scan type" if means == args.name else f"means {means!r}"))
    elif args.action == "remove":
        print("removed " + ", ".join(map(repr, catalog.remove_scan_type(args.name, by=user))))
    else:
        types = catalog.scan_types()
        own = set(types.extra)
        width = max(map(len, types.names()))
        for name in types.names():
            aliases = ", ".join(types.aliases_of(name))
            line = f"{name:<{width}}  {'(this catalog)' if name in own else '(MIQA)':<14}"
            print(f"{line}  {'also: ' + aliases if aliases else ''}".rstrip())
    return 0


def _quarantine(args: argparse.Namespace, catalog: Catalog, user: str) -> int:
    if args.action == "release":
        catalog.release_quarantine(args.project, args.experiment, by=user)
        print(f"released {args.experiment} of {args.project} into review")
        return 0
    where = f" in project {args.project!r}" if args.project else ""
    print(_table(catalog.quarantined(args.project), f"no experiment is in quarantine{where}"))
    return 0


def _numbers(text: str, count: int, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise MiqaError(
            f"{what} must be {count} numbers separated by commas; {text!r} was provided"
        )
    return values


def _render(args: argparse.Namespace) -> int:
    from miqa_nb.volumes import PRESETS, LoadLimits, write_planes

    window: str | tuple[float, ...] = args.window
    if args.window not in PRESETS:
        window = _numbers(args.window, 2, "--window")
    at = None if args.at is None else _numbers(args.at, 3, "--at")
    try:
        written = write_planes(
            args.file,
            args.out,
            frame=args.frame,
            window=window,  # type: ignore[arg-type]
            convention=args.convention,
            at=at,  # type: ignore[arg-type]
            limits=LoadLimits.from_environ(data_roots=args.data_roots),
        )
    except IndexError as exc:
        raise MiqaError(f"{args.file}: {exc}") from exc
    for plane, path in written.items():
        print(f"{plane}: {path}")
    return 0


def _demo(args: argparse.Namespace, user: str) -> int:
    from miqa_nb.demo.setup import DEMO_USERS, build_demo

    folder = args.dir.resolve()
    catalog_path = catalog_file(args.catalog) if args.catalog else folder / "demo.duckdb"
    print(f"building the demo project in {folder} ...")
    report = build_demo(folder, catalog_path, admin=user, progress=True)
    print(report.summary())
    catalog = Catalog(catalog_path)
    print(catalog.summary())
    print(f"users: {user} (superuser), " + ", ".join(f"{n} ({r})" for n, r in DEMO_USERS.items()))
    print(f"catalog: {catalog_path}")
    reviewer = next(iter(DEMO_USERS))
    print(
        f"serve it: miqa-nb --catalog {catalog_path} serve --link-for {user} --link-for "
        f"{reviewer}\n  (prints a one-time sign-in link for each; `miqa-nb users link NAME` "
        "makes more)"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

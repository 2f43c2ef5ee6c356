"""Projects, experiments' notes and the import/export paths (each project's, and the
global ones).

Functions over an open catalog connection, called by :class:`~miqa_nb.catalog.Catalog`
inside its transactions; permissions are checked by the caller, before.
"""

from __future__ import annotations

from miqa_nb.core.duck import Connection, one
from miqa_nb.core.errors import MiqaError, NotFound
from miqa_nb.store.names import absolute_path

__all__ = [
    "PATHS",
    "create_project",
    "experiment_notes",
    "global_paths",
    "project_exists",
    "project_path",
    "require_project",
    "set_experiment_note",
    "set_global_paths",
    "set_project_paths",
]

#: The two paths a project (and the catalog, globally) may have.
PATHS = ("import_path", "export_path")


def require_project(con: Connection, project: str) -> None:
    """Raise :class:`NotFound` (naming the projects there are) unless ``project`` exists."""
    if not one(con, "SELECT 1 FROM projects WHERE name = ?", [project]):
        known = [r[0] for r in con.execute("SELECT name FROM projects ORDER BY 1").fetchall()]
        raise NotFound(f"no project {project!r} in the catalog; projects: {known}")


def project_exists(con: Connection, project: str) -> bool:
    """True when the catalog holds ``project``."""
    return one(con, "SELECT 1 FROM projects WHERE name = ?", [project]) is not None


def create_project(
    con: Connection,
    name: str,
    *,
    creator: str,
    import_path: str | None,
    export_path: str | None,
    anatomy_orientation: str,
) -> None:
    """Add an empty project; a name taken already is refused."""
    if project_exists(con, name):
        raise MiqaError(f"project {name!r} exists already")
    con.execute(
        "INSERT INTO projects (name, creator, import_path, export_path, anatomy_orientation) "
        "VALUES (?, ?, ?, ?, ?)",
        [name, creator, import_path, export_path, anatomy_orientation],
    )


def set_project_paths(con: Connection, project: str, paths: dict[str, str | None]) -> None:
    """Change a project's paths (absolute ones only); a path given as None stays."""
    for column in PATHS:
        value = paths.get(column)
        if value is not None:
            con.execute(
                f"UPDATE projects SET {column} = ? WHERE name = ?",
                [absolute_path(value, column), project],
            )


def project_path(con: Connection, project: str, column: str) -> str:
    """A project's import or export path; raises when the project or the path is missing."""
    found = con.execute(f"SELECT {column} FROM projects WHERE name = ?", [project]).fetchall()
    if not found:
        raise NotFound(f"no project {project!r} in the catalog")
    if not found[0][0]:
        raise MiqaError(f"project {project!r} has no {column}; its creator or a superuser sets it")
    return str(found[0][0])


def global_paths(con: Connection) -> dict[str, str | None]:
    """The global import and export paths."""
    found = dict(con.execute("SELECT key, value FROM meta WHERE key LIKE 'global_%'").fetchall())
    return {k: found.get(f"global_{k}") for k in PATHS}


def set_global_paths(con: Connection, paths: dict[str, str | None]) -> None:
    """Change the global paths (absolute ones only); a path given as None stays."""
    for key in PATHS:
        value = paths.get(key)
        if value is not None:
            con.execute(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [f"global_{key}", absolute_path(value, key)],
            )


def experiment_notes(con: Connection, project: str) -> dict[str, str]:
    """The project's experiments that have a note: experiment -> note."""
    rows = con.execute(
        "SELECT name, note FROM experiments WHERE project = ? AND coalesce(note, '') <> ''",
        [project],
    ).fetchall()
    return {str(name): str(note) for name, note in rows}


def set_experiment_note(con: Connection, project: str, experiment: str, note: str) -> None:
    """Replace an experiment's note (it must exist; an empty note is stored as none)."""
    con.execute(
        "UPDATE experiments SET note = ? WHERE project = ? AND name = ?",
        [note or None, project, experiment],
    )

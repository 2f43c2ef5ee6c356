"""Where the dashboard's administration may read import files and write exports.

The page is untrusted: a crafted widget message can set any text field to any value,
so these checks run where the action runs, in
:class:`~miqa_nb.dashboard.model.AdminActions`: on a path as it is saved, and again
on the path stored in the catalog when an import or export runs (it may have been
saved before these rules, or from the command line). The command line and notebooks
are not confined: there people act on their own account, with their own file rights.

- An **import path** must be an absolute path that lies, after resolving ``..`` and
  symlinks, inside the data roots (:class:`~miqa_nb.exchange.locations.DataRoots`,
  the one home of that rule: ``Catalog.data_roots``, else ``MIQA_NB_DATA_ROOTS``, else
  the catalog's folder), and ends in ``.csv`` or ``.json``. A path refused is never
  opened, so no message can quote a line of a file outside the roots.
- An **export path** must lie, after resolving ``..`` and symlinks, inside the export
  folder (``MIQA_NB_EXPORT_DIR``, else ``<catalog folder>/exports``, created by the
  first export), and end in ``.csv`` or ``.json``. A relative path is taken from the
  export folder.

A refusal (:class:`PathRefused`) names the field, the value typed, the allowed
folder(s) and the fix; nothing is read, written or changed. The checks return the
real path they checked, and the action reads or writes that path, not the text typed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from miqa_nb.catalog import Catalog
from miqa_nb.core.errors import PermissionDenied
from miqa_nb.core.settings import ROOTS_ENV
from miqa_nb.exchange.locations import DataRoots

__all__ = ["EXPORT_DIR_ENV", "FILE_SUFFIXES", "PageFolders", "PathRefused"]

#: The folder dashboard exports are written in (default ``<catalog folder>/exports``).
EXPORT_DIR_ENV = "MIQA_NB_EXPORT_DIR"
#: What an import or export path typed in the page may end in (MIQA's two formats).
FILE_SUFFIXES = (".csv", ".json")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SHOWN = 160  # characters of a typed value a message repeats


class PathRefused(PermissionDenied):
    """A path typed in the dashboard lies outside the folders it may use; nothing was
    read, written or changed."""


def _shown(value: str) -> str:
    """A typed value as a message repeats it: quoted, cut when very long."""
    return repr(value if len(value) <= _SHOWN else value[:_SHOWN] + "...")


@dataclass(frozen=True)
class PageFolders:
    """The folders paths typed in the dashboard may name.

    Parameters
    ----------
    roots : DataRoots
        Import files must lie inside these (resolved).
    export_dir : Path
        Exports must lie inside this folder (it need not exist yet).

    Examples
    --------
    >>> folders = PageFolders(DataRoots.of(["/srv/lab"]), Path("/srv/lab/exports"))
    >>> folders.export_file("Export path", "alpha.csv")
    '/srv/lab/exports/alpha.csv'
    >>> folders.import_file("Import path", "/etc/passwd")
    Traceback (most recent call last):
    ...
    miqa_nb.dashboard.folders.PathRefused: Import path '/etc/passwd' is not inside ...
    """

    roots: DataRoots
    export_dir: Path

    @classmethod
    def of(cls, catalog: Catalog, environ: Mapping[str, str] | None = None) -> PageFolders:
        """The folders of a dashboard over ``catalog``: its data roots (the catalog's,
        else ``MIQA_NB_DATA_ROOTS``, else the catalog's folder) and ``MIQA_NB_EXPORT_DIR``
        (else ``<catalog folder>/exports``)."""
        env = os.environ if environ is None else environ
        folder = Path(catalog.path).parent
        roots = DataRoots.from_setting(catalog.data_roots, folder, env)
        return cls(roots, Path(env.get(EXPORT_DIR_ENV) or folder / "exports"))

    @property
    def export_folder(self) -> str:
        """The export folder's real path."""
        return os.path.realpath(self.export_dir)

    def describe(self) -> str:
        """One sentence for the page: where import files and exports may be."""
        return (
            f"Import files are read only from inside {self._roots_text()}; exports are "
            f"written only inside {self.export_folder} (a relative path is taken from there)."
        )

    def _roots_text(self) -> str:
        folders = self.roots.folders
        if len(folders) == 1:
            return f"the data root {folders[0]}"
        return "the data roots " + ", ".join(folders)

    def _plain(self, field: str, value: str, fix: str) -> str:
        """``value`` stripped; refused when empty or holding a control character."""
        typed = value.strip()
        if not typed or _CONTROL.search(typed):
            raise PathRefused(
                f"{field} {_shown(value)} is empty or holds a control character; {fix}. "
                "Nothing was changed."
            )
        return typed

    def import_file(self, field: str, value: str) -> str:
        """The real path of the import file ``value`` names; nothing is read.

        Raises
        ------
        PathRefused
            ``value`` is not absolute, lies outside the data roots once ``..`` and
            symlinks are resolved, or does not end in ``.csv`` or ``.json``.
        """
        fix = f"give the absolute path of a MIQA .csv or .json file inside {self._roots_text()}"
        typed = self._plain(field, value, fix)
        if not os.path.isabs(typed):
            raise PathRefused(
                f"{field} {_shown(value)} is not an absolute path; {fix}. Nothing was read "
                "or changed."
            )
        real = os.path.realpath(typed)
        if not self.roots.contains(real):
            raise PathRefused(
                f"{field} {_shown(value)} is not inside {self._roots_text()} once '..' and "
                f"symlinks are resolved, so it was not read and nothing was changed; {fix}. "
                f"To read from another folder, the server's administrator adds it to "
                f"{ROOTS_ENV} (folders separated by {os.pathsep!r}) and restarts the server."
            )
        if not real.lower().endswith(FILE_SUFFIXES):
            raise PathRefused(
                f"{field} {_shown(value)} does not end in .csv or .json, so it is not an "
                f"import file; it was not read and nothing was changed; {fix}."
            )
        return real

    def export_file(self, field: str, value: str) -> str:
        """The real path an export named ``value`` is written to; nothing is written.

        A relative ``value`` is taken from the export folder.

        Raises
        ------
        PathRefused
            ``value`` lies outside the export folder once ``..`` and symlinks are
            resolved, or does not end in ``.csv`` or ``.json``.
        """
        folder = self.export_folder
        fix = (
            f"give a file name such as 'export.csv' (written in {folder}) or a path "
            f"inside that folder, ending in .csv or .json"
        )
        typed = self._plain(field, value, fix)
        real = os.path.realpath(os.path.join(folder, typed))
        if not real.startswith(folder.rstrip(os.sep) + os.sep):
            raise PathRefused(
                f"{field} {_shown(value)} is not inside the export folder {folder} once "
                f"'..' and symlinks are resolved, so nothing was written or changed; {fix}. "
                f"To write elsewhere, the server's administrator sets {EXPORT_DIR_ENV} and "
                "restarts the server."
            )
        if not real.lower().endswith(FILE_SUFFIXES):
            raise PathRefused(
                f"{field} {_shown(value)} does not end in .csv or .json; nothing was written "
                f"or changed; {fix}."
            )
        return real

"""Where frame files are: resolve import-file locations safely inside the data roots.

The rules (``docs/design.md`` says why):

- A relative location resolves against the import file's folder (the specification).
  MIQA's own files resolve against the folder above it: when a location without ``..``
  is not found under the import file's folder but is found under its parent, that file
  is used and a warning says so.
- After resolving ``..`` and symlinks, every file must lie inside the data roots
  (``MIQA_NB_DATA_ROOTS``, a list of folders separated by ``os.pathsep``; by default the
  import file's folder). Anything else is an error, whatever the path looked like.
  :class:`DataRoots` is the one home of that rule: imports test their files with it,
  the dashboard its upload folder and the files it writes there (:func:`inside`), and
  the import paths a person types in its administration.
- ``s3://`` locations are kept as given, when they are already normal: a bucket and a
  key without empty, ``.`` or ``..`` parts (``s3://bucket/../../etc/passwd`` is an
  error; normalising it would name another object). When the data roots name
  ``s3://bucket[/prefix]`` prefixes, an object outside them is an error, and each one
  inside is asked for with a HEAD (a missing object is a warning, as a missing file
  is); without such prefixes they are kept unchecked, and never read. A missing file is a warning. A relative
  location (without ``..``) found under neither folder is recorded under the folder
  above, as MIQA records it, so that both name the same file once it is there.

Resolution works on distinct folders, not files (one ``realpath`` and one directory
listing per folder), and on Arrow arrays, not Python strings, so a million frames in a
hundred thousand folders resolve in a fraction of a second.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from miqa_nb.core import arrow
from miqa_nb.core.errors import VolumeError
from miqa_nb.core.settings import ROOTS_ENV, data_roots_named
from miqa_nb.core.vocabulary import FRAME_SUFFIXES
from miqa_nb.volumes import objects

__all__ = [
    "EMPTY",
    "ERRORS",
    "ESCAPES",
    "GRANDPARENT",
    "MISSING",
    "OK",
    "OUTSIDE",
    "PATH_SQL",
    "ROOTS_ENV",
    "S3",
    "S3_OUTSIDE",
    "S3_PATH",
    "STATUSES",
    "SUFFIX",
    "SYMLINK",
    "DataRoots",
    "Resolved",
    "describe",
    "inside",
    "resolve",
    "roots_setting",
]

#: Statuses of a resolved location, and whether each stops an import.
OK, S3, MISSING, GRANDPARENT = "ok", "s3", "missing", "grandparent"
SUFFIX, OUTSIDE, ESCAPES, SYMLINK = "suffix", "outside-roots", "escapes-roots", "symlink-escapes"
S3_PATH, S3_OUTSIDE = "s3-path", "s3-outside-roots"
ERRORS = frozenset({SUFFIX, OUTSIDE, ESCAPES, SYMLINK, S3_PATH, S3_OUTSIDE})


def roots_setting(
    roots: Iterable[str | os.PathLike[str]] | None,
    default: str | os.PathLike[str],
    environ: Mapping[str, str] | None = None,
) -> list[str | os.PathLike[str]]:
    """The data roots as set, not resolved: ``roots`` when given, else the folders of
    ``MIQA_NB_DATA_ROOTS`` (separated by ``os.pathsep``) in ``environ`` (default
    ``os.environ``), else ``[default]``."""
    if roots is not None:
        return list(roots)
    return list(data_roots_named(environ)) or [default]


@dataclass(frozen=True)
class DataRoots:
    """The folders frame files may live in (real paths, symlinks resolved).

    The one home of the rule "a path lies inside the data roots": after resolving
    ``..`` and symlinks, it is one of the folders or lies below one. :meth:`holds`
    resolves a path and tests it; :meth:`contains` and :meth:`contains_many` test
    paths resolved already (one, or an Arrow array of them).
    """

    folders: tuple[str, ...]
    #: The ``s3://bucket[/prefix]`` roots objects may live in (none: s3:// locations
    #: are kept, not checked, and never read).
    buckets: tuple[str, ...] = ()

    @classmethod
    def of(cls, folders: Iterable[str | os.PathLike[str]]) -> DataRoots:
        """The roots ``folders`` (resolved here; ``s3://`` prefixes kept apart)."""
        texts = [os.fspath(f) for f in folders]
        buckets = objects.prefixes_of(texts)
        local = [t for t in texts if not objects.is_object(t)]
        return cls(tuple(os.path.realpath(t) for t in local), buckets)

    @classmethod
    def from_setting(
        cls,
        roots: Iterable[str | os.PathLike[str]] | None,
        default: str | os.PathLike[str],
        environ: Mapping[str, str] | None = None,
    ) -> DataRoots:
        """Use ``roots``; else the ``MIQA_NB_DATA_ROOTS`` variable; else ``default``."""
        return cls.of(roots_setting(roots, default, environ))

    def holds(self, path: str | os.PathLike[str]) -> bool:
        """True when ``path``, after resolving ``..`` and symlinks, lies inside one of
        the roots (or is one)."""
        return self.contains(os.path.realpath(os.fspath(path)))

    def contains(self, real_path: str) -> bool:
        """True when ``real_path`` (resolved already) lies inside one of the roots (or is one)."""
        return (real_path.rstrip(os.sep) + os.sep).startswith(self.prefixes)

    def contains_many(self, real_paths: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """:meth:`contains` of many real paths (without a trailing '/'), vectorised."""
        inside = np.zeros(len(real_paths), dtype=bool)
        for prefix in self.prefixes:
            inside |= arrow.to_numpy(pc.starts_with(real_paths, prefix))
            inside |= arrow.to_numpy(pc.is_in(real_paths, value_set=arrow.texts([prefix[:-1]])))
        return inside

    @cached_property
    def prefixes(self) -> tuple[str, ...]:
        """Each root with one trailing separator."""
        return tuple(root.rstrip(os.sep) + os.sep for root in self.folders)

    def __str__(self) -> str:
        return os.pathsep.join((*self.folders, *self.buckets))


def inside(path: str | os.PathLike[str], folders: Iterable[str | os.PathLike[str]]) -> bool:
    """True when ``path``, after resolving ``..`` and symlinks, is one of ``folders``
    (each resolved too) or lies inside one (see :class:`DataRoots`)."""
    return DataRoots.of(folders).holds(path)


class _Folders:
    """Real paths and listings of folders, each looked up once (symlinks resolved)."""

    def __init__(self) -> None:
        self._real: dict[str, tuple[str, bool]] = {}
        self._listings: dict[str, dict[str, bool]] = {}

    def listing(self, real_folder: str) -> dict[str, bool]:
        """Names in a folder, each mapped to whether it is a symlink ({} when absent)."""
        found = self._listings.get(real_folder)
        if found is None:
            try:
                with os.scandir(real_folder) as entries:
                    found = {entry.name: entry.is_symlink() for entry in entries}
            except OSError:
                found = {}
            self._listings[real_folder] = found
        return found

    def real(self, folder: str) -> tuple[str, bool]:
        """``os.path.realpath`` of a normalised absolute folder, and whether it exists,
        walking cached parents (nothing is listed below a folder that does not exist)."""
        found = self._real.get(folder)
        if found is None:
            parent, _, name = folder.rpartition("/")
            found = self._step(folder, self.real(parent or "/") if name else None, name)
            self._real[folder] = found
        return found

    def real_many(self, folders: list[str]) -> list[tuple[str, bool]]:
        """:meth:`real` of many folders: their distinct parents first (the same way, when
        there are many), then one step per folder."""
        split = [f.rpartition("/") for f in folders]
        parents = list(dict.fromkeys(p or "/" for p, _, _ in split))
        if len(parents) > 64:
            self._real.update(zip(parents, self.real_many(parents), strict=True))
        cache = self._real
        found = []
        for folder, (parent, _, name) in zip(folders, split, strict=True):
            above = cache.get(parent or "/") or self.real(parent or "/")
            if name and not above[1]:  # the common case of a big import: nothing to look at
                found.append((above[0].rstrip("/") + "/" + name, False))
            else:
                found.append(self._step(folder, above if name else None, name))
        return found

    def _step(self, folder: str, parent: tuple[str, bool] | None, name: str) -> tuple[str, bool]:
        """Folder ``name`` in a resolved ``parent`` (None for the root)."""
        if parent is None:
            return (folder or "/", True)
        real_parent, parent_exists = parent
        path = real_parent.rstrip("/") + "/" + name
        entry = self.listing(real_parent).get(name) if parent_exists else None
        if entry:  # a symlink
            path = os.path.realpath(path)
            return (path, os.path.isdir(path))
        return (path, entry is not None)


#: What :func:`resolve` found for each location (``Resolved.status`` holds indices).
#: ``empty`` locations are the required-value check's business: not looked at here.
EMPTY = "empty"
STATUSES = (
    OK,
    S3,
    MISSING,
    GRANDPARENT,
    SUFFIX,
    OUTSIDE,
    ESCAPES,
    SYMLINK,
    S3_PATH,
    EMPTY,
    S3_OUTSIDE,
)
_CODE = {name: np.int8(code) for code, name in enumerate(STATUSES)}

_TAIL = max(len(s) for s in FRAME_SUFFIXES)
#: Whether a location ends in a frame suffix, in any case. The exact test first: DuckDB
#: evaluates the second (slower: it decodes the text) only where the first fails.
_SUFFIX_SQL = "CASE WHEN {exact} THEN true ELSE {any_case} END".format(
    exact=" OR ".join(f"ends_with(value, '{s}')" for s in FRAME_SUFFIXES),
    any_case=" OR ".join(f"ends_with(lower(value[-{_TAIL}:]), '{s}')" for s in FRAME_SUFFIXES),
)
_DOTDOT = re.compile(r"(^|/)\.\.(/|$)")
#: An ``s3://`` location with an empty, ``.`` or ``..`` part after the scheme: a part
#: that begins right after ``s3://`` or after a ``/``, and is ``''``, ``.`` or ``..``
#: (RE2's syntax, for pyarrow; ``(?s)``: a line end is a character like any other).
_S3_ODD = r"(?s)^[sS]3://(.*/)?\.{0,2}(/|$)"
#: SQL giving a resolved location from the columns of :meth:`Resolved.columns` (most
#: rows take the whole location: no slicing, which decodes the text).
PATH_SQL = "CASE WHEN _cut = 0 THEN _prefix || {value} ELSE _prefix || {value}[_cut + 1:] END"


@dataclass
class Resolved:
    """What :func:`resolve` found, per location.

    ``status`` holds indices into :data:`STATUSES`. The path is
    ``prefixes[prefix[i]] + value[cut[i]:]``: the real path of the file (the one looked
    at, when it is missing or outside the roots) or the ``s3://`` URL as given; none
    (``prefix`` -1) for a bad suffix or an empty location. It is kept in parts (a
    folder's real path and the rest of the location) so that a million paths are only
    joined where they are written: in SQL, with :data:`PATH_SQL`.
    """

    status: np.ndarray
    prefix: np.ndarray
    prefixes: list[str]
    cut: np.ndarray

    def is_(self, status: str) -> npt.NDArray[np.bool_]:
        found: npt.NDArray[np.bool_] = self.status == _CODE[status]
        return found

    def statuses(self) -> list[str]:
        """The statuses found, in the order of :data:`STATUSES`."""
        return [STATUSES[c] for c in np.unique(self.status)]

    def paths(self, values: list[str], rows: np.ndarray) -> list[str | None]:
        """The paths of a few ``rows`` whose locations are ``values``."""
        return [
            None if self.prefix[r] < 0 else self.prefixes[self.prefix[r]] + v[self.cut[r] :]
            for r, v in zip(rows.tolist(), values, strict=True)
        ]

    def columns(self) -> dict[str, pa.Array]:
        """``_prefix`` (dictionary-encoded: no copy per row) and ``_cut``, for :data:`PATH_SQL`."""
        indices = arrow.from_numpy(self.prefix, mask=self.prefix < 0)
        return {
            "_prefix": pa.DictionaryArray.from_arrays(indices, arrow.texts(self.prefixes)),
            "_cut": arrow.from_numpy(self.cut),
        }


def resolve(
    con: duckdb.DuckDBPyConnection,
    values: pa.Array | pa.ChunkedArray,
    import_file: str | os.PathLike[str],
    roots: DataRoots,
) -> Resolved:
    """Resolve each file location of ``values`` (text, trimmed), vectorised.

    DuckDB (on ``con``) classifies the locations and finds each one's folder; each
    distinct folder is resolved once (:class:`_Folders`), and files are looked up in
    their folders' listings. Locations with ``.``, ``..`` or doubled slashes (rare) are
    normalised by Python, one at a time.
    """
    n = len(values)
    # s3:// objects are kept as given: only their parts are checked (on their own, by
    # one regular expression), and only the other locations are classified below.
    s3 = arrow.to_numpy(pc.starts_with(values, "s3://"))
    s3 |= arrow.to_numpy(pc.starts_with(values, "S3://"))
    status = np.full(n, _CODE[EMPTY], dtype=np.int8)
    resolved = Resolved(status, np.full(n, -1, dtype=np.int32), [""], np.zeros(n, np.int32))
    if s3.any():
        s3_rows = np.flatnonzero(s3)
        status[s3_rows] = _CODE[S3]
        resolved.prefix[s3_rows] = 0  # the URL as given
        s3_values = values.filter(arrow.from_numpy(s3))
        odd = arrow.to_numpy(pc.match_substring_regex(s3_values, _S3_ODD))
        status[s3_rows[odd]] = _CODE[S3_PATH]
        if roots.buckets:
            _check_objects(s3_rows[~odd], s3_values.filter(arrow.from_numpy(~odd)), roots, status)
    if s3.all():
        return resolved
    others = np.flatnonzero(~s3)
    if len(others) == n:
        found = _resolve_files(con, values, import_file, roots)
    else:
        found = _resolve_files(con, values.filter(arrow.from_numpy(~s3)), import_file, roots)
    status[others] = found.status
    resolved.prefix[others] = found.prefix  # both lists of prefixes begin with ''
    resolved.prefixes = found.prefixes
    resolved.cut[others] = found.cut
    return resolved


#: Objects asked about at once (HEAD requests in flight) when an import is checked.
_HEADS_AT_ONCE = 16


def _check_objects(
    rows: np.ndarray, values: pa.Array | pa.ChunkedArray, roots: DataRoots, status: np.ndarray
) -> None:
    """Statuses of ``s3://`` locations when the roots name s3:// prefixes: outside them
    an error; inside, each distinct object is asked for with a HEAD (no data read), and
    a missing one is a warning, as a missing file is."""
    texts = values.to_pylist()
    inside = np.array([objects.allowed(t, roots.buckets) for t in texts], dtype=bool)
    status[rows[~inside]] = _CODE[S3_OUTSIDE]
    wanted = list(dict.fromkeys(t for t, ok in zip(texts, inside, strict=True) if ok))
    if not wanted:
        return
    store = objects.default_objects()

    def there(location: str) -> bool:
        try:
            store.head(location)
        except FileNotFoundError:
            return False
        except Exception as exc:  # botocore's errors (credentials, endpoint) included
            raise VolumeError(
                f"cannot ask the object store about {location} ({type(exc).__name__}: "
                f"{exc}); check the credentials (AWS_ACCESS_KEY_ID..., AWS_PROFILE, "
                "~/.aws) and the endpoint (AWS_ENDPOINT_URL)"
            ) from exc
        return True

    with ThreadPoolExecutor(min(_HEADS_AT_ONCE, len(wanted))) as pool:
        found = dict(zip(wanted, pool.map(there, wanted), strict=True))
    missing = np.array([ok and not found[t] for t, ok in zip(texts, inside, strict=True)])
    status[rows[missing]] = _CODE[MISSING]


def _resolve_files(
    con: duckdb.DuckDBPyConnection,
    values: pa.Array | pa.ChunkedArray,
    import_file: str | os.PathLike[str],
    roots: DataRoots,
) -> Resolved:
    """:func:`resolve` of locations that are not ``s3://`` (empty, or files)."""
    base = os.path.dirname(os.path.abspath(import_file))
    grandparent = os.path.dirname(base)
    folders = _Folders()
    con.register("loc_values", pa.table({"value": values}))
    try:
        parts = con.sql(
            f"""SELECT value = '' AS empty,
                       ({_SUFFIX_SQL}) AND strpos(value, chr(0)) = 0 AS suffix_ok,
                       starts_with(value, '/') AS absolute,
                       starts_with(value, '.') OR contains(value, '/.') OR contains(value, '//')
                           AS odd,
                       dir, length(folder)::INTEGER AS cut
                FROM (SELECT value, folder, CASE WHEN starts_with(value, '/') AND folder = ''
                                                 THEN '/' ELSE folder END AS dir
                      FROM (SELECT value, parse_dirpath(value, 'forward_slash') AS folder
                            FROM loc_values))"""
        ).to_arrow_table()
    finally:
        con.unregister("loc_values")
    flag = {c: arrow.to_numpy(parts.column(c)) for c in ("empty", "suffix_ok", "absolute", "odd")}
    n = len(parts)
    status = np.full(n, _CODE[EMPTY], dtype=np.int8)
    given = ~flag["empty"]
    status[given & ~flag["suffix_ok"]] = _CODE[SUFFIX]
    files = given & flag["suffix_ok"]
    cut = arrow.to_numpy(parts.column("cut")).astype(np.int32)  # a writable copy
    resolved = Resolved(status, np.full(n, -1, dtype=np.int32), [""], cut)
    if not files.any():
        return resolved

    # Each plain location's folder, as a key: relative ('' for the import file's own
    # folder) or absolute ('/' for the root, where parse_dirpath gives '').
    absolute = flag["absolute"]
    plain = files & ~flag["odd"]
    folder_keys = _FolderKeys.of(parts.column("dir"))

    found = _lookup(con, folders, folder_keys, base, plain, values, resolved, roots)
    odd_rows = np.flatnonzero(files & flag["odd"])
    dotdot = np.zeros(n, dtype=bool)
    if len(odd_rows):
        odd_values = values.take(arrow.from_numpy(odd_rows)).to_pylist()
        dotdot[odd_rows] = [bool(_DOTDOT.search(v)) for v in odd_values]
        _lookup_odd(folders, odd_rows, odd_values, base, roots, resolved, found)
    parent_ok = files & found.inside & found.present
    status[parent_ok] = _CODE[OK]

    # MIQA's own files: a relative location not under the import file's folder, but
    # under the folder above it (which counts as a data root for them).
    retry = plain & ~parent_ok & ~absolute & ~dotdot
    moved = np.zeros(n, dtype=bool)
    if retry.any():
        also = DataRoots((*roots.folders, folders.real(grandparent)[0]))
        trial = Resolved(status, resolved.prefix.copy(), resolved.prefixes, resolved.cut.copy())
        gp = _lookup(con, folders, folder_keys, grandparent, retry, values, trial, also,
                     prune=True)  # fmt: skip
        moved = retry & gp.present & gp.inside
        if moved.any():
            status[moved] = _CODE[GRANDPARENT]
            resolved.prefix[moved] = trial.prefix[moved]
            resolved.cut[moved] = trial.cut[moved]
    rest = files & ~parent_ok & ~moved
    status[rest & found.inside] = _CODE[MISSING]
    _miqa_missing(folders, rest & found.inside & ~absolute & ~dotdot, plain, grandparent,
                  values, resolved)  # fmt: skip
    outside = rest & ~found.inside
    status[outside & found.is_link] = _CODE[SYMLINK]
    status[outside & ~found.is_link & ~absolute] = _CODE[ESCAPES]
    status[outside & ~found.is_link & absolute] = _CODE[OUTSIDE]
    return resolved


def _miqa_missing(
    folders: _Folders,
    rows: np.ndarray,
    plain: np.ndarray,
    grandparent: str,
    values: pa.Array | pa.ChunkedArray,
    resolved: Resolved,
) -> None:
    """Record relative locations found in neither folder where MIQA records them: under
    the import file's grandparent (``docs/miqa-rules.md``, rule L2; as a real path, like
    every location here), normalised as MIQA's ``pathlib`` does (``./`` and ``//``)."""
    if not rows.any():
        return
    real_grandparent = folders.real(grandparent or "/")[0].rstrip("/")
    simple = rows & plain
    resolved.prefixes.append(f"{real_grandparent}/")
    resolved.prefix[simple] = len(resolved.prefixes) - 1
    resolved.cut[simple] = 0
    odd = np.flatnonzero(rows & ~plain)
    if len(odd):
        texts = values.take(arrow.from_numpy(odd)).to_pylist()
        paths = [os.path.normpath(f"{real_grandparent}/{t}") for t in texts]
        _set_paths(resolved, odd, paths, texts)


@dataclass
class _Found:
    """Per row: whether the file is there, inside the roots, a symlink."""

    present: np.ndarray
    inside: np.ndarray
    is_link: np.ndarray


@dataclass
class _FolderKeys:
    """The distinct folders of the locations, as written (relative or absolute)."""

    keys: pa.Array
    index: np.ndarray  # per row: its folder's position in keys
    relative: np.ndarray
    heads: pa.Array  # each folder's first part

    @classmethod
    def of(cls, folders: pa.Array | pa.ChunkedArray) -> _FolderKeys:
        encoded = pc.dictionary_encode(_whole(folders))
        keys = encoded.dictionary
        return cls(
            keys,
            arrow.to_numpy(encoded.indices),
            ~arrow.to_numpy(pc.starts_with(keys, "/")),
            pc.replace_substring_regex(keys, "(?s)/.*", ""),  # the part before the first /
        )


def _lookup(
    con: duckdb.DuckDBPyConnection,
    folders: _Folders,
    folder_keys: _FolderKeys,
    anchor: str,
    rows: np.ndarray,
    values: pa.Array | pa.ChunkedArray,
    resolved: Resolved,
    roots: DataRoots,
    *,
    prune: bool = False,
) -> _Found:
    """Look up the files of ``rows``: file ``i`` is in folder ``keys[index[i]]`` of
    ``folder_keys`` (absolute, or relative to ``anchor``), after its first ``resolved.cut[i]``
    characters. Sets their paths in ``resolved`` (adding its prefixes).

    A relative folder whose first part is not in ``anchor`` is absent, and so is all
    below it: such folders are not walked one by one (a big import of files not there
    yet, or MIQA's fallback, would otherwise walk every folder for nothing). With
    ``prune`` they are skipped (their files not present, their paths unset).
    """
    keys, index = folder_keys.keys, folder_keys.index
    relative, heads = folder_keys.relative, folder_keys.heads
    n = len(index)
    found = _Found(np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool))
    wanted = np.zeros(len(keys), dtype=bool)
    wanted[index[rows]] = True
    anchor = anchor.rstrip("/")
    real_anchor = folders.real(anchor or "/")[0].rstrip("/")
    gone = [
        h
        for h in pc.unique(heads.filter(arrow.from_numpy(wanted & relative))).to_pylist()
        if h and not os.path.lexists(os.path.join(anchor or "/", h))
    ]
    missing = wanted & relative & _isin(heads, gone) if gone else np.zeros(len(keys), bool)
    if prune:
        wanted &= ~missing
        missing[:] = False
    picked = np.flatnonzero(wanted & ~missing)
    chosen = keys.take(arrow.from_numpy(picked)).to_pylist()
    real = folders.real_many(
        [k if k.startswith("/") else (f"{anchor}/{k}" if k else anchor or "/") for k in chosen]
    )
    exists = np.zeros(len(keys), dtype=bool)
    exists[picked] = [there for _, there in real]
    if prune and not exists.any():
        return found
    # A folder's prefix joins its real path to the rest of a location: '/name' after a
    # folder part, the name itself after none ('' key). Most folders are where their
    # names say (no symlink on the way; all missing ones): their files share one prefix
    # (the anchor's real path, or none for absolute ones) before the whole location,
    # which SQL joins faster.
    stripped = [r.rstrip("/") for r, _ in real]
    as_named = [
        r == (k if k.startswith("/") else (f"{real_anchor}/{k}" if k else real_anchor))
        for r, k in zip(stripped, chosen, strict=True)
    ]
    offset = len(resolved.prefixes)
    resolved.prefixes.extend(f"{r}/" if not k else r for r, k in zip(stripped, chosen, strict=True))
    resolved.prefixes.append(f"{real_anchor}/")
    position = np.full(len(keys), -1, dtype=np.int32)
    position[picked] = np.arange(offset, offset + len(picked), dtype=np.int32)
    named = missing.copy()
    named[picked] = as_named
    position[named & ~relative] = 0  # the empty prefix
    position[named & relative] = len(resolved.prefixes) - 1
    inside = np.zeros(len(keys), dtype=bool)
    inside[picked] = roots.contains_many(arrow.texts(stripped))
    if missing.any():
        under = pc.binary_join_element_wise(
            real_anchor, keys.filter(arrow.from_numpy(missing)), "/"
        )
        inside[missing] = roots.contains_many(under)
    row_prefix = position[index]
    mine = rows & (row_prefix >= 0)
    resolved.prefix[mine] = row_prefix[mine]
    resolved.cut[mine & named[index]] = 0
    found.inside[:] = inside[index] & mine

    listed: list[str] = []
    linked: list[str] = []
    for i, folder in zip(picked.tolist(), stripped, strict=True):
        if exists[i]:
            for name, link in folders.listing(folder or "/").items():
                (linked if link else listed).append(f"{folder}/{name}")
    check = np.flatnonzero(mine & exists[index])
    if not len(check):
        return found
    con.register("loc_check", _path_table(values, resolved, check))
    try:
        paths = (
            con.sql(f"SELECT {PATH_SQL.format(value='value')} FROM loc_check")
            .to_arrow_table()
            .column(0)
        )
    finally:
        con.unregister("loc_check")
    if listed:
        found.present[check] = _isin(paths, listed)
    if linked:
        is_link = _isin(paths, linked)
        link_rows = check[is_link]
        found.is_link[link_rows] = True
        targets = [os.path.realpath(p) for p in paths.filter(arrow.from_numpy(is_link)).to_pylist()]
        found.present[link_rows] = [os.path.exists(t) for t in targets]
        found.inside[link_rows] = [roots.contains(t) for t in targets]
        _set_paths(resolved, link_rows, targets, values)
    return found


def _lookup_odd(
    folders: _Folders,
    rows: np.ndarray,
    values: list[str],
    base: str,
    roots: DataRoots,
    resolved: Resolved,
    found: _Found,
) -> None:
    """Locations with ``.``, ``..`` or ``//``: normalised, then looked up one by one."""
    paths = []
    for r, value in zip(rows.tolist(), values, strict=True):
        normalised = os.path.normpath(value if value.startswith("/") else os.path.join(base, value))
        folder, _, name = normalised.rpartition("/")
        real_folder, there = folders.real(folder or "/")
        path = real_folder.rstrip("/") + "/" + name
        entry = folders.listing(real_folder).get(name) if there else None
        if entry:  # a symlink
            path = os.path.realpath(path)
            found.is_link[r] = True
            found.present[r] = os.path.exists(path)
            found.inside[r] = roots.contains(path)
        else:
            found.present[r] = entry is not None
            found.inside[r] = roots.contains(real_folder)
        paths.append(path)
    _set_paths(resolved, rows, paths, values)


def _set_paths(
    resolved: Resolved,
    rows: np.ndarray,
    paths: list[str],
    values: list[str] | pa.Array | pa.ChunkedArray,
) -> None:
    """Give ``rows`` these whole paths (a prefix each, and nothing of the location)."""
    texts = values if isinstance(values, list) else values.take(arrow.from_numpy(rows)).to_pylist()
    offset = len(resolved.prefixes)
    resolved.prefixes.extend(paths)
    resolved.prefix[rows] = np.arange(offset, offset + len(rows), dtype=np.int32)
    resolved.cut[rows] = [len(v) for v in texts]


def _path_table(
    values: pa.Array | pa.ChunkedArray, resolved: Resolved, rows: np.ndarray
) -> pa.Table:
    take = arrow.from_numpy(rows)
    columns = resolved.columns()
    return pa.table(
        {
            "value": values.take(take),
            "_prefix": columns["_prefix"].take(take),
            "_cut": columns["_cut"].take(take),
        }
    )


def _isin(values: pa.Array | pa.ChunkedArray, among: list[str]) -> npt.NDArray[np.bool_]:
    found: npt.NDArray[np.bool_] = arrow.to_numpy(pc.is_in(values, value_set=arrow.texts(among)))
    return found


def _whole(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def describe(
    status: str, looked_at: str | None, import_file: str | os.PathLike[str], roots: DataRoots
) -> str:
    """A sentence for the report about one location's status."""
    base = os.path.dirname(os.path.abspath(import_file))
    allowed = f"the data roots ({roots}); set {ROOTS_ENV} to allow another folder"
    return {
        SUFFIX: f"a frame file must end in {', '.join(FRAME_SUFFIXES)}",
        S3_OUTSIDE: (
            f"{looked_at!r} is outside the s3:// prefixes of the data roots "
            f"({', '.join(roots.buckets)}); add s3://bucket[/prefix] to {ROOTS_ENV} "
            "to allow another bucket or prefix"
        ),
        S3_PATH: (
            f"{looked_at!r} has an empty, '.' or '..' part; an s3:// location names a bucket "
            "and an object key as written (s3://bucket/folder/file.nii.gz), and normalising "
            "it would name another object: write it without those parts"
        ),
        GRANDPARENT: (
            f"not found under {base}, but found under {os.path.dirname(base)} (where MIQA "
            "resolves relative paths); write paths relative to the import file's folder"
        ),
        MISSING: f"file not found: {looked_at}" + _miqa_note(looked_at, base),
        SYMLINK: f"a symlink that leads to {looked_at}, outside {allowed}",
        ESCAPES: f"'..' or a symlinked folder leads to {looked_at}, outside {allowed}",
        OUTSIDE: f"{looked_at} is outside {allowed}",
    }.get(status, "")


def _miqa_note(looked_at: str | None, base: str) -> str:
    """For a path recorded under the import file's grandparent folder: why there."""
    real_base = os.path.realpath(base)
    above = os.path.dirname(real_base)
    if looked_at is None or looked_at.startswith(real_base + "/"):
        return ""
    if not looked_at.startswith(above.rstrip("/") + "/"):
        return ""
    return (
        f" (a relative location found neither under {real_base} nor under {above} is "
        "recorded under the latter, where MIQA looks for it)"
    )

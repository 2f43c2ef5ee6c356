"""The words of MIQA, in one place: decisions, scan types, artifacts, locations, roles.

Everything here is pure (no I/O): small enums and frozen dataclasses, and parsers that
turn the text found in import files into them. A parser either returns the canonical
value or raises :class:`~miqa_nb.core.errors.VocabularyError` whose message names the value
and what would be accepted; nothing is silently dropped or matched by substring.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import StrEnum

from miqa_nb.core.errors import VocabularyError

__all__ = [
    "ARTIFACTS",
    "ARTIFACT_ALIASES",
    "CONVENTIONS",
    "FRAME_SUFFIXES",
    "SCAN_TYPES",
    "SCAN_TYPE_ALIASES",
    "ArtifactState",
    "Decision",
    "Location",
    "Role",
    "ScanState",
    "ScanTypes",
    "Timestamp",
    "format_artifacts",
    "parse_artifact",
    "parse_artifacts",
]


class Decision(StrEnum):
    """A reviewer's verdict on a scan (MIQA's codes)."""

    USABLE = "U"
    USABLE_EXTRA = "UE"
    QUESTIONABLE = "Q?"
    UNUSABLE = "UN"

    @property
    def label(self) -> str:
        """The word shown to reviewers."""
        return _DECISION_LABELS[self]

    @classmethod
    def parse(cls, text: str) -> Decision:
        """Return the decision for a code (``'U'``, ``'UE'``, ``'Q?'``, ``'UN'``).

        Examples
        --------
        >>> Decision.parse(" q? ")
        <Decision.QUESTIONABLE: 'Q?'>
        >>> Decision.parse("usable")
        Traceback (most recent call last):
        ...
        miqa_nb.core.errors.VocabularyError: decision must be one of U, UE, Q?, UN; 'usable' was provided
        """
        try:
            return cls(text.strip().upper())
        except ValueError:
            raise VocabularyError(
                f"decision must be one of {', '.join(d.value for d in cls)}; {text!r} was provided"
            ) from None


_DECISION_LABELS = {
    Decision.USABLE: "usable",
    Decision.USABLE_EXTRA: "usable-extra",
    Decision.QUESTIONABLE: "questionable",
    Decision.UNUSABLE: "unusable",
}


class Role(StrEnum):
    """A user's role in one project (the project's creator is stored on the project)."""

    COLLABORATOR = "collaborator"
    TIER1 = "tier1"
    TIER2 = "tier2"

    @classmethod
    def parse(cls, text: str) -> Role:
        """Return the role for a name (``tier1``, ``tier-1``, ``tier_2``, ``collaborator``).

        Examples
        --------
        >>> Role.parse("Tier-2")
        <Role.TIER2: 'tier2'>
        """
        key = re.sub(r"[\s_-]", "", text.strip().lower())
        for role in cls:
            if role.value == key:
                return role
        raise VocabularyError(
            f"role must be one of {', '.join(r.value for r in cls)}; {text!r} was provided"
        )


class ScanState(StrEnum):
    """Where a scan stands in review (derived from its decisions, MIQA's rules)."""

    UNREVIEWED = "unreviewed"
    NEEDS_TIER2 = "needs tier-2 review"
    COMPLETE = "complete"


#: MIQA's scan types, in MIQA's order.
SCAN_TYPES: tuple[str, ...] = (
    "T1",
    "T2",
    "FMRI",
    "MRA",
    "PD",
    "DTI",
    "DWI",
    "ncanda-t1spgr-v1",
    "ncanda-mprage-v1",
    "ncanda-t2fse-v1",
    "ncanda-dti6b500pepolar-v1",
    "ncanda-dti30b400-v1",
    "ncanda-dti60b1000-v1",
    "ncanda-grefieldmap-v1",
    "ncanda-rsfmri-v1",
    "PET",
    "CT",
)

#: Common names for MIQA's scan types (matched case-insensitively, like the types).
SCAN_TYPE_ALIASES: Mapping[str, str] = {
    "t1w": "T1",
    "t1-weighted": "T1",
    "mprage": "T1",
    "t2w": "T2",
    "t2-weighted": "T2",
    "bold": "FMRI",
    "func": "FMRI",
    "fmri-bold": "FMRI",
    "pdw": "PD",
    "dwi-dti": "DTI",
}


@dataclass(frozen=True)
class ScanTypes:
    """The scan types a catalog accepts: MIQA's, plus aliases and the catalog's own.

    Matching is case-insensitive and exact (no substrings). ``extra`` adds types;
    ``aliases`` maps more names to types.
    """

    extra: tuple[str, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)

    def names(self) -> tuple[str, ...]:
        """Every canonical type, MIQA's first."""
        return SCAN_TYPES + tuple(t for t in self.extra if t not in SCAN_TYPES)

    def _lookup(self) -> dict[str, str]:
        table = {name.lower(): name for name in self.names()}
        table.update({k.lower(): v for k, v in SCAN_TYPE_ALIASES.items()})
        table.update({k.lower(): v for k, v in self.aliases.items()})
        return table

    def known(self, text: str) -> str | None:
        """The canonical scan type ``text`` names, or None."""
        return self._lookup().get(text.strip().lower())

    def aliases_of(self, scan_type: str) -> tuple[str, ...]:
        """The other names of a canonical type: MIQA's common ones, then the catalog's."""
        builtin = tuple(k for k, v in SCAN_TYPE_ALIASES.items() if v == scan_type)
        return builtin + tuple(k for k, v in self.aliases.items() if v == scan_type)

    def parse(self, text: str) -> str:
        """Return the canonical scan type for ``text``.

        Examples
        --------
        >>> types = ScanTypes(extra=("3D-T1",), aliases={"flair": "T2"})
        >>> types.parse("t1w"), types.parse("FLAIR"), types.parse("3d-t1")
        ('T1', 'T2', '3D-T1')
        >>> types.parse("T1w-ish")
        Traceback (most recent call last):
        ...
        miqa_nb.core.errors.VocabularyError: scan type 'T1w-ish' is not known; use one of T1, T2, FMRI, MRA, PD, DTI, DWI, ncanda-t1spgr-v1, ncanda-mprage-v1, ncanda-t2fse-v1, ncanda-dti6b500pepolar-v1, ncanda-dti30b400-v1, ncanda-dti60b1000-v1, ncanda-grefieldmap-v1, ncanda-rsfmri-v1, PET, CT, 3D-T1 (or a superuser adds it to the catalog: miqa-nb scan-types add NAME)
        """
        found = self.known(text)
        if found is None:
            raise VocabularyError(
                f"scan type {text!r} is not known; use one of {', '.join(self.names())} "
                "(or a superuser adds it to the catalog: miqa-nb scan-types add NAME)"
            )
        return found


#: Artifact names, in MIQA's display order, then the older ``normal_variants``.
ARTIFACTS: tuple[str, ...] = (
    "lesions",
    "partial_brain_coverage",
    "misalignment",
    "swap_wraparound",
    "ghosting_motion",
    "inhomogeneity",
    "susceptibility_metal",
    "flow_artifact",
    "truncation_artifact",
    "normal_variants",
)

ARTIFACT_ALIASES: Mapping[str, str] = {
    "partial_coverage": "partial_brain_coverage",
    "wraparound": "swap_wraparound",
    "wrap_around": "swap_wraparound",
    "ghosting": "ghosting_motion",
    "motion": "ghosting_motion",
    "susceptibility": "susceptibility_metal",
    "flow": "flow_artifact",
    "truncation": "truncation_artifact",
    "lesion": "lesions",
    "normal_variant": "normal_variants",
}


class ArtifactState(StrEnum):
    """Whether a reviewer saw an artifact."""

    PRESENT = "present"
    ABSENT = "absent"
    NOT_ASSESSED = "not assessed"


def parse_artifact(text: str) -> str:
    """Return the canonical artifact name for ``text`` (case-insensitive, aliases).

    Examples
    --------
    >>> parse_artifact("Ghosting"), parse_artifact("partial brain coverage")
    ('ghosting_motion', 'partial_brain_coverage')
    """
    key = text.strip().lower().replace("-", "_").replace(" ", "_")
    if key in ARTIFACTS:
        return key
    if key in ARTIFACT_ALIASES:
        return ARTIFACT_ALIASES[key]
    raise VocabularyError(f"artifact {text!r} is not known; use one of {', '.join(ARTIFACTS)}")


def parse_artifacts(text: str) -> tuple[str, ...]:
    """Return the canonical names in a ``;``-separated list, in display order.

    Examples
    --------
    >>> parse_artifacts("motion;lesion;")
    ('lesions', 'ghosting_motion')
    """
    names = {parse_artifact(part) for part in text.split(";") if part.strip()}
    return tuple(a for a in ARTIFACTS if a in names)


def format_artifacts(names: Iterable[str]) -> str:
    """Join artifact names as MIQA writes them (``;``, display order).

    Examples
    --------
    >>> format_artifacts(["flow_artifact", "lesions"])
    'lesions;flow_artifact'
    """
    wanted = set(names)
    return ";".join(a for a in ARTIFACTS if a in wanted)


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_LOCATION = re.compile(
    rf"^\s*i\s*=\s*({_NUMBER})\s*;\s*j\s*=\s*({_NUMBER})\s*;\s*k\s*=\s*({_NUMBER})\s*$"
)


@dataclass(frozen=True)
class Location:
    """A location of interest: world coordinates in mm of the sagittal (i), coronal (j)
    and axial (k) slices a reviewer was looking at, and its text as written."""

    i: float
    j: float
    k: float
    text: str

    @classmethod
    def parse(cls, text: str) -> Location:
        """Parse ``'i=-45.5;j=-20.4;k=15.50'``; the text is kept to be written back unchanged.

        Examples
        --------
        >>> Location.parse("i=-45.5;j=-20.4;k=15.50")
        Location(i=-45.5, j=-20.4, k=15.5, text='i=-45.5;j=-20.4;k=15.50')
        """
        match = _LOCATION.match(text)
        if match is None:
            raise VocabularyError(
                f"location of interest must look like 'i=-45.5;j=-20.4;k=15.5' (mm); "
                f"{text!r} was provided"
            )
        i, j, k = (float(g) for g in match.groups())
        return cls(i, j, k, text.strip())

    @classmethod
    def from_mm(cls, i: float, j: float, k: float) -> Location:
        """Make a location from world coordinates in mm (written to 3 decimals).

        Examples
        --------
        >>> str(Location.from_mm(-45.5, 0.0, 15.12345))
        'i=-45.5;j=0;k=15.123'
        """
        if not all(math.isfinite(v) for v in (i, j, k)):
            raise VocabularyError(f"location must be finite numbers; ({i}, {j}, {k}) was provided")
        parts = [f"{name}={_short(v)}" for name, v in zip("ijk", (i, j, k), strict=True)]
        return cls(round(i, 3), round(j, 3), round(k, 3), ";".join(parts))

    def __str__(self) -> str:
        return self.text


def _short(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@dataclass(frozen=True)
class Timestamp:
    """A decision time: wall-clock time as written, and its UTC offset when one was given."""

    wall: datetime
    utcoffset_minutes: int | None = None

    @classmethod
    def parse(cls, text: str) -> Timestamp:
        """Parse ``YYYY-MM-DD HH:MM[:SS[.ffffff]][Z|±HH:MM]`` (or with a ``T``).

        Examples
        --------
        >>> when = Timestamp.parse("2022-01-01T13:44:34+02:00")
        >>> when.utcoffset_minutes, str(when)
        (120, '2022-01-01 13:44:34+02:00')
        >>> str(Timestamp.parse("2022-01-01 13:44"))
        '2022-01-01 13:44:00'
        """
        raw = text.strip()
        try:
            if not re.match(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d", raw):
                raise ValueError
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            raise VocabularyError(
                f"time must look like '2022-01-01 13:44:34' (optionally with a time zone "
                f"such as +02:00); {text!r} was provided"
            ) from None
        offset = parsed.utcoffset()
        minutes = None if offset is None else int(offset.total_seconds() // 60)
        return cls(parsed.replace(tzinfo=None), minutes)

    @classmethod
    def from_datetime(cls, when: datetime) -> Timestamp:
        """Keep an aware datetime's offset; a naive one is kept as written."""
        offset = when.utcoffset()
        minutes = None if offset is None else int(offset.total_seconds() // 60)
        return cls(when.replace(tzinfo=None), minutes)

    def to_datetime(self) -> datetime:
        """Return the time as a datetime (aware when an offset is known)."""
        if self.utcoffset_minutes is None:
            return self.wall
        return self.wall.replace(tzinfo=timezone(timedelta(minutes=self.utcoffset_minutes)))

    def __str__(self) -> str:
        text = self.wall.strftime("%Y-%m-%d %H:%M:%S")
        if self.wall.microsecond:
            text += f".{self.wall.microsecond:06d}"
        if self.utcoffset_minutes is not None:
            sign = "-" if self.utcoffset_minutes < 0 else "+"
            hours, minutes = divmod(abs(self.utcoffset_minutes), 60)
            text += f"{sign}{hours:02d}:{minutes:02d}"
        return text


#: The file suffixes a frame may have (``.nhdr`` is a detached NRRD header).
FRAME_SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz", ".mgz", ".nrrd", ".nhdr")

#: Display conventions (MIQA's ``anatomy_orientation``).
CONVENTIONS: tuple[str, ...] = ("neurological", "radiological")

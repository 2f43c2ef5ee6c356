from datetime import datetime

import pytest

from miqa_nb.core.errors import VocabularyError
from miqa_nb.core.vocabulary import (
    ARTIFACTS,
    Decision,
    Location,
    Role,
    ScanTypes,
    Timestamp,
    format_artifacts,
    parse_artifacts,
)


def test_decision_codes():
    assert [d.value for d in Decision] == ["U", "UE", "Q?", "UN"]
    assert Decision.parse(" q? ") is Decision.QUESTIONABLE
    assert Decision.parse("un") is Decision.UNUSABLE
    with pytest.raises(VocabularyError, match=r"'X' was provided"):
        Decision.parse("X")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("T1", "T1"),
        ("t1", "T1"),
        ("T1w", "T1"),
        ("t2W", "T2"),
        ("fmri", "FMRI"),
        ("NCANDA-T1SPGR-V1", "ncanda-t1spgr-v1"),
        ("ct", "CT"),
    ],
)
def test_scan_types_case_insensitive_with_aliases(text, expected):
    assert ScanTypes().parse(text) == expected


def test_unknown_scan_type_is_reported_not_substring_matched():
    with pytest.raises(VocabularyError, match="'T1-ish' is not known"):
        ScanTypes().parse("T1-ish")
    with pytest.raises(VocabularyError):
        ScanTypes().parse("T")


def test_scan_types_extensible_per_catalog():
    types = ScanTypes(extra=("SWI",), aliases={"susceptibility": "SWI"})
    assert types.parse("swi") == "SWI"
    assert types.parse("Susceptibility") == "SWI"
    assert "SWI" in types.names()


def test_artifacts_aliases_order_and_unknown():
    assert len(ARTIFACTS) == 10 and "normal_variants" in ARTIFACTS
    assert parse_artifacts("normal_variants;lesions") == ("lesions", "normal_variants")
    assert parse_artifacts("partial_coverage") == ("partial_brain_coverage",)
    assert parse_artifacts("Ghosting_Motion; ;") == ("ghosting_motion",)
    with pytest.raises(VocabularyError, match="'lesionsX' is not known"):
        parse_artifacts("lesionsX")
    assert format_artifacts(["misalignment", "lesions"]) == "lesions;misalignment"


def test_location_parsed_to_mm_and_written_back_unchanged():
    loc = Location.parse("i=-45.504;j=-20.451;k=15.50")
    assert (loc.i, loc.j, loc.k) == (-45.504, -20.451, 15.5)
    assert str(loc) == "i=-45.504;j=-20.451;k=15.50"
    assert Location.parse("i=50.305;j=-40.541;k=-30").k == -30.0
    assert Location.parse("i=1e2;j=.5;k=+3").i == 100.0


@pytest.mark.parametrize("text", ["i=1;j=2", "x=1;y=2;z=3", "i=a;j=2;k=3", "1,2,3", "i=1;j=2;k=3;"])
def test_malformed_location(text):
    with pytest.raises(VocabularyError, match="location of interest"):
        Location.parse(text)


def test_location_from_mm():
    loc = Location.from_mm(1.23456, -3.0, 0.0)
    assert str(loc) == "i=1.235;j=-3;k=0"
    assert Location.parse(str(loc)).i == pytest.approx(1.235)


def test_timestamps_keep_seconds_and_zone():
    naive = Timestamp.parse("2022-01-01 13:44:34")
    assert naive.wall == datetime(2022, 1, 1, 13, 44, 34) and naive.utcoffset_minutes is None
    assert str(naive) == "2022-01-01 13:44:34"
    aware = Timestamp.parse("2022-01-01T13:44:34+02:00")
    assert aware.utcoffset_minutes == 120 and str(aware) == "2022-01-01 13:44:34+02:00"
    assert str(Timestamp.parse("2022-01-01 13:44:34Z")) == "2022-01-01 13:44:34+00:00"
    assert str(Timestamp.parse("2022-01-01 13:44")) == "2022-01-01 13:44:00"
    assert (
        str(Timestamp.parse("2022-01-01 13:44:34.250000-05:30"))
        == "2022-01-01 13:44:34.250000-05:30"
    )


@pytest.mark.parametrize(
    "text", ["yesterday", "2022-13-01 10:00:00", "2022-01-01", "01/02/2022 10:00"]
)
def test_unparseable_time(text):
    with pytest.raises(VocabularyError, match="time must look like"):
        Timestamp.parse(text)


def test_roles_parse():
    assert Role.parse("Tier-1") is Role.TIER1
    assert Role.parse("tier_2") is Role.TIER2
    with pytest.raises(VocabularyError):
        Role.parse("boss")

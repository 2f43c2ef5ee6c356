"""XNAT's ``import-handler=XAR`` on the real signed-in server, with curl and requests.

An XAR is a zip holding a session document and its files. Here the documents are a
MIQA import CSV (frame locations relative to it) and XNAT's session XML (an
``xnat:MRSession`` whose scans name a NIfTI resource catalog and a DICOM folder), with
images of real anatomy (the MNI152 template as NIfTI, and written slice by slice as
DICOM). They arrive as reviewable scans under the catalog's data folder; hostile or
broken XARs are refused and leave nothing behind.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import requests
from dicom_support import write_series
from test_xnat_import import (
    ADMIN,
    COLLAB,
    PASSWORD,
    PROJECT,
    TIER1,
    Site,
    _data_files,
    curl,
    served_site,
)

pytestmark = pytest.mark.slow

XAR = "data/services/import?import-handler=XAR"
HEADER = "project_name,experiment_name,scan_name,scan_type,frame_number,file_location,subject_id"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with served_site(tmp_path_factory.mktemp("xar")) as served:
        yield served


def make_zip(site: Site, name: str, members: dict[str, bytes | Path]) -> Path:
    """A zip of ``members`` (name inside the zip: bytes, or a file to add)."""
    archive = site.root / name
    with zipfile.ZipFile(archive, "w") as zf:
        for member, content in members.items():
            if isinstance(content, Path):
                zf.write(content, member)
            else:
                zf.writestr(member, content)
    return archive


def nifti(site: Site, name: str) -> Path:
    path = site.root / name
    nib.save(site.template, path)
    return path


def miqa_xar(site: Site, name: str, experiment: str) -> Path:
    csv_text = "\n".join(
        [
            HEADER,
            f"{PROJECT},{experiment},1,T1,0,scans/T1/t1.nii.gz,SX",
            f"{PROJECT},{experiment},2,T2,0,scans/T2/t2.nii.gz,SX",
        ]
    )
    return make_zip(
        site,
        name,
        {
            "import.csv": csv_text.encode(),
            "scans/T1/t1.nii.gz": nifti(site, f"{name}-t1.nii.gz"),
            "scans/T2/t2.nii.gz": nifti(site, f"{name}-t2.nii.gz"),
        },
    )


SESSION_XML = """<?xml version="1.0" encoding="UTF-8"?>
<xnat:MRSession xmlns:xnat="http://nrg.wustl.edu/xnat"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    ID="XNAT_E00042" project="{project}" label="{label}">
  <xnat:subject_ID>SXML</xnat:subject_ID>
  <xnat:scans>
    <xnat:scan ID="6" type="T2" xsi:type="xnat:mrScanData">
      <xnat:file xsi:type="xnat:resource" label="DICOM" format="DICOM" URI="SCANS/6/DICOM"/>
    </xnat:scan>
    <xnat:scan ID="5" type="T1" xsi:type="xnat:mrScanData">
      <xnat:file xsi:type="xnat:resourceCatalog" label="NIFTI" format="NIFTI"
          URI="SCANS/5/NIFTI/scan_5_catalog.xml"/>
    </xnat:scan>
  </xnat:scans>
</xnat:MRSession>
"""

CATALOG_XML = """<?xml version="1.0" encoding="UTF-8"?>
<cat:Catalog xmlns:cat="http://nrg.wustl.edu/catalog" ID="scan_5_NIFTI">
  <cat:entries>
    <cat:entry URI="{uri}" ID="t1" format="NIFTI"/>
  </cat:entries>
</cat:Catalog>
"""


def xml_xar(site: Site, name: str, label: str, *, t1_uri: str = "t1.nii.gz") -> Path:
    dicom = write_series(
        site.template, site.root / f"{name}-dicom", SeriesNumber=9, SeriesDescription="t2_tse"
    )
    members: dict[str, bytes | Path] = {
        "session.xml": SESSION_XML.format(project=PROJECT, label=label).encode(),
        "SCANS/5/NIFTI/scan_5_catalog.xml": CATALOG_XML.format(uri=t1_uri).encode(),
        "SCANS/5/NIFTI/t1.nii.gz": nifti(site, f"{name}-t1.nii.gz"),
    }
    members.update({f"SCANS/6/DICOM/{p.name}": p for p in dicom})
    return make_zip(site, name, members)


def _frames(site: Site, experiment: str) -> dict[str, str]:
    frames = site.catalog.frames(PROJECT)
    chosen = frames.loc[frames["experiment"] == experiment]
    return dict(zip(chosen["scan"].astype(str), chosen["location"].astype(str), strict=True))


def _data(site: Site) -> Path:
    return site.catalog.path.with_name(site.catalog.path.stem + "-data")


def test_curl_xar_with_a_miqa_csv_is_archived(site: Site) -> None:
    archive = miqa_xar(site, "x1.xar", "X1")
    status, body = curl(
        "-u", f"{TIER1}:{PASSWORD}", "-F", f"file=@{archive}", f"{site.url}{XAR}&dest=/archive"
    )  # fmt: skip
    assert status == 200, body
    assert body.strip() == f"/data/archive/projects/{PROJECT}/subjects/SX/experiments/X1"
    frames = _frames(site, "X1")
    assert frames == {
        "1": str(_data(site) / PROJECT / "X1" / "1" / "t1.nii.gz"),
        "2": str(_data(site) / PROJECT / "X1" / "2" / "t2.nii.gz"),
    }
    stored = nib.load(frames["1"])
    assert np.array_equal(np.asarray(stored.dataobj), np.asarray(site.template.dataobj))
    scans = site.catalog.scans(PROJECT).set_index("scan")
    chosen = scans.loc[scans["experiment"] == "X1"]
    assert list(chosen["type"]) == ["T1", "T2"]
    assert set(chosen["state"].astype(str)) == {"unreviewed"}
    # the same session again: XNAT's 409, nothing changed
    before = _data_files(site)
    status, text = curl("-u", f"{TIER1}:{PASSWORD}", "-F", f"file=@{archive}", f"{site.url}{XAR}")
    assert status == 409 and "already archived" in text
    assert _data_files(site) == before


def test_xar_with_a_miqa_json_beside_its_files(site: Site) -> None:
    document = {
        "projects": {
            PROJECT: {
                "experiments": {
                    "X3": {
                        "scans": {
                            "7": {
                                "type": "T1",
                                "subject_id": "SJ",
                                "frames": {"0": {"file_location": "scans/a.nii.gz"}},
                            }
                        }
                    }
                }
            }
        }
    }
    archive = make_zip(
        site,
        "x3.zip",
        {
            "doc/import.json": json.dumps(document).encode(),
            "doc/scans/a.nii.gz": nifti(site, "x3-a.nii.gz"),
        },
    )
    status, body = curl(
        "-u", f"{TIER1}:{PASSWORD}", "-F", f"file=@{archive}",
        f"{site.url}{XAR}&dest=/archive/projects/{PROJECT}",
    )  # fmt: skip
    assert status == 200, body
    assert body.strip() == f"/data/archive/projects/{PROJECT}/subjects/SJ/experiments/X3"
    assert _frames(site, "X3") == {"7": str(_data(site) / PROJECT / "X3" / "7" / "a.nii.gz")}


def test_requests_xar_with_a_session_xml_converts_dicom_and_keeps_nifti(site: Site) -> None:
    archive = xml_xar(site, "x2.zip", "X2")
    with open(archive, "rb") as handle:
        answer = requests.post(
            f"{site.url}{XAR}",
            files={"file": ("x2.zip", handle, "application/zip")},
            auth=(TIER1, PASSWORD),
            timeout=300,
        )
    assert answer.status_code == 200, answer.text
    assert answer.text.strip() == f"/data/archive/projects/{PROJECT}/subjects/SXML/experiments/X2"
    frames = _frames(site, "X2")
    assert sorted(frames) == ["5", "6"]
    assert frames["5"] == str(_data(site) / PROJECT / "X2" / "5" / "t1.nii.gz")
    scans = site.catalog.scans(PROJECT)
    chosen = scans.loc[scans["experiment"] == "X2"].set_index("scan")
    assert chosen.loc["5", "type"] == "T1" and chosen.loc["6", "type"] == "T2"
    # the DICOM scan was converted, geometry exact
    source = nib.as_closest_canonical(site.template)
    converted = nib.as_closest_canonical(nib.load(frames["6"]))
    assert Path(frames["6"]).is_relative_to(_data(site) / PROJECT / "X2" / "6")
    assert np.allclose(converted.affine, source.affine, atol=0.01)
    assert np.allclose(np.asarray(converted.dataobj), np.asarray(source.dataobj), atol=1.0)


def test_hostile_and_broken_xars_leave_nothing_behind(site: Site) -> None:
    before, rows = _data_files(site), len(site.catalog.frames(PROJECT))
    url = f"{site.url}{XAR}"

    def send(archive: Path, user: str = ADMIN) -> tuple[int, str]:
        return curl("-u", f"{user}:{PASSWORD}", "-F", f"file=@{archive}", url)

    t1 = nifti(site, "h-t1.nii.gz")
    outside = make_zip(
        site,
        "h1.zip",
        {"import.csv": f"{HEADER}\n{PROJECT},H1,1,T1,0,../h-t1.nii.gz,S".encode(), "a.nii.gz": t1},
    )
    status, text = send(outside)
    assert status == 400 and "points outside" in text, text
    absolute = make_zip(
        site, "h2.zip", {"import.csv": f"{HEADER}\n{PROJECT},H2,1,T1,0,{t1},S".encode()}
    )
    status, text = send(absolute)
    assert status == 400 and "relative" in text, text
    missing = make_zip(
        site, "h3.zip", {"import.csv": f"{HEADER}\n{PROJECT},H3,1,T1,0,gone.nii.gz,S".encode()}
    )
    status, text = send(missing)
    assert status == 400 and "gone.nii.gz" in text and "not in the XAR" in text, text
    member = make_zip(site, "h4.zip", {"import.csv": HEADER.encode(), "../evil.nii.gz": b"x"})
    status, text = send(member)
    assert status == 400 and "evil.nii.gz" in text, text
    # the DICOM scan converts, then the NIfTI scan's file is missing: nothing is kept
    status, text = send(xml_xar(site, "h5.zip", "H5", t1_uri="absent.nii.gz"))
    assert status == 400 and "absent.nii.gz" in text, text
    entity = make_zip(
        site,
        "h6.zip",
        {"session.xml": b'<!DOCTYPE x [<!ENTITY e SYSTEM "/etc/passwd">]><xnat:MRSession/>'},
    )
    status, text = send(entity)
    assert status == 400, text
    status, text = send(site.root / "h-t1.nii.gz")  # not a zip
    assert status == 400 and "not a zip" in text, text
    status, text = send(miqa_xar(site, "h7.zip", "H7"), user=COLLAB)
    assert status == 403, text
    assert _data_files(site) == before and len(site.catalog.frames(PROJECT)) == rows
    staging = site.catalog.path.with_name(site.catalog.path.stem + "-staging")
    assert not any(staging.iterdir())
    assert not (site.root / "evil.nii.gz").exists()

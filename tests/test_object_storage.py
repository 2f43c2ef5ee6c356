"""Frames in object storage: a real S3-compatible server (moto's) on loopback.

The catalog imports ``s3://`` locations inside the data roots' s3:// prefixes (checked
with HEAD requests), the review session fetches the objects into the byte-bounded
object cache and shows them, prefetch fetches ahead, a changed object is fetched
again, and a missing or forbidden one is a clear error.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pytest
from moto import server as moto_server
from support import frame_row

from miqa_nb.catalog import Catalog
from miqa_nb.core.errors import ImportFileError, VolumeError
from miqa_nb.review.session import ReviewSession
from miqa_nb.volumes import LoadLimits, VolumeCache, load_volume, objects

DEMO = "samples/Demo Project/IXI002/0828-DTI/IXI002-Guys-0828-DTI-0{}.nii.gz"
BUCKET, PREFIX = "lab", "s3://lab/mri"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port."""
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def store(endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A fresh bucket ``lab``; credentials and endpoint from the environment, the object
    cache in ``tmp_path/objects``, the data roots ``tmp_path`` and ``s3://lab/mri``."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "MIQA_NB_OBJECT_CACHE": str(tmp_path / "objects"),
        "MIQA_NB_DATA_ROOTS": f"{tmp_path}:{PREFIX}",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    objects.reset_default()
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)
    objects.reset_default()


def _put(client: object, samples: Path, n: int, key: str) -> Path:
    local = samples / DEMO.format(n)
    client.upload_file(str(local), BUCKET, key)  # type: ignore[attr-defined]
    return local


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    cat = Catalog(tmp_path / "catalog.duckdb", retry_seconds=20)
    cat.add_user("admin", superuser=True)
    return cat


def _session(catalog: Catalog, cache: VolumeCache) -> ReviewSession:
    return ReviewSession(catalog, "P", "admin", cache=cache, background=False)


def test_the_review_shows_frames_fetched_from_the_store(store, samples, catalog, write_csv):
    first = _put(store, samples, 0, "mri/IXI002/f0.nii.gz")
    second = _put(store, samples, 1, "mri/IXI002/f1.nii.gz")
    rows = [
        frame_row(scan="S1", file_location=f"{PREFIX}/IXI002/f0.nii.gz"),
        frame_row(scan="S2", file_location=f"{PREFIX}/IXI002/f1.nii.gz"),
    ]
    report = catalog.import_file(write_csv(rows), by="admin")
    assert not report.errors and not report.warnings, report
    fetched = objects.default_objects()
    assert fetched.downloads == 0  # the import asked with HEAD requests only
    with VolumeCache(max_bytes=64 << 20, limits=LoadLimits.from_environ()) as cache:
        session = _session(catalog, cache)
        try:
            assert session.last_error is None and session.volume is not None
            assert session.key == ("E1", "S1")
            expected = load_volume(first)
            assert np.array_equal(session.volume.data, expected.data)
            assert np.array_equal(session.volume.affine, expected.affine)
            assert session.render()  # the three planes are drawn
            session.flush()  # prefetch fetched and decoded the next scan
            assert fetched.downloads == 2
            names = [p.name.split("-", 2)[2] for p in Path(fetched.folder).iterdir()]
            assert sorted(names) == ["f0.nii.gz", "f1.nii.gz"]
            assert fetched.nbytes() == first.stat().st_size + second.stat().st_size
            loads = cache.stats().loads
            assert session.open(("E1", "S2"))
            assert cache.stats().loads == loads  # decoded ahead: nothing more to do
            assert np.array_equal(session.volume.data, load_volume(second).data)
        finally:
            session.close()


def test_the_object_cache_is_bounded_in_bytes_least_recently_used_first(store, samples, tmp_path):
    sizes = [_put(store, samples, n, f"mri/f{n}.nii.gz").stat().st_size for n in range(3)]
    cache = objects.ObjectCache(tmp_path / "bounded", max_bytes=sizes[0] + max(sizes[1:]) + 10)
    a = cache.fetch(f"{PREFIX}/f0.nii.gz")
    b = cache.fetch(f"{PREFIX}/f1.nii.gz")
    assert cache.fetch(f"{PREFIX}/f0.nii.gz") == a and cache.downloads == 2  # a hit
    c = cache.fetch(f"{PREFIX}/f2.nii.gz")
    assert cache.nbytes() <= cache.max_bytes
    assert a.exists() and c.exists() and not b.exists()  # f1 was the least recently read


def test_a_changed_object_is_fetched_again(store, samples):
    location = f"{PREFIX}/scan.nii.gz"
    _put(store, samples, 0, "mri/scan.nii.gz")
    objects.default_objects().fresh_seconds = 0  # ask the store every time
    with VolumeCache(max_bytes=64 << 20, limits=LoadLimits.from_environ()) as cache:
        before = cache.get(location)
        assert cache.get(location) is before  # unchanged: the decoded volume is kept
        changed = _put(store, samples, 3, "mri/scan.nii.gz")
        after = cache.get(location)
    assert objects.default_objects().downloads == 2
    assert np.array_equal(after.data, load_volume(changed).data)
    assert not np.array_equal(after.data, before.data)


def test_a_missing_object_is_a_warning_at_import_and_a_clear_error_in_the_review(
    store, samples, catalog, write_csv
):
    location = f"{PREFIX}/gone/f0.nii.gz"
    report = catalog.import_file(write_csv([frame_row(file_location=location)]), by="admin")
    (warning,) = report.warnings
    assert warning.check == "missing-file" and location in warning.message
    with VolumeCache(max_bytes=64 << 20, limits=LoadLimits.from_environ()) as cache:
        session = _session(catalog, cache)
        try:
            assert session.volume is None
            assert f"{location}: object not found" in str(session.last_error)
            assert "AWS_ENDPOINT_URL" in str(session.last_error)
        finally:
            session.close()
    with pytest.raises(VolumeError, match="object not found"):
        load_volume(location, data_roots=[PREFIX])


@pytest.mark.parametrize(
    "location",
    ["s3://other/mri/f0.nii.gz", "s3://lab/mri-old/f0.nii.gz", "s3://lab/f0.nii.gz"],
)
def test_a_location_outside_the_allowed_prefixes_is_refused(store, catalog, write_csv, location):
    with pytest.raises(ImportFileError) as caught:
        catalog.import_file(write_csv([frame_row(file_location=location)]), by="admin")
    assert caught.value.report is not None
    (error,) = caught.value.report.errors
    assert error.check == "location-s3-outside-roots" and repr(location) in error.message
    assert "MIQA_NB_DATA_ROOTS" in error.message
    with pytest.raises(VolumeError, match="allowed only inside"):
        load_volume(location, data_roots=[PREFIX])  # nor is it ever read
    assert objects.default_objects().downloads == 0


def test_without_s3_prefixes_objects_are_never_read(store, samples):
    _put(store, samples, 0, "mri/f0.nii.gz")
    with pytest.raises(VolumeError, match="none is set"):
        load_volume(f"{PREFIX}/f0.nii.gz", data_roots=[Path("/data")])
    with pytest.raises(VolumeError, match="none is set"):
        load_volume(f"{PREFIX}/f0.nii.gz")
    assert objects.default_objects().downloads == 0


def test_an_unreachable_store_is_a_clear_error_at_import(
    store, catalog, write_csv, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")  # nobody there
    objects.reset_default()
    location = f"{PREFIX}/f0.nii.gz"
    with pytest.raises(VolumeError, match="cannot ask the object store") as caught:
        catalog.import_file(write_csv([frame_row(file_location=location)]), by="admin")
    assert location in str(caught.value) and "AWS_ENDPOINT_URL" in str(caught.value)
    assert catalog.frames().empty


def test_the_overview_draws_thumbnails_of_frames_in_the_store(
    store, samples, catalog, write_csv, tmp_path
):
    import io

    from PIL import Image

    from miqa_nb.dashboard.overview import Overview
    from miqa_nb.volumes.thumbnails import thumbnail_path, thumbnail_pixels

    location = f"{PREFIX}/IXI002/f0.nii.gz"
    local = _put(store, samples, 0, "mri/IXI002/f0.nii.gz")
    catalog.import_file(write_csv([frame_row(scan="S1", file_location=location)]), by="admin")
    view = Overview(catalog, "P", lambda *a: None, thumbnail_dir=tmp_path / "t", background=False)
    try:
        (row,) = view.row_widgets
        drawn = np.asarray(Image.open(io.BytesIO(bytes(row.children[0].value))))
        assert np.array_equal(drawn, thumbnail_pixels(load_volume(local)))
    finally:
        view.close()
    first = thumbnail_path(location, tmp_path / "t")
    assert first.is_file()
    # Another object under the same key is another picture (keyed by its ETag).
    _put(store, samples, 1, "mri/IXI002/f0.nii.gz")
    objects.reset_default()
    assert thumbnail_path(location, tmp_path / "t") != first

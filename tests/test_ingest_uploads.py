"""An upload streams to a file (raw or multipart) in chunks, bounded, and leaves nothing when refused."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from miqa_nb.ingest.archives import UploadLimits
from miqa_nb.ingest.uploads import UploadError, UploadReceiver, UploadTooLarge

BOUNDARY = "----miqaBoundary7MA4YWxk"
#: File content with what looks like a boundary, CRLFs and dashes: only the real
#: delimiter (CRLF, two dashes, the whole boundary) may end the part.
TRICKY = b"\r\n--\r\n------miqaBoundary7MA4YWx\r\n--" + BOUNDARY.encode()[:-1] + b"\r\n"


def _random(n: int) -> bytes:
    return random.Random(n).randbytes(n)


def form(
    data: bytes, *, filename: str = "scans.zip", fields: dict[str, str] | None = None
) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in (fields or {}).items()
    ]
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()
    return b"preamble\r\n" + b"".join(parts) + head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def feed(receiver: UploadReceiver, body: bytes, size: int) -> None:
    for at in range(0, len(body), size):
        receiver.feed(body[at : at + size])


@pytest.mark.parametrize("size", [1, 7, 64, 65536])
def test_a_raw_body_is_written_as_it_came(tmp_path: Path, size: int) -> None:
    data = _random(20_000) + TRICKY
    receiver = UploadReceiver(tmp_path, UploadLimits(), "application/zip")
    feed(receiver, data, size)
    upload = receiver.finish()
    assert upload.path.parent == tmp_path and upload.path.read_bytes() == data
    assert upload.filename is None and upload.fields == {}


def test_inbody_takes_the_body_as_the_file_whatever_its_type(tmp_path: Path) -> None:
    body = form(b"inner")
    receiver = UploadReceiver(
        tmp_path, None, f"multipart/form-data; boundary={BOUNDARY}", inbody=True
    )
    feed(receiver, body, 100)
    assert receiver.finish().path.read_bytes() == body


@pytest.mark.parametrize("size", [1, 3, 50, 4096, 1 << 20])
def test_a_multipart_file_is_cut_exactly_at_its_boundary(tmp_path: Path, size: int) -> None:
    data = TRICKY + _random(10_000) + TRICKY
    body = form(data, fields={"import-handler": "DICOM-zip", "project": "Gamma"})
    receiver = UploadReceiver(tmp_path, None, f'multipart/form-data; boundary="{BOUNDARY}"')
    feed(receiver, body, size)
    upload = receiver.finish()
    assert upload.path.read_bytes() == data
    assert upload.filename == "scans.zip"
    assert upload.fields == {"import-handler": ["DICOM-zip"], "project": ["Gamma"]}
    assert list(tmp_path.iterdir()) == [upload.path]


def test_an_empty_multipart_file_is_an_empty_file(tmp_path: Path) -> None:
    receiver = UploadReceiver(tmp_path, None, f"multipart/form-data; boundary={BOUNDARY}")
    feed(receiver, form(b""), 5)
    assert receiver.finish().path.read_bytes() == b""


@pytest.mark.parametrize("multipart", [False, True])
def test_an_upload_over_the_limit_is_refused_at_the_limit(tmp_path: Path, multipart: bool) -> None:
    limits = UploadLimits(max_upload_bytes=10_000)
    body = form(_random(20_000)) if multipart else _random(20_000)
    content_type = f"multipart/form-data; boundary={BOUNDARY}" if multipart else None
    receiver = UploadReceiver(tmp_path, limits, content_type)
    fed = 0
    with pytest.raises(UploadTooLarge, match="passes the limit of 10000 bytes"):
        for at in range(0, len(body), 1000):
            receiver.feed(body[at : at + 1000])
            fed += 1000
    assert fed == 10_000  # the chunk that passed the limit was refused, none before it
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UploadError, match="already finished or aborted"):
        receiver.feed(b"more")


def test_a_declared_length_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    with pytest.raises(UploadTooLarge, match="declared length, 10001 bytes"):
        UploadReceiver(tmp_path, UploadLimits(max_upload_bytes=10_000), None, content_length=10_001)
    assert list(tmp_path.iterdir()) == []
    UploadReceiver(
        tmp_path, UploadLimits(max_upload_bytes=10_000), None, content_length=10_000
    ).abort()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (form(b"data")[:-10], None, "ended before its closing boundary"),
        (form(b"a") + b"", "multipart/form-data", "without a boundary"),
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--{BOUNDARY}--'.encode(),
            None,
            "holds no file",
        ),
        (form(b"one")[: -len(f"--{BOUNDARY}--\r\n")] + form(b"two"), None, "more than one file"),
        (form(b"x", fields={"note": "n" * 70_000}), None, "longer than 65536 bytes"),
        (f"--{BOUNDARY}\r\n".encode() + b"H" * 20_000, None, "headers are too long"),
        (f"--{BOUNDARY}xx".encode(), None, "boundary ends badly"),
    ],
)
def test_a_malformed_form_is_refused_leaving_nothing(
    tmp_path: Path, body: bytes, content_type: str | None, reason: str
) -> None:
    content_type = content_type or f"multipart/form-data; boundary={BOUNDARY}"
    with pytest.raises(UploadError, match=reason):
        receiver = UploadReceiver(tmp_path, None, content_type)
        feed(receiver, body, 512)
        receiver.finish()
    assert list(tmp_path.iterdir()) == []


def test_abort_removes_the_partial_file(tmp_path: Path) -> None:
    receiver = UploadReceiver(tmp_path, None, None)
    receiver.feed(b"partial")
    assert len(list(tmp_path.iterdir())) == 1
    receiver.abort()
    assert list(tmp_path.iterdir()) == []


def test_a_form_of_fields_only_is_received_when_no_file_is_required(tmp_path: Path) -> None:
    body = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="src"\r\n\r\n'
        f"/user/cache/resources/X/files/a.zip\r\n--{BOUNDARY}--\r\n"
    ).encode()
    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    receiver = UploadReceiver(tmp_path, None, content_type, file_required=False)
    feed(receiver, body, 9)
    upload = receiver.finish()
    assert not upload.has_file and upload.filename is None
    assert upload.fields == {"src": ["/user/cache/resources/X/files/a.zip"]}
    strict = UploadReceiver(tmp_path, None, content_type)
    feed(strict, body, 9)
    with pytest.raises(UploadError, match="holds no file"):
        strict.finish()

"""An upload received as a stream of byte chunks and written to a file as it comes.

This module owns the receiving of the import service's body, whatever the server:
feed it the chunks as they arrive (Tornado's ``data_received``), then :meth:`finish`.
The body is never whole in memory. It is either

- the file itself (XNAT's ``inbody=true``, or a Content-Type that is not
  ``multipart/form-data``), written as it comes; or
- a ``multipart/form-data`` form, parsed while it streams: the first part that
  carries a file name is written to disk, the other parts are form fields (at most
  64 KiB each, kept as text). A second file is refused: XNAT's import takes one.

The upload is refused as soon as it passes :attr:`UploadLimits.max_upload_bytes`
(counted on the body as sent; a declared Content-Length above it is refused before
anything is read), and on any refusal or :meth:`abort` the partial file is removed.

Neither Tornado's ``parse_body_arguments`` (it takes the whole body as bytes) nor the
standard library's ``email`` parser (its feed parser keeps every part in memory) can
parse a body larger than memory; the parser here keeps at most one chunk plus the
boundary.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import BinaryIO

from miqa_nb.core.errors import MiqaError
from miqa_nb.ingest.archives import UploadLimits

__all__ = ["ReceivedUpload", "UploadError", "UploadReceiver", "UploadTooLarge"]

#: The largest form field (not a file) of a multipart body, and its part headers.
MAX_FIELD_BYTES = 64 * 1024
MAX_HEADER_BYTES = 16 * 1024


class UploadError(MiqaError, ValueError):
    """The body of an upload is malformed; nothing of it was kept (HTTP 400)."""


class UploadTooLarge(UploadError):
    """An upload passed the size limit; nothing of it was kept (HTTP 413)."""


@dataclass
class ReceivedUpload:
    """An upload received whole: its file, the name its sender gave, the form fields.

    ``has_file`` is false for a form that held no file (allowed only when asked:
    ``UploadReceiver(..., file_required=False)``); ``path`` is then an empty file.
    """

    path: Path
    filename: str | None
    fields: dict[str, list[str]] = field(default_factory=dict)
    has_file: bool = True


class UploadReceiver:
    """Write an upload's body to a new file in ``folder`` as its chunks arrive.

    Parameters
    ----------
    folder
        Where the file is made (the staging area; it must exist).
    limits
        ``max_upload_bytes`` bounds the body.
    content_type
        The request's Content-Type; ``multipart/form-data`` is parsed as a form.
    inbody
        The body is the file whatever the Content-Type (XNAT's ``inbody=true``).
    content_length
        The declared length, if any: refused at once when above the limit.
    file_required
        A form without a file is refused (the default); else it is received, its
        fields only (XNAT's import may name its files with ``src`` fields instead).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> receiver = UploadReceiver(folder, UploadLimits(), "multipart/form-data; boundary=xx")
    >>> for chunk in (b"--xx\\r\\nContent-Disposition: form-data; name=f; filename=a.zip",
    ...               b"\\r\\n\\r\\nPK..", b"..\\r\\n--xx--\\r\\n"):
    ...     receiver.feed(chunk)
    >>> upload = receiver.finish()
    >>> upload.filename, upload.path.read_bytes()
    ('a.zip', b'PK....')
    >>> import shutil; shutil.rmtree(folder)
    """

    def __init__(
        self,
        folder: Path,
        limits: UploadLimits | None = None,
        content_type: str | None = None,
        *,
        inbody: bool = False,
        content_length: int | None = None,
        file_required: bool = True,
    ) -> None:
        self.limits = limits or UploadLimits()
        self.file_required = file_required
        self.received = 0
        if content_length is not None and content_length > self.limits.max_upload_bytes:
            raise UploadTooLarge(self._too_large(f"its declared length, {content_length} bytes,"))
        message = Message()
        message["Content-Type"] = content_type or "application/octet-stream"
        boundary = message.get_param("boundary")
        multipart = message.get_content_type() == "multipart/form-data" and not inbody
        if multipart and not isinstance(boundary, str):
            raise UploadError(
                "The upload's Content-Type is multipart/form-data without a boundary; "
                "send the form as a client makes it, or the file alone with inbody=true."
            )
        fd, name = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=folder)
        self.path = Path(name)
        self._out: BinaryIO | None = os.fdopen(fd, "wb")
        self._form = _FormParser(str(boundary).encode("latin-1")) if multipart else None
        self._done = False

    def _too_large(self, what: str) -> str:
        limit = self.limits.max_upload_bytes
        return (
            f"The upload was refused: {what} passes the limit of {limit} bytes "
            f"({limit / (1 << 30):.3g} GiB). Split it into smaller archives, or raise "
            "the limit the server was started with."
        )

    def feed(self, chunk: bytes) -> None:
        """Take the next chunk of the body; refuse (and remove the file) when it is bad."""
        if self._out is None:
            raise UploadError("The upload was already finished or aborted; start a new one.")
        self.received += len(chunk)
        try:
            if self.received > self.limits.max_upload_bytes:
                raise UploadTooLarge(self._too_large("it"))
            if self._form is None:
                self._out.write(chunk)
            else:
                self._form.feed(chunk, self._out)
        except BaseException:
            self.abort()
            raise

    def finish(self) -> ReceivedUpload:
        """The body is complete: close the file and say what was received."""
        if self._out is None:
            raise UploadError("The upload was already finished or aborted; start a new one.")
        try:
            filename = None
            fields: dict[str, list[str]] = {}
            has_file = True
            if self._form is not None:
                self._form.close(self.file_required)
                filename, fields = self._form.filename, self._form.fields
                has_file = filename is not None
            self._out.close()
            self._out = None
        except BaseException:
            self.abort()
            raise
        return ReceivedUpload(self.path, filename, fields, has_file)

    def abort(self) -> None:
        """Stop receiving (the client went away, or a refusal): remove the partial file."""
        if self._out is not None:
            self._out.close()
            self._out = None
        self.path.unlink(missing_ok=True)


class _FormParser:
    """A ``multipart/form-data`` body parsed as it streams, in bounded memory."""

    def __init__(self, boundary: bytes) -> None:
        self.first = b"--" + boundary
        self.delimiter = b"\r\n--" + boundary
        self.state = "preamble"
        self.buffer = b""
        self.filename: str | None = None
        self.fields: dict[str, list[str]] = {}
        self._part: str | None = None  # "file", or the field's name
        self._value = bytearray()

    def feed(self, chunk: bytes, out: BinaryIO) -> None:
        self.buffer += chunk
        while True:
            if self.state == "preamble":
                # The first boundary may open the body with no CRLF before it.
                at = self.buffer.find(self.first)
                if at < 0:
                    self.buffer = self.buffer[-len(self.first) :]
                    return
                self.buffer = self.buffer[at + len(self.first) :]
                self.state = "after"
            elif self.state == "after":
                if len(self.buffer) < 2:
                    return
                if self.buffer.startswith(b"--"):
                    self.state, self.buffer = "end", b""
                    return
                if not self.buffer.startswith(b"\r\n"):
                    raise UploadError("The upload's form is malformed: a boundary ends badly.")
                self.buffer = self.buffer[2:]
                self.state = "headers"
            elif self.state == "headers":
                at = self.buffer.find(b"\r\n\r\n")
                if at < 0:
                    if len(self.buffer) > MAX_HEADER_BYTES:
                        raise UploadError(
                            "The upload's form has a part whose headers are too long."
                        )
                    return
                self._begin(self.buffer[:at].decode("utf-8", "replace"))
                self.buffer = self.buffer[at + 4 :]
                self.state = "body"
            elif self.state == "body":
                at = self.buffer.find(self.delimiter)
                if at < 0:
                    keep = len(self.delimiter) - 1
                    self._data(self.buffer[:-keep], out)
                    self.buffer = self.buffer[-keep:]
                    return
                self._data(self.buffer[:at], out)
                self._end()
                self.buffer = self.buffer[at + len(self.delimiter) :]
                self.state = "after"
            else:  # "end": the epilogue is ignored
                self.buffer = b""
                return

    def _begin(self, head: str) -> None:
        message = Message()
        for line in head.split("\r\n"):
            key, sep, value = line.partition(":")
            if sep:
                message[key.strip()] = value.strip()
        # get_filename also decodes RFC 2231's filename*=UTF-8''name.
        filename = message.get_filename()
        name = message.get_param("name", header="content-disposition")
        if isinstance(filename, str):
            if self.filename is not None:
                raise UploadError(
                    "The upload's form holds more than one file; send one archive per upload."
                )
            self.filename = filename
            self._part = "file"
        else:
            self._part = name if isinstance(name, str) else ""
            self._value = bytearray()

    def _data(self, data: bytes, out: BinaryIO) -> None:
        if not data:
            return
        if self._part == "file":
            out.write(data)
            return
        self._value += data
        if len(self._value) > MAX_FIELD_BYTES:
            raise UploadError(
                f"The upload's form field {self._part!r} is longer than {MAX_FIELD_BYTES} "
                "bytes; only the file may be large."
            )

    def _end(self) -> None:
        if self._part not in (None, "file"):
            self.fields.setdefault(str(self._part), []).append(
                self._value.decode("utf-8", "replace")
            )
        self._part = None

    def close(self, file_required: bool = True) -> None:
        if self.state != "end":
            raise UploadError(
                "The upload's form ended before its closing boundary (the upload was cut "
                "short); send it again."
            )
        if self.filename is None and file_required:
            raise UploadError(
                "The upload's form holds no file; send the archive as a file field, or "
                "the file alone as the body with inbody=true."
            )

"""Reading a request's body at the edge: bounded while reading, hashed as it arrives, never trusted.

A body is read in blocks, whether the client sent a Content-Length or chunked transfer encoding,
and the read stops as soon as it passes the service's limit, so an oversized request costs one
block of memory, not its size. Large bodies go to a spooled temporary file. S3's aws-chunked
encoding is checked as it streams: each chunk's signature (signed streaming) or the trailing
checksum (unsigned streaming), and the decoded length the client declared.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tempfile
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from emulation import sigv4
from emulation.sigv4 import Refusal

BLOCK = 64 * 1024
#: Bodies up to this size stay in memory; larger ones spill to a temporary file.
IN_MEMORY_BYTES = 1024 * 1024
_MAX_CHUNK_HEADER = 4096


class _Crc32:
    def __init__(self):
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


#: Trailing checksums S3 accepts that the standard library can compute, by trailer header.
_CHECKSUMS = {
    "x-amz-checksum-crc32": _Crc32,
    "x-amz-checksum-sha1": hashlib.sha1,
    "x-amz-checksum-sha256": hashlib.sha256,
}


@dataclass
class Body:
    """A body that has been read in full: where it is, its size and its SHA-256."""

    stream: BinaryIO
    size: int
    sha256: str

    def bytes(self) -> bytes:
        self.stream.seek(0)
        data = self.stream.read()
        self.stream.seek(0)
        return data


class _Limited:
    """The request stream, refusing to yield more than ``limit`` bytes."""

    def __init__(self, environ: dict, limit: int):
        self.stream = environ["wsgi.input"]
        self.limit = limit
        self.read_so_far = 0
        length = environ.get("CONTENT_LENGTH")
        self.chunked = bool(environ.get("wsgi.input_terminated")) or not length
        self.remaining = None if self.chunked else int(length)
        if self.remaining is not None and self.remaining > limit:
            raise _too_large(limit)
        if self.chunked and not environ.get("wsgi.input_terminated"):
            self.remaining = 0  # neither a length nor chunked: no body

    def read(self, size: int) -> bytes:
        if self.remaining is not None:
            size = min(size, self.remaining)
            if size <= 0:
                return b""
        data = self.stream.read(size)
        self.read_so_far += len(data)
        if self.remaining is not None:
            self.remaining -= len(data)
            if len(data) < size and self.remaining > 0:
                raise Refusal("bad_chunk", "The request body terminated unexpectedly")
        if self.read_so_far > self.limit:
            raise _too_large(self.limit)
        return data

    def read_exactly(self, size: int) -> bytes:
        parts = []
        while size > 0:
            data = self.read(size)
            if not data:
                raise Refusal("bad_chunk", "The request body terminated unexpectedly")
            parts.append(data)
            size -= len(data)
        return b"".join(parts)

    def readline(self) -> bytes:
        line = bytearray()
        while not line.endswith(b"\n"):
            byte = self.read(1)
            if not byte:
                break
            line += byte
            if len(line) > _MAX_CHUNK_HEADER:
                raise Refusal("bad_chunk", "An aws-chunked header line is too long")
        return bytes(line)


def _too_large(limit: int) -> Refusal:
    return Refusal("too_large", f"Request must be smaller than {limit} bytes.", limit=str(limit))


def _sink(expected_size: int | None) -> BinaryIO:
    if expected_size is not None and expected_size <= IN_MEMORY_BYTES:
        return io.BytesIO()
    return tempfile.SpooledTemporaryFile(max_size=IN_MEMORY_BYTES)


def read(environ: dict, limit: int) -> Body:
    """The whole body, at most ``limit`` bytes (else Refusal ``too_large``, before reading more)."""
    source = _Limited(environ, limit)
    if source.remaining is not None and source.remaining <= IN_MEMORY_BYTES:  # one read, one hash
        data = source.read_exactly(source.remaining) if source.remaining else b""
        return Body(io.BytesIO(data), len(data), hashlib.sha256(data).hexdigest())
    sink = _sink(source.remaining)
    digest = hashlib.sha256()
    size = 0
    while data := source.read(BLOCK):
        digest.update(data)
        sink.write(data)
        size += len(data)
    sink.seek(0)
    return Body(sink, size, digest.hexdigest())


def read_aws_chunked(
    environ: dict, limit: int, headers, signer: sigv4.ChunkSigner | None, decoded_length: int | None
) -> Body:
    """An aws-chunked body, verified as it streams; kept encoded (the service decodes it).

    ``signer`` checks chunk (and trailer) signatures for STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER];
    None means unsigned streaming, where the trailing checksum is what protects the data.
    """
    source = _Limited(environ, limit)
    sink = _sink(None)
    trailer_names = [n.strip().lower() for n in (headers.get("x-amz-trailer") or "").split(",") if n.strip()]
    checksums = {name: _CHECKSUMS[name]() for name in trailer_names if name in _CHECKSUMS}
    decoded = 0
    while True:
        line = source.readline()
        sink.write(line)
        size_text, _, extension = line.strip().partition(b";")
        try:
            size = int(size_text, 16)
        except ValueError:
            raise Refusal("bad_chunk", "An aws-chunked chunk header is not valid") from None
        data_hash = hashlib.sha256()
        remaining = size
        while remaining:
            data = source.read_exactly(min(remaining, BLOCK))
            remaining -= len(data)
            data_hash.update(data)
            for checksum in checksums.values():
                checksum.update(data)
            sink.write(data)
        decoded += size
        if signer is not None:
            name, _, signature = extension.decode("latin-1").partition("=")
            if name != "chunk-signature":
                raise Refusal("bad_signature", "a chunk has no signature")
            signer.check_chunk(data_hash.hexdigest(), signature)
        if size == 0:
            break
        crlf = source.read_exactly(2)
        sink.write(crlf)
        if crlf != b"\r\n":
            raise Refusal("bad_chunk", "An aws-chunked chunk does not end with CRLF")
    trailers: dict[str, str] = {}
    trailer_lines: list[str] = []
    while line := source.readline():
        sink.write(line)
        text = line.decode("latin-1").strip()
        if not text:
            break
        name, _, value = text.partition(":")
        if name.lower() == "x-amz-trailer-signature":
            if signer is not None:
                signer.check_trailer(
                    hashlib.sha256("".join(trailer_lines).encode()).hexdigest(), value.strip()
                )
            continue
        trailers[name.lower()] = value.strip()
        trailer_lines.append(f"{name.lower()}:{value.strip()}\n")
    if decoded_length is not None and decoded != decoded_length:
        raise Refusal("bad_chunk", "The decoded length does not match x-amz-decoded-content-length")
    for name in trailer_names:
        if name not in trailers:
            raise Refusal("bad_chunk", f"The trailer {name} was declared but not sent")
    for name, checksum in checksums.items():
        if base64.b64encode(checksum.digest()).decode() != trailers[name]:
            algorithm = name.removeprefix("x-amz-checksum-").upper()
            raise Refusal(
                "bad_checksum", f"The {algorithm} you specified did not match the calculated checksum."
            )
    size = sink.tell()
    sink.seek(0)
    return Body(sink, size, sigv4.EMPTY_SHA256)


def hand_on(environ: dict, body: Body) -> None:
    """Make ``body`` the request's input for whoever serves it (moto or ours), as a sized stream."""
    body.stream.seek(0)
    environ["wsgi.input"] = body.stream
    environ["CONTENT_LENGTH"] = str(body.size)
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ["wsgi.input_terminated"] = False

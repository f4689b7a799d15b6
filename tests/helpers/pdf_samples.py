"""PDFs written byte by byte for the ingest tests: text pages, encryption, flate bombs."""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

DATA = Path(__file__).with_name("data")

# The padding string of the PDF standard security handler (ISO 32000-1, 7.6.3.3).
_PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")
_FILE_ID = bytes.fromhex("5363c3b575744465736b5069636b6c65")


def build_pdf(objects: list[bytes], trailer_extra: bytes = b"") -> bytes:
    """A PDF whose objects 1..n are `objects` (object 1 the catalog), with a correct xref."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R %s>>\n" % (len(objects) + 1, trailer_extra)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def stream(data: bytes, extra: bytes = b"") -> bytes:
    """A stream object's body."""
    return b"<< /Length %d %s>>\nstream\n%s\nendstream" % (len(data), extra, data)


def _escape(text: str) -> bytes:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("latin-1")


def _content(text: str) -> bytes:
    lines = text.split("\n")
    ops = [b"BT /F1 12 Tf 14 TL 72 720 Td"]
    ops += [b"(%s) '" % _escape(line) for line in lines]
    ops.append(b"ET")
    return b"\n".join(ops)


def _page_objects(pages: list[str], encrypt_key: bytes | None) -> list[bytes]:
    count = len(pages)
    kids = b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for index, text in enumerate(pages):
        content_number = 5 + 2 * index
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % content_number
        )
        data = _content(text)
        if encrypt_key is not None:
            data = _rc4(_object_key(encrypt_key, content_number), data)
        objects.append(stream(data))
    return objects


def text_pdf(pages: list[str]) -> bytes:
    """A PDF with one page per string (Helvetica, a line per "\\n"); "" gives an empty page."""
    return build_pdf(_page_objects(pages, None))


def encrypted_pdf(pages: list[str], user_password: str, owner_password: str = "owner") -> bytes:
    """`text_pdf` encrypted with the standard security handler, RC4 40-bit (revision 2)."""
    user = (user_password.encode("latin-1") + _PAD)[:32]
    owner_key = hashlib.md5((owner_password.encode("latin-1") + _PAD)[:32]).digest()[:5]
    o_value = _rc4(owner_key, user)
    permissions = -4
    key = hashlib.md5(
        user + o_value + permissions.to_bytes(4, "little", signed=True) + _FILE_ID
    ).digest()[:5]
    u_value = _rc4(key, _PAD)
    objects = _page_objects(pages, key)
    objects.append(
        b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P %d >>"
        % (o_value.hex().encode(), u_value.hex().encode(), permissions)
    )
    encrypt_ref = b"/Encrypt %d 0 R /ID [<%s> <%s>] " % (
        len(objects),
        _FILE_ID.hex().encode(),
        _FILE_ID.hex().encode(),
    )
    return build_pdf(objects, encrypt_ref)


def _object_key(key: bytes, number: int, generation: int = 0) -> bytes:
    salt = number.to_bytes(3, "little") + generation.to_bytes(2, "little")
    return hashlib.md5(key + salt).digest()[: min(len(key) + 5, 16)]


def _rc4(key: bytes, data: bytes) -> bytes:
    state = list(range(256))
    j = 0
    for i in range(256):
        j = (j + state[i] + key[i % len(key)]) % 256
        state[i], state[j] = state[j], state[i]
    out = bytearray()
    i = j = 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + state[i]) % 256
        state[i], state[j] = state[j], state[i]
        out.append(byte ^ state[(state[i] + state[j]) % 256])
    return bytes(out)


def flate_bomb_pdf(inflated_bytes: int = 1 << 30) -> bytes:
    """A one-page PDF whose content stream, flate-encoded twice, inflates to `inflated_bytes`.

    Writing it takes seconds (zlib must see every byte), so the tests use the copy saved as
    data/flate_bomb.pdf (2 KB, 1 GiB of spaces inside); this is how it was made.
    """
    compressor = zlib.compressobj(9)
    block = b" " * (1 << 24)
    parts = [compressor.compress(block) for _ in range(inflated_bytes // len(block))]
    once = b"".join(parts) + compressor.flush()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        stream(zlib.compress(once, 9), b"/Filter [/FlateDecode /FlateDecode] "),
    ]
    return build_pdf(objects)


def many_pages_pdf(count: int, text: str = "same page") -> bytes:
    """A PDF of `count` pages that all share one content stream (small however many pages)."""
    kids = b" ".join(b"%d 0 R" % (5 + i) for i in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        stream(_content(text)),
    ]
    objects += [
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 3 0 R >> >> /Contents 4 0 R >>"
    ] * count
    return build_pdf(objects)

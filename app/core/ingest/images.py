"""Image ingest: check size from the header, decode with Pillow, store an upright RGB blob."""

from __future__ import annotations

import io
import logging
import struct

from PIL import Image, ImageOps

from app.core.ingest.common import BlobSink, failed, human_size, put_blob, quoted
from app.core.ingest.sniff import Sniffed
from app.core.messages import Attachment, AttachmentKind, AttachmentStatus

log = logging.getLogger(__name__)

#: Largest image accepted, in pixels: far below Pillow's decompression-bomb limit (~89 MP), and
#: far above what the vision encoder uses (it tiles to a few 336-pixel squares).
MAX_IMAGE_PIXELS = 40_000_000
#: Largest image file read at all.
MAX_IMAGE_BYTES = 64_000_000

_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "gif": "GIF", "bmp": "BMP"}
_EXIF_ORIENTATION = 0x0112
_TURNING_ORIENTATIONS = {2, 3, 4, 5, 6, 7, 8}  # the values exif_transpose acts on
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def ingest_image(
    data: bytes, sniffed: Sniffed, name: str, source_path: str, blobs: BlobSink
) -> Attachment:
    """Turn an image file's bytes into a stored, upright RGB image attachment.

    Args:
        data: the whole file (at most `MAX_IMAGE_BYTES`).
        sniffed: its sniffed format (one of PNG, JPEG, WebP, GIF, BMP).
        name: the file's base name.
        source_path: its absolute path.
        blobs: where the image is stored.

    Returns:
        A READY attachment with the upright width and height, or an ERROR one saying why not.
    """
    label = sniffed.label
    size = header_size(data, sniffed.fmt)
    if size is None or 0 in size:
        return _damaged(name, source_path, sniffed, "its header is missing or cut short")
    if size[0] * size[1] > MAX_IMAGE_PIXELS:
        return _too_big(name, source_path, sniffed, size)
    try:
        with Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[sniffed.fmt]]) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                return _too_big(name, source_path, sniffed, image.size)
            # Not n_frames: counting frames walks the whole animation, which can be huge.
            animated = bool(getattr(image, "is_animated", False))
            image.load()  # decodes the first frame; a truncated file fails here, not later
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
            upright = ImageOps.exif_transpose(image)
            rgb, had_alpha = _to_rgb(upright)
            keep_original = (
                sniffed.fmt in ("png", "jpeg")
                and image.mode == "RGB"
                and not had_alpha
                and orientation not in _TURNING_ORIENTATIONS
                and not animated
            )
    except Exception as exc:  # Pillow's plugins raise many exception types on bad bytes
        log.info("cannot decode %s as %s: %r", source_path, label, exc)
        return _damaged(name, source_path, sniffed, "it looks damaged or cut short")

    if keep_original:
        stored, mime = data, sniffed.mime
    else:
        buffer = io.BytesIO()
        rgb.save(buffer, format="PNG")
        stored, mime = buffer.getvalue(), "image/png"
    sha = put_blob(blobs, stored)

    notes = []
    if orientation in _TURNING_ORIENTATIONS:
        notes.append("Turned upright as its camera data says.")
    if had_alpha:
        notes.append("Transparent parts are shown on white.")
    if animated:
        notes.append("It is animated; only its first frame is used.")
    return Attachment(
        name=name,
        kind=AttachmentKind.IMAGE,
        status=AttachmentStatus.READY,
        detail=" ".join(notes),
        sha256=sha,
        mime=mime,
        size=len(stored),
        width=rgb.width,
        height=rgb.height,
        source_path=source_path,
    )


def header_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """Read (width, height) from an image header without decoding any pixels.

    Args:
        data: the file's bytes.
        fmt: the sniffed format key.

    Returns:
        The stored (not EXIF-rotated) size, or None when the header is malformed.
    """
    try:
        if fmt == "png":
            if data[12:16] != b"IHDR":
                return None
            return struct.unpack(">II", data[16:24])
        if fmt == "gif":
            return struct.unpack("<HH", data[6:10])
        if fmt == "bmp":
            if int.from_bytes(data[14:18], "little") == 12:  # OS/2 header: 16-bit sizes
                return struct.unpack("<HH", data[18:22])
            width, height = struct.unpack("<ii", data[18:26])
            return (width, abs(height)) if width > 0 else None  # negative height: top-down rows
        if fmt == "webp":
            return _webp_size(data)
        if fmt == "jpeg":
            return _jpeg_size(data)
    except struct.error:
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and data[20:21] == b"\x2f":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        return width, int.from_bytes(data[27:30], "little") + 1
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    # Walk the marker segments up to the first start-of-frame, which holds the size.
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker in _JPEG_SOF:
            if pos + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        if length < 2:
            return None
        pos += 2 + length
    return None


def _to_rgb(image: Image.Image) -> tuple[Image.Image, bool]:
    """Convert to RGB, compositing any transparency on white; says whether there was any."""
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if not has_alpha:
        return (image if image.mode == "RGB" else image.convert("RGB")), False
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB"), True


def _damaged(name: str, source_path: str, sniffed: Sniffed, why: str) -> Attachment:
    sentence = f"{quoted(name)} is {sniffed.label} but cannot be read: {why}."
    return failed(name, source_path, sentence, AttachmentKind.IMAGE, sniffed.mime)


def _too_big(name: str, source_path: str, sniffed: Sniffed, size: tuple[int, int]) -> Attachment:
    megapixels = size[0] * size[1] / 1_000_000
    sentence = (
        f"{quoted(name)} is {size[0]}×{size[1]} pixels ({megapixels:.0f} megapixels); "
        f"Scout Desk takes images up to {MAX_IMAGE_PIXELS // 1_000_000} megapixels."
    )
    return failed(name, source_path, sentence, AttachmentKind.IMAGE, sniffed.mime)


def too_large_file(name: str, source_path: str, sniffed: Sniffed, file_size: int) -> Attachment:
    """The attachment for an image file too large to read at all."""
    sentence = (
        f"{quoted(name)} is {human_size(file_size)}; Scout Desk reads image files up to "
        f"{human_size(MAX_IMAGE_BYTES)}."
    )
    return failed(name, source_path, sentence, AttachmentKind.IMAGE, sniffed.mime)

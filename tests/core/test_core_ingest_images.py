"""Image ingest with real files written by Pillow: upright RGB blobs, sizes, limits, damage."""

from __future__ import annotations

import io
import random
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from app.core.ingest import MAX_IMAGE_PIXELS, ingest_path
from app.core.ingest.images import header_size
from app.core.messages import AttachmentKind, AttachmentStatus
from app.store.blobs import BlobStore

RED = (255, 0, 0)
BLUE = (0, 0, 255)


def _only(attachments: list) -> object:
    assert len(attachments) == 1
    return attachments[0]


def _blob_image(blobs: BlobStore, sha: str | None) -> Image.Image:
    assert sha is not None
    image = Image.open(io.BytesIO(blobs.read(sha)))
    image.load()
    return image


def _noise(size: tuple[int, int], seed: int = 1) -> Image.Image:
    """An image that does not compress, so cutting its file in half loses real pixel data."""
    rng = random.Random(seed)
    return Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose IHDR claims width×height, with no pixel data: nothing big is ever allocated."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    crc = struct.pack(">I", zlib.crc32(chunk))
    iend = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + crc + iend)


def test_upright_rgb_jpeg_is_stored_byte_for_byte(files: Path, blobs: BlobStore) -> None:
    path = files / "photo.jpg"
    Image.new("RGB", (64, 48), BLUE).save(path, "JPEG", quality=90)

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.READY, att.detail
    assert att.kind is AttachmentKind.IMAGE
    assert (att.width, att.height, att.mime) == (64, 48, "image/jpeg")
    assert blobs.read(att.sha256) == path.read_bytes()
    assert att.size == path.stat().st_size
    assert att.name == "photo.jpg"
    assert att.source_path == str(path.absolute())


def test_exif_orientation_6_is_turned_upright(files: Path, blobs: BlobStore) -> None:
    # Stored 80×40 landscape with a red left half; orientation 6 means "turn 90° clockwise to view",
    # so the upright image is 40×80 with the red half on top.
    stored = Image.new("RGB", (80, 40), BLUE)
    stored.paste(RED, (0, 0, 40, 40))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = files / "rotated.jpg"
    stored.save(path, "JPEG", exif=exif, quality=95)

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.READY, att.detail
    assert (att.width, att.height) == (40, 80)
    assert att.mime == "image/png"
    assert "upright" in att.detail
    upright = _blob_image(blobs, att.sha256)
    assert upright.mode == "RGB"
    assert upright.size == (40, 80)
    top, bottom = upright.getpixel((20, 10)), upright.getpixel((20, 70))
    assert top[0] > 200 and top[2] < 60, top
    assert bottom[2] > 200 and bottom[0] < 60, bottom
    assert upright.getexif().get(0x0112) in (None, 1)


def test_png_alpha_is_composited_on_white(files: Path, blobs: BlobStore) -> None:
    image = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    image.putpixel((5, 5), (255, 0, 0, 255))
    image.putpixel((6, 6), (255, 0, 0, 128))
    path = files / "logo.png"
    image.save(path)

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.READY, att.detail
    assert "white" in att.detail
    stored = _blob_image(blobs, att.sha256)
    assert stored.mode == "RGB"
    assert stored.getpixel((0, 0)) == (255, 255, 255)
    assert stored.getpixel((5, 5)) == (255, 0, 0)
    half = stored.getpixel((6, 6))
    assert half[0] == 255 and 120 < half[1] < 135, half


def test_grayscale_png_becomes_rgb(files: Path, blobs: BlobStore) -> None:
    path = files / "scan.png"
    Image.new("L", (12, 7), 200).save(path)

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.READY
    stored = _blob_image(blobs, att.sha256)
    assert (stored.mode, stored.size, stored.getpixel((0, 0))) == ("RGB", (12, 7), (200,) * 3)


def test_animated_gif_keeps_its_first_frame(files: Path, blobs: BlobStore) -> None:
    frames = [Image.new("RGB", (16, 8), color) for color in (RED, BLUE, (0, 255, 0))]
    path = files / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.READY, att.detail
    assert (att.width, att.height, att.mime) == (16, 8, "image/png")
    assert "only its first frame is used" in att.detail
    assert _blob_image(blobs, att.sha256).getpixel((3, 3)) == RED


def test_animated_png_is_reencoded_as_its_first_frame(files: Path, blobs: BlobStore) -> None:
    frames = [Image.new("RGB", (10, 6), color) for color in (BLUE, RED)]
    path = files / "anim.png"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.READY, att.detail
    assert blobs.read(att.sha256) != path.read_bytes()
    stored = _blob_image(blobs, att.sha256)
    assert not getattr(stored, "is_animated", False)
    assert stored.getpixel((0, 0)) == BLUE


@pytest.mark.parametrize(("fmt", "suffix"), [("WEBP", ".webp"), ("BMP", ".bmp")])
def test_webp_and_bmp_are_accepted(files: Path, blobs: BlobStore, fmt: str, suffix: str) -> None:
    path = files / f"picture{suffix}"
    Image.new("RGB", (30, 20), RED).save(path, fmt, **({"lossless": True} if fmt == "WEBP" else {}))

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.READY, att.detail
    assert (att.width, att.height, att.mime) == (30, 20, "image/png")
    assert _blob_image(blobs, att.sha256).getpixel((1, 1)) == RED


def test_a_png_named_jpg_is_judged_by_content(files: Path, blobs: BlobStore) -> None:
    path = files / "really-a-png.jpg"
    Image.new("RGB", (9, 9), RED).save(path, "PNG")

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.READY
    assert att.mime == "image/png"
    assert blobs.read(att.sha256) == path.read_bytes()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image_is_an_error_naming_the_file(
    files: Path, blobs: BlobStore, fmt: str
) -> None:
    buffer = io.BytesIO()
    _noise((120, 120)).save(buffer, fmt)
    path = files / f"cut.{fmt.lower()}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.ERROR
    assert att.kind is AttachmentKind.IMAGE
    assert "“cut." in att.detail and "damaged or cut short" in att.detail
    assert att.sha256 is None
    assert not any(p.is_file() for p in blobs.root.rglob("*"))


def test_random_bytes_named_jpg_are_refused(files: Path, blobs: BlobStore) -> None:
    path = files / "holiday.jpg"
    path.write_bytes(random.Random(7).randbytes(5000))

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.ERROR
    assert att.kind is AttachmentKind.IMAGE
    assert "“holiday.jpg”" in att.detail and "named like an image" in att.detail


@pytest.mark.parametrize(
    ("width", "height", "megapixels"), [(10_000, 5_000, 50), (12_000, 10_000, 120)]
)
def test_header_over_the_pixel_cap_is_refused_without_decoding(
    files: Path, blobs: BlobStore, width: int, height: int, megapixels: int
) -> None:
    path = files / "huge.png"
    _png_header_only(path, width, height)

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.ERROR
    assert f"“huge.png” is {width}×{height} pixels ({megapixels} megapixels)" in att.detail
    assert f"up to {MAX_IMAGE_PIXELS // 1_000_000} megapixels" in att.detail


def test_jpeg_header_over_the_pixel_cap_is_refused(files: Path, blobs: BlobStore) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), RED).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 8000, 9000)  # height, width
    path = files / "liar.jpg"
    path.write_bytes(bytes(data))

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.ERROR
    assert "9000×8000 pixels (72 megapixels)" in att.detail


def test_png_claiming_zero_width_is_damaged(files: Path, blobs: BlobStore) -> None:
    path = files / "zero.png"
    _png_header_only(path, 0, 10)

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.ERROR
    assert "“zero.png” is a PNG image but cannot be read" in att.detail


@pytest.mark.parametrize(
    ("content", "label"),
    [
        (b"II*\x00" + bytes(100), "a TIFF image"),
        (b"\x00\x00\x00\x18ftypheic" + bytes(100), "a HEIC image"),
        (b"\x00\x00\x00\x1cftypavif" + bytes(100), "an AVIF image"),
    ],
)
def test_unsupported_image_formats_are_refused_with_advice(
    files: Path, blobs: BlobStore, content: bytes, label: str
) -> None:
    path = files / "camera.img"
    path.write_bytes(content)

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.ERROR
    assert att.kind is AttachmentKind.IMAGE
    assert f"“camera.img” is {label};" in att.detail
    assert "PNG, JPEG, WebP, GIF and BMP" in att.detail


def test_real_tiff_is_refused(files: Path, blobs: BlobStore) -> None:
    path = files / "scan.tif"
    Image.new("RGB", (5, 5), RED).save(path, "TIFF")

    att = _only(ingest_path(path, blobs))

    assert att.status is AttachmentStatus.ERROR
    assert "“scan.tif” is a TIFF image" in att.detail


@pytest.mark.parametrize(
    ("fmt", "key", "options"),
    [
        ("PNG", "png", {}),
        ("JPEG", "jpeg", {}),
        ("JPEG", "jpeg", {"progressive": True}),
        ("GIF", "gif", {}),
        ("BMP", "bmp", {}),
        ("WEBP", "webp", {"lossless": True}),
        ("WEBP", "webp", {"quality": 50}),
    ],
)
def test_header_size_agrees_with_pillow(fmt: str, key: str, options: dict) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (321, 123), BLUE).save(buffer, fmt, **options)
    assert header_size(buffer.getvalue(), key) == (321, 123)


def test_webp_with_alpha_uses_the_extended_header() -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (77, 33), (1, 2, 3, 100)).save(buffer, "WEBP")
    assert buffer.getvalue()[12:16] == b"VP8X"
    assert header_size(buffer.getvalue(), "webp") == (77, 33)


def test_a_full_blob_store_is_a_clear_error(files: Path) -> None:
    class FullDisk:
        def put_bytes(self, data: bytes) -> str:
            raise OSError(28, "No space left on device")

        def put_file(self, path: Path) -> str:
            raise OSError(28, "No space left on device")

    path = files / "ok.png"
    Image.new("RGB", (4, 4), RED).save(path)

    att = _only(ingest_path(path, FullDisk()))

    assert att.status is AttachmentStatus.ERROR
    assert att.detail.startswith("“ok.png” could not be saved:")
    assert "No space left on device" in att.detail

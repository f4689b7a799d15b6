"""Tell what a file is from its first bytes (magic numbers), never from its name."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

#: How many leading bytes `sniff` looks at (and the text checks scan for NULs).
HEAD_BYTES = 8192


class Family(StrEnum):
    """What ingest does with a sniffed file."""

    IMAGE = "image"  # an allowed image format: decode it
    OTHER_IMAGE = "other_image"  # an image format Scout Desk refuses, with a reason
    VIDEO = "video"
    AUDIO = "audio"
    PDF = "pdf"
    ZIP = "zip"  # DOCX or some other archive: look inside
    UNKNOWN = "unknown"  # maybe text: the text checks decide


@dataclass(frozen=True)
class Sniffed:
    """The verdict on a file's first bytes.

    Attributes:
        family: what ingest does with it.
        fmt: a short format key ("png", "jpeg", "mp4", ...; "" when unknown).
        mime: the media type.
        label: how the format is named in sentences ("a TIFF image").
    """

    family: Family
    fmt: str = ""
    mime: str = "application/octet-stream"
    label: str = ""


_UNKNOWN = Sniffed(Family.UNKNOWN)
_JP2 = Sniffed(Family.OTHER_IMAGE, "jp2", "image/jp2", "a JPEG 2000 image")
_JXL = Sniffed(Family.OTHER_IMAGE, "jxl", "image/jxl", "a JPEG XL image")

_SIMPLE_MAGIC: tuple[tuple[bytes, Sniffed], ...] = (
    (b"\x89PNG\r\n\x1a\n", Sniffed(Family.IMAGE, "png", "image/png", "a PNG image")),
    (b"\xff\xd8\xff", Sniffed(Family.IMAGE, "jpeg", "image/jpeg", "a JPEG image")),
    (b"GIF87a", Sniffed(Family.IMAGE, "gif", "image/gif", "a GIF image")),
    (b"GIF89a", Sniffed(Family.IMAGE, "gif", "image/gif", "a GIF image")),
    (b"II*\x00", Sniffed(Family.OTHER_IMAGE, "tiff", "image/tiff", "a TIFF image")),
    (b"MM\x00*", Sniffed(Family.OTHER_IMAGE, "tiff", "image/tiff", "a TIFF image")),
    (b"8BPS", Sniffed(Family.OTHER_IMAGE, "psd", "image/vnd.adobe.photoshop", "a Photoshop file")),
    (b"\x00\x00\x01\x00", Sniffed(Family.OTHER_IMAGE, "ico", "image/x-icon", "an icon file")),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", _JP2),
    (b"\xff\x4f\xff\x51", _JP2),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", _JXL),
    (b"\xff\x0a", _JXL),
    (b"%PDF-", Sniffed(Family.PDF, "pdf", "application/pdf", "a PDF document")),
    (b"PK\x03\x04", Sniffed(Family.ZIP, "zip", "application/zip", "a ZIP archive")),
    (b"PK\x05\x06", Sniffed(Family.ZIP, "zip", "application/zip", "a ZIP archive")),
    (b"ID3", Sniffed(Family.AUDIO, "mp3", "audio/mpeg", "an MP3 audio file")),
    (b"OggS", Sniffed(Family.AUDIO, "ogg", "audio/ogg", "an Ogg audio file")),
    (b"fLaC", Sniffed(Family.AUDIO, "flac", "audio/flac", "a FLAC audio file")),
    (b"FLV\x01", Sniffed(Family.VIDEO, "flv", "video/x-flv", "a Flash video")),
    (b"\x00\x00\x01\xba", Sniffed(Family.VIDEO, "mpeg", "video/mpeg", "an MPEG video")),
    (
        b"\x30\x26\xb2\x75\x8e\x66\xcf\x11",
        Sniffed(Family.VIDEO, "wmv", "video/x-ms-wmv", "a Windows Media video"),
    ),
)
_MPEG_TS = Sniffed(Family.VIDEO, "ts", "video/mp2t", "an MPEG transport stream video")
_TS_PACKET = 188
# M3U/M3U8 playlists (HLS) are text that names media elsewhere, often on the network.
_PLAYLIST_MAGIC = (b"#EXTM3U", b"\xef\xbb\xbf#EXTM3U")

_RIFF: dict[bytes, Sniffed] = {
    b"WEBP": Sniffed(Family.IMAGE, "webp", "image/webp", "a WebP image"),
    b"AVI ": Sniffed(Family.VIDEO, "avi", "video/x-msvideo", "an AVI video"),
    b"WAVE": Sniffed(Family.AUDIO, "wav", "audio/wav", "a WAV audio file"),
}

# ISO base media files share the `ftyp` box with still-image formats; the brand tells them apart.
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P "}
# QuickTime files from before `ftyp` existed start with one of these top-level atoms.
_QUICKTIME_ATOMS = {b"moov", b"mdat", b"wide", b"pnot"}

# Windows BMP info-header sizes (OS/2 12 .. BITMAPV5HEADER 124); "BM" alone is too weak a sign.
_BMP_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}


def sniff(head: bytes) -> Sniffed:
    """Identify a file from its first bytes.

    Args:
        head: the file's first bytes (`HEAD_BYTES` is plenty; 32 suffice for every format here).

    Returns:
        The verdict; `Family.UNKNOWN` means "not a known binary format", for the text checks.
    """
    for magic, verdict in _SIMPLE_MAGIC:
        if head.startswith(magic):
            return verdict
    if head.startswith(b"RIFF") and len(head) >= 12:
        return _RIFF.get(head[8:12], _UNKNOWN)
    if head[4:8] == b"ftyp":
        return _sniff_ftyp(head[8:12])
    if head[4:8] in _QUICKTIME_ATOMS:
        return Sniffed(Family.VIDEO, "mov", "video/quicktime", "a QuickTime video")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        # EBML: WebM declares its DocType near the start; everything else is Matroska.
        if b"webm" in head[:64]:
            return Sniffed(Family.VIDEO, "webm", "video/webm", "a WebM video")
        return Sniffed(Family.VIDEO, "mkv", "video/x-matroska", "a Matroska video")
    if all(head[i : i + 1] == b"\x47" for i in range(0, 3 * _TS_PACKET, _TS_PACKET)):
        return _MPEG_TS  # a sync byte at the start of three packets in a row
    if _looks_like_bmp(head):
        return Sniffed(Family.IMAGE, "bmp", "image/bmp", "a BMP image")
    return _UNKNOWN


def _sniff_ftyp(brand: bytes) -> Sniffed:
    if brand in _HEIF_BRANDS:
        return Sniffed(Family.OTHER_IMAGE, "heic", "image/heic", "a HEIC image")
    if brand in _AVIF_BRANDS:
        return Sniffed(Family.OTHER_IMAGE, "avif", "image/avif", "an AVIF image")
    if brand in _AUDIO_BRANDS:
        return Sniffed(Family.AUDIO, "m4a", "audio/mp4", "an MPEG-4 audio file")
    if brand == b"qt  ":
        return Sniffed(Family.VIDEO, "mov", "video/quicktime", "a QuickTime video")
    return Sniffed(Family.VIDEO, "mp4", "video/mp4", "an MP4 video")


def _looks_like_bmp(head: bytes) -> bool:
    if not head.startswith(b"BM") or len(head) < 26:
        return False
    reserved_zero = head[6:10] == b"\x00\x00\x00\x00"
    info_size = int.from_bytes(head[14:18], "little")
    return reserved_zero and info_size in _BMP_HEADER_SIZES


def is_playlist(head: bytes) -> bool:
    """Whether a file is an M3U/HLS playlist (text naming media elsewhere, never a video)."""
    return head.lstrip(b" \t\r\n").startswith(_PLAYLIST_MAGIC)

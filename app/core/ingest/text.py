"""Text ingest: refuse binaries, decode UTF-8/UTF-16 or a Windows fallback, store UTF-8."""

from __future__ import annotations

from pathlib import PurePath

from app.core.ingest.common import BlobSink, failed, human_size, kind_hint, put_blob, quoted
from app.core.ingest.sniff import HEAD_BYTES
from app.core.messages import Attachment, AttachmentKind, AttachmentStatus
from app.core.settings import IngestLimits

#: Largest text file accepted by default (Settings → Limits changes it); what does not fit the
#: prompt goes chunk by chunk.
MAX_TEXT_BYTES = IngestLimits().max_text_bytes

_BOMS: tuple[tuple[bytes, str, str], ...] = (
    # UTF-32 first: its little-endian BOM starts with UTF-16's.
    (b"\xff\xfe\x00\x00", "utf-32", "UTF-32"),
    (b"\x00\x00\xfe\xff", "utf-32", "UTF-32"),
    (b"\xef\xbb\xbf", "utf-8-sig", "UTF-8"),
    (b"\xff\xfe", "utf-16", "UTF-16"),
    (b"\xfe\xff", "utf-16", "UTF-16"),
)

# The name may refine the subtype once the content has proved to be text.
_MIME_BY_SUFFIX = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".json": "application/json",
    ".jsonl": "application/jsonl",
    ".xml": "application/xml",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".toml": "application/toml",
    ".html": "text/html",
    ".htm": "text/html",
    ".css": "text/css",
    ".py": "text/x-python",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".ts": "text/x-typescript",
    ".c": "text/x-c",
    ".h": "text/x-c",
    ".cc": "text/x-c++",
    ".cpp": "text/x-c++",
    ".hpp": "text/x-c++",
    ".java": "text/x-java",
    ".go": "text/x-go",
    ".rs": "text/x-rust",
    ".sh": "text/x-shellscript",
    ".sql": "application/sql",
}

# Control characters that real text files contain; any other C0 control suggests binary data.
_TEXT_CONTROLS = {"\t", "\n", "\r", "\f", "\v", "\x1b", "\x08"}
_MAX_CONTROL_SHARE = 0.02


def has_bom(head: bytes) -> bool:
    """Whether the file starts with a Unicode byte-order mark (UTF-16/32 text holds NUL bytes)."""
    return any(head.startswith(bom) for bom, _, _ in _BOMS)


def looks_binary(head: bytes) -> bool:
    """A NUL byte in the first `HEAD_BYTES` without a BOM: what git and grep call binary."""
    return not has_bom(head) and b"\x00" in head[:HEAD_BYTES]


def binary_error(name: str, source_path: str) -> Attachment:
    """The attachment for a file that is not text and not a format Scout Desk knows."""
    hint = kind_hint(name)
    if hint in (AttachmentKind.IMAGE, AttachmentKind.VIDEO):
        named_like = "an image" if hint is AttachmentKind.IMAGE else "a video"
        sentence = (
            f"{quoted(name)} is named like {named_like} but its content is not in any format "
            "Scout Desk knows; it looks like a binary file."
        )
        return failed(name, source_path, sentence, hint)
    sentence = (
        f"{quoted(name)} looks like a binary file; Scout Desk reads images, text files, PDF "
        "and Word documents."
    )
    return failed(name, source_path, sentence, AttachmentKind.DOCUMENT)


def too_large_error(
    name: str, source_path: str, file_size: int, limit: int = MAX_TEXT_BYTES
) -> Attachment:
    """The attachment for a text file over `limit` (the text file limit set in Settings)."""
    sentence = (
        f"{quoted(name)} is {human_size(file_size)}; Scout Desk reads text files up to "
        f"{human_size(limit)} (the text file limit, set in Settings → Limits)."
    )
    return failed(name, source_path, sentence, AttachmentKind.TEXT, "text/plain")


def ingest_text(data: bytes, name: str, source_path: str, blobs: BlobSink) -> Attachment:
    """Decode a text file and store it as a UTF-8 blob with Unix line endings.

    Args:
        data: the whole file (within the text limit; the caller checked for binaries).
        name: the file's base name.
        source_path: its absolute path.
        blobs: where the text is stored.

    Returns:
        A READY TEXT attachment (whose `detail` notes a non-UTF-8 decoding), or an ERROR one.
    """
    text, fallback = decode_text(data)
    if text is None:
        return binary_error(name, source_path)
    if not text.strip():
        sentence = f"{quoted(name)} has no text in it."
        return failed(name, source_path, sentence, AttachmentKind.TEXT, "text/plain")
    # A UTF-8 file without a BOM or CR is stored as read: no second copy of a big file.
    plain_utf8 = not fallback and not has_bom(data) and b"\r" not in data
    stored = data if plain_utf8 else text.encode("utf-8")
    del text
    sha = put_blob(blobs, stored)
    return Attachment(
        name=name,
        kind=AttachmentKind.TEXT,
        status=AttachmentStatus.READY,
        detail=fallback_note(name, fallback),
        sha256=sha,
        mime=_MIME_BY_SUFFIX.get(PurePath(name).suffix.lower(), "text/plain"),
        size=len(stored),
        source_path=source_path,
    )


def decode_text(data: bytes) -> tuple[str | None, str]:
    """Decode a file's bytes as text, or decide that it is not text.

    Args:
        data: the bytes (the caller has capped their size).

    Returns:
        The text with Unix line endings (None when it is binary: a NUL byte or many control
        characters) and the fallback codec's name ("Windows-1252", "Latin-1"; "" for Unicode).
    """
    text, fallback = _decode(data)
    # A NUL past the sniffed head, or many control characters, still means "not text".
    if text is None or "\x00" in text or _control_share(text) > _MAX_CONTROL_SHARE:
        return None, ""
    return text.replace("\r\n", "\n").replace("\r", "\n"), fallback


def fallback_note(name: str, fallback: str) -> str:
    """The sentence for a file read with a fallback codec ("" when it was Unicode)."""
    if not fallback:
        return ""
    return f"{quoted(name)} is not UTF-8; it was read as {fallback}, so some letters may be wrong."


def _decode(data: bytes) -> tuple[str | None, str]:
    """Decode `data`; returns the text (None if it is not text) and the fallback codec or ""."""
    for bom, codec, _label in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec), ""
            except UnicodeDecodeError:
                return None, ""
    try:
        return data.decode("utf-8"), ""
    except UnicodeDecodeError:
        pass
    # Not UTF-8: most such files come from Windows; cp1252 leaves five bytes undefined, and
    # latin-1 decodes anything, so it is the last resort.
    for codec, label in (("cp1252", "Windows-1252"), ("latin-1", "Latin-1")):
        try:
            return data.decode(codec), label
        except UnicodeDecodeError:
            continue
    return None, ""


def _control_share(text: str) -> float:
    sample = text[:HEAD_BYTES]
    controls = sum(1 for ch in sample if ch < " " and ch not in _TEXT_CONTROLS)
    return controls / max(1, len(sample))

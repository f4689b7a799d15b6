"""The JSON export format as a schema: what `import_session` accepts, field by field.

An export is a file from anywhere, so every field is checked for its type (strictly: no `true`
for a number, no `1.0` for an integer), its range (times from 1970 to 9999, counts and sizes that
SQLite and the UI can hold, finite floats), its encoding (no lone surrogates, which cannot be
stored as UTF-8), its enumeration and its form (SHA-256 digests, base64 that matches its digest).
A file that breaks any of it is refused whole, with one sentence naming the first problem by its
JSON path, before anything is stored.

Pydantic does the checking: its strict mode, `allow_inf_nan=False` and `Field(ge=, le=)` say
all of it declaratively, it collects the path of every error, and the models hand back typed
values. (jsonschema would check the same rules but return plain dicts, and its messages quote
whole sub-documents.)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from app.core.messages import (
    Attachment,
    AttachmentKind,
    AttachmentStatus,
    Box,
    Message,
    Role,
    StopReason,
    Timings,
)
from app.store.db import StoreError
from app.store.rows import EARLIEST_TIME, LATEST_TIME, MAX_COUNT, MAX_INTEGER, check_box

#: The `format` marker of a JSON export, and the newest document version this code reads.
#: The marker is also a type for the schema (`Literal[...]` cannot take a name); mypy checks
#: that `FORMAT` is exactly the value that type allows.
FormatMarker = Literal["scout-desk-session"]
FORMAT: Final[FormatMarker] = "scout-desk-session"
VERSION = 2  # 2: messages carry "boxes" (version 1 files import with none)

_SHA256 = re.compile(r"[0-9a-f]{64}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SHOWN_CHARS = 40  # of a refused value, in the sentence


class ImportRefusedError(StoreError):
    """A file `import_session` will not import; the sentence names it and its first problem."""


# Parsing. Python's json reads NaN, Infinity and 1e999 as floats, which are not JSON and which no
# field accepts. They are kept as `_Literal`s so that the schema refuses them at their path, in
# the words of the file: "created_at is not a finite time (1e999)".


class _Literal(float):
    """A non-finite number, shown as the file wrote it."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> _Literal:
        number = super().__new__(cls, text)
        number.text = text
        return number

    def __repr__(self) -> str:
        return self.text


def _finite_or_literal(text: str) -> float:
    number = float(text)
    return number if math.isfinite(number) else _Literal(text)


def _parse(raw: bytes, src: Path) -> Any:
    try:
        return json.loads(
            raw.decode("utf-8"), parse_float=_finite_or_literal, parse_constant=_Literal
        )
    # ValueError: also UnicodeDecodeError, and an integer of more than 4300 digits.
    except (ValueError, RecursionError) as exc:
        raise ImportRefusedError(
            f"{src} is not a Scout Desk session export (not JSON: {exc})."
        ) from exc


# The field types. A PydanticCustomError's message is the problem, worded for the sentence.


def _unicode(text: str) -> str:
    if _SURROGATE.search(text):
        raise PydanticCustomError("unicode", "holds a lone surrogate, which is not valid Unicode")
    return text


def _time(value: float) -> float:
    if not math.isfinite(value):
        raise PydanticCustomError("time", "is not a finite time")
    if not EARLIEST_TIME <= value <= LATEST_TIME:
        raise PydanticCustomError("time", "is not a time between 1970 and 9999")
    return value


def _sha256(value: str) -> str:
    if not _SHA256.fullmatch(value):
        raise PydanticCustomError("sha256", "is not a SHA-256 hex digest")
    return value


def _base64(value: Any) -> bytes:
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):  # ValueError: non-ASCII text
            pass
    raise PydanticCustomError("base64", "is not valid base64 text")


Text = Annotated[str, AfterValidator(_unicode)]
#: Epoch seconds. Non-finite values get past the float check to be refused as times, by name.
Time = Annotated[float, Field(allow_inf_nan=True), AfterValidator(_time)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Seconds = Annotated[float, Field(ge=0)]  # finite: `allow_inf_nan=False` below
Sha256 = Annotated[str, AfterValidator(_sha256)]
Blob = Annotated[bytes, BeforeValidator(_base64)]
# Enums are matched by value: strict mode would want enum instances, which JSON cannot hold.
RoleValue = Annotated[Role, Field(strict=False)]
StopValue = Annotated[StopReason, Field(strict=False)]
KindValue = Annotated[AttachmentKind, Field(strict=False)]
StatusValue = Annotated[AttachmentStatus, Field(strict=False)]


class _Record(BaseModel):
    # extra="forbid": a field the format does not have means this is not (exactly) an export.
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


class TimingsRecord(_Record):
    """`Timings` as exported (every field optional: Timings grows fields over time)."""

    load_s: Seconds = 0.0
    ttft_s: Seconds = 0.0
    decode_tokens_per_s: Seconds = 0.0
    prompt_tokens: Count = 0
    completion_tokens: Count = 0


class BoxRecord(_Record):
    """A `Box` as exported."""

    label: Text
    image: Count
    x1: Count
    y1: Count
    x2: Count
    y2: Count

    @model_validator(mode="after")
    def _is_a_region(self) -> BoxRecord:
        try:
            check_box(Box(**self.model_dump()))
        except ValueError:
            raise PydanticCustomError("region", "is not a region (x1 < x2 and y1 < y2)") from None
        return self


class AttachmentRecord(_Record):
    """An `Attachment` as exported (no `source_path`: where a file lay is private)."""

    name: Text
    kind: KindValue
    status: StatusValue
    detail: Text | None = None
    sha256: Sha256 | None = None
    mime: Annotated[Text, Field(max_length=255)] | None = None
    size: Annotated[int, Field(ge=0, le=MAX_INTEGER)] | None = None
    width: Count | None = None
    height: Count | None = None
    tokens: Count | None = None


class MessageRecord(_Record):
    """A `Message` as exported (no ids: an import always makes new ones)."""

    role: RoleValue
    text: Text
    created_at: Time
    stop_reason: StopValue | None = None
    timings: TimingsRecord | None = None
    error: Text | None = None
    attachments: list[AttachmentRecord] | None = None
    boxes: list[BoxRecord] | None = None

    def to_message(self) -> Message:
        """The message to store (null fields take the dataclasses' defaults)."""
        return Message(
            id="",
            session_id="",
            role=self.role,
            text=self.text,
            created_at=self.created_at,
            attachments=tuple(
                Attachment(**a.model_dump(exclude_none=True)) for a in self.attachments or ()
            ),
            stop_reason=self.stop_reason,
            timings=None if self.timings is None else Timings(**self.timings.model_dump()),
            error=self.error or "",
            boxes=tuple(Box(**b.model_dump()) for b in self.boxes or ()),
        )


class SessionRecord(_Record):
    """The chat's own fields."""

    title: Text
    created_at: Time | None = None
    updated_at: Time | None = None


class ExportDocument(_Record):
    """A whole JSON export, `VERSION` or older."""

    format: FormatMarker
    version: Annotated[int, Field(ge=1, le=VERSION)]
    app_version: Text | None = None
    exported_at: Time | None = None
    session: SessionRecord
    messages: list[MessageRecord]
    # Blobs no attachment names are kept too: a document attachment names its PDF from inside
    # its own content.
    blobs: dict[Sha256, Blob] | None = None

    @model_validator(mode="after")
    def _blobs_are_whole(self) -> ExportDocument:
        blobs = self.blobs or {}
        for sha, data in blobs.items():
            if hashlib.sha256(data).hexdigest() != sha:
                raise PydanticCustomError(
                    "checksum", "blobs['{sha}…'] does not match its checksum", {"sha": sha[:12]}
                )
        for i, message in enumerate(self.messages):
            for j, attachment in enumerate(message.attachments or ()):
                if attachment.sha256 is not None and attachment.sha256 not in blobs:
                    raise PydanticCustomError(
                        "missing_blob",
                        "the content of messages[{i}].attachments[{j}] (blob {sha}…) is missing",
                        {"i": i, "j": j, "sha": attachment.sha256[:12]},
                    )
        return self


class _Header(BaseModel):
    """What any version of the format starts with."""

    model_config = ConfigDict(strict=True, extra="ignore")

    format: FormatMarker
    version: Annotated[int, Field(ge=1)]


def read_export(raw: bytes, src: Path) -> ExportDocument:
    """Parse and check a JSON export, refusing it whole at its first problem.

    Args:
        raw: the file's bytes.
        src: the file (named in the sentence).

    Returns:
        The checked document; its blobs are decoded and match their digests.

    Raises:
        ImportRefusedError: not JSON, not an export, from a newer version, or a field that
            breaks the schema (the sentence names the file, the field's path and the problem).
    """
    document = _parse(raw, src)
    try:
        header = _Header.model_validate(document)
    except ValidationError as exc:
        if all(error["loc"][:1] == ("version",) for error in exc.errors()):
            raise ImportRefusedError(
                f"{src} is not a valid Scout Desk session export (bad version)."
            ) from exc
        raise ImportRefusedError(f"{src} is not a Scout Desk session export.") from exc
    if header.version > VERSION:
        raise ImportRefusedError(
            f"{src} was written by a newer Scout Desk (export version {header.version}; this "
            f"version reads up to {VERSION}). Update Scout Desk to import it."
        )
    try:
        return ExportDocument.model_validate(document)
    except ValidationError as exc:
        problem = _problem(exc.errors(include_url=False)[0])
        raise ImportRefusedError(
            f"{src} is not a valid Scout Desk session export: {problem}."
        ) from exc


# Wording a pydantic error as the end of a sentence: "<path> <problem> (<value>)".

_EXPECTED = {
    "string_type": "text",
    "int_type": "an integer",
    "float_type": "a number",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "list_type": "a list",
}
_PHRASES = {
    "missing": "is missing",
    "extra_forbidden": "is not part of the format",
    "finite_number": "is not a finite number",
    "greater_than_equal": "should be at least {ge}",
    "less_than_equal": "should be at most {le}",
    "enum": "should be {expected}",
    "literal_error": "should be {expected}",
    "string_too_long": "is longer than {max_length} characters",
}
_DICTS = {"blobs"}  # the fields whose keys are data, not field names


def _problem(error: ErrorDetails) -> str:
    kind, value = error["type"], error.get("input")
    if kind in _EXPECTED:
        problem = f"should be {_EXPECTED[kind]}, not {_json_kind(value)}"
    elif kind in _PHRASES:
        problem = _PHRASES[kind].format(**error.get("ctx", {}))
    else:  # ours (PydanticCustomError), already worded for this sentence
        problem = error["msg"]
    shown = "" if kind == "missing" else _shown(value)
    where = _path(error["loc"])
    return " ".join(part for part in (where, problem, shown and f"({shown})") if part)


def _path(loc: tuple[int | str, ...]) -> str:
    """("messages", 3, "created_at") → "messages[3].created_at"."""
    path, previous, of_key = "", None, False
    for part in loc:
        if part == "[key]":
            of_key = True
        elif isinstance(part, int):
            path += f"[{part}]"
        elif previous in _DICTS:
            path += f"[{_shown(part[:12] + '…' if len(part) > 12 else part)}]"
        else:
            path += f".{part}" if path else part
        previous = part
    return f"the key {path}" if of_key else path


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a decimal number" if math.isfinite(value) else "a non-finite number"
    if isinstance(value, str):
        return "text"
    return "a list" if isinstance(value, list) else "an object"


def _shown(value: Any) -> str:
    """A short, escaped rendering of a refused scalar value ("" for null and containers)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        cut = value[:_SHOWN_CHARS]
        text = repr(cut)  # escapes controls and surrogates
        return text if cut == value else f"{text[:-1]}…{text[-1]}"
    if isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…"
    return ""

"""Reading a model folder's JSON files, which are untrusted input like any downloaded file.

`json.loads` turns hostile input into exceptions nobody expects from a settings file:
`RecursionError` for `[[[[…` a hundred thousand deep, a list where an object belongs (and the
`AttributeError` after it), a gigabyte string. Every model-folder JSON file (config.json, the
tokenizer and processor settings, the safetensors index and headers) is read through here, so each
such problem becomes one `ModelError` sentence naming the file, which preflight lists and the
command line turns into exit 4.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from enum import Enum
from pathlib import Path
from typing import Any, TypeGuard

from app.inference.engine import ModelError

#: No model settings file comes near this (Scout's largest, its safetensors index, is ~100 KB;
#: tokenizer.json is parsed by the tokenizer library, not here).
MAX_JSON_BYTES = 64_000_000
#: Real model files nest three or four levels; transformers copies configs recursively, so a
#: file that parses but nests hundreds deep would still fail later, far from its cause.
MAX_JSON_DEPTH = 32
# Files transformers reads while loading a Llama 4 folder besides config.json (which preflight
# reads and checks field by field) and the safetensors files.
SETTINGS_FILES = (
    "generation_config.json",
    "tokenizer_config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "chat_template.json",
    "special_tokens_map.json",
    "added_tokens.json",
)


class JsonProblem(Enum):
    """What is wrong with a model JSON file (callers may word some cases their own way)."""

    UNREADABLE = "unreadable"
    TOO_LARGE = "too large"
    NOT_JSON = "not JSON"
    TOO_DEEP = "nested too deep"
    NOT_OBJECT = "not an object"
    BAD_FIELD = "bad field"


class ModelJsonError(ModelError):
    """A model-folder JSON file that cannot be used.

    Attributes:
        what: the file (or part of a file) in the user's words, e.g. "config.json".
        reason: the rest of the sentence, e.g. "is not a JSON object (it holds an array)".
        problem: which kind of problem it is.
    """

    def __init__(self, what: str, reason: str, problem: JsonProblem) -> None:
        super().__init__(f"{what} {reason}.")
        self.what = what
        self.reason = reason
        self.problem = problem


def read_model_json(path: Path, what: str | None = None) -> dict[str, Any]:
    """Read a model-folder JSON file that must hold one JSON object.

    Args:
        path: the file.
        what: how messages name it (default: the file name).

    Returns:
        The object.

    Raises:
        ModelJsonError: the file cannot be read, is too large, is not JSON, nests deeper than
            `MAX_JSON_DEPTH`, or holds something other than an object.
    """
    what = what or path.name
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise ModelJsonError(
                what,
                f"is {size:,} bytes, more than any model settings file "
                f"(the limit is {MAX_JSON_BYTES:,})",
                JsonProblem.TOO_LARGE,
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelJsonError(
            what, f"cannot be read ({exc.strerror or exc})", JsonProblem.UNREADABLE
        ) from None
    return parse_model_json(raw, what)


def parse_model_json(raw: bytes | str, what: str) -> dict[str, Any]:
    """Parse JSON from a model folder that must be one object (a file, a safetensors header).

    Args:
        raw: the text, or UTF-8 bytes.
        what: how messages name it.

    Returns:
        The object.

    Raises:
        ModelJsonError: not JSON, nested deeper than `MAX_JSON_DEPTH`, or not an object.
    """
    try:
        data = json.loads(raw)
    except RecursionError:  # the C parser recurses once a level: '[' * 100000 ends here
        raise _too_deep(what) from None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        detail = one_line(exc, 120)
        raise ModelJsonError(what, f"is not valid JSON ({detail})", JsonProblem.NOT_JSON) from None
    if not isinstance(data, dict):
        raise ModelJsonError(
            what, f"is not a JSON object (it holds {json_kind(data)})", JsonProblem.NOT_OBJECT
        )
    if _depth_exceeds(data, MAX_JSON_DEPTH):
        raise _too_deep(what)
    return data


def object_field(data: Mapping[str, Any], key: str, what: str) -> dict[str, Any] | None:
    """`data[key]` when it is an object, None when absent or null.

    Args:
        data: a parsed model JSON object.
        key: the field.
        what: the file, for the message.

    Returns:
        The nested object, or None.

    Raises:
        ModelJsonError: the field holds something else (transformers would fail on it later).
    """
    value = data.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise ModelJsonError(
        what, f"sets {key} to {json_kind(value)}, not an object", JsonProblem.BAD_FIELD
    )


def checked_setting(
    section: Mapping[str, Any],
    key: str,
    where: str,
    valid: Callable[[Any], bool],
    expected: str,
    problems: list[str],
) -> Any:
    """`section[key]` when present and valid; None when absent, or invalid (noting why).

    Args:
        section: a parsed model JSON object (or part of one).
        key: the field.
        where: the file (and section), as the sentence names it.
        valid: whether a value is usable.
        expected: what a usable value is, e.g. "a positive integer".
        problems: where the sentence about an unusable value goes.

    Returns:
        The value, or None.
    """
    value = section.get(key)
    if value is None:
        return None
    if valid(value):
        return value
    problems.append(f"{where} sets {key} to {json_kind(value)}; it must be {expected}.")
    return None


def is_positive_int(value: object) -> bool:
    """A JSON integer above 0 (true and false are ints to Python, not to a config)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def is_count(value: object) -> bool:
    """A JSON integer of 0 or more."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_token_ids(value: object) -> bool:
    """A token id or a non-empty list of them, as generation_config.json names stop tokens."""
    return all(is_count(i) for i in (value if isinstance(value, list) and value else [value]))


def is_number(value: object) -> TypeGuard[int | float]:
    """A JSON number that is not negative."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def is_fraction(value: object) -> bool:
    """A JSON number above 0 and at most 1."""
    return is_number(value) and 0 < value <= 1


def is_bool(value: object) -> bool:
    """JSON true or false."""
    return isinstance(value, bool)


def json_kind(value: object) -> str:
    """What a parsed JSON value is, in JSON's words ("an array", "a number", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def one_line(error: BaseException | str, limit: int = 300) -> str:
    """An error message from (or about) a model folder's files on one line, at most `limit` long.

    Messages quote file contents and library errors span lines; the command line promises one.
    """
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _too_deep(what: str) -> ModelJsonError:
    return ModelJsonError(
        what,
        f"is nested more than {MAX_JSON_DEPTH} levels deep, which no model file is",
        JsonProblem.TOO_DEEP,
    )


def _depth_exceeds(data: object, limit: int) -> bool:
    """Whether `data` nests containers more than `limit` deep (iterative: nothing to exhaust)."""
    stack: list[tuple[object, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, dict | list))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, dict | list))
    return False

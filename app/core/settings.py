"""User settings: a typed, validated schema with defaults, kept in settings.json."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from app.core.atomic import write_atomically

log = logging.getLogger(__name__)

Quantization = Literal["nf4", "int8", "bf16"]
#: The KV cache of the global attention layers (`app.inference.llama4_kv`).
KvCache = Literal["bf16", "int8"]
OutputHead = Literal["bf16", "int8"]
Theme = Literal["system", "light", "dark"]
#: Where answers come from: the model folder on this machine, or a vLLM (OpenAI API) server.
Backend = Literal["local", "server"]

MAX_NEW_TOKENS_LIMIT = 32768
#: Ingest limits are set in megabytes of 1,000,000 bytes (what `human_size` prints).
MB = 1_000_000
#: (smallest, largest) allowed for each ingest limit, in MB or files.
TEXT_MB_RANGE = (1, 1024)
FOLDER_MB_RANGE = (1, 4096)
FOLDER_FILES_RANGE = (100, 200_000)


def _check_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("it must be text")
    return value


def _check_choice(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"it must be one of {', '.join(choices)}")
        return value

    return check


def _check_max_new_tokens(value: Any) -> int:
    # bool is an int subclass; `true` in JSON is a mistake, not 1 token.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("it must be a whole number")
    if not 1 <= value <= MAX_NEW_TOKENS_LIMIT:
        raise ValueError(f"it must be between 1 and {MAX_NEW_TOKENS_LIMIT}")
    return value


def _check_whole_in(bounds: tuple[int, int]) -> Callable[[Any], int]:
    low, high = bounds

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("it must be a whole number")
        if not low <= value <= high:
            raise ValueError(f"it must be between {low:,} and {high:,}")
        return value

    return check


def _check_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("it must be a number")
    return float(value)


def _check_temperature(value: Any) -> float:
    number = _check_number(value)
    if not 0.0 <= number <= 2.0:
        raise ValueError("it must be between 0 and 2")
    return number


def check_server_url(value: Any) -> str:
    """A server's base URL: "" (none) or http(s)://host[:port][/path], without credentials.

    Raises:
        ValueError: not a string, another scheme, no host, or a user:password part (the key
            belongs in the keyring, never in settings.json).
    """
    from urllib.parse import urlsplit

    text = _check_str(value).strip()
    if not text:
        return ""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError("it must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("it names no host")
    if parts.username or parts.password:
        raise ValueError("it must not hold a user name or password (the key goes in the keyring)")
    try:
        parts.port  # noqa: B018 (urlsplit checks the port only when asked)
    except ValueError:
        raise ValueError("its port is not a number from 0 to 65535") from None
    return text.rstrip("/")


def _check_top_p(value: Any) -> float:
    number = _check_number(value)
    if not 0.0 < number <= 1.0:
        raise ValueError("it must be above 0 and at most 1")
    return number


_VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "model_dir": _check_str,
    "quantization": _check_choice(get_args(Quantization)),
    "kv_cache": _check_choice(get_args(KvCache)),
    "output_head": _check_choice(get_args(OutputHead)),
    "max_new_tokens": _check_max_new_tokens,
    "temperature": _check_temperature,
    "top_p": _check_top_p,
    "theme": _check_choice(get_args(Theme)),
    "backend": _check_choice(get_args(Backend)),
    "server_url": check_server_url,
    "server_model": _check_str,
    "max_text_mb": _check_whole_in(TEXT_MB_RANGE),
    "max_folder_mb": _check_whole_in(FOLDER_MB_RANGE),
    "max_folder_files": _check_whole_in(FOLDER_FILES_RANGE),
}


@dataclass(frozen=True)
class IngestLimits:
    """How much one attached text file or folder may hold (from `Settings.ingest_limits`).

    Attributes:
        max_text_bytes: one text file; a larger one is refused.
        max_folder_bytes: the text read from one folder in all; later files are skipped.
        max_folder_files: the text files read from one folder; later ones are skipped.
    """

    max_text_bytes: int = 64 * MB
    max_folder_bytes: int = 200 * MB
    max_folder_files: int = 20_000


@dataclass(frozen=True)
class Settings:
    """What the user chose in the settings dialog; every field is checked on construction.

    Attributes:
        model_dir: the model folder ("" means not chosen; `--model`/`SCOUT_DESK_MODEL` win).
        quantization: how the weights are loaded.
        max_new_tokens: the longest answer, in tokens (1..32768).
        temperature: sampling temperature (0..2; 0 means greedy).
        top_p: nucleus sampling mass (above 0, at most 1).
        theme: the window theme.
        backend: "local" (the model folder) or "server" (`server_url`).
        server_url: the OpenAI-compatible server's base URL ("" when none is set).
        server_model: the model id picked from the server's `/v1/models` ("": its first).
        max_text_mb: the largest text file read, in MB (1..1024).
        max_folder_mb: the most text read from one folder, in MB (1..4096).
        max_folder_files: the most text files read from one folder (100..200,000).
        kv_cache: the global layers' KV cache: "bf16", or "int8" (half the memory a token, so
            about twice the context, at a small measured error).
        output_head: the output head's weights: "bf16", or "int8" (about 1 GB less read for
            every decoded token, at a small measured change of the logits).

    Raises:
        ValueError: a field is out of range, with a sentence naming it.
    """

    model_dir: str = ""
    quantization: Quantization = "nf4"
    max_new_tokens: int = 1024
    temperature: float = 0.6
    top_p: float = 0.9
    theme: Theme = "system"
    backend: Backend = "local"
    server_url: str = ""
    server_model: str = ""
    max_text_mb: int = 64
    max_folder_mb: int = 200
    max_folder_files: int = 20_000
    kv_cache: KvCache = "bf16"
    output_head: OutputHead = "bf16"

    def __post_init__(self) -> None:
        for name, check in _VALIDATORS.items():
            value = getattr(self, name)
            try:
                # Store the normalised value (an int temperature becomes a float).
                object.__setattr__(self, name, check(value))
            except ValueError as exc:
                raise ValueError(f"Setting {name} = {value!r} is not valid: {exc}.") from None

    def ingest_limits(self) -> IngestLimits:
        """The ingest limits these settings set (in bytes and files)."""
        return IngestLimits(
            max_text_bytes=self.max_text_mb * MB,
            max_folder_bytes=self.max_folder_mb * MB,
            max_folder_files=self.max_folder_files,
        )


def settings_from_dict(raw: dict[str, Any]) -> tuple[Settings, list[str]]:
    """Build settings from a decoded JSON object, keeping what is valid.

    Args:
        raw: key/value pairs as read from settings.json.

    Returns:
        The settings (invalid values replaced by defaults) and one warning sentence per key that
        was unknown or invalid.
    """
    warnings: list[str] = []
    defaults = Settings()
    values: dict[str, Any] = {}
    for key, value in raw.items():
        check = _VALIDATORS.get(key)
        if check is None:
            warnings.append(f"Ignored unknown setting {_shown(key)}.")
            continue
        try:
            values[key] = check(value)
        except ValueError as exc:
            default = getattr(defaults, key)
            warnings.append(
                f"Setting {key} = {_shown(value)} is not valid ({exc}); "
                f"using the default {json.dumps(default)}."
            )
    return Settings(**values), warnings


def _shown(value: Any) -> str:
    """A value as JSON, shortened: a warning should not quote a whole pasted document."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def load_settings(path: Path) -> tuple[Settings, list[str]]:
    """Read settings.json; never fails, so a bad file cannot keep the app from starting.

    Args:
        path: the settings file (see `app.core.paths.settings_file`).

    Returns:
        The settings and warning sentences for the user. A missing file gives the defaults and no
        warning; a corrupt file is moved aside to `settings.json.corrupt` so the user's values are
        not lost when the defaults are next saved.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Settings(), []
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return Settings(), [f"Could not read the settings file {path} ({reason}); using defaults."]
    try:
        raw = json.loads(data.decode("utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("the file does not hold a JSON object")
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        aside = path.with_name(path.name + ".corrupt")
        try:
            path.replace(aside)
            kept = f"it was kept as {aside}"
        except OSError:
            kept = "it could not be moved aside"
        return Settings(), [f"The settings file {path} is damaged ({exc}); {kept}; using defaults."]
    settings, warnings = settings_from_dict(raw)
    for warning in warnings:
        log.warning("%s (%s)", warning, path)
    return settings, warnings


def settings_to_dict(settings: Settings) -> dict[str, Any]:
    """The JSON-ready form of `settings` (every field, in declaration order)."""
    return asdict(settings)


def save_settings(path: Path, settings: Settings) -> None:
    """Write settings.json atomically: a crash leaves either the old file or the new one.

    Args:
        path: the settings file.
        settings: what to write.

    Raises:
        OSError: the folder is not writable or the disk is full (the old file is left intact).
    """
    data = json.dumps(settings_to_dict(settings), indent=2) + "\n"
    write_atomically(path, data.encode("utf-8"), private=True)

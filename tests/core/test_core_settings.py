"""Settings: typed defaults, validation with warnings that name the key, atomic saves."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app.core.settings import (
    IngestLimits,
    Settings,
    load_settings,
    save_settings,
    settings_to_dict,
)


def test_missing_file_gives_defaults_quietly(tmp_path: Path) -> None:
    assert load_settings(tmp_path / "settings.json") == (Settings(), [])


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    chosen = Settings(
        model_dir="/models/scout",
        quantization="int8",
        max_new_tokens=32768,
        temperature=0.0,
        top_p=1.0,
        theme="dark",
    )

    save_settings(path, chosen)

    assert load_settings(path) == (chosen, [])
    assert json.loads(path.read_text(encoding="utf-8"))["quantization"] == "int8"
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]  # no temp file left


def test_whole_numbers_for_floats_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"temperature": 1, "top_p": 1}', encoding="utf-8")

    settings, warnings = load_settings(path)

    assert (settings.temperature, settings.top_p, warnings) == (1.0, 1.0, [])
    assert isinstance(settings.temperature, float)


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("quantization", '"fp8"'),
        ("max_new_tokens", "0"),
        ("max_new_tokens", "40000"),
        ("max_new_tokens", "1.5"),
        ("max_new_tokens", "true"),
        ("max_new_tokens", '"100"'),
        ("temperature", "-0.1"),
        ("temperature", "2.5"),
        ("temperature", '"hot"'),
        ("temperature", "NaN"),
        ("top_p", "0"),
        ("top_p", "1.01"),
        ("theme", '"blue"'),
        ("model_dir", "5"),
        ("model_dir", "null"),
    ],
)
def test_an_invalid_value_falls_back_to_its_default(tmp_path: Path, key: str, raw: str) -> None:
    path = tmp_path / "settings.json"
    neighbour, neighbour_value = ("top_p", 0.5) if key == "theme" else ("theme", "dark")
    value = json.loads(raw)
    path.write_text(json.dumps({key: value, neighbour: neighbour_value}), encoding="utf-8")

    settings, warnings = load_settings(path)

    assert getattr(settings, key) == getattr(Settings(), key)
    assert getattr(settings, neighbour) == neighbour_value  # one bad value spoils nothing else
    assert len(warnings) == 1
    assert warnings[0].startswith(f"Setting {key} = {json.dumps(value)} is not valid (it must ")
    assert warnings[0].endswith(f"using the default {json.dumps(getattr(Settings(), key))}.")


def test_unknown_keys_are_ignored_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"theme": "light", "colour": "red"}', encoding="utf-8")

    settings, warnings = load_settings(path)

    assert settings == Settings(theme="light")
    assert warnings == ['Ignored unknown setting "colour".']


def test_long_values_are_shortened_in_warnings(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"theme": "x" * 500}), encoding="utf-8")

    _, warnings = load_settings(path)

    assert warnings[0].startswith('Setting theme = "xxxx')
    assert len(warnings[0]) < 200


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '"text"', "\xff\xfe garbage"])
def test_a_corrupt_file_is_kept_aside(tmp_path: Path, content: str) -> None:
    path = tmp_path / "settings.json"
    path.write_text(content, encoding="latin-1")
    original = path.read_bytes()

    settings, warnings = load_settings(path)

    assert settings == Settings()
    assert len(warnings) == 1 and str(path) in warnings[0]
    assert "damaged" in warnings[0] and "settings.json.corrupt" in warnings[0]
    assert (tmp_path / "settings.json.corrupt").read_bytes() == original
    assert not path.exists()


def test_constructing_invalid_settings_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"Setting top_p = 0 is not valid: it must be above 0"):
        Settings(top_p=0)
    with pytest.raises(ValueError, match="quantization"):
        Settings(quantization="fp4")  # type: ignore[arg-type]


def test_a_failed_save_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "settings.json"
    save_settings(path, Settings(theme="light"))
    before = path.read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_settings(path, Settings(theme="dark"))

    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]


def test_settings_to_dict_lists_every_field() -> None:
    assert settings_to_dict(Settings()) == {
        "model_dir": "",
        "quantization": "nf4",
        "max_new_tokens": 1024,
        "temperature": 0.6,
        "top_p": 0.9,
        "theme": "system",
        "backend": "local",
        "server_url": "",
        "server_model": "",
        "max_text_mb": 64,
        "max_folder_mb": 200,
        "max_folder_files": 20_000,
        "kv_cache": "bf16",
        "output_head": "bf16",
    }


def test_kv_cache_round_trips_and_a_bad_one_falls_back_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    save_settings(path, Settings(kv_cache="int8"))
    assert load_settings(path) == (Settings(kv_cache="int8"), [])
    path.write_text(json.dumps({"kv_cache": "fp4"}), encoding="utf-8")
    loaded, warnings = load_settings(path)
    assert loaded.kv_cache == "bf16" and any("kv_cache" in w for w in warnings)


def test_output_head_round_trips_and_a_bad_one_falls_back_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    save_settings(path, Settings(output_head="int8"))
    assert load_settings(path) == (Settings(output_head="int8"), [])
    path.write_text(json.dumps({"output_head": "fp4", "kv_cache": "int8"}), encoding="utf-8")
    loaded, warnings = load_settings(path)
    assert loaded.output_head == "bf16" and loaded.kv_cache == "int8"
    assert any("output_head" in w for w in warnings)


def test_ingest_limits_round_trip_and_become_bytes(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    chosen = Settings(max_text_mb=1, max_folder_mb=4096, max_folder_files=100)

    save_settings(path, chosen)

    loaded, warnings = load_settings(path)
    assert (loaded, warnings) == (chosen, [])
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert (raw["max_text_mb"], raw["max_folder_mb"], raw["max_folder_files"]) == (1, 4096, 100)
    assert loaded.ingest_limits() == IngestLimits(1_000_000, 4_096_000_000, 100)
    assert Settings().ingest_limits() == IngestLimits(64_000_000, 200_000_000, 20_000)


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("max_text_mb", "0"),
        ("max_text_mb", "1025"),
        ("max_text_mb", "2.5"),
        ("max_folder_mb", "0"),
        ("max_folder_mb", "4097"),
        ("max_folder_files", "99"),
        ("max_folder_files", "200001"),
        ("max_folder_files", "true"),
    ],
)
def test_an_ingest_limit_out_of_range_falls_back(tmp_path: Path, key: str, raw: str) -> None:
    path = tmp_path / "settings.json"
    path.write_text(f'{{"{key}": {raw}}}', encoding="utf-8")

    settings, warnings = load_settings(path)

    assert getattr(settings, key) == getattr(Settings(), key)
    assert len(warnings) == 1 and warnings[0].startswith(f"Setting {key} = {raw} is not valid")

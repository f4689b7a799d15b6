"""A hostile model folder's JSON is a model problem: one sentence, exit 4, never a traceback.

Copies of the tiny Llama 4 get config.json `[[[…` a hundred thousand deep (RecursionError in
`json.loads`), a list where an object belongs, safetensors headers whose `__metadata__` is a list
or that nest without end, and values of the wrong type in the fields the code reads. Each must show
up in preflight's problems, in `doctor --json` and as `ask`'s exit 4.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from app.inference import model_json
from app.inference.budget import ImageTiling
from app.inference.checkpoint import CheckpointError, read_header
from app.inference.estimate import working_margin_bytes
from app.inference.model_json import JsonProblem, ModelJsonError, read_model_json
from app.inference.preflight import check_model_folder

ROOT = Path(__file__).resolve().parents[2]
DEEP = "[" * 100_000
SHARD = "model-00003-of-00003.safetensors"


def _write(name: str, text: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        (folder / name).write_text(text, encoding="utf-8")

    return edit


def _edit_json(name: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        data = json.loads((folder / name).read_text(encoding="utf-8"))
        change(data)
        (folder / name).write_text(json.dumps(data), encoding="utf-8")

    return edit


def _header(change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    """Rewrite the last shard's safetensors header (its tensor data stays as it was)."""

    def edit(folder: Path) -> None:
        path = folder / SHARD
        raw = path.read_bytes()
        (length,) = struct.unpack("<Q", raw[:8])
        header = change(raw[8 : 8 + length])
        path.write_bytes(struct.pack("<Q", len(header)) + header + raw[8 + length :])

    return edit


def _metadata(value: object) -> Callable[[Path], None]:
    def change(header: bytes) -> bytes:
        data = json.loads(header)
        data["__metadata__"] = value
        return json.dumps(data).encode()

    return _header(change)


def _text(key: str, value: object) -> Callable[[Path], None]:
    return _edit_json("config.json", lambda c: c["text_config"].__setitem__(key, value))


# (what the folder gets, a phrase its one problem must contain)
HOSTILE: dict[str, tuple[Callable[[Path], None], str]] = {
    "config deep": (_write("config.json", DEEP), "config.json is nested more than 32 levels"),
    "config list": (_write("config.json", "[]"), "config.json is not a JSON object"),
    "config nested 900": (
        _edit_json("config.json", lambda c: c.__setitem__("x", json.loads("[" * 900 + "]" * 900))),
        "config.json is nested more than 32 levels",
    ),
    "text_config list": (
        _edit_json("config.json", lambda c: c.__setitem__("text_config", [1])),
        "config.json sets text_config to an array, not an object",
    ),
    "quantization_config list": (
        _edit_json("config.json", lambda c: c.__setitem__("quantization_config", [1])),
        "sets quantization_config to an array",
    ),
    "skip modules a number": (
        _edit_json(
            "config.json",
            lambda c: c.__setitem__(
                "quantization_config",
                {"quant_method": "bitsandbytes", "load_in_4bit": True, "llm_int8_skip_modules": 5},
            ),
        ),
        "llm_int8_skip_modules is the number 5, not a list",
    ),
    "attention chunk an object": (
        _text("attention_chunk_size", {"a": 1}),
        "attention_chunk_size must be a positive integer",
    ),
    "layer_types a number": (_text("layer_types", 5), "layer_types must be a list"),
    "layer count a string": (_text("num_hidden_layers", "48"), "num_hidden_layers must be"),
    "attention implementation a list": (
        _edit_json("config.json", lambda c: c.__setitem__("attn_implementation", ["sdpa"])),
        "a custom attention implementation",
    ),
    "pixel shuffle a string": (
        _edit_json(
            "config.json", lambda c: c["vision_config"].__setitem__("pixel_shuffle_ratio", "x")
        ),
        "pixel_shuffle_ratio to a string",
    ),
    "metadata list": (_metadata([1, 2]), "whose __metadata__ is an array, not a map of strings"),
    "metadata number": (_metadata(5), "whose __metadata__ is the number 5"),
    "metadata values numbers": (_metadata({"format": 1}), "with non-string values"),
    "header nested objects": (
        _header(lambda _h: b'{"a":' * 50_000 + b"1" + b"}" * 50_000),
        f"{SHARD} has a safetensors header that is nested more than 32 levels",
    ),
    "header nested arrays": (
        _header(lambda _h: DEEP.encode()),
        f"{SHARD} has a safetensors header that is nested more than 32 levels",
    ),
    "dtype an object": (
        _header(
            lambda h: json.dumps(
                {
                    k: (v | {"dtype": {"x": 1}} if k != "__metadata__" else v)
                    for k, v in json.loads(h).items()
                }
            ).encode()
        ),
        "is malformed",
    ),
    "index deep": (_write("model.safetensors.index.json", DEEP), "index.json is nested more"),
    "tokenizer_config deep": (_write("tokenizer_config.json", DEEP), "tokenizer_config.json is"),
    "tokenizer_config list": (
        _write("tokenizer_config.json", "[1]"),
        "tokenizer_config.json is not a JSON object (it holds an array)",
    ),
    "processor_config deep": (_write("processor_config.json", DEEP), "processor_config.json is"),
    "preprocessor_config list": (
        _write("preprocessor_config.json", "[]"),
        "preprocessor_config.json is not a JSON object",
    ),
    "image_processor a list": (
        _edit_json("processor_config.json", lambda c: c.__setitem__("image_processor", [1])),
        "processor_config.json sets image_processor to an array",
    ),
    "size a list": (
        _edit_json(
            "processor_config.json", lambda c: c["image_processor"].__setitem__("size", [1])
        ),
        "processor_config.json sets size to an array",
    ),
    "patch_size an object": (
        _edit_json("processor_config.json", lambda c: c.__setitem__("patch_size", {"a": 1})),
        "sets patch_size to an object; it must be a positive integer",
    ),
    "generation_config deep": (_write("generation_config.json", DEEP), "generation_config.json is"),
    "generation_config list": (
        _write("generation_config.json", "[]"),
        "generation_config.json is not a JSON object",
    ),
    "eos a string": (
        _edit_json("generation_config.json", lambda c: c.__setitem__("eos_token_id", "x")),
        "sets eos_token_id to a string; it must be a token id",
    ),
    "chat_template.json deep": (_write("chat_template.json", DEEP), "chat_template.json is"),
}


def _hostile_copy(source: Path, dest: Path, case: str) -> Path:
    folder = Path(shutil.copytree(source, dest))
    HOSTILE[case][0](folder)
    return folder


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env=dict(os.environ),
    )


def _messages(done: subprocess.CompletedProcess) -> list[str]:
    """Stderr without the load progress lines: what the user is told went wrong."""
    progress = ("Checking ", "Reading the tokenizer", "Loading weights", "Ready")
    return [line for line in done.stderr.splitlines() if not line.startswith(progress)]


# -- the helper ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (DEEP, JsonProblem.TOO_DEEP),
        ("[" * 900 + "]" * 900, JsonProblem.NOT_OBJECT),
        ('{"a": ' + "[" * 900 + "]" * 900 + "}", JsonProblem.TOO_DEEP),
        ("[]", JsonProblem.NOT_OBJECT),
        ("5", JsonProblem.NOT_OBJECT),
        ("{not json", JsonProblem.NOT_JSON),
        (b"\xff\xfe{}", JsonProblem.NOT_JSON),
    ],
)
def test_read_model_json_names_the_file_and_the_problem(tmp_path, text, problem):
    path = tmp_path / "config.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ModelJsonError) as caught:
        read_model_json(path)
    assert caught.value.problem is problem
    assert caught.value.message.startswith("config.json ")
    assert caught.value.exit_code == 4
    assert "\n" not in caught.value.message


def test_read_model_json_refuses_huge_and_unreadable_files(tmp_path, monkeypatch):
    monkeypatch.setattr(model_json, "MAX_JSON_BYTES", 10)
    path = tmp_path / "config.json"
    path.write_text('{"a": "0123456789"}')
    with pytest.raises(ModelJsonError) as caught:
        read_model_json(path)
    assert caught.value.problem is JsonProblem.TOO_LARGE
    monkeypatch.undo()
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(ModelJsonError) as caught:
        read_model_json(tmp_path / "folder.json")
    assert caught.value.problem is JsonProblem.UNREADABLE


def test_read_model_json_returns_a_real_config(tiny_model):
    assert read_model_json(tiny_model / "config.json")["model_type"] == "llama4"


# -- the readers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", ["metadata list", "metadata number", "header nested objects", "dtype an object"]
)
def test_read_header_refuses_hostile_headers(tiny_model, tmp_path, case):
    folder = _hostile_copy(tiny_model, tmp_path / "model", case)
    with pytest.raises(CheckpointError) as caught:
        read_header(folder / SHARD)
    assert HOSTILE[case][1] in caught.value.message


def test_tiling_falls_back_to_scout_s_values_for_hostile_files(tiny_model, tmp_path):
    # The context meter reads the tiling without preflight; it must keep working.
    good = ImageTiling.from_folder(tiny_model)
    folder = _hostile_copy(tiny_model, tmp_path / "model", "processor_config deep")
    HOSTILE["config list"][0](folder)
    assert ImageTiling.from_folder(folder) == ImageTiling()
    folder = _hostile_copy(tiny_model, tmp_path / "other", "size a list")
    HOSTILE["patch_size an object"][0](folder)
    tiling = ImageTiling.from_folder(folder)
    assert tiling.tile == ImageTiling.tile and tiling.patch == ImageTiling.patch
    assert tiling.max_tiles == good.max_tiles


@pytest.mark.parametrize(
    ("key", "value"), [("attention_chunk_size", {"a": 1}), ("layer_types", 5), ("layer_types", [1])]
)
def test_working_margin_refuses_values_of_the_wrong_type(key, value):
    with pytest.raises(ValueError, match=key):
        working_margin_bytes({"text_config": {key: value}})


# -- preflight, doctor and ask ---------------------------------------------------------------


@pytest.mark.parametrize("case", list(HOSTILE))
def test_preflight_lists_each_hostile_file_as_a_problem(tiny_model, tmp_path, case):
    folder = _hostile_copy(tiny_model, tmp_path / "model", case)
    report = check_model_folder(folder, "nf4")
    expected = HOSTILE[case][1]
    assert any(expected in p for p in report.problems), report.problems
    assert all("\n" not in p for p in report.problems)


@pytest.mark.parametrize(
    "case",
    [
        "config deep",
        "config list",
        "metadata list",
        "header nested objects",
        "tokenizer_config deep",
        "generation_config list",
        "preprocessor_config list",
    ],
)
def test_doctor_json_reports_the_problem_and_exits_4(tiny_model, tmp_path, case):
    folder = _hostile_copy(tiny_model, tmp_path / "model", case)
    done = _cli("doctor", "--model", str(folder), "--json")
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr
    problems = json.loads(done.stdout)["problems"]
    assert any(HOSTILE[case][1] in p for p in problems), problems


def _ask(folder: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    return _cli(
        "--data-dir", str(tmp_path / "data"), "ask", "--model", str(folder),
        "--quantization", "bf16", "--max-new-tokens", "3", "--no-save", "hi",
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("case", ["config deep", "config list", "metadata list", "eos a string"])
def test_ask_refuses_a_hostile_folder_with_one_sentence(tiny_model, tmp_path, case):
    folder = _hostile_copy(tiny_model, tmp_path / "model", case)
    done = _ask(folder, tmp_path)
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr
    lines = _messages(done)
    assert len(lines) == 1 and HOSTILE[case][1] in lines[0], lines


@pytest.mark.slow
@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        # Preflight leaves tokenizer.json (tens of MB for Scout) to the tokenizer library.
        (_write("tokenizer.json", DEEP), "Cannot read the tokenizer or processor"),
        # A field only transformers reads: its own validation error becomes the sentence.
        (_text("max_position_embeddings", "x"), "max_position_embeddings"),
    ],
    ids=["tokenizer.json deep", "transformers-only field"],
)
def test_ask_turns_what_only_loading_finds_into_one_sentence(tiny_model, tmp_path, edit, expected):
    folder = Path(shutil.copytree(tiny_model, tmp_path / "model"))
    edit(folder)
    assert check_model_folder(folder, "bf16").problems == []
    done = _ask(folder, tmp_path)
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr
    lines = _messages(done)
    assert len(lines) == 1 and expected in lines[0], lines


def test_the_context_meter_estimates_for_a_hostile_config(tmp_path: Path) -> None:
    from app.inference.budget import ImageTiling
    from app.inference.context_count import read_model_facts

    (tmp_path / "config.json").write_text("[" * 100_000)
    facts = read_model_facts(str(tmp_path), load_tokenizer=False)
    assert facts.text_config == {} and facts.tiling == ImageTiling()

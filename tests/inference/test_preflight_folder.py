"""Preflight on real folders: the tiny model, broken copies of it, and Scout-shaped skeletons."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from app.inference.estimate import GB
from app.inference.preflight import PREPARE_STATE_NAME, check_model_folder
from tests.helpers.scout_config import SCOUT_CONFIG

FREE_H100 = 79 * GB


def write_safetensors(path: Path, tensors: dict[str, list[int]], *, cut: int = 0) -> None:
    """Write a real safetensors file of zero-filled U8 tensors; `cut` drops trailing bytes."""
    header, offset = {}, 0
    for name, shape in tensors.items():
        size = 1
        for d in shape:
            size *= d
        header[name] = {"dtype": "U8", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    data = struct.pack("<Q", len(raw)) + raw + bytes(offset)
    path.write_bytes(data[: len(data) - cut] if cut else data)


def scout_skeleton(folder: Path, *, per_expert: bool, quantization_config: dict | None) -> Path:
    """Scout's config.json over a two-shard checkpoint holding a few of its tensor names."""
    folder.mkdir()
    config = dict(SCOUT_CONFIG)
    if quantization_config is not None:
        config["quantization_config"] = quantization_config
    (folder / "config.json").write_text(json.dumps(config))
    ffn = "language_model.model.layers.0.feed_forward.experts"
    experts = (
        {f"{ffn}.0.gate_proj.weight": [4], f"{ffn}.0.down_proj.weight": [4]}
        if per_expert
        else {f"{ffn}.gate_up_proj": [4], f"{ffn}.down_proj": [4]}
    )
    shards = {
        "model-00001-of-00002.safetensors": {"language_model.model.embed_tokens.weight": [8]},
        "model-00002-of-00002.safetensors": experts,
    }
    weight_map = {}
    for shard, tensors in shards.items():
        write_safetensors(folder / shard, tensors)
        weight_map.update(dict.fromkeys(tensors, shard))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    for name in ("tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"):
        (folder / name).write_text("{}")
    return folder


@pytest.fixture
def tiny_copy(tiny_model: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_model, tmp_path / "model"))


def test_tiny_folder_passes(tiny_model):
    report = check_model_folder(tiny_model, "nf4", free_gpu_bytes=FREE_H100)
    assert report.problems == []
    assert report.model_type == "llama4"
    assert report.checkpoint_kind == "bf16-fused"
    assert report.fits is True
    assert 0 < report.estimated_weight_bytes < 5_000_000


def test_no_gpu_means_fits_unknown(tiny_model):
    assert check_model_folder(tiny_model, "bf16").fits is None


def test_missing_and_non_folder(tmp_path):
    missing = check_model_folder(tmp_path / "nope", "nf4")
    assert missing.problems == [f"The model folder {tmp_path / 'nope'} does not exist."]
    file = tmp_path / "weights.safetensors"
    file.write_bytes(b"x")
    assert "is a file, not a model folder" in check_model_folder(file, "nf4").problems[0]


def test_missing_shard_is_named(tiny_copy):
    (tiny_copy / "model-00002-of-00003.safetensors").unlink()
    problems = check_model_folder(tiny_copy, "nf4").problems
    assert any("1 of the 3 weight files" in p and "model-00002-of-00003" in p for p in problems)


def test_truncated_shard_is_named(tiny_copy):
    shard = tiny_copy / "model-00001-of-00003.safetensors"
    shard.write_bytes(shard.read_bytes()[:-1000])
    problems = check_model_folder(tiny_copy, "nf4").problems
    assert len(problems) == 1
    assert problems[0].startswith("model-00001-of-00003.safetensors is truncated")


def test_garbage_shard_header(tiny_copy):
    (tiny_copy / "model-00003-of-00003.safetensors").write_bytes(
        struct.pack("<Q", 12) + b"not json!!!!"
    )
    problems = check_model_folder(tiny_copy, "nf4").problems
    assert problems == [
        "model-00003-of-00003.safetensors has a safetensors header that is not JSON."
    ]


def test_shard_that_does_not_match_index(tiny_copy):
    write_safetensors(tiny_copy / "model-00003-of-00003.safetensors", {"something.else": [2]})
    problems = check_model_folder(tiny_copy, "nf4").problems
    assert any(p.startswith("model-00003-of-00003.safetensors lacks") for p in problems)


def test_pickle_weights_refused(tiny_copy):
    (tiny_copy / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    problems = check_model_folder(tiny_copy, "nf4").problems
    assert problems == [
        f"{tiny_copy} contains pickle weights (pytorch_model.bin); Scout Desk loads "
        "safetensors only."
    ]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ({"auto_map": {"AutoModel": "evil.Model"}}, "asks for remote code (auto_map)"),
        ({"attn_implementation": "kernels-community/flash-attn"}, "custom attention"),
        ({"model_type": "llama"}, "model_type 'llama'; Scout Desk loads Llama 4"),
    ],
)
def test_config_refusals(tiny_copy, edit, expected):
    config = json.loads((tiny_copy / "config.json").read_text())
    (tiny_copy / "config.json").write_text(json.dumps(config | edit))
    problems = check_model_folder(tiny_copy, "nf4").problems
    assert len(problems) == 1
    assert expected in problems[0]


def test_unreadable_config(tiny_copy):
    (tiny_copy / "config.json").write_text("{not json")
    problems = check_model_folder(tiny_copy, "nf4").problems
    assert len(problems) == 1
    assert problems[0].startswith("config.json is not valid JSON")


def test_missing_tokenizer_and_processor(tiny_copy):
    (tiny_copy / "tokenizer.json").unlink()
    (tiny_copy / "processor_config.json").unlink()
    problems = check_model_folder(tiny_copy, "nf4").problems
    assert any("no tokenizer.json" in p for p in problems)
    assert any("no preprocessor_config.json or processor_config.json" in p for p in problems)


def test_unfinished_prepare_output(tiny_copy):
    (tiny_copy / PREPARE_STATE_NAME).write_text(json.dumps({"complete": False}))
    assert check_model_folder(tiny_copy, "nf4").problems == [
        f"{tiny_copy} is an incomplete prepare-model output; re-run prepare-model to finish it."
    ]


def test_official_scout_asked_for_nf4_is_refused_with_the_hint(tmp_path):
    folder = scout_skeleton(tmp_path / "scout", per_expert=False, quantization_config=None)
    report = check_model_folder(folder, "nf4", free_gpu_bytes=FREE_H100)
    assert report.checkpoint_kind == "bf16-fused"
    assert report.fits is False
    assert report.estimated_weight_bytes / GB == pytest.approx(203, rel=0.03)
    (problem,) = report.problems
    assert "but the GPU has 79.0 GB free" in problem
    assert "run `scout-desk prepare-model SRC DST` once" in problem
    assert "per-expert 4-bit folder (~60." in problem


def test_official_scout_without_gpu_is_refused_against_ram(tmp_path):
    folder = scout_skeleton(tmp_path / "scout", per_expert=False, quantization_config=None)
    report = check_model_folder(folder, "int8", memory_bytes=64 * GB)
    assert report.fits is None
    assert report.problems and "No GPU found" in report.problems[0]
    assert "64.0 GB of memory" in report.problems[0]


def test_pre_quantized_scout_fits_an_h100(tmp_path):
    bnb = {
        "quant_method": "bitsandbytes",
        "load_in_4bit": True,
        "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_use_double_quant": True,
    }
    folder = scout_skeleton(tmp_path / "scout", per_expert=True, quantization_config=bnb)
    report = check_model_folder(folder, "nf4", free_gpu_bytes=FREE_H100)
    assert report.problems == []
    assert report.checkpoint_kind == "per-expert-nf4"
    assert report.estimated_weight_bytes / GB == pytest.approx(59, rel=0.03)
    assert report.fits is True
    asked_bf16 = check_model_folder(folder, "bf16", free_gpu_bytes=FREE_H100)
    assert asked_bf16.load_quantization == "nf4"
    assert "pre-quantized as nf4" in asked_bf16.warnings[0]


def test_bnb_config_over_fused_experts_is_a_problem(tmp_path):
    bnb = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    folder = scout_skeleton(tmp_path / "scout", per_expert=False, quantization_config=bnb)
    problems = check_model_folder(folder, "nf4", free_gpu_bytes=FREE_H100).problems
    assert any("not stored per expert" in p for p in problems)


def test_other_quantization_methods_are_refused(tmp_path):
    fp8 = {"quant_method": "fbgemm_fp8"}
    folder = scout_skeleton(tmp_path / "scout", per_expert=True, quantization_config=fp8)
    report = check_model_folder(folder, "nf4", free_gpu_bytes=FREE_H100)
    assert report.checkpoint_kind == "other-quantized"
    assert "quantization method 'fbgemm_fp8' is not supported" in report.problems[0]

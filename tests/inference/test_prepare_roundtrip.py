"""prepare-model on the tiny Llama 4: convert, preflight, load per-expert 4-bit, resume, refuse."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.inference.checkpoint import read_header, read_index
from app.inference.preflight import PREPARE_STATE_NAME, check_model_folder
from app.inference.prepare import PrepareError, PrepareProgress, prepare_model

pytestmark = pytest.mark.slow
PROMPT = [[1, 5, 9, 17, 33, 65, 100, 200, 300, 301, 302, 40, 41]]


@pytest.fixture(scope="module")
def prepared_nf4(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("prepared") / "nf4"
    prepare_model(tiny_model, dst, "nf4")
    return dst


def _load(folder: Path):
    import torch
    from transformers import Llama4ForConditionalGeneration

    model, info = Llama4ForConditionalGeneration.from_pretrained(
        folder,
        dtype=torch.bfloat16,
        device_map="cpu",
        local_files_only=True,
        output_loading_info=True,
    )
    assert {k: v for k, v in info.items() if v} == {}, "every weight must load, nothing left over"
    return model.eval()


def _logits(model):
    import torch

    with torch.no_grad():
        return model(input_ids=torch.tensor(PROMPT)).logits.float()


def test_output_passes_preflight_as_per_expert_nf4(prepared_nf4, tiny_model):
    report = check_model_folder(prepared_nf4, "nf4")
    assert report.problems == []
    assert report.checkpoint_kind == "per-expert-nf4"
    config = json.loads((prepared_nf4 / "config.json").read_text())
    quant = config["quantization_config"]
    assert quant["quant_method"] == "bitsandbytes"
    assert quant["bnb_4bit_quant_type"] == "nf4"
    assert quant["bnb_4bit_use_double_quant"] is True
    assert "router" in quant["llm_int8_skip_modules"]
    names = set(read_index(prepared_nf4))
    expert = "language_model.model.layers.0.feed_forward.experts.3"
    assert f"{expert}.gate_proj.weight.quant_state.bitsandbytes__nf4" in names
    assert not any(n.endswith("experts.gate_up_proj") for n in names)
    assert "language_model.model.layers.0.feed_forward.router.weight" in names
    for name in ("tokenizer.json", "chat_template.jinja", "generation_config.json"):
        assert (prepared_nf4 / name).read_bytes() == (tiny_model / name).read_bytes()
    assert json.loads((prepared_nf4 / PREPARE_STATE_NAME).read_text())["complete"] is True


def test_loads_with_experts_as_4bit_and_matches_the_source(prepared_nf4, tiny_model):
    import bitsandbytes as bnb
    import torch
    from safetensors import safe_open

    model = _load(prepared_nf4)
    moe = model.language_model.model.layers[0].feed_forward
    assert type(moe.experts).__name__ == "SequentialLlama4TextExperts"
    assert isinstance(moe.experts[0].gate_proj, bnb.nn.Linear4bit)
    assert isinstance(moe.shared_expert.up_proj, bnb.nn.Linear4bit)
    assert type(moe.router).__name__ == "Llama4Router"
    assert moe.router.weight.dtype == torch.bfloat16

    # Layout: each expert's dequantized weights must be the source's fused slices, transposed.
    name = "language_model.model.layers.0.feed_forward.experts.gate_up_proj"
    shard = read_index(tiny_model)[name]
    with safe_open(str(tiny_model / shard), framework="pt") as handle:
        gate_up = handle.get_tensor(name).float()
    inter = gate_up.shape[-1] // 2
    for e in (0, len(moe.experts) - 1):
        for proj, source in (
            ("gate_proj", gate_up[e][:, :inter].T),
            ("up_proj", gate_up[e][:, inter:].T),
        ):
            layer = getattr(moe.experts[e], proj)
            weight = bnb.functional.dequantize_4bit(layer.weight.data, layer.weight.quant_state)
            # NF4's error per weight stays under ~1/6 of its 64-block's absmax; a misplaced slice
            # would be as far off as the weights themselves (correlation ~0).
            assert (
                torch.corrcoef(torch.stack([weight.float().flatten(), source.flatten()]))[0, 1]
                > 0.97
            )

    # End to end: 4-bit noise on ~all weights perturbs the logits but keeps their shape. Against
    # the logits' spread (centred) a correct conversion is off by ~19 % here (NF4 keeps 16 levels
    # per 64-weight block, ~10 % error per weight, compounded over 4 layers); unrelated logits of
    # the same spread are off by ~140 %, so 35 % separates a right conversion from a wrong one.
    reference = _logits(_load(tiny_model))
    quantized = _logits(model)
    centred = reference - reference.mean(dim=-1, keepdim=True)
    error = (quantized - reference).norm() / centred.norm()
    assert error < 0.35


def test_int8_round_trip_matches_bf16(tiny_model, tmp_path):
    import bitsandbytes as bnb

    dst = tmp_path / "int8"
    prepare_model(tiny_model, dst, "int8")
    report = check_model_folder(dst, "int8")
    assert report.problems == [] and report.checkpoint_kind == "per-expert-int8"
    model = _load(dst)
    assert isinstance(
        model.language_model.model.layers[1].feed_forward.experts[2].down_proj, bnb.nn.Linear8bitLt
    )
    reference = _logits(_load(tiny_model))
    quantized = _logits(model)
    centred = reference - reference.mean(dim=-1, keepdim=True)
    # int8 with one scale per row is near-lossless: ~1.6 % of the logits' spread here (NF4: ~19 %).
    assert (quantized - reference).norm() / centred.norm() < 0.05


def test_interrupted_run_resumes_and_finishes(tiny_model, tmp_path):
    dst = tmp_path / "resumed"
    seen: list[PrepareProgress] = []

    def stop_after_first(step: PrepareProgress) -> None:
        seen.append(step)
        if step.shard == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare_model(tiny_model, dst, "nf4", progress=stop_after_first)
    assert (
        not (dst / "config.json").exists() and not (dst / "model.safetensors.index.json").exists()
    )
    assert check_model_folder(dst, "nf4").problems == [
        f"{dst} is an incomplete prepare-model output; re-run prepare-model to finish it."
    ]
    first = dst / seen[0].name
    first_bytes = first.read_bytes()

    seen.clear()
    result = prepare_model(tiny_model, dst, "nf4", progress=seen.append)
    assert [s.resumed for s in seen] == [True, False, False]
    assert (result.written, result.resumed) == (2, 1)
    assert first.read_bytes() == first_bytes
    assert check_model_folder(dst, "nf4").problems == []

    # A corrupted finished shard is detected by its hash and rewritten on the next run.
    damaged = bytearray(first_bytes)
    damaged[-1] ^= 0xFF
    first.write_bytes(bytes(damaged))
    seen.clear()
    prepare_model(tiny_model, dst, "nf4", progress=seen.append)
    assert seen[0].resumed is False
    assert first.read_bytes() == first_bytes
    assert read_header(first).tensors


def test_refuses_non_empty_destination(tiny_model, tmp_path):
    dst = tmp_path / "busy"
    dst.mkdir()
    (dst / "notes.txt").write_text("mine")
    with pytest.raises(PrepareError, match="is not empty") as caught:
        prepare_model(tiny_model, dst)
    assert caught.value.exit_code == 3
    assert (dst / "notes.txt").read_text() == "mine"


def test_refuses_already_prepared_and_broken_sources(prepared_nf4, tiny_model, tmp_path):
    with pytest.raises(PrepareError, match="already a per-expert-nf4 folder"):
        prepare_model(prepared_nf4, tmp_path / "again")
    broken = Path(shutil.copytree(tiny_model, tmp_path / "broken"))
    (broken / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(PrepareError, match=r"Cannot convert .*model-00002-of-00003") as caught:
        prepare_model(broken, tmp_path / "out")
    assert caught.value.exit_code == 4
    assert not (tmp_path / "out").exists()

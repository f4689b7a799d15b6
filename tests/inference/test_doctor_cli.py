"""`scout-desk doctor` and `scout-desk prepare-model` as a user runs them."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.commands import doctor, prepare_model
from tests.helpers.scout_config import SCOUT_CONFIG

ROOT = Path(__file__).resolve().parents[2]
CONTRACT_FIELDS = {"model_type", "problems", "estimated_weight_bytes", "fits"}
CUDA_FIELDS = {"available", "device", "total_bytes", "free_bytes"}


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_doctor_json_on_a_good_folder(tiny_model):
    done = _cli("doctor", "--model", str(tiny_model), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result.keys() >= CONTRACT_FIELDS
    assert set(result["cuda"]) == CUDA_FIELDS
    for package in ("python", "torch", "transformers", "bitsandbytes", "PySide6", "scout-desk"):
        assert result["versions"][package], package
    assert result["model_type"] == "llama4"
    assert result["problems"] == []
    assert result["estimated_weight_bytes"] > 0
    if not result["cuda"]["available"]:
        assert result["fits"] is None


def test_doctor_broken_folder_exits_4_without_traceback(tiny_model, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(SCOUT_CONFIG))
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04")
    done = _cli("doctor", "--json", env={"SCOUT_DESK_MODEL": str(folder)})
    assert done.returncode == 4
    assert "Traceback" not in done.stderr
    problems = json.loads(done.stdout)["problems"]
    assert any("pytorch_model.bin" in p and "safetensors only" in p for p in problems)
    assert any("no tokenizer.json" in p for p in problems)


def test_doctor_text_report(tiny_model, capsys):
    args = argparse.Namespace(model=str(tiny_model), quantization="bf16", json=False)
    assert doctor.run(args) == 0
    out = capsys.readouterr().out
    assert f"Model folder: {tiny_model}" in out
    assert "model type llama4, checkpoint bf16-fused" in out
    assert "OK: the folder can be loaded." in out


def test_doctor_without_a_model_folder(capsys):
    args = argparse.Namespace(model=None, quantization="nf4", json=True)
    assert doctor.run(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model_type"] is None and result["problems"] == [] and result["fits"] is None


def test_doctor_text_names_problems(tmp_path, capsys):
    args = argparse.Namespace(model=str(tmp_path / "missing"), quantization="nf4", json=False)
    assert doctor.run(args) == 4
    out = capsys.readouterr().out
    assert f"    - The model folder {tmp_path / 'missing'} does not exist." in out
    assert "1 problem(s)" in out


@pytest.mark.slow
def test_prepare_model_command_prints_a_line_per_shard(tiny_model, tmp_path, capsys):
    dst = tmp_path / "prepared"
    args = argparse.Namespace(src=tiny_model, dst=dst, quantization="nf4")
    assert prepare_model.run(args) == 0
    out = capsys.readouterr().out.splitlines()
    shard_lines = [line for line in out if line.startswith("[")]
    assert [line.split("]")[0] for line in shard_lines] == ["[1/3", "[2/3", "[3/3"]
    assert all(" written; " in line for line in shard_lines)
    assert out[-1].startswith(f"Done: {dst} (3 shards")
    again = argparse.Namespace(src=tiny_model, dst=tmp_path / "busy", quantization="nf4")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    assert prepare_model.run(again) == 3
    assert "is not empty" in capsys.readouterr().err


def _scout_nf4_folder(tmp_path: Path) -> Path:
    """A prepare-model style Scout folder: the real config, pre-quantized NF4 (no weights)."""
    from app.inference.estimate import KEEP_BF16_MODULES

    folder = tmp_path / "scout-nf4"
    folder.mkdir(parents=True)
    quant = {
        "quant_method": "bitsandbytes",
        "load_in_4bit": True,
        "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_use_double_quant": True,
        "bnb_4bit_compute_dtype": "bfloat16",
        "llm_int8_skip_modules": list(KEEP_BF16_MODULES),
    }
    (folder / "config.json").write_text(json.dumps({**SCOUT_CONFIG, "quantization_config": quant}))
    return folder


def _scout_context(
    tmp_path: Path, capsys, gpu_memory: float = 80.0, kv_cache: str = "bf16",
    output_head: str = "bf16",
) -> dict:  # fmt: skip
    args = argparse.Namespace(
        model=str(_scout_nf4_folder(tmp_path)), quantization="nf4", json=True,
        gpu_memory=gpu_memory, kv_cache=kv_cache, output_head=output_head,
    )  # fmt: skip
    doctor.run(args)  # exit 4: the folder has no weights or tokenizer; the figures still count
    return json.loads(capsys.readouterr().out)["context"]


def test_doctor_context_for_scout_nf4_on_an_80_gb_card(tmp_path, capsys):
    from app.inference.estimate import KEEP_BF16_MODULES, estimate_weights

    context = _scout_context(tmp_path, capsys)
    text = SCOUT_CONFIG["text_config"]
    global_layers = text["no_rope_layers"].count(0)  # 12 NoPE layers attend to everything
    kv = global_layers * 2 * text["num_key_value_heads"] * text["head_dim"] * 2  # K, V in bf16
    assert context["kv_bytes_per_token"] == kv == 49_152
    expected = estimate_weights(
        SCOUT_CONFIG, "nf4", fused_experts=False, skip_modules=KEEP_BF16_MODULES
    ).weight_bytes
    assert context["weights_bytes"] == pytest.approx(expected, rel=0.02)
    # 80 GiB − 60.4 GB weights − reserve − the chunked layers' 1.2 GB: bf16 KV alone would give
    # ~458 K tokens; the decode step's 1.2 GB of rings (more than the last prefill segment's
    # working memory) bring it to ~439 K.
    assert 400_000 < context["max_prompt_tokens"] < 458_000
    assert context["kv_cache"] == "bf16"
    assert _scout_context(tmp_path / "more", capsys, 141.0)["max_prompt_tokens"] > 800_000


def test_doctor_context_meets_the_issue_goal_of_400k_tokens(tmp_path, capsys):
    assert _scout_context(tmp_path, capsys)["max_prompt_tokens"] >= 400_000


def test_doctor_context_with_the_int8_kv_meets_the_goal_of_800k_tokens(tmp_path, capsys):
    context = _scout_context(tmp_path, capsys, kv_cache="int8")
    assert context["kv_cache"] == "int8" and context["kv_bytes_per_token"] == 24_960
    assert context["max_prompt_tokens"] >= 800_000


def test_doctor_prices_the_8_bit_output_head(tmp_path, capsys):
    bf16 = _scout_context(tmp_path / "bf16", capsys)
    int8 = _scout_context(tmp_path / "int8", capsys, output_head="int8")
    vocab, hidden = 202_048, 5_120  # Scout's head: 2.07 GB in bf16, 1.04 GB in 8 bits
    saved = vocab * hidden * 2 - (vocab * hidden + vocab * 4)
    assert int8["output_head"] == "int8" and bf16["output_head"] == "bf16"
    assert bf16["weights_bytes"] - int8["weights_bytes"] == saved
    more = int8["max_prompt_tokens"] - bf16["max_prompt_tokens"]
    assert more == pytest.approx(saved / 49_152, rel=0.02)  # ~21 K tokens of bf16 KV


def test_doctor_context_is_null_without_a_folder_and_has_no_tokens_without_a_gpu(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(doctor, "cuda_facts", lambda: doctor.CudaFacts(False))
    monkeypatch.delenv("SCOUT_DESK_MODEL", raising=False)
    doctor.run(argparse.Namespace(model=None, quantization="nf4", json=True))
    nothing = {
        "max_prompt_tokens": None, "kv_bytes_per_token": None, "weights_bytes": None,
        "kv_cache": "bf16", "output_head": "bf16",
    }  # fmt: skip
    assert json.loads(capsys.readouterr().out)["context"] == nothing
    folder = _scout_nf4_folder(tmp_path)
    doctor.run(argparse.Namespace(model=str(folder), quantization="nf4", json=True))
    context = json.loads(capsys.readouterr().out)["context"]
    assert context["max_prompt_tokens"] is None and context["kv_bytes_per_token"] == 49_152
    doctor.run(argparse.Namespace(model=str(folder), quantization="nf4", json=False))
    assert "Context: unknown without a GPU (bf16 KV 49,152 bytes a token" in capsys.readouterr().out


def test_doctor_text_prints_the_context_line(tmp_path, capsys):
    args = argparse.Namespace(
        model=str(_scout_nf4_folder(tmp_path)), quantization="nf4", json=False, gpu_memory=80.0
    )
    doctor.run(args)
    out = capsys.readouterr().out
    assert "  Context: up to 438," in out and "bf16 KV 49,152 bytes a token" in out


def test_gpu_memory_option_parses_a_float():
    parser = argparse.ArgumentParser()
    doctor.add_arguments(parser)
    assert parser.parse_args(["--gpu-memory", "79.5"]).gpu_memory == 79.5
    assert parser.parse_args([]).gpu_memory is None

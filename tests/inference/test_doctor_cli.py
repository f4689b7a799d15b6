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

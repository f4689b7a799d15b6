"""Fixtures for the inference tests: one tiny random Llama 4 folder per test session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete tiny Llama 4 folder (bf16 safetensors shards, processor, generation config).

    Built once per session; tests must not modify it (copy it first with shutil.copytree).
    """
    from app.inference.tiny import build_tiny_llama4

    return build_tiny_llama4(tmp_path_factory.mktemp("tiny-llama4") / "model")

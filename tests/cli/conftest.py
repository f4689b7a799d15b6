"""Fixtures for the command-line tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def long_context_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with room for a 38,000-token prompt (a copy: the shared folder stays)."""
    folder = tmp_path_factory.mktemp("long-context") / "model"
    shutil.copytree(tiny_model, folder)
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text())
    config["text_config"]["max_position_embeddings"] = 65536
    config_file.write_text(json.dumps(config))
    return folder

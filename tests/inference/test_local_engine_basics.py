"""The local engine without a model: cheap import, settings, refusals with plain sentences."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.core.messages import ChatTurn, Role
from app.core.settings import Settings
from app.inference.engine import Engine, ModelError
from app.inference.llama4_cache import PrefixCache, cut_point, tiles_before
from app.inference.llama4_prompt import limit_images
from app.inference.local_engine import LocalLlama4Engine, create_engine

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_engine_loads_neither_torch_nor_transformers() -> None:
    code = (
        "import sys, app.inference.local_engine, app.inference.budget, app.inference.tiny\n"
        "heavy = [m for m in ('torch', 'transformers', 'bitsandbytes') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_create_engine_without_a_folder_asks_to_choose_one() -> None:
    with pytest.raises(ModelError, match=r"pick the Llama 4 Scout folder"):
        create_engine(Settings())


def test_create_engine_uses_the_settings(tmp_path: Path) -> None:
    engine = create_engine(Settings(model_dir=str(tmp_path), quantization="int8"))
    assert isinstance(engine, Engine)
    assert engine.quantization == "int8" and engine.model_dir == tmp_path


def test_unknown_options_are_refused() -> None:
    with pytest.raises(ModelError, match="quantization"):
        LocalLlama4Engine(Path("x"), quantization="fp8")
    with pytest.raises(ModelError, match="MoE"):
        LocalLlama4Engine(Path("x"), moe="dense")


def test_load_of_a_folder_without_config_names_the_folder(tmp_path: Path) -> None:
    from app.inference.engine import CancelToken

    engine = LocalLlama4Engine(tmp_path, quantization="bf16")
    with pytest.raises(ModelError, match=str(tmp_path.name)):
        engine.load(lambda _p: None, CancelToken())
    assert engine.loaded is None


def test_only_the_five_most_recent_images_stay() -> None:
    paths = [Path(f"{i}.png") for i in range(7)]
    turns = (
        ChatTurn(Role.USER, "a", tuple(paths[:3])),
        ChatTurn(Role.ASSISTANT, "b"),
        ChatTurn(Role.USER, "c", tuple(paths[3:])),
    )
    kept = limit_images(turns)
    assert [p for t in kept for p in t.images] == paths[2:]
    assert [t.text for t in kept] == ["a", "b", "c"]


def test_prefix_cache_matches_only_an_unchanged_history() -> None:
    prefix = PrefixCache()
    assert prefix.reusable([1, 2, 3]) == 0
    prefix.store([1, 2], {"kv": [1]})
    assert prefix.reusable([1, 2, 3, 4]) == 2
    assert prefix.reusable([1, 2]) == 2  # regenerate: same prompt
    assert prefix.reusable([1, 9, 3]) == 0  # edited history
    kept = {"kv": [1]}
    prefix.store([1, 2], kept)
    assert prefix.take() is kept  # handed over, never copied (one KV cache in the engine)
    assert prefix.reusable([1, 2, 3]) == 0 and prefix.take() is None  # until stored again
    prefix.store([1, 2], kept)
    prefix.clear()
    assert prefix.reusable([1, 2, 3]) == 0


def test_cut_point_and_tiles() -> None:
    header_end, patch = 7, 5
    ids = [0, 7, 5, 5, 5, 5, 1, 7, 9]
    assert cut_point(ids, header_end) == 8
    assert cut_point([0, 1, 7], header_end) == 0  # the last token always goes to generate
    assert tiles_before(ids, patch, 2, 6) == 2

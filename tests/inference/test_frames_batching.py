"""Frame-by-frame answers on the tiny Llama 4: batches equal lone prompts, cancel, clip, summary."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from app.core.messages import StopReason
from app.core.video.data import FrameRef, FrameResult
from app.inference import frames as frames_module
from app.inference.engine import CancelToken, ModelError, run_to_end
from app.inference.frames import (
    answer_frames,
    ask_about_clip,
    pick_clip_frames,
    summarize_frames,
)
from app.inference.local_engine import LocalLlama4Engine

pytestmark = pytest.mark.slow


def _engine(folder: Path) -> LocalLlama4Engine:
    engine = LocalLlama4Engine(folder, quantization="bf16", device="cpu")
    engine.load(lambda _p: None, CancelToken())
    return engine


@pytest.fixture(scope="module")
def engine(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """The tiny model with Scout-like attention chunks (longer than any prompt here).

    The tiny folder's 64-token chunks are shorter than one image prompt; Scout's are 8,192.
    """
    folder = tmp_path_factory.mktemp("frames-model") / "model"
    shutil.copytree(tiny_model, folder)
    config = json.loads((folder / "config.json").read_text())
    config["text_config"]["attention_chunk_size"] = 4096
    (folder / "config.json").write_text(json.dumps(config))
    engine = _engine(folder)
    yield engine
    engine.unload()


@pytest.fixture(scope="module")
def short_chunk_engine(tiny_model: Path) -> Iterator[LocalLlama4Engine]:
    engine = _engine(tiny_model)
    yield engine
    engine.unload()


@pytest.fixture(scope="module")
def mixed_frames(tmp_path_factory: pytest.TempPathFactory) -> list[FrameRef]:
    """Frames of different shapes: their prompts differ in length, so batches are padded."""
    folder = tmp_path_factory.mktemp("frames")
    refs = []
    for i, (size, colour) in enumerate(
        [((160, 120), (200, 30, 30)), ((40, 160), (10, 200, 10)), ((56, 56), (0, 0, 250)),
         ((300, 60), (250, 250, 0)), ((160, 120), (30, 30, 30))]
    ):  # fmt: skip
        path = folder / f"frame{i}.jpg"
        Image.new("RGB", size, colour).save(path)
        refs.append(FrameRef(i, 0.5 + i * 1.25, path, *size))
    return refs


def _answers(engine, frames, **kw) -> list[FrameResult]:
    kw.setdefault("max_new_tokens", 10)
    return list(answer_frames(engine, "What is here?", frames, "clip.mp4", CancelToken(),
                              temperature=0.0, **kw))  # fmt: skip


def _one_by_one(engine, frames, **kw) -> list[FrameResult]:
    return [r for f in frames for r in _answers(engine, [f], batch_size=1, **kw)]


def test_batched_greedy_answers_equal_one_by_one(engine, mixed_frames) -> None:
    padded = frames_module._batch_inputs(
        engine.loaded, "What is here?", mixed_frames[:4], "clip.mp4", None
    )
    assert (padded["attention_mask"] == 0).any()  # left padding really happens
    assert (padded["attention_mask"][:, -1] == 1).all()

    batched = _answers(engine, mixed_frames, batch_size=3)

    assert batched == _one_by_one(engine, mixed_frames)
    assert [r.index for r in batched] == [0, 1, 2, 3, 4]
    assert [r.time_s for r in batched] == [f.time_s for f in mixed_frames]
    assert all(r.stop_reason is StopReason.LENGTH for r in batched)


def test_rows_that_would_cross_an_attention_chunk_run_unpadded(
    short_chunk_engine, mixed_frames
) -> None:
    batched = _answers(short_chunk_engine, mixed_frames, batch_size=5)
    assert batched == _one_by_one(short_chunk_engine, mixed_frames)


def test_the_speed_option_uses_fewer_tiles(engine, mixed_frames) -> None:
    wide = mixed_frames[3:4]
    full = frames_module._batch_inputs(engine.loaded, "Q", wide, "clip.mp4", None)
    fast = frames_module._batch_inputs(engine.loaded, "Q", wide, "clip.mp4", 1)
    assert fast["pixel_values"].shape[0] < full["pixel_values"].shape[0]
    assert fast["input_ids"].shape[1] < full["input_ids"].shape[1]
    assert len(_answers(engine, wide, max_patches=1)) == 1


def test_cancel_stops_between_batches(engine, mixed_frames) -> None:
    cancel = CancelToken()
    seen = []
    stream = answer_frames(engine, "Q", mixed_frames, "clip.mp4", cancel, batch_size=2,
                           max_new_tokens=4, temperature=0.0)  # fmt: skip
    for result in stream:
        seen.append(result)
        cancel.cancel()
    assert [r.index for r in seen] == [0, 1]  # the running batch finishes; no other starts


def test_a_cancel_before_the_first_batch_answers_nothing(engine, mixed_frames) -> None:
    cancel = CancelToken()
    cancel.cancel()
    assert list(answer_frames(engine, "Q", mixed_frames, "clip.mp4", cancel)) == []


def test_the_clip_question_carries_five_frames_at_most(engine, mixed_frames) -> None:
    many = mixed_frames + mixed_frames[:2]
    chosen = pick_clip_frames(many)
    assert [f.index for f in chosen] == [0, 2, 3, 4, 1] and chosen[-1] is many[-1]
    chunks: list[str] = []
    result = run_to_end(
        ask_about_clip(engine, "What happens?", many, "clip.mp4", 9.0, CancelToken(),
                       max_new_tokens=5, temperature=0.0),
        chunks.append,
    )  # fmt: skip
    assert result.stop_reason is StopReason.LENGTH and result.timings.completion_tokens == 5


def test_the_summary_is_one_text_prompt(engine) -> None:
    results = [FrameResult(i, i * 2.0, f"a red square, frame {i}") for i in range(3)]
    result = run_to_end(
        summarize_frames(engine, "What happens?", results, "clip.mp4", 6.0, CancelToken(),
                         max_new_tokens=4, temperature=0.0),
        lambda _c: None,
    )  # fmt: skip
    assert result.timings.completion_tokens == 4 and result.timings.prompt_tokens > 40


def test_an_unloaded_engine_is_a_model_error(tiny_model, mixed_frames) -> None:
    idle = LocalLlama4Engine(tiny_model, quantization="bf16", device="cpu")
    with pytest.raises(ModelError):
        list(answer_frames(idle, "Q", mixed_frames, "clip.mp4", CancelToken()))

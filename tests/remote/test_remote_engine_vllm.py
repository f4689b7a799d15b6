"""`RemoteEngine` against the real vLLM server: streaming, usage, Stop, batching, a wrong key."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image

from app.core.messages import ChatTurn, Role, StopReason
from app.core.video.prompts import frame_prompt
from app.inference.engine import CancelToken, GenerationRequest, ModelError
from app.inference.remote_engine import RemoteEngine

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(480)]

QUESTION = "What is in this picture?"
RUNNING = "vllm:num_requests_running"
GENERATED = "vllm:generation_tokens_total"


def _image(folder: Path, name: str, colour: tuple[int, int, int]) -> Path:
    path = folder / f"{name}.png"
    Image.new("RGB", (96, 72), colour).save(path)
    return path


def _ask(text: str, *images: Path, max_new_tokens: int = 16) -> GenerationRequest:
    return GenerationRequest((ChatTurn(Role.USER, text, images),), max_new_tokens=max_new_tokens)


def _wait_for(condition, timeout_s: float, poll_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll_s)
    return condition()


@pytest.fixture
def engine(vllm_server):
    engine = RemoteEngine(vllm_server.base_url, vllm_server.model, api_key=vllm_server.api_key)
    engine.load(lambda progress: None, CancelToken())
    yield engine
    engine.unload()


def test_load_finds_the_model_its_context_and_that_it_reads_images(engine, vllm_server):
    assert engine.model_id == vllm_server.model
    assert engine.max_model_len == 4096
    assert engine.accepts_images
    assert engine.status().name == f"{vllm_server.model} @ {engine.host}"


def test_an_image_question_streams_and_reports_usage_and_timings(engine, tmp_path):
    picture = _image(tmp_path, "red", (200, 40, 40))
    chunks: list[str] = []
    stream = engine.generate(_ask(QUESTION, picture, max_new_tokens=24), CancelToken())
    try:
        while True:
            chunks.append(next(stream))
    except StopIteration as end:
        result = end.value
    assert len(chunks) > 1 and "".join(chunks).strip()
    assert result.stop_reason == StopReason.LENGTH
    timings = result.timings
    assert timings.completion_tokens == 24
    assert timings.ttft_s > 0
    assert timings.decode_tokens_per_s > 0

    text_only = engine.generate(_ask(QUESTION, max_new_tokens=4), CancelToken())
    try:
        while True:
            next(text_only)
    except StopIteration as end:
        plain = end.value.timings
    assert timings.prompt_tokens >= plain.prompt_tokens + 4  # the image's tokens are counted


def test_stop_ends_the_answer_at_once_and_the_server_stops_generating(
    engine, vllm_server, tmp_path
):
    assert _wait_for(lambda: vllm_server.metric(RUNNING) == 0, 10), "the server is still busy"
    generated_before = vllm_server.metric(GENERATED)
    picture = _image(tmp_path, "blue", (40, 40, 200))
    cancel = CancelToken()
    limit = 3500  # the model never ends by itself: this would take the server many seconds
    stream = engine.generate(_ask(QUESTION, picture, max_new_tokens=limit), cancel)
    for _ in range(10):
        next(stream)
    assert vllm_server.metric(RUNNING) == 1  # it is mid-answer on the server

    cancel.cancel()
    stopped_at = time.monotonic()
    with pytest.raises(StopIteration) as end:
        while True:
            next(stream)
    ended_s = time.monotonic() - stopped_at
    assert end.value.value.stop_reason == StopReason.CANCELLED
    assert ended_s < 0.5, f"the generator took {ended_s:.2f} s to end after Stop"

    assert _wait_for(lambda: vllm_server.metric(RUNNING) == 0, 5), (
        "vLLM is still generating 5 s after Stop"
    )
    generated = vllm_server.metric(GENERATED) - generated_before
    assert generated < limit, f"the server generated all {generated:.0f} tokens anyway"
    time.sleep(1.0)
    assert vllm_server.metric(GENERATED) - generated_before == generated  # and nothing since


def test_generate_concurrent_answers_four_frames(engine, tmp_path):
    colours = [(220, 30, 30), (30, 220, 30), (30, 30, 220), (220, 220, 30)]
    requests = [
        _ask(
            frame_prompt("What happens here?", "clip.mp4", 1.5 * index),
            _image(tmp_path, f"frame{index}", colour),
        )
        for index, colour in enumerate(colours)
    ]
    answers = list(engine.generate_concurrent(requests, CancelToken()))
    assert sorted(index for index, _, _ in answers) == [0, 1, 2, 3]
    for _, text, result in answers:
        assert text.strip()
        assert result.stop_reason == StopReason.LENGTH
        assert result.timings.completion_tokens == 16


def test_a_wrong_key_raises_model_error(vllm_server):
    engine = RemoteEngine(vllm_server.base_url, vllm_server.model, api_key="not-the-key")
    with pytest.raises(ModelError, match=r"refused the API key \(HTTP 401\)") as caught:
        engine.load(lambda progress: None, CancelToken())
    assert "not-the-key" not in str(caught.value)
    assert vllm_server.base_url in str(caught.value)

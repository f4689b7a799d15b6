"""The real vLLM server the remote backend talks to, through the official `openai` client."""

from __future__ import annotations

import base64
import io

import openai
import pytest
from PIL import Image

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(480)]

QUESTION = "What is in this picture?"


def _png_data_uri(size: tuple[int, int] = (112, 112), colour=(200, 40, 40)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _client(server, api_key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.base_url, api_key=api_key or server.api_key, max_retries=0, timeout=60
    )


def _stream(client: openai.OpenAI, model: str, content, max_tokens: int):
    """(text, finish reason, usage) of one streamed chat completion."""
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": content}],
        max_tokens=max_tokens,
        stream=True,
        stream_options={"include_usage": True},
    )
    parts, finish, usage, chunks = [], None, None, 0
    with stream:
        for chunk in stream:
            chunks += 1
            for choice in chunk.choices:
                if choice.delta is not None and choice.delta.content:
                    parts.append(choice.delta.content)
                if choice.finish_reason is not None:
                    finish = choice.finish_reason
            if chunk.usage is not None:
                usage = chunk.usage
    assert chunks > 1, "the answer did not stream"
    return "".join(parts), finish, usage


def test_models_lists_the_tiny_model_with_its_context(vllm_server):
    with _client(vllm_server) as client:
        models = client.models.list().data
    by_id = {model.id: model for model in models}
    assert vllm_server.model in by_id, [model.id for model in models]
    assert (by_id[vllm_server.model].model_extra or {}).get("max_model_len") == 4096


def test_a_streamed_image_answer_reports_usage_with_the_image_tokens(vllm_server):
    with _client(vllm_server) as client:
        text_only, _, text_usage = _stream(
            client, vllm_server.model, [{"type": "text", "text": QUESTION}], 8
        )
        image = [
            {"type": "image_url", "image_url": {"url": _png_data_uri()}},
            {"type": "text", "text": QUESTION},
        ]
        text, finish, usage = _stream(client, vllm_server.model, image, 16)
    assert text.strip(), "the answer streamed no text"
    assert text_only.strip()
    assert finish == "length"  # the test model never ends a turn by itself
    assert usage is not None and text_usage is not None
    assert usage.completion_tokens == 16
    # The image adds its start/end markers and at least one tile of patch tokens to the prompt.
    assert usage.prompt_tokens >= text_usage.prompt_tokens + 4
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


@pytest.mark.parametrize("key", ["not-the-key", "EMPTY"])
def test_a_wrong_key_is_refused_with_401(vllm_server, key):
    with _client(vllm_server, api_key=key) as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            client.models.list()
        assert caught.value.status_code == 401
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(
                model=vllm_server.model, messages=[{"role": "user", "content": "hi"}], max_tokens=1
            )

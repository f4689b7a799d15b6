"""What an OpenAI-compatible server serves: its model list (`GET /v1/models`), read once."""

from __future__ import annotations

import json
from dataclasses import dataclass

import openai

from app.inference.engine import ModelError
from app.inference.remote_faults import fault
from app.inference.remote_stream import make_client
from app.inference.remote_urls import display_url, normalize_base_url


@dataclass(frozen=True)
class ServerModel:
    """A model the server serves.

    Attributes:
        id: the name requests use ("meta-llama/Llama-4-Scout-17B-16E-Instruct").
        max_model_len: the context window vLLM was started with (None when not reported).
    """

    id: str
    max_model_len: int | None = None


@dataclass(frozen=True)
class ServerInfo:
    """What `GET /v1/models` said.

    Attributes:
        url: the server's base URL (normalized, without credentials).
        models: the models it serves, in its order.
    """

    url: str
    models: tuple[ServerModel, ...]


def server_info(
    base_url: str, api_key: str | None = None, *, timeout_s: float = 10.0
) -> ServerInfo:
    """Ask an OpenAI-compatible server which models it serves.

    Args:
        base_url: the API's base URL ("http://gpu-box:8000/v1"; "/v1" is added to a bare host).
        api_key: sent as a Bearer token (None: no key).
        timeout_s: limit for connecting and for the answer.

    Returns:
        The server's URL and models.

    Raises:
        ModelError: the server cannot be reached or refused, with one sentence naming the URL
            (refused connection, unknown host, timeout, key refused, no API there, server
            failure, an answer that is not a model list).
    """
    url = normalize_base_url(base_url)
    client = make_client(url, api_key, openai.Timeout(timeout_s), connections=2)
    try:
        return read_models(client, url, api_key is not None)
    finally:
        client.close()


def read_models(client: openai.OpenAI, url: str, keyed: bool) -> ServerInfo:
    """`GET /v1/models`, as a `ServerInfo`; `ModelError` naming the URL on any failure."""
    shown = display_url(url)
    try:
        raw = client.models.with_raw_response.list()
        text = raw.text
    except openai.OpenAIError as exc:
        error = fault(exc, shown, during="models", keyed=keyed)
        raise ModelError(error.message) from None
    not_a_list = ModelError(
        f"The server at {shown} answered /models with something other than a model list: is "
        f"this the address of an OpenAI-compatible API?"
    )
    try:
        body = json.loads(text)
    except ValueError:
        raise not_a_list from None
    items = body.get("data") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise not_a_list
    from openai.types import Model

    models: list[ServerModel] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise not_a_list
        model = Model.model_construct(**item)
        extra = model.model_extra or {}
        length = extra.get("max_model_len")
        valid = isinstance(length, int) and not isinstance(length, bool) and length > 0
        models.append(ServerModel(model.id, length if valid else None))
    return ServerInfo(shown, tuple(models))


__all__ = ["ServerInfo", "ServerModel", "read_models", "server_info"]

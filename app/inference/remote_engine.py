"""The remote engine: Llama 4 served by vLLM (or any OpenAI-compatible server), over HTTP(S).

Requests go through the official `openai` client: streamed Chat Completions (server-sent events)
with the usage in a final chunk. Every blocking call runs on a helper thread that Stop hangs up on
(`remote_stream`), the model list comes from `remote_models`, and faults become one sentence each,
naming the server's URL (`remote_faults`).

Nothing here logs a prompt, an image or the API key.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

import openai

from app.core.messages import Role, StopReason, Timings
from app.inference.engine import (
    Cancelled,
    CancelToken,
    EngineError,
    EngineStatus,
    GenerationRequest,
    GenerationResult,
    LoadProgress,
    ModelError,
    ProgressCallback,
)
from app.inference.remote_faults import (
    MalformedStream,
    fault,
    parse_context_overflow,
    refuses_images,
)
from app.inference.remote_images import ImagePayloads
from app.inference.remote_models import ServerInfo, ServerModel, read_models, server_info
from app.inference.remote_stream import (
    Outcome,
    Put,
    Worker,
    call_cancellable,
    chunk_items,
    drain,
    generate_concurrently,
    make_client,
)
from app.inference.remote_urls import display_url, host_of, normalize_base_url

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

log = logging.getLogger(__name__)

#: Why images are left out when the server's model cannot read them (the caller marks them
#: skipped with this sentence).
TEXT_ONLY_REASON = "the server's model reads text only"
#: Token counts remembered per engine.
_COUNTS_KEPT = 4096


class RemoteEngine:
    """Llama 4 on an OpenAI-compatible server (vLLM), implementing `Engine`.

    Args:
        base_url: the API's base URL ("http://gpu-box:8000/v1").
        model: the model to use (None: the server's only, or first, model).
        api_key: sent as a Bearer token (None: no key).
        connect_timeout_s: limit for connecting.
        token_timeout_s: longest silence allowed while waiting for the first or next token.
        max_concurrency: most requests `generate_concurrent` has in flight at once.
    """

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        connect_timeout_s: float = 10.0,
        token_timeout_s: float = 120.0,
        max_concurrency: int = 8,
    ) -> None:
        self._url = normalize_base_url(base_url)
        self._display = display_url(self._url)
        self._requested_model = model or None
        self._api_key = api_key or None
        self._connect_timeout_s = connect_timeout_s
        self._token_timeout_s = token_timeout_s
        self._max_concurrency = max(1, int(max_concurrency))
        self._client: openai.OpenAI | None = None
        self._model: ServerModel | None = None
        self._accepts_images = True
        self._load_s = 0.0
        self._images = ImagePayloads()
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._counts_lock = threading.Lock()

    # -- what was found ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The normalized base URL, without credentials."""
        return self._display

    @property
    def host(self) -> str:
        """host[:port] of the server."""
        return host_of(self._url)

    @property
    def model_id(self) -> str | None:
        """The model in use once loaded (before: the one asked for, if any)."""
        return self._model.id if self._model else self._requested_model

    @property
    def max_model_len(self) -> int | None:
        """The server's context window for the model (None before load or when not reported)."""
        return self._model.max_model_len if self._model else None

    @property
    def accepts_images(self) -> bool:
        """False when the load-time probe found the model reads text only."""
        return self._accepts_images

    @property
    def max_concurrency(self) -> int:
        """Most requests `generate_concurrent` keeps in flight at once."""
        return self._max_concurrency

    @property
    def is_loaded(self) -> bool:
        """Whether `load` succeeded (and `unload` has not been called since)."""
        return self._client is not None

    # -- Engine protocol --------------------------------------------------------------------

    def load(self, progress: ProgressCallback, cancel: CancelToken) -> None:
        """List the server's models, choose one, and probe whether it reads images.

        Raises:
            Cancelled: the user cancelled (any open connection is closed at once).
            ModelError: the server cannot be used (one sentence naming the URL).
        """
        if self._client is not None:
            return
        if cancel.cancelled:
            raise Cancelled
        start = time.perf_counter()
        progress(LoadProgress(0, 2, f"Connecting to {self.host}"))
        client = self._new_client()
        try:
            info = call_cancellable(
                lambda: read_models(client, self._url, self._api_key is not None), cancel
            )
            model = self._choose(info)
            progress(LoadProgress(1, 2, f"Checking whether {model.id} reads images"))
            accepts = call_cancellable(lambda: self._probe_images(client, model.id), cancel)
        except BaseException:
            client.close()
            raise
        self._client, self._model, self._accepts_images = client, model, accepts
        self._load_s = time.perf_counter() - start
        log.info(
            "remote model %s at %s: context %s, images %s",
            model.id,
            self._display,
            model.max_model_len or "unknown",
            "yes" if accepts else "no",
        )
        progress(LoadProgress(2, 2, f"{model.id} @ {self.host}"))

    def generate(
        self, request: GenerationRequest, cancel: CancelToken
    ) -> Generator[str, None, GenerationResult]:
        """Stream one answer; see `Engine.generate`.

        Chunks already received are yielded before any fault is raised, so the caller keeps
        the partial answer. Cancelling (or `max_time_s` passing) closes the connection.
        """
        client, model = self._require_loaded()
        start = time.perf_counter()
        if cancel.cancelled:
            return GenerationResult(StopReason.CANCELLED, Timings(load_s=self._load_s))
        messages = self._messages(request)
        temperature = request.temperature
        top_p = request.top_p

        def work(put: Put) -> None:
            stream = client.chat.completions.create(
                model=model.id,
                messages=messages,
                max_tokens=request.max_new_tokens,
                temperature=openai.omit if temperature is None else temperature,
                top_p=openai.omit if top_p is None else top_p,
                stream=True,
                stream_options={"include_usage": True},
            )
            put("open", None)
            with stream:
                try:
                    for chunk in stream:
                        for kind, value in chunk_items(chunk):
                            put(kind, value)
                except (AttributeError, TypeError, ValueError) as exc:
                    # An event whose data is not JSON, bytes that are not UTF-8, ...
                    raise MalformedStream(type(exc).__name__) from None

        deadline = start + request.max_time_s if request.max_time_s else None
        worker = Worker(work, cancel, deadline, "remote-answer")
        outcome = Outcome()
        try:
            reason = yield from drain(
                worker, cancel, deadline, outcome, fault=self._stream_fault, url=self._display
            )
        finally:
            worker.stop()
        return GenerationResult(reason, outcome.timings(start, self._load_s))

    def generate_concurrent(
        self, requests: Sequence[GenerationRequest], cancel: CancelToken
    ) -> Iterator[tuple[int, str, GenerationResult]]:
        """Answer several requests at once, so the server batches them.

        Up to `max_concurrency` run at a time, each on its own thread.

        Yields:
            (index into `requests`, the whole answer, how it ended), in completion order.
            After a cancel the stopped ones come back CANCELLED with their partial text.

        Raises:
            EngineError: the first request that failed, once every other one was stopped
                (nothing more is yielded after a failure).
        """
        self._require_loaded()
        yield from generate_concurrently(self.generate, requests, cancel, self._max_concurrency)

    def status(self) -> EngineStatus:
        """Name the model and its host ("model @ host"), on the device "server"."""
        return EngineStatus(
            name=f"{self.model_id or 'remote model'} @ {self.host}",
            device="server",
            context_tokens=self.max_model_len,
            reads_images=self._accepts_images,
        )

    def count_tokens(self, text: str) -> int:
        """Tokens `text` costs with the server's own tokenizer (vLLM's `/tokenize`).

        No special tokens are added; counts are remembered, since chunking asks often.

        Raises:
            ModelError: not loaded, or the server has no `/tokenize` (not vLLM).
            EngineError: the server could not be asked (one sentence naming the URL).
        """
        client, model = self._require_loaded()
        with self._counts_lock:
            known = self._counts.get(text)
            if known is not None:
                self._counts.move_to_end(text)
                return known
        root = self._url.removesuffix("/v1")
        try:
            answer = client.post(
                f"{root}/tokenize",
                cast_to=object,
                body={"model": model.id, "prompt": text, "add_special_tokens": False},
            )
        except openai.NotFoundError:
            raise ModelError(
                f"The server at {self._display} cannot count tokens (it has no /tokenize, so "
                f"it is not vLLM)."
            ) from None
        except openai.OpenAIError as exc:
            raise self._fault(exc, opened=False) from None
        count = answer.get("count") if isinstance(answer, dict) else None
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise EngineError(
                f"The server at {self._display} answered /tokenize without a token count."
            )
        with self._counts_lock:
            self._counts[text] = count
            while len(self._counts) > _COUNTS_KEPT:
                self._counts.popitem(last=False)
        return count

    def unload(self) -> None:
        """Close the client and forget the model; safe when nothing is loaded."""
        client, self._client = self._client, None
        self._model = None
        self._accepts_images = True
        self._images.clear()
        with self._counts_lock:
            self._counts.clear()
        if client is not None:
            client.close()

    # -- internals --------------------------------------------------------------------------

    def _new_client(self) -> openai.OpenAI:
        timeout = openai.Timeout(self._token_timeout_s, connect=self._connect_timeout_s)
        return make_client(self._url, self._api_key, timeout, self._max_concurrency + 2)

    def _require_loaded(self) -> tuple[openai.OpenAI, ServerModel]:
        if self._client is None or self._model is None:
            raise ModelError(f"The model at {self._display} is not loaded yet.")
        return self._client, self._model

    def _choose(self, info: ServerInfo) -> ServerModel:
        if not info.models:
            raise ModelError(f"The server at {self._display} serves no models.")
        if self._requested_model is None:
            return info.models[0]
        for model in info.models:
            if model.id == self._requested_model:
                return model
        names = ", ".join(m.id for m in info.models)
        raise ModelError(
            f"The server at {self._display} has no model {self._requested_model!r}; it serves "
            f"{names}."
        )

    def _probe_images(self, client: openai.OpenAI, model_id: str) -> bool:
        """Ask for one token about a tiny image: False when the model refuses images."""
        messages: list[Any] = [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": _probe_image_uri()}},
                    {"type": "text", "text": "."},
                ],
            }
        ]
        try:
            client.chat.completions.create(model=model_id, messages=messages, max_tokens=1)
        except openai.BadRequestError as exc:
            if refuses_images(exc):
                return False
            # Refused for some other reason (a size limit, say): images may still work.
            log.info("the image probe at %s was refused (HTTP 400)", self._display)
            return True
        except openai.OpenAIError as exc:
            raise self._fault(exc, opened=False, model=model_id) from None
        return True

    def _messages(self, request: GenerationRequest) -> list[ChatCompletionMessageParam]:
        """The turns as Chat Completions messages: images first, then the text (as Llama 4's
        template orders them); images only in user turns, and only when the model reads them."""
        messages: list[Any] = []
        for turn in request.turns:
            images = turn.images if self._accepts_images and turn.role == Role.USER else ()
            if not images:
                messages.append({"role": turn.role.value, "content": turn.text})
                continue
            content: list[dict[str, Any]] = [
                {"type": "image_url", "image_url": {"url": self._images.data_uri(path)}}
                for path in images
            ]
            if turn.text:
                content.append({"type": "text", "text": turn.text})
            messages.append({"role": turn.role.value, "content": content})
        return cast("list[ChatCompletionMessageParam]", messages)

    def _stream_fault(self, exc: BaseException, opened: bool) -> EngineError:
        return self._fault(exc, opened=opened)

    def _fault(self, exc: BaseException, *, opened: bool, model: str | None = None) -> EngineError:
        return fault(
            exc,
            self._display,
            during="stream" if opened else "request",
            keyed=self._api_key is not None,
            secret=self._api_key,
            model=model or self.model_id,
            token_timeout_s=self._token_timeout_s,
        )


@functools.cache
def _probe_image_uri() -> str:
    """A 16×16 grey PNG as a data URI (the image probe's picture)."""
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (128, 128, 128)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


__all__ = [
    "TEXT_ONLY_REASON",
    "RemoteEngine",
    "ServerInfo",
    "ServerModel",
    "parse_context_overflow",
    "server_info",
]

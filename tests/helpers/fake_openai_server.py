"""A small real HTTP server on 127.0.0.1 that speaks enough of the OpenAI API to test clients.

It serves `GET /v1/models` (with vLLM's `max_model_len`) and `POST /v1/chat/completions`
streamed as server-sent events, and can misbehave in the ways a real server does: slow tokens,
no answer at all, HTTP errors with OpenAI-style bodies, vLLM's context-length refusal, a stream
cut mid-answer, malformed SSE, a required Bearer key and a text-only model.

Every request is recorded (headers, JSON body, the images it carried, decoded) together with
when the client closed the connection, so a test can check that Stop really hung up.

Usage::

    with FakeOpenAIServer() as server:
        server.behaviour = "stall"
        engine = RemoteEngine(server.url)
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: What `POST /v1/chat/completions` does; set `FakeOpenAIServer.behaviour`.
BEHAVIOURS = (
    "normal",  # stream the reply (or an echo of the request), usage in a final chunk
    "slow",  # like normal, `token_delay_s` between tokens
    "stall",  # send `stall_after` tokens, then nothing until the client hangs up
    "silent",  # read the request, never send a byte back
    "hold",  # send a token, wait until `hold_until` were in flight at once (or `release`), finish
    "error",  # answer `error_status` with an OpenAI-style JSON error (`error_message`)
    "context_length",  # 400 with vLLM's maximum-context-length message (`context_wording`)
    "cut",  # send `stall_after` tokens, then drop the connection mid-stream
    "malformed",  # send `stall_after` tokens, then an event whose data is not JSON
    "stream_error",  # send `stall_after` tokens, then an error event (`error_message`)
)

#: vLLM's refusals of an over-long request, as different releases word them.
CONTEXT_WORDINGS = {
    "requested": (
        "This model's maximum context length is 8192 tokens. However, you requested 10000 "
        "tokens (9000 in the messages, 1000 in the completion). Please reduce the length of "
        "the messages or completion."
    ),
    "input": (
        "This model's maximum context length is 8192 tokens. However, your request has 9500 "
        "input tokens. Please reduce the length of the input messages."
    ),
    # vLLM 0.32 (seen from the real server in tests/remote): a lower bound on the prompt.
    "at_least": (
        "This model's maximum context length is 4096 tokens. However, your prompt contains at "
        "least 4097 input tokens, which exceeds this limit even without any output tokens."
    ),
    "max_tokens": (
        "'max_tokens' or 'max_completion_tokens' is too large: 1000. This model's maximum "
        "context length is 8192 tokens and your request has 7500 input tokens "
        "(1000 > 8192 - 7500)."
    ),
}

#: What vLLM says when a text-only model is sent an image.
TEXT_ONLY_MESSAGE = "LlamaForCausalLM is not a multimodal model"

_ERROR_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    429: "RateLimitError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


@dataclass
class ReceivedImage:
    """An image part as the server decoded it from its data URI."""

    mime: str
    width: int
    height: int
    size: int  # bytes of the encoded image


@dataclass
class RecordedRequest:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any = None
    images: list[ReceivedImage] = field(default_factory=list)
    image_urls: list[str] = field(default_factory=list)  # every image_url.url, as sent
    received_at: float = 0.0
    disconnected: threading.Event = field(default_factory=threading.Event)
    disconnected_at: float | None = None

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    def mark_disconnected(self) -> None:
        if self.disconnected_at is None:
            self.disconnected_at = time.monotonic()
        self.disconnected.set()


class FakeOpenAIServer:
    """An OpenAI-compatible server on 127.0.0.1 (a random free port), in a background thread.

    Args:
        models: (id, max_model_len) of each model `/v1/models` lists; None leaves the field out.
        api_key: when set, every request must carry `Authorization: Bearer <api_key>` (else 401).
        text_only: refuse image parts with vLLM's 400 "not a multimodal model".
    """

    def __init__(
        self,
        models: tuple[tuple[str, int | None], ...] = (("meta-llama/Llama-4-Scout", 8192),),
        *,
        api_key: str | None = None,
        text_only: bool = False,
    ) -> None:
        self.models = models
        self.api_key = api_key
        self.text_only = text_only
        #: Serve vLLM's `POST /tokenize` (a count of whitespace-separated words).
        self.tokenize = True
        self.behaviour = "normal"
        #: Behaviours for particular requests, by the text of their last user message.
        self.behaviour_for_prompt: dict[str, str] = {}
        #: The normal answer's text; None echoes the request ("Images: 1. You said: ...").
        self.reply: str | None = None
        self.token_delay_s = 0.05
        self.stall_after = 1
        self.hold_until = 2
        self.error_status = 500
        self.error_message = "Internal server error."
        self.context_wording = "requested"
        #: What `GET /v1/models` does: "normal", "html" (a web page), "not_a_list", or an int
        #: status to answer with an OpenAI-style error.
        self.models_behaviour: str | int = "normal"
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._tokens_sent = 0
        self._released = False
        self._lock = threading.Condition()
        self._connections: set[socket.socket] = set()
        self._handler_threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The base URL a client is given (ends in /v1)."""
        return f"{self.root}/v1"

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, hang up every open connection and wait for the handler threads."""
        self._stopping.set()
        with self._lock:
            self._lock.notify_all()
            connections = list(self._connections)
        for conn in connections:
            _hang_up(conn)
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        for thread in list(self._handler_threads):
            thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests ask -----------------------------------------------------------------

    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def wait_for_chat_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until `count` chat requests arrived (their bodies read); return them."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._chat_locked()) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"only {len(self._chat_locked())} of {count} requests")
                self._lock.wait(left)
            return self._chat_locked()

    def wait_in_flight(self, count: int, timeout: float = 5.0) -> None:
        """Block until `count` chat answers are being streamed at once."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self.in_flight < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"only {self.in_flight} of {count} requests in flight")
                self._lock.wait(left)

    def release(self) -> None:
        """Let every held answer (and every later one) finish."""
        with self._lock:
            self._released = True
            self._lock.notify_all()

    def wait_tokens_sent(self, count: int, timeout: float = 5.0) -> None:
        """Block until the server has written `count` content tokens in all (for Stop tests)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._tokens_sent < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"only {self._tokens_sent} of {count} tokens sent")
                self._lock.wait(left)

    def _chat_locked(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # -- bookkeeping the handler calls --------------------------------------------------

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(record)
            self._lock.notify_all()

    def _count_token(self) -> None:
        with self._lock:
            self._tokens_sent += 1
            self._lock.notify_all()

    def _enter_flight(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._lock.notify_all()

    def _leave_flight(self) -> None:
        with self._lock:
            self.in_flight -= 1
            self._lock.notify_all()

    def _wait_flight(self, count: int, timeout: float) -> None:
        # Until `count` were in flight at once, not are: the first ones released may finish
        # before the last one reaches its own wait, which must not then wait for a crowd that
        # has already left (it did, for the whole timeout, now and then).
        deadline = time.monotonic() + timeout
        with self._lock:
            while self.max_in_flight < count and not self._released and not self._stopping.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._lock.wait(left)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: FakeOpenAIServer

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        self.fake._handler_threads.append(thread)
        thread.start()

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = super().get_request()
        with self.fake._lock:
            self.fake._connections.add(conn)
        return conn, address

    def shutdown_request(self, request: Any) -> None:
        with self.fake._lock:
            self.fake._connections.discard(request)
        super().shutdown_request(request)


class _Disconnected(Exception):  # noqa: N818 (the client hung up: not an error of the server)
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read the recorded requests instead

    @property
    def fake(self) -> FakeOpenAIServer:
        return self.server.fake

    # -- routing ------------------------------------------------------------------------

    def do_GET(self) -> None:
        record = self._start_record(None)
        self.fake._record(record)
        if not self._authorized():
            return
        if self.path.rstrip("/") != "/v1/models":
            self._send_error(404, f"Not found: {self.path}")
            return
        behaviour = self.fake.models_behaviour
        if isinstance(behaviour, int):
            self._send_error(behaviour, "The server cannot list models right now.")
        elif behaviour == "html":
            self._send_body(200, b"<html><body>Welcome to nginx!</body></html>", "text/html")
        elif behaviour == "not_a_list":
            self._send_json(200, {"hello": "world"})
        else:
            data = []
            for model_id, max_len in self.fake.models:
                item: dict[str, Any] = {
                    "id": model_id,
                    "object": "model",
                    "created": 1_700_000_000,
                    "owned_by": "vllm",
                }
                if max_len is not None:
                    item["max_model_len"] = max_len
                data.append(item)
            self._send_json(200, {"object": "list", "data": data})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        record = self._start_record(body)
        if isinstance(body, dict):
            record.image_urls, record.images = _images_of(body)
        self.fake._record(record)
        if not self._authorized():
            return
        if self.path.rstrip("/") == "/tokenize" and self.fake.tokenize:
            prompt = body.get("prompt", "") if isinstance(body, dict) else ""
            count = len(str(prompt).split())
            self._send_json(200, {"count": count, "max_model_len": 8192, "tokens": [1] * count})
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_error(404, f"Not found: {self.path}")
            return
        if not isinstance(body, dict):
            self._send_error(400, "The body is not a JSON object.")
            return
        if self.fake.text_only and record.image_urls:
            self._send_error(400, TEXT_ONLY_MESSAGE)
            return
        try:
            self._answer(body, record)
        except _Disconnected:
            record.mark_disconnected()

    # -- answers ------------------------------------------------------------------------

    def _answer(self, body: dict[str, Any], record: RecordedRequest) -> None:
        fake = self.fake
        behaviour = fake.behaviour_for_prompt.get(_last_user_text(body), fake.behaviour)
        if behaviour == "error":
            self._send_error(fake.error_status, fake.error_message)
            return
        if behaviour == "context_length":
            # vLLM's older releases answer with a flat error object: keep that shape here.
            message = CONTEXT_WORDINGS[fake.context_wording]
            self._send_json(
                400, {"object": "error", "message": message, "type": "BadRequestError", "code": 400}
            )
            return
        if behaviour == "silent":
            self._wait_for_hang_up(record)
            return
        if not body.get("stream"):
            self._answer_whole(body)
            return
        words = _words(self._reply_text(body, record))
        limit = body.get("max_tokens")
        finish = "stop"
        if isinstance(limit, int) and len(words) > limit:
            words, finish = words[:limit], "length"
        model = str(body.get("model", ""))
        self._start_stream()
        fake._enter_flight()
        try:
            self._stream(body, record, behaviour, model, words, finish)
        finally:
            fake._leave_flight()

    def _stream(
        self,
        body: dict[str, Any],
        record: RecordedRequest,
        behaviour: str,
        model: str,
        words: list[str],
        finish: str,
    ) -> None:
        fake = self.fake
        self._event(_chunk(model, {"role": "assistant", "content": ""}))
        for index, word in enumerate(words):
            if behaviour in _BREAKS and index == fake.stall_after:
                if behaviour == "stall":
                    self._wait_for_hang_up(record)
                elif behaviour == "cut":
                    _hang_up(self.connection)
                    record.mark_disconnected()
                elif behaviour == "malformed":
                    self._write_chunked(b"data: {this is not json\n\n")
                    self._wait_for_hang_up(record)
                else:
                    error = {"message": fake.error_message, "type": "InternalServerError"}
                    self._event({"error": error})
                    self._write_chunked(b"")
                return
            if behaviour == "hold" and index == 1:
                fake._wait_flight(fake.hold_until, timeout=5.0)
            if behaviour == "slow" and index > 0 and self._hung_up_within(fake.token_delay_s):
                record.mark_disconnected()
                return
            self._event(_chunk(model, {"content": word}))
            fake._count_token()
        self._event(_chunk(model, {}, finish_reason=finish))
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            usage = {
                "prompt_tokens": _prompt_tokens(body, record),
                "completion_tokens": len(words),
                "total_tokens": _prompt_tokens(body, record) + len(words),
            }
            self._event({**_chunk(model, None), "choices": [], "usage": usage})
        self._write_chunked(b"data: [DONE]\n\n")
        self._write_chunked(b"")  # the last, empty chunk ends the body

    def _answer_whole(self, body: dict[str, Any]) -> None:
        """A non-streamed completion (the image probe asks for one token this way)."""
        model = str(body.get("model", ""))
        self._send_json(
            200,
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "A"},
                        "finish_reason": "length",
                    }
                ],
                "usage": {"prompt_tokens": 150, "completion_tokens": 1, "total_tokens": 151},
            },
        )

    def _reply_text(self, body: dict[str, Any], record: RecordedRequest) -> str:
        if self.fake.reply is not None:
            return self.fake.reply
        return f"Images: {len(record.image_urls)}. You said: {_last_user_text(body)}"

    # -- plumbing -----------------------------------------------------------------------

    def _start_record(self, body: Any) -> RecordedRequest:
        headers = {k.lower(): v for k, v in self.headers.items()}
        return RecordedRequest(
            self.command, self.path, headers, body=body, received_at=time.monotonic()
        )

    def _authorized(self) -> bool:
        key = self.fake.api_key
        if key is None or self.headers.get("authorization") == f"Bearer {key}":
            return True
        self._send_json(
            401,
            {
                "error": {
                    "message": "Incorrect API key provided.",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            },
        )
        return False

    def _send_error(self, status: int, message: str) -> None:
        error = {"message": message, "type": _ERROR_TYPES.get(status, "Error"), "code": status}
        self._send_json(status, {"error": error})

    def _send_json(self, status: int, data: Any) -> None:
        self._send_body(status, json.dumps(data).encode(), "application/json")

    def _send_body(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
        self.close_connection = True

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True

    def _event(self, data: dict[str, Any]) -> None:
        self._write_chunked(b"data: " + json.dumps(data).encode() + b"\n\n")

    def _write_chunked(self, data: bytes) -> None:
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        except OSError as exc:
            raise _Disconnected from exc

    def _wait_for_hang_up(self, record: RecordedRequest) -> None:
        """Block until the client closes the connection (or the server stops)."""
        try:
            while self.connection.recv(65536):
                pass  # a client sends nothing more after its request; b"" is its hang-up
        except OSError:
            pass
        if not self.fake._stopping.is_set():
            record.mark_disconnected()

    def _hung_up_within(self, seconds: float) -> bool:
        """Wait up to `seconds`; True when the client hung up meanwhile."""
        readable, _, _ = select.select([self.connection], [], [], seconds)
        if not readable:
            return False
        try:
            return not self.connection.recv(65536)
        except OSError:
            return True


_BREAKS = ("stall", "cut", "malformed", "stream_error")


def _last_user_text(body: dict[str, Any]) -> str:
    """The text of the last user message (its text parts joined by spaces)."""
    said = ""
    for message in body.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                said = content
            elif isinstance(content, list):
                texts = [str(p.get("text", "")) for p in content if isinstance(p, dict)]
                said = " ".join(t for t in texts if t)
    return said


def _hang_up(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)


def _chunk(model: str, delta: dict[str, Any] | None, finish_reason: str | None = None) -> Any:
    choices = (
        []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
    )
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "choices": choices,
    }


def _words(text: str) -> list[str]:
    """Split into word tokens that keep their following space, like a tokenizer's pieces."""
    words: list[str] = []
    current = ""
    for char in text:
        current += char
        if char == " ":
            words.append(current)
            current = ""
    if current:
        words.append(current)
    return words


def _prompt_tokens(body: dict[str, Any], record: RecordedRequest) -> int:
    text = json.dumps([m for m in body.get("messages", []) if isinstance(m, dict)])
    return len(text.split()) + 150 * len(record.image_urls)


def _images_of(body: dict[str, Any]) -> tuple[list[str], list[ReceivedImage]]:
    """Every image_url of the messages, and each data-URI image decoded (size and type)."""
    from PIL import Image

    urls: list[str] = []
    images: list[ReceivedImage] = []
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "image_url":
                continue
            url = str((part.get("image_url") or {}).get("url", ""))
            urls.append(url)
            head, _, data = url.partition(",")
            if not head.startswith("data:") or not head.endswith(";base64"):
                continue
            try:
                raw = base64.b64decode(data, validate=True)
                with Image.open(io.BytesIO(raw)) as image:
                    width, height = image.size
            except (binascii.Error, OSError, ValueError):
                continue
            images.append(ReceivedImage(head[5:-7], width, height, len(raw)))
    return urls, images

"""The remote engine against a real HTTP server on 127.0.0.1 that speaks the OpenAI API.

Everything here goes over real sockets: the official client, real SSE streams, real hang-ups.
Waits are on events the fake server sets (a request arrived, a token went out, the client hung
up), never on sleeps; the only clocks are the short timeouts under test.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from app.core.messages import ChatTurn, Role, StopReason
from app.inference.engine import (
    BadInputError,
    Cancelled,
    CancelToken,
    Engine,
    EngineError,
    GenerationRequest,
    GenerationResult,
    ModelError,
    run_to_end,
)
from app.inference.remote_engine import (
    TEXT_ONLY_REASON,
    RemoteEngine,
    ServerInfo,
    ServerModel,
    parse_context_overflow,
    server_info,
)
from app.inference.remote_images import ImagePayloads, max_size
from app.inference.remote_urls import (
    display_url,
    is_loopback,
    normalize_base_url,
    plain_http_warning,
)
from tests.helpers.fake_openai_server import CONTEXT_WORDINGS, FakeOpenAIServer

#: The Stop budget: hung up within this long after the token is set.
STOP_S = 0.5
UNKNOWN_HOST = "http://scout-desk-test.invalid:8000"


@pytest.fixture(autouse=True)
def _no_proxies_or_openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """127.0.0.1 must be reached directly, and nothing from the user's OpenAI setup may leak."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("all_proxy", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for name in ("OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_LOG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OPENAI_CUSTOM_HEADERS", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-users-own-openai-key")


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture
def engine(server: FakeOpenAIServer) -> Iterator[RemoteEngine]:
    remote = RemoteEngine(server.url, connect_timeout_s=2.0, token_timeout_s=5.0)
    remote.load(lambda _: None, CancelToken())
    yield remote
    remote.unload()


def ask(text: str = "Hello there", *images: Path, **options: Any) -> GenerationRequest:
    return GenerationRequest((ChatTurn(Role.USER, text, tuple(images)),), **options)


def answer(
    engine: RemoteEngine, request: GenerationRequest, cancel: CancelToken | None = None
) -> tuple[str, GenerationResult]:
    chunks: list[str] = []
    result = run_to_end(engine.generate(request, cancel or CancelToken()), chunks.append)
    return "".join(chunks), result


def answer_until_fault(engine: RemoteEngine, request: GenerationRequest) -> tuple[str, EngineError]:
    """Drive a stream that must fail; return what was yielded before the fault, and the fault."""
    chunks: list[str] = []
    with pytest.raises(EngineError) as caught:
        run_to_end(engine.generate(request, CancelToken()), chunks.append)
    return "".join(chunks), caught.value


def cancel_when(
    condition: threading.Event | None, cancel: CancelToken
) -> tuple[threading.Thread, list[float]]:
    """A thread that cancels once `condition` is set (at once when None); it records when."""
    stamp: list[float] = []

    def run() -> None:
        if condition is not None:
            condition.wait(5)
        stamp.append(time.monotonic())
        cancel.cancel()

    thread = threading.Thread(target=run, name="test-cancel")
    return thread, stamp


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "big.jpg"
    Image.new("RGB", (4000, 3000), (200, 30, 30)).save(path, quality=80)
    return path


# -- URLs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8000/v1", True),
        ("http://127.5.6.7/v1", True),
        ("http://localhost:8000", True),
        ("http://[::1]:8000/v1", True),
        ("https://gpu.example.com/v1", False),
        ("http://192.168.1.20:8000/v1", False),
        ("http://localhost.evil.com/v1", False),
        ("not a url", False),
    ],
)
def test_is_loopback(url: str, expected: bool) -> None:
    assert is_loopback(url) is expected


def test_plain_http_warning_only_for_other_machines() -> None:
    warning = plain_http_warning("http://gpu-box:8000/v1")
    assert warning is not None
    assert "http://gpu-box:8000/v1" in warning and "unencrypted" in warning
    assert "prompts" in warning and "images" in warning
    assert plain_http_warning("http://127.0.0.1:8000/v1") is None
    assert plain_http_warning("https://gpu-box/v1") is None


def test_base_url_normalized_and_credentials_never_shown() -> None:
    assert normalize_base_url(" http://gpu-box:8000 ") == "http://gpu-box:8000/v1"
    assert normalize_base_url("https://gpu-box/v1/") == "https://gpu-box/v1"
    assert display_url("http://me:hunter2@gpu-box:8000/v1") == "http://gpu-box:8000/v1"
    with pytest.raises(ModelError, match="not a server address"):
        normalize_base_url("ftp://gpu-box/v1")
    with pytest.raises(ModelError):
        normalize_base_url("http://gpu-box:port/v1")
    engine = RemoteEngine("http://me:hunter2@gpu-box:8000/v1")
    assert engine.host == "gpu-box:8000"
    assert engine.base_url == "http://gpu-box:8000/v1"
    assert "hunter2" not in engine.status().name


# -- /v1/models --------------------------------------------------------------------------------


def test_server_info_reads_models_and_max_model_len() -> None:
    with FakeOpenAIServer((("scout", 65536), ("other", None))) as fake:
        info = server_info(fake.url)
    assert info == ServerInfo(fake.url, (ServerModel("scout", 65536), ServerModel("other", None)))


def _full_backlog() -> tuple[socket.socket, list[socket.socket]]:
    """A listening socket whose accept queue is full: connecting to it times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(listener.getsockname())
        fillers.append(filler)
    return listener, fillers


def _free_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = int(probe.getsockname()[1])
    probe.close()
    return port


def test_server_info_refused_unknown_host_and_connect_timeout() -> None:
    refused = f"http://127.0.0.1:{_free_port()}/v1"
    with pytest.raises(ModelError, match="refused") as caught:
        server_info(refused, timeout_s=2)
    assert refused in caught.value.message
    assert caught.value.exit_code == 4

    with pytest.raises(ModelError, match="unknown") as caught:
        server_info(UNKNOWN_HOST, timeout_s=2)
    assert f"{UNKNOWN_HOST}/v1" in caught.value.message

    listener, fillers = _full_backlog()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        with pytest.raises(ModelError, match="timed out") as caught:
            server_info(url, timeout_s=0.3)
        assert url in caught.value.message
    finally:
        for sock in (listener, *fillers):
            sock.close()


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        ("key", "wants an API key (HTTP 401)"),
        ("wrong_key", "refused the API key (HTTP 401)"),
        (404, "no OpenAI-compatible API"),
        (503, "failed (HTTP 503)"),
        ("html", "something other than a model list"),
        ("not_a_list", "something other than a model list"),
    ],
)
def test_server_info_faults_name_the_url(setup: object, fragment: str) -> None:
    with FakeOpenAIServer(api_key="sk-right" if setup in ("key", "wrong_key") else None) as fake:
        if isinstance(setup, int) or setup in ("html", "not_a_list"):
            fake.models_behaviour = setup
        key = "sk-wrong" if setup == "wrong_key" else None
        with pytest.raises(ModelError) as caught:
            server_info(fake.url, key)
    assert fragment in caught.value.message
    assert fake.url in caught.value.message
    assert "sk-wrong" not in caught.value.message


def test_a_path_without_the_api_is_a_404_sentence(server: FakeOpenAIServer) -> None:
    with pytest.raises(ModelError, match=r"no OpenAI-compatible API .*HTTP 404"):
        server_info(f"{server.root}/api")


# -- load --------------------------------------------------------------------------------------


def test_load_chooses_the_named_or_first_model_and_probes_images() -> None:
    with FakeOpenAIServer((("first", 4096), ("second", 8192))) as fake:
        progress: list[str] = []
        first = RemoteEngine(fake.url)
        first.load(lambda p: progress.append(p.message), CancelToken())
        assert (first.model_id, first.max_model_len, first.accepts_images) == ("first", 4096, True)
        assert progress[-1] == f"first @ 127.0.0.1:{fake.port}"
        probe = fake.chat_requests()[-1]
        assert probe.body["max_tokens"] == 1
        assert probe.image_urls[0].startswith("data:image/png;base64,")

        second = RemoteEngine(fake.url, "second")
        second.load(lambda _: None, CancelToken())
        status = second.status()
        assert status.name == f"second @ 127.0.0.1:{fake.port}"
        assert (status.device, status.context_tokens, status.reads_images) == ("server", 8192, True)

        with pytest.raises(ModelError) as caught:
            RemoteEngine(fake.url, "missing").load(lambda _: None, CancelToken())
        assert "'missing'" in caught.value.message
        assert "first, second" in caught.value.message
        assert fake.url in caught.value.message
        for loaded in (first, second):
            loaded.unload()
            loaded.unload()  # twice is fine


def test_engine_protocol_and_unloaded_use(server: FakeOpenAIServer) -> None:
    remote = RemoteEngine(server.url)
    assert isinstance(remote, Engine)
    remote.unload()  # nothing loaded: fine
    with pytest.raises(ModelError, match="not loaded"):
        next(remote.generate(ask(), CancelToken()))


def test_text_only_model_gets_no_images(photo: Path) -> None:
    with FakeOpenAIServer(text_only=True) as fake:
        remote = RemoteEngine(fake.url)
        remote.load(lambda _: None, CancelToken())
        assert remote.accepts_images is False
        assert remote.status().reads_images is False
        text, result = answer(remote, ask("What is this?", photo))
        remote.unload()
    assert result.stop_reason is StopReason.EOS
    assert fake.chat_requests()[-1].image_urls == []
    assert text == "Images: 0. You said: What is this?"
    assert TEXT_ONLY_REASON == "the server's model reads text only"


def test_cancel_during_load_hangs_up(server: FakeOpenAIServer) -> None:
    server.behaviour = "silent"  # the image probe never gets an answer
    remote = RemoteEngine(server.url)
    cancel = CancelToken()
    arrived = threading.Event()
    watcher = threading.Thread(target=lambda: (server.wait_for_chat_requests(1), arrived.set()))
    watcher.start()
    canceller, stamp = cancel_when(arrived, cancel)
    canceller.start()
    with pytest.raises(Cancelled):
        remote.load(lambda _: None, cancel)
    watcher.join()
    canceller.join()
    probe = server.chat_requests()[0]
    assert probe.disconnected.wait(STOP_S)
    assert probe.disconnected_at is not None and probe.disconnected_at - stamp[0] < STOP_S
    assert not remote.is_loaded


# -- answers -----------------------------------------------------------------------------------


def test_streams_chunks_with_usage_and_timings(
    server: FakeOpenAIServer, engine: RemoteEngine
) -> None:
    chunks: list[str] = []
    result = run_to_end(engine.generate(ask("Hello there"), CancelToken()), chunks.append)
    assert len(chunks) > 3  # it really streamed, word by word
    assert "".join(chunks) == "Images: 0. You said: Hello there"
    assert result.stop_reason is StopReason.EOS
    timings = result.timings
    assert timings.completion_tokens == len(chunks)
    assert timings.prompt_tokens > 0  # from the usage chunk
    assert timings.ttft_s > 0
    assert timings.decode_tokens_per_s > 0
    assert timings.load_s > 0
    sent = server.chat_requests()[-1].body
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["max_tokens"] == 1024
    assert "temperature" not in sent and "top_p" not in sent
    assert sent["messages"] == [{"role": "user", "content": "Hello there"}]


def test_length_and_sampling(server: FakeOpenAIServer, engine: RemoteEngine) -> None:
    text, result = answer(
        engine, ask("one two three", max_new_tokens=2, temperature=0.0, top_p=0.9)
    )
    assert result.stop_reason is StopReason.LENGTH
    assert text == "Images: 0. "
    sent = server.chat_requests()[-1].body
    assert (sent["max_tokens"], sent["temperature"], sent["top_p"]) == (2, 0.0, 0.9)


def test_conversation_turns_keep_their_roles(
    server: FakeOpenAIServer, engine: RemoteEngine
) -> None:
    turns = (
        ChatTurn(Role.USER, "first"),
        ChatTurn(Role.ASSISTANT, "reply"),
        ChatTurn(Role.USER, "second"),
    )
    answer(engine, GenerationRequest(turns))
    assert server.chat_requests()[-1].body["messages"] == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": "second"},
    ]


def test_max_time_stops_with_time(server: FakeOpenAIServer, engine: RemoteEngine) -> None:
    server.behaviour = "stall"
    text, result = answer(engine, ask(max_time_s=0.2))
    assert result.stop_reason is StopReason.TIME
    assert text == "Images: "
    assert server.chat_requests()[-1].disconnected.wait(STOP_S)


# -- images ------------------------------------------------------------------------------------


def test_images_go_as_capped_data_uris(
    server: FakeOpenAIServer, engine: RemoteEngine, photo: Path, tmp_path: Path
) -> None:
    small = tmp_path / "small.png"
    Image.new("RGBA", (200, 100), (0, 0, 255, 128)).save(small)
    text, _ = answer(engine, ask("Compare", photo, small))
    received = server.chat_requests()[-1]
    assert text == "Images: 2. You said: Compare"
    assert received.image_urls[0].startswith("data:image/jpeg;base64,")
    assert received.image_urls[1].startswith("data:image/png;base64,")  # it has alpha
    big, little = received.images
    assert max(big.width, big.height) <= 1344
    assert big.width * big.height <= 16 * 336 * 336
    assert (big.width, big.height) == (1344, 1008)  # shrunk, aspect kept
    assert (little.width, little.height) == (200, 100)  # never upscaled
    content = received.body["messages"][0]["content"]
    assert [part["type"] for part in content] == ["image_url", "image_url", "text"]


def test_image_sizes_respect_both_caps() -> None:
    assert max_size(4000, 3000) == (1344, 1008)
    assert max_size(336, 336) == (336, 336)
    width, height = max_size(1300, 1300)  # under the side cap, over 16 tiles of pixels
    assert width * height <= 16 * 336 * 336 and max(width, height) <= 1344
    wide = max_size(20000, 100)
    assert wide[0] == 1344 and wide[1] >= 1


def test_encoded_images_are_cached_by_path_and_mtime(photo: Path) -> None:
    payloads = ImagePayloads()
    first = payloads.data_uri(photo)
    assert payloads.data_uri(photo) == first
    assert payloads.encoded == 1
    Image.new("RGB", (800, 600), (0, 200, 0)).save(photo)
    stat = photo.stat()
    os.utime(photo, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert payloads.data_uri(photo) != first
    assert payloads.encoded == 2


def test_unreadable_image_is_bad_input(engine: RemoteEngine, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    with pytest.raises(BadInputError, match=r"broken\.jpg"):
        answer(engine, ask("What?", broken))
    with pytest.raises(BadInputError, match=r"gone\.jpg"):
        answer(engine, ask("What?", tmp_path / "gone.jpg"))


# -- Stop --------------------------------------------------------------------------------------


def test_stop_hangs_up_within_half_a_second_with_no_tokens_flowing(
    server: FakeOpenAIServer, engine: RemoteEngine
) -> None:
    server.behaviour = "stall"  # one token, then silence until the client hangs up
    cancel = CancelToken()
    stream = engine.generate(ask(), cancel)
    first = next(stream)
    server.wait_tokens_sent(1)
    received = server.chat_requests()[-1]
    assert not received.disconnected.is_set()
    # Nobody is pulling from the stream now, and the server sends nothing: the hang-up must
    # come from the engine's own watcher.
    stopped_at = time.monotonic()
    cancel.cancel()
    assert received.disconnected.wait(STOP_S)
    assert received.disconnected_at is not None
    latency = received.disconnected_at - stopped_at
    assert latency < STOP_S
    with pytest.raises(StopIteration) as ended:
        next(stream)
    assert ended.value.value.stop_reason is StopReason.CANCELLED
    assert first == "Images: "
    assert ended.value.value.timings.completion_tokens == 1
    print(f"Stop latency (stalled stream): {latency * 1000:.1f} ms")


def test_stop_while_the_server_has_not_answered_at_all(
    server: FakeOpenAIServer, engine: RemoteEngine
) -> None:
    server.behaviour = "silent"  # not even the response headers
    cancel = CancelToken()
    arrived = threading.Event()
    watcher = threading.Thread(target=lambda: (server.wait_for_chat_requests(2), arrived.set()))
    watcher.start()  # the load's probe was request 1
    canceller, stamp = cancel_when(arrived, cancel)
    canceller.start()
    started = time.monotonic()
    text, result = answer(engine, ask(), cancel)  # blocks inside the stream until the cancel
    watcher.join()
    canceller.join()
    assert result.stop_reason is StopReason.CANCELLED
    assert text == ""
    received = server.chat_requests()[-1]
    assert received.disconnected.wait(STOP_S)
    assert received.disconnected_at is not None
    assert received.disconnected_at - stamp[0] < STOP_S
    assert time.monotonic() - started < 5  # well before the 5 s token timeout
    print(f"Stop latency (silent server): {(received.disconnected_at - stamp[0]) * 1000:.1f} ms")


def test_a_cancelled_token_sends_nothing(server: FakeOpenAIServer, engine: RemoteEngine) -> None:
    cancel = CancelToken()
    cancel.cancel()
    before = len(server.chat_requests())
    text, result = answer(engine, ask(), cancel)
    assert (text, result.stop_reason) == ("", StopReason.CANCELLED)
    assert len(server.chat_requests()) == before


# -- faults while answering ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "fragment"),
    [
        (404, ModelError, "no model 'meta-llama/Llama-4-Scout', or no OpenAI API there"),
        (429, EngineError, "is busy (HTTP 429): try again"),
        (500, EngineError, "failed (HTTP 500): CUDA error"),
        (400, BadInputError, "refused the request (HTTP 400): Bad things"),
    ],
)
def test_http_faults_are_one_sentence_naming_the_url(
    server: FakeOpenAIServer,
    engine: RemoteEngine,
    status: int,
    kind: type[EngineError],
    fragment: str,
) -> None:
    server.behaviour = "error"
    server.error_status = status
    server.error_message = "Bad things." if status == 400 else "CUDA error: " + "x" * 500
    _, fault = answer_until_fault(engine, ask())
    assert type(fault) is kind
    assert fragment in fault.message
    assert server.url in fault.message
    assert len(fault.message) < 300  # the server's 500-character message was shortened
    assert "\n" not in fault.message


def test_key_refused_while_answering(server: FakeOpenAIServer, engine: RemoteEngine) -> None:
    server.api_key = "sk-rotated"  # the server's key changed after the engine loaded
    _, fault = answer_until_fault(engine, ask())
    assert type(fault) is ModelError and fault.exit_code == 4
    assert f"The server at {server.url} wants an API key (HTTP 401)" in fault.message


@pytest.mark.parametrize(
    ("wording", "requested", "allowed"),
    [
        ("requested", 10_000, 8192),
        ("input", 9500, 8192),
        ("max_tokens", 8500, 8192),
        ("at_least", 4097, 4096),
    ],
)
def test_context_length_refusal_is_bad_input(
    server: FakeOpenAIServer, engine: RemoteEngine, wording: str, requested: int, allowed: int
) -> None:
    assert parse_context_overflow(CONTEXT_WORDINGS[wording]) == (requested, allowed)
    server.behaviour = "context_length"
    server.context_wording = wording
    _, fault = answer_until_fault(engine, ask())
    assert type(fault) is BadInputError and fault.exit_code == 3
    assert f"{requested:,} tokens against {allowed:,} allowed" in fault.message
    assert server.url in fault.message


def test_unparsed_context_message_falls_back_to_the_message() -> None:
    assert parse_context_overflow("maximum context length is 4096 tokens, sorry") is None
    assert parse_context_overflow("something else entirely") is None


def test_token_timeout_after_partial_answer(server: FakeOpenAIServer) -> None:
    remote = RemoteEngine(server.url, token_timeout_s=0.3)
    remote.load(lambda _: None, CancelToken())
    server.behaviour = "stall"
    text, fault = answer_until_fault(remote, ask())
    remote.unload()
    assert text == "Images: "  # yielded before the fault
    assert type(fault) is EngineError
    assert f"The server at {server.url} sent nothing for 0.3 s" in fault.message


def test_token_timeout_before_any_answer(server: FakeOpenAIServer) -> None:
    remote = RemoteEngine(server.url, token_timeout_s=0.3)
    remote.load(lambda _: None, CancelToken())
    server.behaviour = "silent"
    text, fault = answer_until_fault(remote, ask())
    remote.unload()
    assert text == ""
    assert f"The server at {server.url} did not start answering within 0.3 s" in fault.message


@pytest.mark.parametrize(
    ("behaviour", "fragment"),
    [
        ("cut", "The connection to {url} broke before the answer was complete."),
        ("malformed", "The server at {url} sent a stream that is not valid server-sent events"),
        ("stream_error", "The server at {url} stopped the answer: Engine died."),
    ],
)
def test_broken_streams_keep_the_partial_answer(
    server: FakeOpenAIServer, engine: RemoteEngine, behaviour: str, fragment: str
) -> None:
    server.behaviour = behaviour
    server.stall_after = 3
    server.error_message = "Engine died."
    text, fault = answer_until_fault(engine, ask("Hello there"))
    assert text == "Images: 0. You "  # the three tokens before the break
    assert type(fault) is EngineError
    assert fragment.format(url=server.url) in fault.message


def test_refused_port_and_unknown_host_on_load() -> None:
    refused = f"http://127.0.0.1:{_free_port()}/v1"
    with pytest.raises(ModelError, match="connection was refused") as caught:
        RemoteEngine(refused).load(lambda _: None, CancelToken())
    assert refused in caught.value.message
    with pytest.raises(ModelError, match="is unknown") as caught:
        RemoteEngine(UNKNOWN_HOST).load(lambda _: None, CancelToken())
    assert f"{UNKNOWN_HOST}/v1" in caught.value.message


def test_refused_while_answering(server: FakeOpenAIServer, engine: RemoteEngine) -> None:
    server.stop()  # the server went away after the engine loaded
    _, fault = answer_until_fault(engine, ask())
    assert type(fault) is ModelError
    assert "connection was refused" in fault.message and server.url in fault.message


# -- the API key -------------------------------------------------------------------------------


def test_key_sent_as_bearer_and_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    key = "sk-test-SECRET-4242"
    prompt = "my very private question"
    caplog.set_level(logging.DEBUG)
    with FakeOpenAIServer(api_key=key) as fake:
        fake.error_message = f"Something broke for key {key}"
        remote = RemoteEngine(fake.url, api_key=key)
        remote.load(lambda _: None, CancelToken())
        text, _ = answer(remote, ask(prompt))
        fake.behaviour = "error"
        _, fault = answer_until_fault(remote, ask(prompt))
        remote.unload()
    assert text.endswith(prompt)
    assert {r.authorization for r in fake.requests} == {f"Bearer {key}"}
    assert key not in fault.message  # the server echoed it; the sentence does not
    assert caplog.records  # the client did log (debug), just nothing secret
    assert key not in caplog.text
    assert prompt not in caplog.text


def test_without_a_key_the_users_openai_key_is_not_sent(server: FakeOpenAIServer) -> None:
    remote = RemoteEngine(server.url)
    remote.load(lambda _: None, CancelToken())
    remote.unload()
    assert {r.authorization for r in server.requests} == {"Bearer EMPTY"}


# -- several at once ---------------------------------------------------------------------------


def test_generate_concurrent_overlaps(server: FakeOpenAIServer, engine: RemoteEngine) -> None:
    server.behaviour = "hold"  # each answer waits after its first token until 3 are in flight
    server.hold_until = 3
    requests = [ask(f"question {i}") for i in range(3)]
    results = list(engine.generate_concurrent(requests, CancelToken()))
    assert server.max_in_flight >= 2
    assert sorted(index for index, _, _ in results) == [0, 1, 2]
    for index, text, result in results:
        assert text == f"Images: 0. You said: question {index}"
        assert result.stop_reason is StopReason.EOS
        assert result.timings.completion_tokens > 0


def test_generate_concurrent_respects_max_concurrency(server: FakeOpenAIServer) -> None:
    remote = RemoteEngine(server.url, max_concurrency=2)
    remote.load(lambda _: None, CancelToken())
    server.behaviour = "hold"
    server.hold_until = 99  # held until released
    in_flight_then: list[int] = []

    def release_when_two_are_held() -> None:
        server.wait_in_flight(2)
        in_flight_then.append(server.in_flight)
        server.release()

    releaser = threading.Thread(target=release_when_two_are_held)
    releaser.start()
    results = list(remote.generate_concurrent([ask(f"q{i}") for i in range(5)], CancelToken()))
    releaser.join()
    remote.unload()
    assert sorted(i for i, _, _ in results) == [0, 1, 2, 3, 4]
    assert in_flight_then == [2]
    assert server.max_in_flight == 2


def test_generate_concurrent_cancel_stops_all(
    server: FakeOpenAIServer, engine: RemoteEngine
) -> None:
    server.behaviour = "stall"
    server.reply = "alpha beta gamma"
    cancel = CancelToken()
    flowing = threading.Event()

    def all_flowing() -> None:
        server.wait_in_flight(3)
        server.wait_tokens_sent(3)
        flowing.set()

    watcher = threading.Thread(target=all_flowing)
    watcher.start()
    canceller, stamp = cancel_when(flowing, cancel)
    canceller.start()
    results = list(engine.generate_concurrent([ask(f"q{i}") for i in range(3)], cancel))
    watcher.join()
    canceller.join()
    assert sorted(index for index, _, _ in results) == [0, 1, 2]
    for _, text, result in results:
        assert result.stop_reason is StopReason.CANCELLED
        # What had reached the engine is kept; a token still in the socket when Stop came may
        # not have (the server counts a token as sent once it is written, not once it is read).
        assert "alpha ".startswith(text)
    for received in server.chat_requests()[1:]:
        assert received.disconnected.wait(STOP_S)
        assert received.disconnected_at is not None
        assert received.disconnected_at - stamp[0] < STOP_S


def test_generate_concurrent_failure_cancels_the_rest(
    server: FakeOpenAIServer, engine: RemoteEngine
) -> None:
    server.behaviour = "stall"
    server.behaviour_for_prompt = {"bad": "error"}
    server.error_status = 500
    server.error_message = "Worker crashed."
    requests = [ask("good 1"), ask("bad"), ask("good 2")]
    yielded: list[int] = []
    with pytest.raises(EngineError) as caught:
        for index, _, _ in engine.generate_concurrent(requests, CancelToken()):
            yielded.append(index)
    assert "failed (HTTP 500): Worker crashed." in caught.value.message
    assert server.url in caught.value.message
    assert yielded == []
    # By the time the failure surfaced, every stalled answer had been hung up on.
    for received in server.chat_requests()[1:]:
        if received.body["messages"][0]["content"] != "bad":
            assert received.disconnected.wait(STOP_S)


# -- counting ----------------------------------------------------------------------------------


def test_count_tokens_asks_the_server_once_per_text(
    server: FakeOpenAIServer, engine: RemoteEngine
) -> None:
    assert engine.count_tokens("one two three") == 3
    assert engine.count_tokens("one two three") == 3
    counted = [r for r in server.requests if r.path == "/tokenize"]
    assert len(counted) == 1
    assert counted[0].body == {
        "model": "meta-llama/Llama-4-Scout",
        "prompt": "one two three",
        "add_special_tokens": False,
    }
    server.tokenize = False
    with pytest.raises(ModelError, match="cannot count tokens"):
        engine.count_tokens("four five")

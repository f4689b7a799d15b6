"""Server requests on helper threads that any thread can hang up on, and the answers they stream.

Every blocking client call runs on a helper thread whose sockets are recorded as they open (an
httpcore trace hook), so a watcher can shut them down the moment the caller's token is cancelled
or a deadline passes: Stop hangs up within a poll interval even while the server is silent
(prefill, a queue, a stuck server), and hanging up is what makes vLLM abort the request. The
streamed Chat Completions chunks (server-sent events) come back to the calling thread as items.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar, cast

import httpx2
import openai

from app.core.messages import StopReason, Timings
from app.inference.engine import (
    Cancelled,
    CancelToken,
    EngineError,
    GenerationRequest,
    GenerationResult,
    run_to_end,
)
from app.inference.remote_faults import MalformedStream
from app.inference.remote_urls import is_loopback

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionChunk

#: How often a waiting thread looks at its cancel token (seconds).
POLL_S = 0.02
#: How long a stopped call's helper thread is waited for (it wakes at once once hung up).
_JOIN_S = 0.25

_T = TypeVar("_T")

#: How a worker's `work` hands an item ("open", "text", "finish", "usage") to the caller.
Put = Callable[[str, Any], None]
_current = threading.local()


# -- the client ------------------------------------------------------------------------------


def make_client(
    url: str, api_key: str | None, timeout: openai.Timeout, connections: int
) -> openai.OpenAI:
    """An OpenAI client for one server: no retries, certificates verified, no kept connections.

    Connections are not kept between requests so that each request's sockets are its own to
    hang up on. Without a key the client sends vLLM's placeholder, never OPENAI_API_KEY. A server
    on this machine is reached directly: the environment's proxies (HTTP_PROXY, ...) are for
    other hosts, and a proxy would neither reach 127.0.0.1 nor should see the prompts.
    """
    http_client = openai.DefaultHttpxClient(
        timeout=timeout,
        trust_env=not is_loopback(url),
        limits=httpx2.Limits(max_connections=connections, max_keepalive_connections=0),
        event_hooks={"request": [_attach_trace]},
    )
    return openai.OpenAI(
        base_url=url,
        api_key=api_key or "EMPTY",
        timeout=timeout,
        max_retries=0,
        http_client=http_client,
    )


# -- helper threads that can be hung up on ---------------------------------------------------


class _Connections:
    """The sockets one helper thread's requests opened, so another thread can hang up on them.

    `socket.shutdown` (unlike `close`) wakes a thread blocked reading the socket and sends the
    server a FIN at once; closing the connection is what makes vLLM abort the request.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.hung_up = False

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        """httpcore's trace hook: keep each socket as its connection (or TLS layer) opens."""
        if not event.endswith((".connect_tcp.complete", ".start_tls.complete")):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sockets.append(sock)
            hung_up = self.hung_up
        if hung_up:
            _shut(sock)

    def hang_up(self) -> None:
        with self._lock:
            self.hung_up = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for an SSLSocket (whose own would drop its TLS state
    # under the reading thread's feet); a socket already closed raises OSError.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _attach_trace(request: httpx2.Request) -> None:
    """httpx request hook: route the request's connection events to its thread's registry."""
    connections = getattr(_current, "connections", None)
    if connections is not None:
        request.extensions["trace"] = connections.trace


class Worker:
    """Runs `work(put)` on a helper thread; a watcher hangs up when cancelled or past deadline.

    Items `work` puts arrive through `next`, followed by ("end", None) or ("error", exc).
    """

    def __init__(
        self, work: Callable[[Put], None], cancel: CancelToken, deadline: float | None, name: str
    ) -> None:
        self._work = work
        self._cancel = cancel
        self._deadline = deadline
        self._items: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._connections = _Connections()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._watcher = threading.Thread(target=self._watch, name=f"{name}-stop", daemon=True)

    @property
    def stopped(self) -> bool:
        """True once this side hung up (cancel, deadline or `stop`)."""
        return self._connections.hung_up

    def start(self) -> None:
        """Start the work and its watcher."""
        self._thread.start()
        self._watcher.start()

    def next(self, timeout: float) -> tuple[str, Any] | None:
        """The next item `work` put, or None when none came within `timeout` seconds."""
        try:
            return self._items.get(timeout=timeout)
        except queue.Empty:
            return None

    def stop(self) -> None:
        """Hang up unless the work already finished, and let the threads go."""
        if not self._done.is_set():
            self._connections.hang_up()
        if self._thread.ident is None:  # never started
            return
        self._thread.join(_JOIN_S)
        self._done.set()  # the watcher ends at its next look
        self._watcher.join(_JOIN_S)

    def _run(self) -> None:
        _current.connections = self._connections
        try:
            self._work(self._put)
        except BaseException as exc:  # handed to the consuming thread
            self._put("error", exc)
        else:
            self._put("end", None)
        finally:
            _current.connections = None
            self._done.set()

    def _put(self, kind: str, value: Any) -> None:
        self._items.put((kind, value))

    def _watch(self) -> None:
        while not self._done.wait(POLL_S):
            late = self._deadline is not None and time.perf_counter() >= self._deadline
            if self._cancel.cancelled or late:
                self._connections.hang_up()
                return


def call_cancellable(fn: Callable[[], _T], cancel: CancelToken) -> _T:
    """Run a blocking client call on a helper thread; raise `Cancelled` (hung up) on cancel."""
    results: list[_T] = []
    worker = Worker(lambda put: results.append(fn()), cancel, None, "remote-load")
    worker.start()
    try:
        while True:
            if worker.stopped:
                raise Cancelled
            item = worker.next(POLL_S)
            if item is None:
                continue
            kind, value = item
            if kind == "end":
                return results[0]
            if worker.stopped:
                raise Cancelled
            raise cast(BaseException, value)
    finally:
        worker.stop()


class _EitherCancel(CancelToken):
    """Cancelled when the caller's token is, or when this one is cancelled itself."""

    def __init__(self, outer: CancelToken) -> None:
        super().__init__()
        self._outer = outer

    @property
    def cancelled(self) -> bool:
        return self._outer.cancelled or super().cancelled


def generate_concurrently(
    generate: Callable[[GenerationRequest, CancelToken], Generator[str, None, GenerationResult]],
    requests: Sequence[GenerationRequest],
    cancel: CancelToken,
    max_workers: int,
) -> Iterator[tuple[int, str, GenerationResult]]:
    """Run `generate` for each request, up to `max_workers` at a time, each on its own thread.

    Yields:
        (index into `requests`, the whole answer, how it ended), in completion order.
        After a cancel the stopped ones come back CANCELLED with their partial text.

    Raises:
        The first request's failure, once every other one was stopped (nothing more is
        yielded after a failure).
    """
    if not requests:
        return
    stop = _EitherCancel(cancel)
    done: queue.Queue[tuple[int, str, GenerationResult | None, BaseException | None]]
    done = queue.Queue()

    def run(index: int, request: GenerationRequest) -> None:
        parts: list[str] = []
        try:
            result = run_to_end(generate(request, stop), parts.append)
        except BaseException as exc:  # handed to the consuming thread, which re-raises it
            done.put((index, "".join(parts), None, exc))
        else:
            done.put((index, "".join(parts), result, None))

    executor = ThreadPoolExecutor(
        max_workers=min(max_workers, len(requests)), thread_name_prefix="remote-batch"
    )
    failure: BaseException | None = None
    try:
        for index, request in enumerate(requests):
            executor.submit(run, index, request)
        for _ in requests:
            index, text, result, error = done.get()
            if error is not None:
                if failure is None:
                    failure = error
                    stop.cancel()  # the others come back CANCELLED within a poll
            elif failure is None and result is not None:
                yield index, text, result
        if failure is not None:
            raise failure
    finally:
        stop.cancel()
        executor.shutdown(wait=True, cancel_futures=True)


# -- one answer's stream ---------------------------------------------------------------------


def chunk_items(chunk: ChatCompletionChunk) -> list[tuple[str, Any]]:
    """A chunk as ("text", str), ("finish", str) and ("usage", (prompt, completion)) items.

    Raises:
        MalformedStream: the chunk is not shaped like a Chat Completions chunk.
    """
    try:
        items: list[tuple[str, Any]] = []
        choices = chunk.choices
        if not isinstance(choices, list):
            raise MalformedStream("a chunk's choices are not a list")
        for choice in choices:
            content = choice.delta.content if choice.delta is not None else None
            if content:
                items.append(("text", str(content)))
            if choice.finish_reason is not None:
                items.append(("finish", str(choice.finish_reason)))
        usage = chunk.usage
        if usage is not None:
            items.append(("usage", (int(usage.prompt_tokens), int(usage.completion_tokens))))
        return items
    except (AttributeError, TypeError, ValueError) as exc:
        raise MalformedStream(
            f"a chunk is not a chat completion chunk: {type(exc).__name__}"
        ) from None


class Outcome:
    """What the stream has said so far (for the result and the timings)."""

    def __init__(self) -> None:
        self.opened = False
        self.received = 0
        self.first_at: float | None = None
        self.ended_at: float | None = None
        self.finish: str | None = None
        self.usage: tuple[int, int] | None = None

    def timings(self, start: float, load_s: float) -> Timings:
        """The answer's timings and token counts, measured from `start`."""
        end = self.ended_at or time.perf_counter()
        prompt, completion = self.usage or (0, self.received)
        ttft = self.first_at - start if self.first_at is not None else 0.0
        decode_s = end - self.first_at if self.first_at is not None else 0.0
        rate = (completion - 1) / decode_s if completion > 1 and decode_s > 0 else 0.0
        return Timings(
            load_s=load_s,
            ttft_s=ttft,
            decode_tokens_per_s=rate,
            prompt_tokens=prompt,
            completion_tokens=completion,
        )


def drain(
    worker: Worker,
    cancel: CancelToken,
    deadline: float | None,
    outcome: Outcome,
    *,
    fault: Callable[[BaseException, bool], EngineError],
    url: str,
) -> Generator[str, None, StopReason]:
    """Start `worker`, hand on its chunks, and return how the answer ended or raise its fault.

    Args:
        fault: the sentence for a client fault, given whether the answer had begun streaming.
        url: the server's URL as shown to the user.

    The caller hangs up (`worker.stop`) whichever way this ends.
    """
    worker.start()
    while True:
        if cancel.cancelled:
            # Text already read off the connection is the user's: keep it, then stop.
            while (item := worker.next(0)) is not None:
                if item[0] == "text":
                    outcome.received += 1
                    yield cast(str, item[1])
            return StopReason.CANCELLED
        if worker.stopped or (deadline is not None and time.perf_counter() >= deadline):
            return StopReason.TIME  # the watcher hung up at the deadline
        item = worker.next(POLL_S)
        if item is None:
            continue
        kind, value = item
        if kind == "text":
            outcome.received += 1
            if outcome.first_at is None:
                outcome.first_at = time.perf_counter()
            yield cast(str, value)
        elif kind == "finish":
            outcome.finish = cast(str, value)
        elif kind == "usage":
            outcome.usage = cast("tuple[int, int]", value)
        elif kind == "open":
            outcome.opened = True
        elif kind == "error":
            if worker.stopped:  # our own hang-up, not the server's fault
                continue
            if outcome.finish is not None and isinstance(value, openai.APIConnectionError):
                break  # the answer was complete; only the usage chunk was lost
            if isinstance(value, openai.OpenAIError | MalformedStream):
                raise fault(value, outcome.opened) from None
            raise cast(BaseException, value)
        else:  # "end"
            break
    outcome.ended_at = time.perf_counter()
    if outcome.finish is None:
        raise EngineError(
            f"The answer from {url} stopped before it was complete: the stream ended without "
            f"saying why."
        )
    return StopReason.LENGTH if outcome.finish == "length" else StopReason.EOS


__all__ = [
    "POLL_S",
    "Outcome",
    "Put",
    "Worker",
    "call_cancellable",
    "chunk_items",
    "drain",
    "generate_concurrently",
    "make_client",
]

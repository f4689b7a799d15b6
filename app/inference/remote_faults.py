"""What went wrong talking to an OpenAI-compatible server, as one sentence naming its URL.

The `openai` client's exceptions (and the connection faults under them: refused, unknown host,
certificate, TLS) become `ModelError` (the server cannot be used), `BadInputError` (this request
cannot be answered, such as a conversation longer than the context window) or `EngineError` (this
answer failed). Server messages are quoted short, on one line, with the API key blanked out.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Mapping
from typing import TypeVar

import httpx2
import openai

from app.inference.engine import BadInputError, EngineError, ModelError

#: Longest server message quoted in a fault sentence (characters).
MESSAGE_CHARS = 160

_E = TypeVar("_E", bound=BaseException)

_TEXT_ONLY = re.compile(
    r"not a multi-?modal model"
    r"|(?:does not|doesn't|cannot|can't) (?:support|accept|take|process) (?:multi-?modal|image)"
    r"|images? (?:inputs? )?(?:is |are )?not supported"
    r"|only (?:supports?|accepts?) text",
    re.IGNORECASE,
)
_CONTEXT = re.compile(r"maximum context length is ([\d,]+) tokens", re.IGNORECASE)
_REQUESTED = re.compile(r"you requested ([\d,]+) tokens", re.IGNORECASE)
_INPUT = re.compile(r"your request has ([\d,]+) input tokens", re.IGNORECASE)
_AT_LEAST = re.compile(r"your prompt contains at least ([\d,]+) input tokens", re.IGNORECASE)
_ARITHMETIC = re.compile(r"\(([\d,]+) > ([\d,]+) - ([\d,]+)\)")


class MalformedStream(Exception):  # noqa: N818 (a condition of the stream, not raised to callers)
    """The stream's data could not be read as Chat Completions chunks."""


def refuses_images(exc: openai.APIError) -> bool:
    """Whether the server's refusal says its model reads text only (the image probe's answer)."""
    return _TEXT_ONLY.search(_server_message(exc)) is not None


def parse_context_overflow(message: str) -> tuple[int, int] | None:
    """(tokens requested, tokens allowed) from vLLM's maximum-context-length refusal.

    Understands the wordings of vLLM's releases: "... maximum context length is N tokens.
    However, you requested M tokens ...", "... your request has M input tokens ...", and
    "'max_tokens' ... is too large: A. ... maximum context length is N tokens and your request
    has I input tokens (A > N - I)" (M = I + A), and vLLM 0.32's "... your prompt contains at
    least M input tokens ..." (M is then a lower bound). None for any other message.
    """
    limit = _CONTEXT.search(message)
    if limit is None:
        return None
    allowed = _number(limit.group(1))
    arithmetic = _ARITHMETIC.search(message)
    if arithmetic is not None:
        return _number(arithmetic.group(1)) + _number(arithmetic.group(3)), allowed
    for pattern in (_REQUESTED, _INPUT, _AT_LEAST):
        found = pattern.search(message)
        if found is not None:
            return _number(found.group(1)), allowed
    return None


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def fault(
    exc: BaseException,
    url: str,
    *,
    during: str,
    keyed: bool,
    secret: str | None = None,
    model: str | None = None,
    token_timeout_s: float = 0.0,
) -> EngineError:
    """One sentence, naming the URL, for what went wrong talking to the server.

    Args:
        exc: what the client raised.
        url: the server's URL as shown to the user.
        during: "models" (listing models), "request" (before the answer began streaming) or
            "stream" (mid-answer).
        keyed: whether an API key was sent.
        secret: the API key, blanked out of any server message quoted.
        model: the model asked for (for a 404).
        token_timeout_s: the silence allowed between tokens (for a read timeout).
    """
    if isinstance(exc, openai.APITimeoutError):
        if _caused_by(exc, httpx2.ConnectTimeout):
            return ModelError(f"Could not connect to {url}: the connection timed out.")
        if during == "stream":
            return EngineError(
                f"The server at {url} sent nothing for {token_timeout_s:g} s, so the answer "
                f"stopped there."
            )
        if during == "models":
            return ModelError(f"The server at {url} did not answer in time.")
        return EngineError(
            f"The server at {url} did not start answering within {token_timeout_s:g} s."
        )
    if isinstance(exc, openai.APIConnectionError):
        if _caused_by(exc, httpx2.ConnectError):
            return _connect_fault(exc, url)
        if during == "stream":
            return EngineError(f"The connection to {url} broke before the answer was complete.")
        if during == "models":
            return ModelError(f"The server at {url} closed the connection without answering.")
        return EngineError(f"The server at {url} closed the connection without answering.")
    if isinstance(exc, openai.APIStatusError):
        return _status_fault(exc, url, during=during, keyed=keyed, secret=secret, model=model)
    if isinstance(exc, MalformedStream):
        return EngineError(
            f"The server at {url} sent a stream that is not valid server-sent events ({exc})."
        )
    if isinstance(exc, openai.APIError):  # an error event in the stream, or an unreadable body
        return EngineError(f"The server at {url} stopped the answer: {_short(exc.message, secret)}")
    return EngineError(f"Talking to the server at {url} failed: {_short(str(exc), secret)}")


def _connect_fault(exc: BaseException, url: str) -> ModelError:
    if _caused_by(exc, ConnectionRefusedError):
        return ModelError(
            f"Nothing answers at {url}: the connection was refused (is the server running, on "
            f"that port?)."
        )
    if _caused_by(exc, socket.gaierror):
        return ModelError(f"The host of {url} is unknown: check the address.")
    verify = _cause(exc, ssl.SSLCertVerificationError)
    if verify is not None:
        reason = verify.verify_message or "its certificate is not trusted"
        return ModelError(
            f"The certificate of {url} cannot be verified ({reason}), so Scout Desk does not "
            f"connect to it."
        )
    tls = _cause(exc, ssl.SSLError)
    if tls is not None:
        return ModelError(f"A secure connection to {url} could not be set up: {tls.reason}.")
    return ModelError(f"Could not connect to {url}: {_short(str(exc.__cause__ or exc), None)}")


def _status_fault(
    exc: openai.APIStatusError,
    url: str,
    *,
    during: str,
    keyed: bool,
    secret: str | None,
    model: str | None,
) -> EngineError:
    status = exc.status_code
    message = _short(_server_message(exc), secret)
    if status in (401, 403):
        if keyed:
            return ModelError(
                f"The server at {url} refused the API key (HTTP {status}): check the key in "
                f"Settings."
            )
        return ModelError(
            f"The server at {url} wants an API key (HTTP {status}): add it in Settings."
        )
    if status == 404:
        if during == "models" or model is None:
            return ModelError(
                f"There is no OpenAI-compatible API at {url} (HTTP 404): the address usually "
                f"ends in /v1."
            )
        return ModelError(
            f"The server at {url} has no model {model!r}, or no OpenAI API there (HTTP 404)."
        )
    if status == 429:
        return EngineError(f"The server at {url} is busy (HTTP 429): try again in a moment.")
    if status >= 500:
        cls = ModelError if during == "models" else EngineError
        return cls(f"The server at {url} failed (HTTP {status}): {message}")
    if status == 400:
        raw = _server_message(exc)
        overflow = parse_context_overflow(raw)
        if overflow is not None:
            requested, allowed = overflow
            return BadInputError(
                f"The conversation is too long for the model at {url}: {requested:,} tokens "
                f"against {allowed:,} allowed; remove images or attachments, start a new chat, "
                f"or lower the answer length."
            )
        if _CONTEXT.search(raw):
            return BadInputError(f"The conversation is too long for the model at {url}: {message}")
        return BadInputError(f"The server at {url} refused the request (HTTP 400): {message}")
    return EngineError(f"The server at {url} answered HTTP {status}: {message}")


def _server_message(exc: openai.APIError) -> str:
    """The server's own words from an error body ({"error": {"message"}} or vLLM's flat form)."""
    body = exc.body
    if isinstance(body, Mapping):
        message = body.get("message")
        if isinstance(message, str) and message.strip():
            return message
        detail = body.get("detail")  # FastAPI's own errors
        if isinstance(detail, str) and detail.strip():
            return detail
    if isinstance(body, str) and body.strip():
        return body
    return exc.message


def _short(message: str, secret: str | None) -> str:
    """One line, at most `MESSAGE_CHARS` characters, ending in a full stop; the key blanked."""
    text = " ".join(message.split())
    if secret:
        text = text.replace(secret, "[key]")
    if len(text) > MESSAGE_CHARS:
        text = text[: MESSAGE_CHARS - 1].rstrip() + "…"
    if not text:
        return "no reason given."
    return text if text.endswith((".", "!", "?", "…")) else text + "."


def _cause(exc: BaseException, kind: type[_E]) -> _E | None:
    """The first exception of `kind` in the chain of causes (and contexts) of `exc`."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    return _cause(exc, kind) is not None


__all__ = [
    "MESSAGE_CHARS",
    "MalformedStream",
    "fault",
    "parse_context_overflow",
    "refuses_images",
]

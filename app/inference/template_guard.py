"""Running untrusted Python-level code (a model folder's Jinja chat template) with a time limit.

Jinja compiles a template into Python functions, so a template that loops for hours is a Python
loop: a per-thread `sys.settrace` hook sees every line and call it runs and can abort it by raising
there. That needs no thread to abandon, no signal (which only the main thread receives) and no
child process (the processor holding the template cannot cheaply cross one), and it also watches
the user's Stop, which the hook polls on the same events. The hook is installed only for the
duration of the call and the caller's own tracer (a debugger, coverage) is restored after it.

What it cannot stop is a single long C call (one huge string repetition, say): that ends in
memory or at its own pace, never in an endless loop.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

from app.inference.engine import Cancelled, CancelToken

T = TypeVar("T")


class TimeLimitExceeded(Exception):  # noqa: N818 (named for what happened, like TimeoutError)
    """The guarded call ran past its time limit and was stopped."""


class _Abort(BaseException):
    """Raised inside the guarded code: a BaseException, so no `except Exception` there eats it."""

    def __init__(self, *, cancelled: bool) -> None:
        super().__init__()
        self.cancelled = cancelled


def call_with_time_limit(
    fn: Callable[[], T], limit_s: float, cancel: CancelToken | None = None
) -> T:
    """Run `fn()` on this thread, stopping it after `limit_s` seconds or when `cancel` is set.

    Args:
        fn: the code to run (pure Python underneath, as a rendered Jinja template is).
        limit_s: wall-clock seconds it may take.
        cancel: the user's Stop, checked as often as the deadline (None: none).

    Returns:
        What `fn` returned.

    Raises:
        TimeLimitExceeded: `fn` was still running after `limit_s`.
        Cancelled: `cancel` was set while it ran (or before).
    """
    deadline = time.monotonic() + limit_s

    def check(frame: FrameType, event: str, arg: Any) -> Callable[..., Any]:
        # Called for every call and (through the returned local tracer) every line, so a loop
        # that never calls anything is still seen once an iteration.
        if cancel is not None and cancel.cancelled:
            raise _Abort(cancelled=True)
        if time.monotonic() > deadline:
            raise _Abort(cancelled=False)
        return check

    previous = sys.gettrace()
    sys.settrace(check)
    try:
        return fn()
    except _Abort as abort:
        if abort.cancelled:
            raise Cancelled from None
        raise TimeLimitExceeded(f"still running after {limit_s:g} s") from None
    finally:
        # Python drops a tracer that raised; either way, the caller's comes back.
        sys.settrace(previous)

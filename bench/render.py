"""Rendering benchmark: how long showing a large markdown answer holds the GUI thread.

    .venv/bin/python bench/render.py               # offscreen Qt, 3 runs per figure (median)
    .venv/bin/python bench/render.py --runs 5 --sizes 65000 242000 500000

Every case is a real `ChatView` (shown offscreen, 700 × 500) opening a chat of one question and
one answer that is a single markdown table of the given size. Figures, all on the GUI thread:

- **before**: the old synchronous path — the bubble calls `render_markdown` and `setHtml` in the
  same call (what `SafeMarkdownView.set_markdown` did for every answer), then the event loop
  lays the document out and paints it.
- **after**: `ChatView.set_messages` as the app runs it now (the size policy shows the answer
  as plain text), then the event loop until the render pool is idle.
- **on request**: the user clicks "Render as formatted": the click, then the event loop until
  the formatted table shows (the conversion runs on the pool; the HTML import and layout of the
  formatted document still run on the GUI thread).
- **streaming**: the same table streamed through the chat's throttle: the GUI time of one flush
  early and late in the stream (it appends, so it should not grow), then finishing the answer.
- **mid-sized**: an answer inside the size policy (prose, and a table of ~900 cells), old
  synchronous path vs the pool.

"held" is the longest single stretch the GUI thread spent without returning to the event loop
(what the user feels as a freeze); "total" adds up every stretch. Also the ratio before / after.
Prints only; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtCore import QCoreApplication, QEvent
from PySide6.QtWidgets import QApplication

from app.core.messages import Message, Role, StopReason
from app.core.render import render_markdown
from app.ui.transcript.view import ChatView
from app.ui.widgets.markdown_view import TextDisplay, render_tasks
from tests.helpers.markdown_samples import table_answer


def prose_answer(size: int) -> str:
    """Ordinary markdown (bold, inline code, paragraphs) of about `size` characters."""
    paragraph = "Some **bold** words and `code` in a sentence of ordinary prose, " * 4 + "\n\n"
    return paragraph * (size // len(paragraph) + 1)


@dataclass
class Held:
    """GUI-thread time of one case: the longest stretch and the sum of stretches, in seconds."""

    longest: float = 0.0
    total: float = 0.0

    def add(self, seconds: float) -> None:
        self.longest = max(self.longest, seconds)
        self.total += seconds


def timed(held: Held, call: Callable[[], object]) -> None:
    start = time.perf_counter()
    call()
    held.add(time.perf_counter() - start)


def drain(app: QApplication, held: Held, done: Callable[[], bool], timeout_s: float = 60) -> None:
    """Run the event loop until `done()`, timing each turn; sleep between (the pool's time)."""
    deadline = time.monotonic() + timeout_s
    while True:
        timed(held, app.processEvents)
        if done() or time.monotonic() > deadline:
            return
        time.sleep(0.001)


class Chat:
    """A shown chat view, cleared between runs."""

    def __init__(self, app: QApplication) -> None:
        self.app = app
        self.view = ChatView()
        self.view.resize(700, 500)
        self.view.show()
        app.processEvents()

    def messages(self, text: str) -> list[Message]:
        return [
            Message("u1", "s1", Role.USER, "A table of everything, please.", 1.0),
            Message("a1", "s1", Role.ASSISTANT, text, 2.0, stop_reason=StopReason.EOS),
        ]

    def reset(self) -> None:
        self.view.clear()
        # Delete the old bubbles now: a formatted table freed inside a measured run would count.
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        self.app.processEvents()
        gc.collect()

    def idle(self) -> bool:
        return render_tasks().pending() == 0


def before(chat: Chat, text: str) -> Held:
    """The old path: the bubble renders and sets the HTML in one synchronous call."""
    chat.reset()
    held = Held()
    messages = chat.messages(text)
    empty = replace(messages[1], text="")  # the bubble, then the old set_markdown on it
    timed(held, lambda: chat.view.set_messages([messages[0], empty]))
    view = chat.view.message_widget("a1").view
    timed(held, lambda: view.setHtml(render_markdown(text, code_style=view.code_style).strip()))
    drain(chat.app, held, lambda: True)
    return held


def after(chat: Chat, text: str) -> tuple[Held, TextDisplay]:
    """The app's path now: the policy decides; the pool converts what is formatted."""
    chat.reset()
    held = Held()
    timed(held, lambda: chat.view.set_messages(chat.messages(text)))
    view = chat.view.message_widget("a1").view
    drain(chat.app, held, lambda: chat.idle() and view.display is not TextDisplay.FORMATTING)
    return held, view.display


def on_request(chat: Chat, text: str) -> tuple[Held, float]:
    """The user asks to format a large answer: GUI time, and wall time until it shows."""
    chat.reset()
    chat.view.set_messages(chat.messages(text))
    drain(chat.app, Held(), chat.idle)
    view = chat.view.message_widget("a1").view
    held = Held()
    start = time.perf_counter()
    timed(held, view.render_formatted)
    drain(chat.app, held, lambda: view.display is TextDisplay.FORMATTED)
    return held, time.perf_counter() - start


def streamed(chat: Chat, text: str, old_finish: bool) -> tuple[float, float, Held]:
    """Stream `text` in 40-character chunks, 25 per throttled flush, then finish it.

    Returns:
        The mean GUI time of a flush in the first and in the last tenth of the stream, and the
        GUI time of finishing (the old synchronous render, or the app's path now).
    """
    chat.reset()
    chat.view.set_messages(chat.messages("")[:1])
    chat.view.begin_stream(Message("a1", "s1", Role.ASSISTANT, "", 2.0))
    flushes: list[float] = []
    step = 40 * 25
    for start in range(0, len(text), step):
        for i in range(start, min(start + step, len(text)), 40):
            chat.view.append_stream("a1", text[i : i + 40])
        began = time.perf_counter()
        chat.view._throttles["a1"].flush()  # what the throttle's timer does each frame
        chat.app.processEvents()
        flushes.append(time.perf_counter() - began)
    tenth = max(1, len(flushes) // 10)
    held = Held()
    finished = Message("a1", "s1", Role.ASSISTANT, text, 2.0, stop_reason=StopReason.EOS)
    if old_finish:
        view = chat.view.message_widget("a1").view
        timed(held, lambda: view.setHtml(render_markdown(text).strip()))
        drain(chat.app, held, lambda: True)
    else:
        timed(held, lambda: chat.view.finish_stream(finished))
        view = chat.view.message_widget("a1").view
        drain(chat.app, held, lambda: chat.idle() and view.display is not TextDisplay.FORMATTING)
    return statistics.mean(flushes[:tenth]), statistics.mean(flushes[-tenth:]), held


def median(values: list[float]) -> float:
    return statistics.median(values)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def ratio(old: float, new: float) -> str:
    return f"{old / new:6.1f}×" if new > 0 else "     ∞"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median printed)")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[65_000, 242_000], help="answer sizes (chars)"
    )
    args = parser.parse_args(argv)
    app = QApplication.instance() or QApplication([])
    chat = Chat(app)
    render_markdown("warm | up |\n|---|---|\n| a | b |")  # imports and caches, not measured
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.runs} runs, median")

    for size in args.sizes:
        text = table_answer(size)
        cells = text.count("\n") * 6
        print(f"\n{len(text):,} characters, one table of ~{cells:,} cells")
        olds = [before(chat, text) for _ in range(args.runs)]
        news = [after(chat, text) for _ in range(args.runs)]
        asked = [on_request(chat, text) for _ in range(args.runs)]
        old_held, old_total = median([h.longest for h in olds]), median([h.total for h in olds])
        new_held = median([h.longest for h, _d in news])
        new_total = median([h.total for h, _d in news])
        req_held = median([h.longest for h, _w in asked])
        req_total = median([h.total for h, _w in asked])
        shown = f"after (shown {news[0][1].value}):"
        print(f"  {'before (render + setHtml):':28s} held {ms(old_held)}  total {ms(old_total)}")
        print(
            f"  {shown:28s} held {ms(new_held)}  total {ms(new_total)}"
            f"  before/after held {ratio(old_held, new_held)}"
        )
        print(
            f"  {'on request (formatted):':28s} held {ms(req_held)}  total {ms(req_total)}"
            f"  shown after {ms(median([w for _h, w in asked]))} wall"
        )

    text = table_answer(max(args.sizes))
    print(f"\nStreaming {len(text):,} characters of table (one flush = 25 chunks of 40)")
    first, last, _held = streamed(chat, text, old_finish=False)
    print(f"  a flush: {ms(first)} in the first tenth, {ms(last)} in the last (appends only)")
    old = median([streamed(chat, text, old_finish=True)[2].longest for _ in range(args.runs)])
    new = median([streamed(chat, text, old_finish=False)[2].longest for _ in range(args.runs)])
    print(f"  finish: before held {ms(old)}, after held {ms(new)}, before/after {ratio(old, new)}")

    print("\nWithin the size policy (formatted automatically)")
    for name, text in (("prose", prose_answer(20_000)), ("table", table_answer(7_000))):
        olds = [before(chat, text) for _ in range(args.runs)]
        news = [after(chat, text) for _ in range(args.runs)]
        old_held = median([h.longest for h in olds])
        new_held = median([h.longest for h, _d in news])
        print(
            f"  {name} {len(text):,} chars: before held {ms(old_held)}, after held {ms(new_held)}"
            f" ({news[0][1].value}), before/after {ratio(old_held, new_held)}"
        )
    chat.view.close()
    render_tasks().shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

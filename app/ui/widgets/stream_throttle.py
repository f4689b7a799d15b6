"""Coalesces streamed text chunks so the chat repaints at most 60 times a second."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal


class StreamThrottle(QObject):
    """Collects pushed chunks and hands them on joined, at most once per interval.

    A burst of tokens (a fast model can emit hundreds a second) becomes one `flushed` per frame,
    so the view appends and relays out text ~60 times a second instead of once per token.

    Args:
        interval_ms: the shortest time between two timer flushes (16 ms is one 60 Hz frame).
        parent: the usual QObject parent.
    """

    #: str: the chunks pushed since the last flush, concatenated in order.
    flushed = Signal(str)

    def __init__(self, interval_ms: int = 16, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._parts: list[str] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._on_timer_timeout)

    @property
    def pending(self) -> str:
        """The text pushed but not flushed yet."""
        return "".join(self._parts)

    def push(self, text: str) -> None:
        """Queue a chunk; it goes out with the next flush (within one interval).

        Args:
            text: the chunk; empty chunks are ignored.
        """
        if not text:
            return
        self._parts.append(text)
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Emit whatever is pending now (nothing when nothing is)."""
        self._timer.stop()
        if self._parts:
            text = "".join(self._parts)
            self._parts.clear()
            self.flushed.emit(text)

    def discard(self) -> None:
        """Drop pending text without emitting it (the caller has the final text already)."""
        self._timer.stop()
        self._parts.clear()

    def _on_timer_timeout(self) -> None:
        self.flush()

"""The stream throttle: bursts of chunks come out coalesced, in order, and nothing is lost."""

from __future__ import annotations

from app.ui.widgets.stream_throttle import StreamThrottle


def test_a_burst_of_a_thousand_chunks_becomes_a_handful_of_flushes(qtbot):
    throttle = StreamThrottle()
    flushes: list[str] = []
    throttle.flushed.connect(flushes.append)
    chunks = [f"tok{i} " for i in range(1000)]

    with qtbot.waitSignal(throttle.flushed, timeout=1000):
        for chunk in chunks:
            throttle.push(chunk)
    # A few more intervals: a burst already flushed must not flush again.
    with qtbot.assertNotEmitted(throttle.flushed, wait=50):
        pass

    assert 1 <= len(flushes) <= 3
    assert "".join(flushes) == "".join(chunks)
    assert throttle.pending == ""


def test_nothing_is_emitted_before_the_timer_or_an_explicit_flush(qtbot):
    throttle = StreamThrottle(interval_ms=10_000)
    flushes: list[str] = []
    throttle.flushed.connect(flushes.append)

    throttle.push("Hello ")
    throttle.push("")
    throttle.push("world")
    assert flushes == []
    assert throttle.pending == "Hello world"

    throttle.flush()
    assert flushes == ["Hello world"]
    throttle.flush()  # nothing pending: no empty flush
    assert flushes == ["Hello world"]


def test_discard_drops_pending_text(qtbot):
    throttle = StreamThrottle(interval_ms=1)
    flushes: list[str] = []
    throttle.flushed.connect(flushes.append)

    throttle.push("stale")
    with qtbot.assertNotEmitted(throttle.flushed, wait=30):  # thirty 1 ms intervals
        throttle.discard()

    assert flushes == []
    assert throttle.pending == ""

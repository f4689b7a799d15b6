"""Timings in words: only the known parts, in a fixed order, with the caller's load label."""

from __future__ import annotations

from app.core.messages import Timings
from app.core.timings_text import timing_parts, timings_text


def test_every_known_part_is_said_in_order() -> None:
    timings = Timings(load_s=31.04, ttft_s=0.419, decode_tokens_per_s=12.34)

    assert timings_text(timings) == "12.3 tok/s · first token 0.42 s · load 31.0 s"
    assert timing_parts(timings, load_label="model load")[-1] == "model load 31.0 s"


def test_unknown_parts_are_left_out() -> None:
    assert timing_parts(Timings(decode_tokens_per_s=20.0)) == ["20.0 tok/s"]
    assert timings_text(Timings()) == ""
    assert timings_text(None) == ""

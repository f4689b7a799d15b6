"""How fast an answer came, in words ("12.3 tok/s · first token 0.84 s"), for any view."""

from __future__ import annotations

from app.core.messages import Timings

SEPARATOR = " · "


def timing_parts(timings: Timings | None, *, load_label: str = "load") -> list[str]:
    """The known parts of an answer's timings, each a short phrase.

    Args:
        timings: the answer's timings (None: unknown).
        load_label: the words before the model's load time ("model load" where the context does
            not already say it is about the model).

    Returns:
        Speed, time to the first token and load time, in that order, each only when known.
    """
    if timings is None:
        return []
    parts = []
    if timings.decode_tokens_per_s > 0:
        parts.append(f"{timings.decode_tokens_per_s:.1f} tok/s")
    if timings.ttft_s > 0:
        parts.append(f"first token {timings.ttft_s:.2f} s")
    if timings.load_s > 0:
        parts.append(f"{load_label} {timings.load_s:.1f} s")
    return parts


def timings_text(timings: Timings | None, *, load_label: str = "load") -> str:
    """Say how fast an answer came ("12.3 tok/s · first token 0.84 s").

    Args:
        timings: the answer's timings (None: unknown).
        load_label: as for `timing_parts`.

    Returns:
        The parts that are known, joined; "" when none is.
    """
    return SEPARATOR.join(timing_parts(timings, load_label=load_label))

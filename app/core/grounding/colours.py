"""One stable colour per label, shared by the overlay, the annotated PNG and the HTML export."""

from __future__ import annotations

import zlib

# Distinct on light and dark images alike (Sasha Trubetskoy's list, minus the pale ones).
PALETTE = (
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
    "#469990", "#9a6324", "#800000", "#808000", "#000075", "#ffe119",
)  # fmt: skip


def label_colour(label: str) -> str:
    """The colour of a label, as "#rrggbb": the same label gets the same colour everywhere.

    Args:
        label: a box label (compared case-insensitively, surrounding spaces ignored).

    Returns:
        A colour from `PALETTE`, chosen by a checksum (stable across runs, unlike `hash`).
    """
    key = " ".join(label.lower().split()).encode("utf-8")
    return PALETTE[zlib.crc32(key) % len(PALETTE)]

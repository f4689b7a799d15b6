"""The one label → colour mapping (Qt-free): the overlay on screen, the annotated PNG, the box
list, the answer's linked spans and the HTML export all take their colours from here, so a label
looks the same wherever it is shown.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping

#: Outline colours, saturated mid-tones that read on light and dark images alike (the overlay
#: adds a dark halo for light backgrounds); none is so dark it vanishes on a dark photo.
PALETTE = (
    "#ff3b30",  # red
    "#1e88e5",  # blue
    "#34c759",  # green
    "#ff9500",  # orange
    "#af52de",  # purple
    "#00b8a9",  # teal
    "#ffcc00",  # yellow
    "#ff2d78",  # pink
    "#5856d6",  # indigo
    "#00c8ff",  # cyan
)

#: Label key (`label_key`) → "#rrggbb", for the labels of one message (see `label_colours`).
Colours = Mapping[str, str]


def label_key(label: str) -> str:
    """The form of a label that picks its colour: case (Unicode casefold) and spacing do not count.

    "Dog", " dog " and "DOG" share a key, and so do "STRASSE" and "straße".
    """
    return " ".join(label.casefold().split())


def _slot(label: str) -> int:
    return zlib.crc32(label_key(label).encode("utf-8")) % len(PALETTE)


def label_colour(label: str) -> str:
    """The colour a label hashes to, as "#rrggbb": stable across runs (CRC32, not `hash`).

    Args:
        label: a box label (compared by `label_key`).

    Returns:
        A colour from `PALETTE`.
    """
    return PALETTE[_slot(label)]


def label_colours(labels: Iterable[str]) -> dict[str, str]:
    """Colours for the labels of one message: each its hashed colour, unless an earlier label
    took it, then the next free one, so different things in one picture differ in colour.

    Args:
        labels: every box label of the message, in order (repeats are fine).

    Returns:
        Label key → "#rrggbb"; the same labels always give the same map.
    """
    colours: dict[str, str] = {}
    used: set[int] = set()
    for label in labels:
        key = label_key(label)
        if key in colours:
            continue
        slot = _slot(label)
        while slot in used and len(used) < len(PALETTE):
            slot = (slot + 1) % len(PALETTE)
        used.add(slot)
        colours[key] = PALETTE[slot]
    return colours


def colour_of(label: str, colours: Colours | None = None) -> str:
    """A label's colour from a message's map, or its hashed colour when the map lacks it."""
    found = colours.get(label_key(label)) if colours is not None else None
    return found if found is not None else label_colour(label)

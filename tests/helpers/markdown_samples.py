"""Model answers that are hard to lay out, for the large-answer tests and `bench/render.py`."""

from __future__ import annotations

_HEAD = "| # | Name | Region | Revenue | Growth | Notes |\n|---|---|---|---|---|---|\n"


def table_answer(size: int) -> str:
    """A model answer that is one big markdown table of about `size` characters."""
    rows = ["Here is the table you asked for:\n\n", _HEAD]
    total, n = sum(map(len, rows)), 0
    while total < size:
        row = f"| {n} | Item number {n} | Region {n % 7} | {n * 13.7:.2f} | {n % 17}% | ok |\n"
        rows.append(row)
        total, n = total + len(row), n + 1
    return "".join(rows)

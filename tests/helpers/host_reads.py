"""Counting host reads of tensor values (`.item()`, `int(t)`): each is a device sync on a GPU."""

from __future__ import annotations

from typing import Any

from torch.utils._python_dispatch import TorchDispatchMode


class HostReads(TorchDispatchMode):
    """A dispatch mode counting the ops that hand a tensor's value to Python.

    `.item()`, `int(t)` and `float(t)` reach the dispatcher as `aten::item` (or
    `aten::_local_scalar_dense` below it), `bool(t)` and `if t:` as `aten::is_nonzero`;
    `.tolist()` does not, so code under test must not use it for this count to hold.
    """

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        import torch

        if func in (
            torch.ops.aten.item.default,
            torch.ops.aten._local_scalar_dense.default,
            torch.ops.aten.is_nonzero.default,
        ):
            self.count += 1
        return func(*args, **(kwargs or {}))

    def __enter__(self) -> Any:
        super().__enter__()
        return self

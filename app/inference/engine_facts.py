"""What an engine can read and how it counts: the same questions asked of a local or remote one."""

from __future__ import annotations

import sys
from collections.abc import Callable

from app.inference.budget import ImageTiling
from app.inference.engine import Engine, ModelError


def is_remote(engine: Engine) -> bool:
    """Whether `engine` is a `RemoteEngine` (without importing the client when it cannot be)."""
    module = sys.modules.get("app.inference.remote_engine")
    return module is not None and isinstance(engine, module.RemoteEngine)


def reads_images(engine: Engine) -> bool:
    """Whether the loaded engine takes images (a server's model may read text only)."""
    return engine.status().reads_images


def token_counting(engine: Engine) -> tuple[Callable[[str], int], ImageTiling]:
    """How the loaded engine counts a text's tokens, and how it tiles images.

    A server counts with its own tokenizer (vLLM's `/tokenize`); the local engine with the
    model folder's. Llama 4 tiles images the same way on both.

    Raises:
        ModelError: the engine is not loaded, or is of a kind that cannot count.
    """
    if is_remote(engine):
        from app.inference.remote_engine import RemoteEngine

        assert isinstance(engine, RemoteEngine)
        return engine.count_tokens, ImageTiling()
    from app.inference.local_engine import LocalLlama4Engine  # torch: only for the local engine

    loaded = engine.loaded if isinstance(engine, LocalLlama4Engine) else None
    if loaded is None:
        raise ModelError("The model is not loaded, so its tokens cannot be counted.")
    tokenizer = loaded.processor.tokenizer

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    return count, ImageTiling.from_processor(loaded.processor)

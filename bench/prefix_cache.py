"""Multi-turn reuse benchmark: prefill tokens and time saved on a follow-up question about an image.

Asks a question about an image (after a page of context text), then a follow-up, once on an engine
that keeps the previous prompt's KV cache and once on a fresh engine that must prefill everything.
Prints prompt and prefilled tokens, time to first token and the greedy tokens of both (they should
be the same). Builds the tiny random Llama 4 unless `--model` names a real folder.

    .venv/bin/python bench/prefix_cache.py [--model DIR] [--quantization nf4|int8|bf16]
                                           [--device cpu|cuda:0] [--context-words 400]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.core.messages import ChatTurn, Role
from app.inference.engine import CancelToken, GenerationRequest, run_to_end
from app.inference.local_engine import LocalLlama4Engine


def ask(engine: LocalLlama4Engine, turns: tuple[ChatTurn, ...], tokens: int) -> tuple[str, object]:
    chunks: list[str] = []
    request = GenerationRequest(turns, max_new_tokens=tokens, temperature=0.0)
    result = run_to_end(engine.generate(request, CancelToken()), chunks.append)
    return "".join(chunks), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model folder (default: build the tiny one)")
    parser.add_argument("--quantization", default="bf16", choices=["nf4", "int8", "bf16"])
    parser.add_argument("--device", default=None, help="cpu, cuda:0 (default: GPU if any)")
    parser.add_argument("--context-words", type=int, default=400)
    parser.add_argument("--answer-tokens", type=int, default=16)
    args = parser.parse_args()

    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.model
        if folder is None:
            from app.inference.tiny import build_tiny_llama4

            folder = build_tiny_llama4(Path(tmp) / "tiny")
        photo = Path(tmp) / "photo.png"
        Image.effect_mandelbrot((1280, 720), (-2.0, -1.0, 1.0, 1.0), 60).convert("RGB").save(photo)
        sentence = "The quarterly report lists revenue, costs and staff per region."
        context = " ".join([sentence] * max(1, args.context_words // 10))

        first = (ChatTurn(Role.USER, f"{context}\n\nWhat is in this picture?", (photo,)),)
        reusing = LocalLlama4Engine(folder, quantization=args.quantization, device=args.device)
        reusing.load(lambda _p: None, CancelToken())
        answer, _ = ask(reusing, first, args.answer_tokens)
        follow = (
            *first,
            ChatTurn(Role.ASSISTANT, answer),
            ChatTurn(Role.USER, "Which colours dominate its left half?"),
        )
        _, warm = ask(reusing, follow, args.answer_tokens)
        reused_tokens, reused_prefill = list(reusing.last_token_ids), reusing.last_prefill_tokens
        device = reusing.loaded.device if reusing.loaded else "?"
        reusing.unload()

        fresh = LocalLlama4Engine(folder, quantization=args.quantization, device=args.device)
        fresh.load(lambda _p: None, CancelToken())
        ask(fresh, (ChatTurn(Role.USER, "warm-up"),), 2)  # first-call overheads out of the way
        _, cold = ask(fresh, follow, args.answer_tokens)
        fresh_tokens, fresh_prefill = list(fresh.last_token_ids), fresh.last_prefill_tokens
        fresh.unload()

    print(
        f"model: {folder if args.model else 'tiny random Llama 4'} · {args.quantization} · {device}"
    )
    print(f"follow-up prompt tokens:      {warm.timings.prompt_tokens:>8,}")  # type: ignore[attr-defined]
    print(f"prefilled with kept cache:    {reused_prefill:>8,}")
    print(f"prefilled from scratch:       {fresh_prefill:>8,}")
    print(f"prefill tokens saved:         {fresh_prefill - reused_prefill:>8,}")
    warm_ttft = warm.timings.ttft_s  # type: ignore[attr-defined]
    cold_ttft = cold.timings.ttft_s  # type: ignore[attr-defined]
    print(f"time to first token, reused:  {warm_ttft * 1000:>8.1f} ms")
    print(f"time to first token, full:    {cold_ttft * 1000:>8.1f} ms")
    print(f"time saved:                   {(cold_ttft - warm_ttft) * 1000:>8.1f} ms")
    print(f"same greedy answer:           {reused_tokens == fresh_tokens}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

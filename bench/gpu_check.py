"""GPU check: the tiny Llama 4 on CUDA as users run Scout — load, generate, cancel, out of memory.

Builds the tiny random Llama 4 and, by default, converts it with `prepare-model` (per-expert NF4,
the folder a Scout user loads on one card), then loads that through the engine as a real folder
loads, answers a question about an image (the engine's decode step: on CUDA the per-expert NF4
experts are chosen on the device by `nf4_experts`' Triton kernel, so the step can run as a CUDA
graph; the log line says whether it did), presses Stop mid-answer, provokes a real CUDA
out-of-memory error inside a generation and shows the engine answering again afterwards. Then the
same folder with the 8-bit output head, and the official layout in bf16 (fused experts, chosen on
the device: the step runs as a CUDA graph, and the tokens are compared with the eager step).
Prints figures; on a machine without CUDA it says so and exits 0.

    .venv/bin/python bench/gpu_check.py [--source prepared|official] [--quantization nf4|int8|bf16]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.core.messages import ChatTurn, Role
from app.inference.engine import (
    CancelToken,
    GenerationRequest,
    OutOfMemoryError,
    run_to_end,
)
from app.inference.local_engine import LocalLlama4Engine


def ask(engine: LocalLlama4Engine, turns: Any, tokens: int, cancel: CancelToken | None = None):
    request = GenerationRequest(tuple(turns), max_new_tokens=tokens, temperature=0.0)
    return run_to_end(engine.generate(request, cancel or CancelToken()), lambda _c: None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source", default="prepared", choices=["prepared", "official"],
        help="prepared: a prepare-model per-expert folder (default); official: quantize on load",
    )  # fmt: skip
    parser.add_argument("--quantization", default="nf4", choices=["nf4", "int8", "bf16"])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--device", default="cuda:0", help="cpu: a dry run of the same steps")
    args = parser.parse_args()

    import torch

    device = args.device
    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print("No CUDA GPU on this machine: nothing to check (exit 0).")
        return 0

    def mib(figure: str = "allocated") -> str:
        if not cuda:
            return "n/a on cpu"
        value = (
            torch.cuda.max_memory_allocated() if figure == "peak" else torch.cuda.memory_allocated()
        )
        return f"{value / 2**20:.0f} MiB"

    from PIL import Image

    from app.inference.prepare import prepare_model
    from app.inference.tiny import build_tiny_llama4

    name = torch.cuda.get_device_name(device) if cuda else "CPU (dry run)"
    print(f"device: {name} · torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        official = build_tiny_llama4(Path(tmp) / "tiny")
        folder = official
        if args.source == "prepared" and args.quantization != "bf16":
            folder = Path(tmp) / f"tiny-{args.quantization}"
            prepare_model(official, folder, args.quantization, device=device)
            print(f"prepare-model: {folder.name} (per-expert {args.quantization})")
        photo = Path(tmp) / "photo.png"
        Image.effect_mandelbrot((1280, 720), (-2.0, -1.0, 1.0, 1.0), 60).convert("RGB").save(photo)
        turns = [ChatTurn(Role.USER, "What is in this picture?", (photo,))]

        engine = LocalLlama4Engine(folder, quantization=args.quantization, device=device)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        engine.load(lambda _p: None, CancelToken())
        layer = engine.loaded.model.language_model.model.layers[0]  # type: ignore[union-attr]
        print(
            f"load: {engine.loaded.load_s:.2f} s · "
            f"q_proj is {type(layer.self_attn.q_proj).__name__}"
            f" · router is {type(layer.feed_forward.router).__name__}"
        )  # type: ignore[union-attr]

        seen = watch_decode_log()
        ask(engine, turns, 4)  # warm-up: CUDA kernels, bitsandbytes' first calls
        result = ask(engine, turns, args.tokens)
        t = result.timings
        moe = layer.feed_forward
        on_device = moe.__dict__["forward"].args[2] is not None
        print(
            f"generate: {t.prompt_tokens} prompt tokens · ttft {t.ttft_s * 1000:.1f} ms · "
            f"{t.completion_tokens} tokens at {t.decode_tokens_per_s:.1f} tok/s · "
            f"stop {result.stop_reason} · peak {mib('peak')} · expert chosen on the device: "
            f"{'yes' if on_device else 'no'} · {seen[-1] if seen else 'no CUDA graph'}"
        )

        cancel = CancelToken()
        head = engine.loaded.model.language_model.lm_head  # type: ignore[union-attr]
        calls: list[float] = []

        def stop_at_step_ten(*_a: Any) -> None:
            calls.append(time.perf_counter())
            if len(calls) == 10:
                cancel.cancel()

        handle = head.register_forward_hook(stop_at_step_ten)
        result = ask(engine, turns, 500, cancel)
        returned = time.perf_counter()
        handle.remove()
        print(
            f"cancel: stop pressed at step 10 → {result.timings.completion_tokens} tokens, "
            f"{result.stop_reason}, returned {(returned - calls[9]) * 1000:.1f} ms after Stop"
        )

        total = torch.cuda.mem_get_info(device)[1] if cuda else 2**50

        def oversized_activation(*_a: Any) -> None:
            # Inside the prefill's first decoder layer: an allocation twice the device's memory, so
            # the CUDA allocator fails mid-forward exactly as an oversized request would.
            torch.empty(2 * total, dtype=torch.uint8, device=device)

        handle = layer.register_forward_pre_hook(oversized_activation)
        try:
            ask(engine, turns, 8)
            print("oom: no out-of-memory error happened (unexpected)")
        except OutOfMemoryError as exc:
            print(f"oom: OutOfMemoryError: {exc.message}")
        finally:
            handle.remove()
        allocated = mib()
        result = ask(engine, turns, 8)
        print(
            f"after oom: {allocated} allocated · next answer {result.stop_reason}, "
            f"{result.timings.completion_tokens} tokens"
        )
        engine.unload()
        print(f"after unload: {mib()} allocated")

        head = LocalLlama4Engine(
            folder, quantization=args.quantization, device=device, output_head="int8"
        )
        head.load(lambda _p: None, CancelToken())
        ask(head, turns, 4)
        result = ask(head, turns, args.tokens)
        print(
            f"8-bit output head: {result.timings.completion_tokens} tokens at "
            f"{result.timings.decode_tokens_per_s:.1f} tok/s"
        )
        head.unload()
        graph_check(official, device, turns, args.tokens)
    return 0


def watch_decode_log() -> list[str]:
    """The decode loop's and the NF4 kernel's log lines from now on (a CUDA graph captured or
    not, the kernel refused), collected in the returned list."""
    import logging

    seen: list[str] = []

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    for name in ("app.inference.llama4_decode", "app.inference.nf4_experts"):
        logger = logging.getLogger(name)
        logger.addHandler(Seen())
        logger.setLevel(logging.INFO)
    return seen


def graph_check(folder: Path, device: str, turns: Any, tokens: int) -> None:
    """The official (fused-expert) layout in bf16: the decode step as a CUDA graph vs eager."""
    import functools

    from app.inference import llama4_decode

    seen = watch_decode_log()
    engine = LocalLlama4Engine(folder, quantization="bf16", device=device)
    engine.load(lambda _p: None, CancelToken())
    real = llama4_decode.decode
    figures = {}
    for graphs in (False, True):
        llama4_decode.decode = functools.partial(real, graphs=graphs)  # type: ignore[assignment]
        try:
            ask(engine, turns, 4)
            result = ask(engine, turns, tokens)
        finally:
            llama4_decode.decode = real  # type: ignore[assignment]
        figures[graphs] = (list(engine.last_token_ids), result.timings.decode_tokens_per_s)
    engine.unload()
    (eager_ids, eager_rate), (graph_ids, graph_rate) = figures[False], figures[True]
    print(
        f"bf16 fused experts: eager {eager_rate:.1f} tok/s, CUDA graph {graph_rate:.1f} tok/s,"
        f" same tokens: {'yes' if eager_ids == graph_ids else 'NO'};"
        f" {seen[-1] if seen else 'no graph captured'}"
    )


if __name__ == "__main__":
    sys.exit(main())

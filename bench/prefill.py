"""Prefill benchmark: peak memory and time of one-shot vs segmented prefill against prompt length.

    .venv/bin/python bench/prefill.py                        # 2K … 32K tokens, CPU, ~1-2 min
    .venv/bin/python bench/prefill.py --lengths 2048 8192 --segment 1024
    .venv/bin/python bench/prefill.py --device cuda:0        # peak from torch.cuda instead

The tiny random Llama 4 (`app.inference.tiny.tiny_config`, Scout's layer pattern: three chunked
layers with 64-token chunks and one global NoPE layer, sparse MoE) built in memory in float32 (on a
CPU without AVX512-BF16 PyTorch's bf16 matmuls take a slow generic path that would dominate), its
`max_position_embeddings` raised to hold the longest prompt. For each length, the same random
text prompt is prefilled twice in the same process, alternating:

- **one-shot**: one forward over the whole prompt into a `DynamicCache`, as the engine did before
  (`model(input_ids=..., past_key_values=cache, logits_to_keep=1)`);
- **segmented**: `app.inference.llama4_prefill.prefill` with `--segment` tokens a forward (the
  engine's default), into the engine's cache (`llama4_kv.new_cache`, reserved for the prompt) with
  the engine's attention (`llama4_attention`), as the engine runs it;
- **segmented, int8 KV**: the same with the global layers' keys and values in 8 bits
  (`kv_cache="int8"`): its KV bytes a token and its logits' distance from one-shot (bf16 is exact
  to float rounding, so this column is the 8-bit cache's error).

Printed per length: wall time, peak memory above the level before the prefill (the KV cache the
prefill leaves behind included; its size is printed apart), the ratios segmented / one-shot, and
the largest difference between the two last-token logits (the two must agree; the figure is
printed, not judged).

Peak memory. On CUDA: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`, minus
what was allocated before. On the CPU (tracemalloc does not see torch's allocations): the process's
resident set, read from /proc/self/status. Before each run the kernel's high-water mark (VmHWM) is
reset by writing 5 to /proc/self/clear_refs and glibc's free memory is handed back
(`malloc_trim`); the bench re-executes itself with `MALLOC_MMAP_THRESHOLD_=65536` so every
tensor above 64 KB is its own mapping, returned to the system when freed, which keeps one run's
freed memory from hiding the next run's peak. Without /proc (not Linux) a thread samples psutil's
RSS every millisecond instead (peaks shorter than that can be missed). The RSS figures include
allocator overheads, so read them to a few MB.

With `--measure SEGMENT:CONTEXT ...` it measures instead what `app.inference.budget` prices:
the working memory of the segmented prefill's last segment (`segment` tokens ending at `context`),
i.e. the peak above the level before that segment minus the KV the segment adds, next to
`budget.segment_bytes`' prediction for the same shape (float32), one JSON object a line, with the
engine's cache and attention (`--kv-cache int8` for the 8-bit cache, `--direct-max-keys 0` to send
every layer down the long-context attention path the tiny model's short contexts would not reach).
This is where budget's `_ACTIVATION_VALUES_PER_WIDTH` comes from;
`tests/inference/test_budget_segmented.py` runs it.

Benchmarks print figures and never judge speed (see bench/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.inference import llama4_attention as attention
from app.inference.budget import kv_bytes_per_token, segment_bytes
from app.inference.llama4_kv import KV_CACHES, held_bytes, new_cache, reserve
from app.inference.llama4_prefill import DEFAULT_SEGMENT_TOKENS, prefill
from app.inference.moe import install_moe
from app.inference.tiny import tiny_config

LENGTHS = (2048, 4096, 8192, 16384, 32768)
_MMAP_ENV = "MALLOC_MMAP_THRESHOLD_"
_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")
MB = 1 << 20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS), metavar="N")
    parser.add_argument("--segment", type=int, default=DEFAULT_SEGMENT_TOKENS, metavar="N")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda:0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--measure", nargs="+", default=None, metavar="SEGMENT:CONTEXT",
        help="measure the last segment's working memory for these shapes (JSON lines)",
    )  # fmt: skip
    parser.add_argument("--kv-cache", choices=KV_CACHES, default="bf16", help="with --measure")
    parser.add_argument(
        "--direct-max-keys", type=int, default=attention.DIRECT_MAX_KEYS, metavar="N",
        help="with --measure: longer keys take the per-head attention path",
    )  # fmt: skip
    args = parser.parse_args()
    if args.device == "cpu" and _MMAP_ENV not in os.environ and sys.platform == "linux":
        # Before anything is allocated: see the module docstring.
        env = {**os.environ, _MMAP_ENV: "65536"}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)

    if args.measure:
        points = [tuple(int(x) for x in point.split(":")) for point in args.measure]
        attention.DIRECT_MAX_KEYS = args.direct_max_keys
        return measure_segments([(s, c) for s, c in points], args.device, args.seed, args.kv_cache)

    import torch
    from transformers import DynamicCache, Llama4ForConditionalGeneration

    torch.manual_seed(args.seed)
    longest = max(args.lengths)
    config = tiny_config(max_position_embeddings=longest + 64)
    config.dtype = "float32"
    model = Llama4ForConditionalGeneration(config).eval().to(args.device)
    install_moe(model, "sparse")
    text_config = config.get_text_config()
    meter = _meter(args.device)
    engine_attention = attention.register()

    def one_shot(ids: list[int]) -> tuple[Any, Any]:
        model.set_attn_implementation({"text_config": "sdpa"})  # transformers as it comes
        cache = DynamicCache(config=text_config)
        batch = torch.tensor([ids], device=args.device)
        out = model(input_ids=batch, past_key_values=cache, use_cache=True, logits_to_keep=1)
        return out.logits[0, -1], cache

    def segmented(ids: list[int], kv_cache: str = "bf16") -> tuple[Any, Any]:
        model.set_attn_implementation({"text_config": engine_attention})
        cache = new_cache(text_config, kv_cache)
        reserve(cache, len(ids))
        logits = prefill(model, cache, ids, 0, len(ids), segment_tokens=args.segment)
        return logits, cache

    print(
        f"machine: {platform.machine()} · {os.cpu_count()} CPUs · torch {torch.__version__} "
        f"({torch.get_num_threads()} threads) · Python {platform.python_version()} · "
        f"device {args.device}"
    )
    print(
        f"model: tiny random Llama 4, float32, hidden {text_config.hidden_size}, "
        f"{text_config.num_hidden_layers} layers (chunk {text_config.attention_chunk_size}), "
        f"sparse MoE · segment {args.segment:,} tokens · peak memory: {meter.what}"
    )
    generator = torch.Generator().manual_seed(args.seed)
    with torch.inference_mode():
        warm = torch.randint(0, 384, (256,), generator=generator).tolist()
        one_shot(warm)  # first-call overheads out of the way
        segmented(warm)
        segmented(warm, "int8")
        header = (
            f"{'tokens':>7} | {'one-shot s':>10} {'peak MB':>9} | {'segmented s':>11} "
            f"{'peak MB':>9} | {'time ×':>6} {'peak ×':>6} | {'KV MB':>7} | {'max |Δlogit|':>12} "
            f"| {'int8 s':>6} {'peak MB':>9} {'KV MB':>7} {'max |Δlogit|':>12}"
        )
        print(header)
        print("-" * len(header))
        for length in args.lengths:
            ids = torch.randint(0, 384, (length,), generator=generator).tolist()
            (ref, kv), one_s, one_peak = _measure(meter, lambda ids=ids: one_shot(ids))
            kv_mb = held_bytes(kv) / MB
            del kv
            (got, kv), seg_s, seg_peak = _measure(meter, lambda ids=ids: segmented(ids))
            del kv
            delta = float((got.float() - ref.float()).abs().max())
            (low, kv), int8_s, int8_peak = _measure(meter, lambda ids=ids: segmented(ids, "int8"))
            int8_mb = held_bytes(kv) / MB
            del kv
            int8_delta = float((low.float() - ref.float()).abs().max())
            print(
                f"{length:>7,} | {one_s:>10.2f} {one_peak / MB:>9.1f} | {seg_s:>11.2f} "
                f"{seg_peak / MB:>9.1f} | {seg_s / one_s:>6.2f} {seg_peak / max(one_peak, 1):>6.2f}"
                f" | {kv_mb:>7.1f} | {delta:>12.2e} | {int8_s:>6.2f} {int8_peak / MB:>9.1f} "
                f"{int8_mb:>7.1f} {int8_delta:>12.2e}",
                flush=True,
            )
        per_token = {
            kind: kv_bytes_per_token(text_config.to_dict(), 4, kv_cache=kind) for kind in KV_CACHES
        }
        print(
            "KV bytes a token past a chunk (global layers, float32 model): "
            + ", ".join(f"{kind} {count:,}" for kind, count in per_token.items())
        )
    print(
        "peak MB: memory above the level before the prefill, KV cache included; × : segmented / "
        "one-shot (below 1: segmented is faster or smaller)."
    )
    return 0


def measure_segments(points: list[tuple[int, int]], device: str, seed: int, kv_cache: str) -> int:
    """Print, per (segment, context), the last segment's measured and predicted working bytes."""
    import json

    import torch
    from transformers import DynamicCache, Llama4ForConditionalGeneration

    torch.manual_seed(seed)
    config = tiny_config(max_position_embeddings=max(c for _, c in points) + 64)
    config.dtype = "float32"
    model = Llama4ForConditionalGeneration(config).eval().to(device)
    install_moe(model, "sparse")
    model.set_attn_implementation({"text_config": attention.register()})
    text_config = config.get_text_config()
    meter = _meter(device)
    generator = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        warm = torch.randint(0, 384, (256,), generator=generator).tolist()
        prefill(model, DynamicCache(config=text_config), warm, 0, len(warm), logits=False)
        for segment, context in points:
            ids = torch.randint(0, 384, (context,), generator=generator).tolist()
            cache = new_cache(text_config, kv_cache)
            reserve(cache, context)  # as the engine does: the global layers never grow
            start = context - segment
            prefill(model, cache, ids, 0, start, segment_tokens=segment, logits=False)
            held = held_bytes(cache)
            _, seconds, peak = _measure(
                meter,
                lambda ids=ids, cache=cache, start=start, segment=segment: prefill(
                    model, cache, ids, start, len(ids), segment_tokens=segment, logits=False
                ),
            )
            working = peak - (held_bytes(cache) - held)
            predicted = segment_bytes(
                text_config.to_dict(), segment, context, dtype_bytes=4, kv_cache=kv_cache,
                direct_max_keys=attention.DIRECT_MAX_KEYS,
            )  # fmt: skip
            print(
                json.dumps(
                    {
                        "segment": segment,
                        "context": context,
                        "kv_cache": kv_cache,
                        "working_bytes": working,
                        "predicted_bytes": predicted,
                        "seconds": round(seconds, 3),
                        "meter": meter.what,
                    }
                ),
                flush=True,
            )
            del cache
    return 0


class _Meter:
    """Peak memory of one call, measured as the module docstring says."""

    def __init__(self, what: str, start: Callable[[], int], peak: Callable[[], int]) -> None:
        self.what = what
        self.start = start  # resets the peak, returns the level now
        self.peak = peak  # the peak since `start`


def _meter(device: str) -> _Meter:
    if device.startswith("cuda"):
        import torch

        def cuda_start() -> int:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            return int(torch.cuda.memory_allocated(device))

        def cuda_peak() -> int:
            torch.cuda.synchronize(device)
            return int(torch.cuda.max_memory_allocated(device))

        return _Meter("torch.cuda.max_memory_allocated", cuda_start, cuda_peak)
    if _can_reset_hwm():

        def proc_start() -> int:
            _trim()
            _CLEAR_REFS.write_text("5")
            return _status_kb("VmRSS") * 1024

        return _Meter(
            "resident set (VmHWM reset per run, malloc_trim)",
            proc_start,
            lambda: _status_kb("VmHWM") * 1024,
        )
    return _sampling_meter()


def _sampling_meter() -> _Meter:
    import psutil

    process = psutil.Process()
    state = {"peak": 0, "run": False}
    lock = threading.Lock()
    thread: list[threading.Thread] = []

    def sample() -> None:
        while state["run"]:
            rss = process.memory_info().rss
            with lock:
                state["peak"] = max(state["peak"], rss)
            time.sleep(0.001)

    def start() -> int:
        gc.collect()
        rss = process.memory_info().rss
        state.update(peak=rss, run=True)
        thread[:] = [threading.Thread(target=sample, daemon=True)]
        thread[0].start()
        return rss

    def peak() -> int:
        state["run"] = False
        thread[0].join()
        return max(int(state["peak"]), process.memory_info().rss)

    return _Meter("resident set, psutil sampled every 1 ms", start, peak)


def _measure(meter: _Meter, run: Callable[[], Any]) -> tuple[Any, float, int]:
    """(what `run` returned, seconds, peak bytes above the level before it)."""
    gc.collect()
    before = meter.start()
    began = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - began
    return result, seconds, max(0, meter.peak() - before)


def _can_reset_hwm() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
        return _status_kb("VmHWM") > 0
    except OSError:
        return False


def _status_kb(field: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _trim() -> None:
    """Hand glibc's free heap memory back to the system (a no-op elsewhere)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


if __name__ == "__main__":
    sys.exit(main())

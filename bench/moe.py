"""MoE and decode benchmark: stock Llama 4 decoding vs the sparse MoE vs the engine's step.

    .venv/bin/python bench/moe.py                 # CPU part, then the GPU part if CUDA is there
    .venv/bin/python bench/moe.py --skip-gpu      # CPU part only
    .venv/bin/python bench/moe.py --skip-cpu --gpu-layers 4
    .venv/bin/python bench/moe.py --skip-cpu --gpu-shape-on-cpu   # check the GPU code, toy sizes

Both parts build random-weight models from a real `Llama4TextConfig` (`app.inference.tiny.
tiny_config` with overrides), so the modules are transformers' own, and check that the paths give
the same greedy tokens before printing speeds.

CPU part: 16 experts, hidden 1024, expert width 2048, 4 layers, fused experts (the layout of the
official checkpoint), in float32 and in bf16 (the model's own dtype; `--cpu-dtype` picks one. On
a CPU without AVX512-BF16 or AMX, PyTorch's bf16 products take a slow generic path, and the bf16
figures time that fallback):

* decode tokens/s of one sequence, stock vs sparse MoE, and a 256-token prefill (float32);
* one row times a [4096 x 1024] matrix, in each dtype: `F.linear` (what the stock paths run),
  `torch.mv` over rows (what the engine's step runs) and over columns (an expert in the
  checkpoint's layout), their GB/s, and whether the first two agree bit for bit;
* per decoded token of each decode path, in each dtype (`decode_paths`: stock `generate`, the
  sparse MoE under `generate`, the engine's step as it runs on this device, and with the expert
  chosen on the device as on a GPU): ATen ops, host reads, `cat` calls and tok/s;
* the memory roofline of each dtype: the weight bytes a step reads and this machine's measured
  read bandwidth give the fastest decode possible; each path against it;
* the 8-bit output head on the tiny model in bf16: how often its greedy token differs from the
  bf16 head's on the same hidden states, and the largest logit change.

About a minute and a half on 2 cores.

GPU part (skipped, with a line saying so, without CUDA): a slice of Scout (hidden 5120, expert width
8192, 16 experts, 40 query / 8 key-value heads of 128, chunk 8192, `--gpu-layers` layers, default
4) quantized as `prepare-model` folders are (per-expert NF4 with double quantization, router in
bf16). Prints the card's name and peak bandwidth (a small table; `--bandwidth-tbs` overrides it),
ms per decoded token per layer for stock, sparse and the engine's step, and Scout's output head
(bf16 [202,048 × 5,120] and 8-bit) with greedy and top-p sampling timed on the card. Then tok/s
extrapolated to Scout's 48 layers with the head and sampling included (goals on an H100: >= 130
on PCIe, >= 220 on SXM) and the fraction of the card's bandwidth the bytes read per token achieve.
Last, a 2-layer bf16 slice with fused experts (the layout whose expert is chosen on the device):
the engine's step eager and as a CUDA graph. And the prefill of a 2,322-token image prompt,
stock and sparse, extrapolated to 48 layers (the vision tower is not included).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.inference.moe import install_moe
from app.inference.tiny import tiny_config

SCOUT_LAYERS = 48
IMAGE_PROMPT_TOKENS = 2322
# Peak memory bandwidth, TB/s, by a fragment of torch.cuda.get_device_name (first match wins).
BANDWIDTH_TBS = (
    ("H200", 4.8),
    ("H100 PCIe", 2.0),
    ("H100 NVL", 3.9),
    ("H100", 3.35),  # "NVIDIA H100 80GB HBM3" is the SXM card
    ("A100-SXM4-80GB", 2.04),
    ("A100 80GB PCIe", 1.94),
    ("A100", 1.56),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--skip-gpu", action="store_true")
    parser.add_argument("--cpu-tokens", type=int, default=24, help="decode steps timed per mode")
    parser.add_argument(
        "--cpu-dtype", default="both", choices=["both", "float32", "bf16"],
        help="the decode paths' dtype on the CPU (default: float32, then bf16)",
    )  # fmt: skip
    parser.add_argument("--gpu-layers", type=int, default=4, choices=[2, 3, 4])
    parser.add_argument("--gpu-tokens", type=int, default=64)
    parser.add_argument("--bandwidth-tbs", type=float, help="the card's peak, if not in the table")
    parser.add_argument(
        "--gpu-shape-on-cpu",
        action="store_true",
        help="dry-run the GPU part's code on the CPU at toy sizes (checks the script, not speed)",
    )
    args = parser.parse_args()

    import torch

    say(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    if not args.skip_cpu:
        cpu_part(args.cpu_tokens, args.cpu_dtype)
    if args.gpu_shape_on_cpu:
        gpu_part("cpu", 2, 12, None, toy=True)
    elif args.skip_gpu:
        say("\nGPU part: skipped (--skip-gpu).")
    elif not torch.cuda.is_available():
        say("\nGPU part: skipped (no CUDA device).")
    else:
        gpu_part("cuda:0", args.gpu_layers, args.gpu_tokens, args.bandwidth_tbs)
    return 0


# -- CPU part -----------------------------------------------------------------------------------


def cpu_part(tokens: int, dtype: str) -> None:
    """Decode and prefill on the CPU, fused experts: stock vs sparse (float32), then the decode
    paths and their roofline in each dtype asked for."""
    import torch

    dtypes = {"float32": torch.float32, "bf16": torch.bfloat16}
    say("\nCPU part: 16 experts, hidden 1024, expert width 2048, 4 layers, batch 1")
    say(f"  CPU capability: {torch.backends.cpu.get_cpu_capability()}")
    model = cpu_model(torch.float32)
    prompt = torch.randint(1, 384, (1, 32), generator=torch.Generator().manual_seed(0))
    long_prompt = torch.randint(1, 384, (1, 256), generator=torch.Generator().manual_seed(1))
    steps: dict[str, list[float]] = {"stock": [], "sparse": []}
    prefill: dict[str, float] = {}
    ids: dict[str, list[int]] = {}
    for _round in range(2):  # interleaved, so a burst of other work hits both modes alike
        for mode in ("stock", "sparse"):
            install_moe(model, mode)
            seconds, ids[mode] = decode(model, prompt, tokens // 2)
            steps[mode] += seconds
            prefill[mode] = min(prefill.get(mode, 1e9), prefill_time(model, long_prompt))
    stock_rate, sparse_rate = median_rate(steps["stock"]), median_rate(steps["sparse"])
    stock_pre, sparse_pre = prefill["stock"], prefill["sparse"]
    stock_ids, sparse_ids = ids["stock"], ids["sparse"]
    say("\n  float32, stock vs sparse MoE under `generate`:")
    say(f"  same greedy tokens: {'yes' if stock_ids == sparse_ids else 'NO'}")
    say(f"  decode  stock  {stock_rate:8.1f} tok/s")
    say(f"  decode  sparse {sparse_rate:8.1f} tok/s   ({sparse_rate / stock_rate:.1f}x stock)")
    say(f"  prefill 256 tokens: stock {stock_pre * 1e3:.0f} ms, sparse {sparse_pre * 1e3:.0f} ms"
          f" ({stock_pre / sparse_pre:.1f}x)")  # fmt: skip
    row_products()
    for name in ("float32", "bf16") if dtype == "both" else (dtype,):
        if dtypes[name] is not torch.float32:
            model = cpu_model(dtypes[name])
        say(f"\n  {name}:")
        rates = decode_paths(model, prompt, tokens)
        roofline(model, rates)
    head_effect()


def cpu_model(dtype: Any) -> Any:
    """The CPU part's random model: 16 experts, hidden 1024, expert width 2048, 4 layers."""
    return random_model(
        "cpu", dtype, hidden_size=1024, intermediate_size=2048, num_local_experts=16,
        head_dim=64, num_attention_heads=16, num_key_value_heads=4, num_hidden_layers=4,
    )  # fmt: skip


def row_products(rows: int = 4096, width: int = 1024, rounds: int = 300) -> None:
    """One row times a [rows x width] matrix (the shared expert's gate|up), in float32 and
    bf16: `F.linear` of a [1, width] row (the stock paths), `torch.mv` over the matrix's rows
    (the engine's step, `llama4_step._times`) and `torch.mv` over its columns (a fused expert
    in the checkpoint's [in, out] layout, which `fuse_projections` stores as rows on the CPU);
    GB/s of the median product over 16 matrices in turn (so they come from memory, not a
    cache), and whether `F.linear` and mv over rows give the same bits."""
    import torch

    say(f"\n  one row times a [{rows} x {width}] matrix, median of {rounds}:")
    with torch.inference_mode():
        for dtype in (torch.float32, torch.bfloat16):
            matrices = [torch.randn(rows, width).to(dtype) for _ in range(16)]
            columns = [matrix.t().contiguous().t() for matrix in matrices]  # [in, out] storage
            vector = torch.randn(width).to(dtype)
            row = vector.unsqueeze(0)
            rates = []
            for way in ("linear", "rows", "columns"):
                seconds = []
                for turn in range(rounds):
                    index = turn % len(matrices)
                    start = time.perf_counter()
                    if way == "linear":
                        torch.nn.functional.linear(row, matrices[index])
                    else:
                        torch.mv((matrices if way == "rows" else columns)[index], vector)
                    seconds.append(time.perf_counter() - start)
                size = matrices[0].numel() * matrices[0].element_size()
                rates.append(size / statistics.median(seconds) / 1e9)
            same = all(
                torch.equal(torch.nn.functional.linear(row, weight)[0], torch.mv(weight, vector))
                for weight in matrices
            )
            say(f"    {str(dtype).removeprefix('torch.'):9s} F.linear {rates[0]:5.1f} GB/s,"
                f" mv over rows {rates[1]:5.1f} GB/s ({rates[1] / rates[0]:.2f}x), mv over"
                f" columns {rates[2]:5.1f} GB/s; same bits (F.linear, mv over rows):"
                f" {'yes' if same else 'NO'}")  # fmt: skip


#: The ways the engine has decoded, oldest first (see `decode_paths`).
DECODE_PATHS = ("stock", "sparse", "new", "new-device")


def decode_paths(model: Any, prompt: Any, tokens: int, rounds: int = 5) -> dict[str, float]:
    """Per decoded token: ATen ops, host reads and `cat` calls, and tok/s, of each path.

    - stock: transformers' MoE, `generate`, `DynamicCache`, transformers' sdpa;
    - sparse: the sparse MoE reading the expert on the host, otherwise the same (what the engine
      ran before its own decode loop);
    - new: the engine's decode loop (`llama4_decode.decode`) over its static-cache step
      (`llama4_step.DecodeStep`), as it runs on this device: on the CPU each MoE layer reads its
      expert's index (not a synchronisation on a CPU, and torch's CPU grouped GEMM is slower
      than one product), on a GPU the expert is chosen on the device;
    - new-device: the same step with the expert always chosen on the device
      (`torch._grouped_mm`), as a GPU runs it: what the host-read count means on a GPU.

    stock and sparse run on `model`'s weights as loaded; the new paths on a copy laid out as the
    engine loads them (`llama4_step.fuse_projections`: fused q/k/v and gate/up, experts stored
    as rows on the CPU).

    Ops are counted with a `TorchDispatchMode` over whole decodes of 1 and 1 + n tokens (the
    difference divided by n), host reads are `aten::item`, `aten::_local_scalar_dense` and
    `aten::is_nonzero` (`.item()`, `int(t)`, `bool(t)`), tok/s is the median step of an
    uncounted run (`rounds` rounds over the paths, interleaved); the fastest step of each path
    is printed too (the least disturbed by other work on a shared machine).
    """
    import copy

    import torch

    say(f"\n  decode paths, per token after a {prompt.shape[1]}-token prompt (greedy, batch 1):")
    prepared = copy.deepcopy(model)
    models = {path: prepared if path.startswith("new") else model for path in DECODE_PATHS}
    counted, seconds, ids = {}, {path: [] for path in DECODE_PATHS}, {}
    for path in DECODE_PATHS:
        setup_path(models[path], path)
        counts = [count_ops(models[path], prompt, path, n) for n in (1, 1 + tokens)]
        counted[path] = [(b - a) / tokens for a, b in zip(*counts, strict=True)]
    for _round in range(rounds):  # interleaved: a burst of other work hits every path
        for path in DECODE_PATHS:
            setup_path(models[path], path)
            steps, ids[path] = timed_decode(models[path], prompt, path, tokens)
            seconds[path] += steps
    setup_path(model, "sparse")
    results = {
        path: (*counted[path], median_rate(seconds[path]), ids[path]) for path in DECODE_PATHS
    }
    base = results["sparse"]
    header = ("path", "ops", "host reads", "cat", "tok/s", "x sparse")
    say("    {:10s} {:>7s} {:>10s} {:>5s} {:>8s} {:>9s}".format(*header))
    for path, (ops, reads, cats, rate, ids) in results.items():
        same = (
            "same tokens"
            if ids == results["stock"][4]
            else "same as sparse"
            if ids == results["sparse"][4]
            else "OTHER TOKENS"
        )
        say(f"    {path:10s} {ops:7.0f} {reads:10.1f} {cats:5.1f} {rate:8.1f}"
            f" {rate / base[3]:8.2f}x  {same}")  # fmt: skip
    fastest = {path: 1.0 / min(seconds[path]) for path in DECODE_PATHS}
    for path in DECODE_PATHS[2:]:
        say(f"    {path} vs sparse: ops x{results[path][0] / base[0]:.2f}, tok/s"
            f" x{results[path][3] / base[3]:.2f} (median steps;"
            f" fastest steps: {fastest[path]:.1f} vs {fastest['sparse']:.1f} tok/s,"
            f" x{fastest[path] / fastest['sparse']:.2f})")  # fmt: skip
    if model.dtype != torch.float32:
        say("    (below float32 the old paths' attention, transformers' sdpa over a"
            " DynamicCache, rounds differently from the engine's; within the prompt's chunk the"
            " step's logits equal the model's forward with the engine's attention bit for bit:"
            " tests/inference/test_decode_step.py)")  # fmt: skip
    return {path: result[3] for path, result in results.items()}


def roofline(model: Any, rates: dict[str, float]) -> None:
    """The fastest decode this machine's memory allows (every weight a step needs read once at
    the measured bandwidth), and each path's share of it."""
    step = decode_step_bytes(model)
    bandwidth = read_bandwidth()
    ceiling = bandwidth / step
    say(f"\n  memory roofline: a step reads {step / 1e6:.0f} MB of weights (attention, router,"
        f" shared expert, one expert per layer, head); this machine reads {bandwidth / 1e9:.1f}"
        f" GB/s (a sum over 1 GiB, best of 3): at most {ceiling:.0f} tok/s")  # fmt: skip
    for path, rate in rates.items():
        say(f"    {path:10s} {rate:6.1f} tok/s = {rate / ceiling:4.0%} of the ceiling")


def decode_step_bytes(model: Any) -> int:
    """Weight bytes one decode step of one sequence reads: every layer's sparse step, the final
    norm and the output head (the embedding's one row is left out)."""
    layers = len(model.model.layers)
    return (
        layers * decode_bytes_per_layer(model, "sparse")
        + module_bytes(model.model.norm)
        + module_bytes(model.lm_head)
    )


def read_bandwidth() -> float:
    """Bytes a second this machine's CPU reads from memory: a sum over 1 GiB, the best of 3."""
    import torch

    data = torch.ones(2**28)  # 1 GiB of float32
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        data.sum()
        best = min(best, time.perf_counter() - start)
    return data.numel() * data.element_size() / best


def head_effect(tokens: int = 48, prompts: int = 4) -> None:
    """The 8-bit output head against bf16 on the same hidden states: the tiny model in bf16,
    greedy decodes of `prompts` random prompts by the engine's step."""
    import copy

    import torch

    from app.inference.llama4_head import head_bytes, quantize_output_head

    model = random_model("cpu", torch.bfloat16, num_hidden_layers=4)
    setup_path(model, "new")
    states: list[Any] = []
    hook = model.lm_head.register_forward_hook(lambda _m, args, _o: states.append(args[0]))
    for seed in range(prompts):
        prompt = torch.randint(1, 384, (1, 24), generator=torch.Generator().manual_seed(seed))
        run_path(model, prompt, "new", tokens)
    hook.remove()
    holder = torch.nn.Module()
    holder.lm_head = copy.deepcopy(model.lm_head)
    before = head_bytes(holder)
    quantize_output_head(holder)
    with torch.inference_mode():
        hidden = torch.cat(states).reshape(-1, states[0].shape[-1])
        exact, approx = model.lm_head(hidden).float(), holder.lm_head(hidden).float()
    same = float((exact.argmax(-1) == approx.argmax(-1)).float().mean())
    error = float((approx - exact).abs().max() / exact.abs().max())
    say(f"\n  8-bit output head (tiny model, bf16, {hidden.shape[0]} decode steps of"
        f" {prompts} prompts): {before:,} -> {head_bytes(holder):,} bytes;"
        f" same greedy token {same:.1%}, largest logit change {error:.1%} of the largest logit"
        f" (a random model's logits are nearly flat: a trained model's clear winners flip"
        f" less)")  # fmt: skip


def setup_path(model: Any, path: str) -> None:
    """Put the model's MoE and attention as `path` runs them.

    The new paths also lay the weights out as the engine loads them (`fuse_projections`),
    which stays: time the old paths before, or on another copy (`decode_paths`)."""
    from app.inference.llama4_attention import register
    from app.inference.llama4_step import fuse_projections

    new = path.startswith("new")
    install_moe(model, "stock" if path == "stock" else "sparse", device_experts=new)
    model.set_attn_implementation(register() if new else "sdpa")
    if new:
        fuse_projections(model)


def run_path(
    model: Any, prompt: Any, path: str, tokens: int, on_token: Any = None, graphs: bool = True
) -> list[int]:
    """Greedy-decode `tokens` tokens after `prompt` the way `path` does; the new token ids.

    `graphs`: let the engine's step run as a CUDA graph where it can (CUDA only)."""
    import torch
    from transformers import DynamicCache

    from app.inference.llama4_decode import decode
    from app.inference.llama4_kv import new_cache, reserve
    from app.inference.llama4_prefill import prefill

    ids = prompt[0].tolist()
    with torch.inference_mode():
        if not path.startswith("new"):
            out = model.generate(
                input_ids=prompt, attention_mask=torch.ones_like(prompt),
                past_key_values=DynamicCache(config=model.config), max_new_tokens=tokens,
                do_sample=False, streamer=on_token, eos_token_id=None, pad_token_id=0,
            )  # fmt: skip
            return out[0, len(ids) :].tolist()
        cache = new_cache(model.config, "bf16")
        reserve(cache, len(ids) + tokens)
        prefill(model, cache, ids, 0, len(ids) - 1, logits=False)
        config = model.generation_config.__class__(max_new_tokens=tokens, do_sample=False)
        return decode(
            model, cache, ids[-1], config=config, streamer=on_token or _NoStream(),
            stop=_Never(), eos=(), device_experts=True if path == "new-device" else None,
            graphs=graphs,
        )  # fmt: skip


def count_ops(model: Any, prompt: Any, path: str, tokens: int) -> tuple[int, int, int]:
    """(ATen ops, host reads, cat calls) of one whole decode of `tokens` tokens."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    counts = [0, 0, 0]
    reads = torch.ops.aten
    host_reads = (reads.item.default, reads._local_scalar_dense.default, reads.is_nonzero.default)

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            counts[0] += 1
            if func in host_reads:
                counts[1] += 1
            elif func.overloadpacket is torch.ops.aten.cat:
                counts[2] += 1
            return func(*args, **(kwargs or {}))

    with Count():
        run_path(model, prompt, path, tokens)
    return counts[0], counts[1], counts[2]


def timed_decode(
    model: Any, prompt: Any, path: str, tokens: int, graphs: bool = True
) -> tuple[list[float], list[int]]:
    """Seconds between consecutive tokens (as a reader of the stream sees them), and the ids."""
    stamps: list[float] = []

    class Clock:
        def put(self, _value: Any) -> None:
            stamps.append(time.perf_counter())

        def end(self) -> None:
            pass

    run_path(model, prompt, path, 2, graphs=graphs)  # warm-up
    ids = run_path(model, prompt, path, tokens, Clock(), graphs=graphs)
    steps = [b - a for a, b in itertools.pairwise(stamps[1:])]  # stamps[0] is the prompt
    return steps[1:], ids


class _NoStream:
    def put(self, _value: Any) -> None:
        pass

    def end(self) -> None:
        pass


class _Never:
    def token_sampled(self, _now: float) -> bool:
        return False


# -- GPU part -----------------------------------------------------------------------------------


def gpu_part(
    device: str, layers: int, tokens: int, bandwidth: float | None, toy: bool = False
) -> None:
    """A Scout-shaped slice on the card: per-layer decode of three paths, the output head and
    sampling, 48-layer figures, CUDA graphs on fused experts, image-prompt prefill."""
    import torch

    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU (dry run)"
    peak = bandwidth or next((tbs for key, tbs in BANDWIDTH_TBS if key in name), None)
    peak_text = f"{peak:.2f} TB/s peak" if peak else "peak bandwidth unknown (--bandwidth-tbs)"
    say(f"\nGPU part: {name}, {peak_text}")
    shape = dict(
        hidden_size=5120, intermediate_size=8192, num_local_experts=16, head_dim=128,
        num_attention_heads=40, num_key_value_heads=8, num_hidden_layers=layers,
        attention_chunk_size=8192,
    )  # fmt: skip
    if toy:
        shape.update(hidden_size=256, intermediate_size=512, head_dim=64, num_attention_heads=4)
        shape.update(num_key_value_heads=2, attention_chunk_size=64)
    say("  slice: " + ", ".join(f"{k}={v}" for k, v in shape.items()) + ", per-expert NF4")
    model = random_model(device, torch.bfloat16, **shape)
    quantize_per_expert_nf4(model, device)
    layer_bytes = {
        path: decode_bytes_per_layer(model, "stock" if path == "stock" else "sparse")
        for path in ("stock", "sparse", "new")
    }
    prompt = torch.randint(1, 384, (1, 32), generator=torch.Generator().manual_seed(0))
    prompt = prompt.to(device)
    ms: dict[str, float] = {}
    ids: dict[str, list[int]] = {}
    for path in ("stock", "sparse", "new"):
        setup_path(model, path)
        seconds, ids[path] = timed_decode(
            model, prompt, path, max(8, tokens // 4) if path == "stock" else tokens
        )
        ms[path] = statistics.median(seconds) * 1e3 / layers
    n = min(len(v) for v in ids.values())
    same = all(v[:n] == ids["stock"][:n] for v in ids.values())
    say(f"  same greedy tokens: {'yes' if same else 'NO'} (first {n})")
    head = head_timings(device, shape["hidden_size"])
    for kind, (greedy_ms, sample_ms, size) in head.items():
        say(f"  output head {kind}: {size / 1e9:.2f} GB, {greedy_ms:.3f} ms greedy,"
            f" {sample_ms:.3f} ms with top-p sampling")  # fmt: skip
    say(f"  per layer and token, and at Scout's {SCOUT_LAYERS} layers with the head and top-p:")
    for path in ("stock", "sparse", "new"):
        for kind in ("bf16", "int8") if path == "new" else ("bf16",):
            _greedy_ms, sample_ms, size = head[kind]
            total_ms = ms[path] * SCOUT_LAYERS + sample_ms
            total_bytes = layer_bytes[path] * SCOUT_LAYERS + size
            share = total_bytes / (total_ms / 1e3) / (peak * 1e12) if peak else None
            share_text = f", {share:.0%} of peak" if share is not None else ""
            say(f"    {path:6s} head {kind}: {ms[path]:7.3f} ms/layer -> {1e3 / total_ms:6.1f}"
                f" tok/s; {total_bytes / 1e9:5.1f} GB a token{share_text}")  # fmt: skip
    say(f"  new vs sparse per layer: {ms['sparse'] / ms['new']:.2f}x")
    if peak:
        best = peak * 1e12 / (layer_bytes["new"] * SCOUT_LAYERS + head["int8"][2])
        say(f"  bandwidth ceiling (new, int8 head): {best:.0f} tok/s")
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    graph_part(device, shape, tokens)
    prefill_part(device, shape, toy)


def head_timings(
    device: str, hidden: int, vocab: int = 202_048
) -> dict[str, tuple[float, float, int]]:
    """Scout's output head ([vocab x hidden]) then `choose_token`, greedy and with Scout's
    sampling (temperature 0.6, top-p 0.9): (greedy ms, sampling ms, bytes), bf16 and 8-bit."""
    import torch
    from transformers import GenerationConfig

    from app.inference.llama4_decode import choose_token
    from app.inference.llama4_head import head_bytes, quantize_output_head

    holder = torch.nn.Module()
    holder.lm_head = torch.nn.Linear(hidden, vocab, bias=False, device=device, dtype=torch.bfloat16)
    x = torch.randn(1, hidden, device=device, dtype=torch.bfloat16)
    greedy = GenerationConfig(do_sample=False)
    sampling = GenerationConfig(do_sample=True, temperature=0.6, top_p=0.9, top_k=0)

    def timed(config: Any) -> float:
        seconds = []
        with torch.inference_mode():
            for _ in range(23):
                start = time.perf_counter()
                int(choose_token(holder.lm_head(x)[0], config))  # the host read ends the clock
                seconds.append(time.perf_counter() - start)
        return statistics.median(seconds[3:]) * 1e3

    out = {}
    for kind in ("bf16", "int8"):
        if kind == "int8":
            quantize_output_head(holder)
        out[kind] = (timed(greedy), timed(sampling), head_bytes(holder))
    return out


def graph_part(device: str, shape: dict[str, int], tokens: int) -> None:
    """2 layers with fused bf16 experts (chosen on the device): the step eager and as a graph."""
    import logging

    import torch

    layers = 2
    model = random_model(device, torch.bfloat16, **{**shape, "num_hidden_layers": layers})
    setup_path(model, "new")
    captured: list[str] = []

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.append(record.getMessage())

    watcher = logging.getLogger("app.inference.llama4_decode")
    handler = Seen()
    watcher.addHandler(handler)
    watcher.setLevel(logging.INFO)
    prompt = torch.randint(1, 384, (1, 32), generator=torch.Generator().manual_seed(0))
    prompt = prompt.to(device)
    timings, ids = {}, {}
    for graphs in (False, True):
        seconds, ids[graphs] = timed_decode(model, prompt, "new", tokens, graphs=graphs)
        timings[graphs] = statistics.median(seconds) * 1e3 / layers
    watcher.removeHandler(handler)
    say(f"  fused bf16 experts, {layers} layers: step eager {timings[False]:.3f} ms/layer,"
        f" CUDA graph {timings[True]:.3f} ms/layer ({timings[False] / timings[True]:.2f}x);"
        f" same tokens: {'yes' if ids[False] == ids[True] else 'NO'};"
        f" {captured[-1] if captured else 'no graph captured'}")  # fmt: skip
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def prefill_part(device: str, shape: dict[str, int], toy: bool) -> None:
    """A 2,322-token image prompt's prefill, stock vs sparse MoE, per-expert NF4."""
    import torch

    layers = shape["num_hidden_layers"]
    model = random_model(device, torch.bfloat16, **shape)
    quantize_per_expert_nf4(model, device)
    image_prompt = torch.randint(1, 384, (1, IMAGE_PROMPT_TOKENS if not toy else 64))
    for mode in ("stock", "sparse"):
        install_moe(model, mode)
        prefill_s = min(prefill_time(model, image_prompt.to(device)) for _ in range(2))
        say(
            f"  prefill {image_prompt.shape[1]:,} tokens ({mode}): {prefill_s * 1e3:.0f} ms for "
            f"{layers} layers -> {prefill_s * SCOUT_LAYERS / layers:.2f} s at 48 layers"
        )


# -- models and measurements --------------------------------------------------------------------


def random_model(device: str, dtype: Any, **text_overrides: Any) -> Any:
    """A random `Llama4ForCausalLM` with every layer MoE (top-1, shared expert)."""
    import torch
    from transformers import Llama4ForCausalLM

    config = tiny_config(**text_overrides).text_config
    torch.manual_seed(0)
    with torch.device(device):
        model = Llama4ForCausalLM._from_config(config, dtype=dtype)
    return model.eval()


def quantize_per_expert_nf4(model: Any, device: str) -> None:
    """Turn `model` into what a prepare-model NF4 folder loads as: fused experts split into
    `SequentialLlama4TextExperts` and every linear but router and head in NF4 (double quant)."""
    import torch
    from transformers.quantizers.base import SequentialLlama4TextExperts

    config = model.config
    inter = config.intermediate_size
    for layer in model.model.layers:
        moe = layer.feed_forward
        fused = moe.experts
        with torch.device("meta"):
            experts = SequentialLlama4TextExperts(config)
        for e, mlp in enumerate(experts):
            gate_up = fused.gate_up_proj[e]  # [hidden, 2*inter], used as x @ W
            mlp.gate_proj = nf4_linear(gate_up[:, :inter].T, device)
            mlp.up_proj = nf4_linear(gate_up[:, inter:].T, device)
            mlp.down_proj = nf4_linear(fused.down_proj[e].T, device)
        moe.experts = experts
        del fused
        for parent in (layer.self_attn, moe.shared_expert):
            for child, linear in list(parent.named_children()):
                if isinstance(linear, torch.nn.Linear):
                    setattr(parent, child, nf4_linear(linear.weight, device))
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def nf4_linear(weight: Any, device: str) -> Any:
    """A bitsandbytes NF4 `Linear4bit` holding `weight` ([out, in]), quantized on `device`."""
    import bitsandbytes as bnb
    import torch

    out_features, in_features = weight.shape
    linear = bnb.nn.Linear4bit(
        in_features, out_features, bias=False, compute_dtype=torch.bfloat16,
        compress_statistics=True, quant_type="nf4", quant_storage=torch.uint8, device="meta",
    )  # fmt: skip
    linear.weight = bnb.nn.Params4bit(
        weight.detach().contiguous(), requires_grad=False, quant_type="nf4",
        compress_statistics=True, quant_storage=torch.uint8,
    ).to(device)  # fmt: skip
    return linear


def decode_bytes_per_layer(model: Any, mode: str) -> int:
    """Weight bytes one decode step of one sequence reads in a layer: attention, router, shared
    expert and (stock) all experts or (sparse) one."""
    import torch

    layer = model.model.layers[0]
    experts = layer.feed_forward.experts
    count = len(experts) if isinstance(experts, torch.nn.ModuleList) else experts.num_experts
    per_expert = module_bytes(experts) / count
    rest = module_bytes(layer) - module_bytes(experts)
    return int(rest + per_expert * (count if mode == "stock" else 1))


def module_bytes(module: Any) -> int:
    """Bytes of a module's weights, NF4 quantization statistics included."""
    total = 0
    for param in module.parameters():
        total += param.numel() * param.element_size()
        state = getattr(param, "quant_state", None)
        if state is not None:
            total += state.absmax.numel() * state.absmax.element_size()
            if state.state2 is not None:
                total += state.state2.absmax.numel() * state.state2.absmax.element_size()
    return total


def decode(model: Any, prompt: Any, steps: int) -> tuple[list[float], list[int]]:
    """Greedy-decode `steps` tokens after a prefill and one warm-up step.

    Returns:
        (seconds of each timed step, every token id). Each step ends when the host has read its
        token (as streaming does), so the per-step clock is exact on a GPU too.
    """
    import torch
    from transformers import DynamicCache

    with torch.inference_mode():
        cache = DynamicCache(config=model.config)
        logits = model(input_ids=prompt, past_key_values=cache, logits_to_keep=1).logits
        token = logits[:, -1:].argmax(-1)
        ids, seconds = [int(token)], []
        for _ in range(steps + 1):
            start = time.perf_counter()
            token = model(input_ids=token, past_key_values=cache).logits[:, -1:].argmax(-1)
            ids.append(int(token))
            seconds.append(time.perf_counter() - start)
    return seconds[1:], ids  # the first step warms up kernels and the allocator


def median_rate(seconds: list[float]) -> float:
    """Tokens/s from the median step: robust to other processes stealing the CPU now and then."""
    return 1.0 / statistics.median(seconds)


def prefill_time(model: Any, prompt: Any) -> float:
    """Seconds for one prefill of `prompt` into a fresh cache."""
    import torch
    from transformers import DynamicCache

    with torch.inference_mode():
        sync(prompt.device)
        start = time.perf_counter()
        model(input_ids=prompt, past_key_values=DynamicCache(config=model.config), logits_to_keep=1)
        sync(prompt.device)
    return time.perf_counter() - start


def say(*parts: Any) -> None:
    """Print at once (the figures come minutes apart; a pipe would hold them back)."""
    print(*parts, flush=True)


def sync(device: Any) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    raise SystemExit(main())

"""Sparse Llama 4 MoE: each token runs through the one expert its router chose, plus the shared one.

How transformers 5.23 runs a Llama 4 MoE layer (`Llama4TextMoe.forward`): the router keeps each
token's top-1 logit, sets the others to -inf and takes the sigmoid, so every expert but the chosen
one gets a score of exactly 0. It then repeats the tokens once per expert, multiplies each copy by
its score (the score scales the expert's *input*, not its output) and runs *all* experts on all
copies: fused bf16 experts as one `bmm` over [experts, tokens, hidden]; per-expert quantized experts
(`SequentialLlama4TextExperts`, a list of `Llama4TextMLP`s of bitsandbytes linears) as a Python loop
over all 16. Fifteen of the sixteen results are zeros times weights. For Scout at NF4 that reads
~61.5 GB of weights per decoded token where ~10.6 GB would do.

The sparse forward below computes the same sum without the zeros:

1. route: `logits = router(x)`; keep the top-k (Scout: 1) logit per token; `gate = sigmoid(logit)`,
   rounded to the model's dtype exactly where transformers rounds it;
2. shared expert on every token;
3. each routed expert on only its tokens, scaled by `gate` on the way in. Prefill sorts the
   (token, expert) pairs by expert and makes one call per expert that got tokens; a decode step of
   one token calls one expert with no sorting at all;
4. sum each token's routed results in float32, round once, add to the shared one, as stock does.

Every step rounds exactly where stock rounds, so the answers agree bit for bit (tests compare
logits and greedy tokens on the tiny model in bf16, NF4 and per-expert NF4, top-1 and top-2).

Overhead and compilation (what we found in transformers 5.23, see `generation/utils.py`,
`GenerationMixin._valid_auto_compile_criteria`): `generate` compiles the forward (and so captures
CUDA graphs) only on a GPU, with a static-shaped cache (not `DynamicCache`) and a quantizer whose
`is_compileable` is true. bitsandbytes' quantizers inherit `HfQuantizer.is_compileable = False`, so
an NF4 / int8 Llama 4 never compiles there; separately, Scout's `generation_config.json` asks for
`cache_implementation="hybrid"`, which `generate` resets to a `DynamicCache` (PR #40039), and the
engine hands `generate` its own `DynamicCache` (the multi-turn prefix cache). Reading which expert
won on the host, to pick its weights, is a host synchronisation per MoE layer that a CUDA graph
cannot hold. A decode step keeps the choice on the device instead: for fused experts (bf16,
float32) `torch._grouped_mm` reads the expert from device memory; for per-expert NF4 experts (what
`prepare-model` writes for Scout) a Triton GEMV does (`nf4_experts`, on CUDA, checked against
bitsandbytes at load; per-expert int8 keeps the host read). Either way the decode step is the few
kernels listed above (no repeat over experts, no zero buffers, no sort for a single token).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

MOE_MODES = ("sparse", "stock")

#: Runs expert `e` on the rows routed to it: (e, rows [n, hidden]) -> [n, hidden].
ExpertFn = Callable[[int, Any], Any]
#: Runs the expert named by a device tensor on one row, without reading it on the host:
#: (expert [1] on the device, row [1, hidden]) -> [1, hidden].
DeviceExpertFn = Callable[[Any, Any], Any]


def install_moe(model: Any, mode: str, *, device_experts: bool = True) -> int:
    """Switch every Llama 4 MoE layer of `model` to the sparse dispatch, or back to stock.

    The sparse forward is set on each `Llama4TextMoe` instance (the class, and so any other model
    in the process, is untouched); "stock" removes it again. Hooks on the module keep working.

    Args:
        model: a loaded `Llama4ForConditionalGeneration` / `Llama4ForCausalLM` (any nn.Module).
        mode: "sparse" or "stock".
        device_experts: let a decode step choose fused experts on the device
            (`device_expert_runner`); False reads the expert on the host (for comparison).

    Returns:
        How many MoE layers now run `mode` (layers with an expert layout we do not know stay
        stock and are logged).

    Raises:
        ValueError: `mode` is neither "sparse" nor "stock".
    """
    if mode not in MOE_MODES:
        raise ValueError(f"Unknown MoE mode {mode!r}: use sparse or stock.")
    count = 0
    for name, module in model.named_modules():
        if type(module).__name__ != "Llama4TextMoe":
            continue
        module.__dict__.pop("forward", None)  # back to the class's (stock) forward
        if mode == "stock":
            count += 1
            continue
        run_expert = expert_runner(module.experts)
        if run_expert is None:
            log.warning("%s: unknown expert layout %s, left stock", name, type(module.experts))
            continue
        on_device = device_expert_runner(module.experts) if device_experts else None
        module.forward = functools.partial(sparse_moe_forward, module, run_expert, on_device)
        count += 1
    return count


def moe_mode(module: Any) -> str:
    """Return "sparse" when `module` (a `Llama4TextMoe`) runs the sparse forward, else "stock"."""
    forward = module.__dict__.get("forward")
    return "sparse" if getattr(forward, "func", None) is sparse_moe_forward else "stock"


def expert_runner(experts: Any) -> ExpertFn | None:
    """Return a function running one expert of `experts` on its rows, or None for a layout we
    do not know.

    Args:
        experts: `Llama4TextExperts` (fused 3-D bf16 `gate_up_proj` [E, hidden, 2*inter] and
            `down_proj` [E, inter, hidden], computed as `x @ W`) or `SequentialLlama4TextExperts`
            (a ModuleList of `Llama4TextMLP`, whatever linears bitsandbytes put inside).

    Returns:
        `run(e, rows) -> rows'`.
    """
    import torch

    if isinstance(experts, torch.nn.ModuleList):
        # Call the very module stock calls, so quantized kernels (and their rounding) are shared.
        return lambda e, rows: experts[e](rows)
    gate_up, down = getattr(experts, "gate_up_proj", None), getattr(experts, "down_proj", None)
    if not isinstance(gate_up, torch.Tensor) or gate_up.dim() != 3:
        return None
    if not isinstance(down, torch.Tensor):
        return None
    act = experts.act_fn

    # The weights are looked up at each call, not kept: `llama4_step.fuse_projections` lays
    # them out again after loading, and a kept tensor would hold the old layout's memory.
    def run_fused(e: int, rows: Any) -> Any:
        gate, up = (rows @ experts.gate_up_proj[e]).chunk(2, dim=-1)  # gate columns first
        return (up * act(gate)) @ experts.down_proj[e]

    return run_fused


def device_expert_runner(experts: Any) -> DeviceExpertFn | None:
    """A runner that picks the expert on the device (no host sync), or None.

    Per-expert NF4 experts (a ModuleList of bitsandbytes `Linear4bit`s) go to
    `nf4_experts.expert_runner` (CUDA and Triton). For fused experts:

    `torch._grouped_mm` multiplies row groups by their own expert's matrix, the groups given by
    end offsets in device memory: one row routed to expert e is the offsets [0]*e + [1]*(E-e)
    (every other group empty), so the expert's weights are read in place, never copied, and the
    host never learns which expert it was. That is what lets a decode step be captured as a CUDA
    graph (sm90 runs it as a grouped GEMM in bf16). The result equals `run_fused` bit for bit
    on the CPU in float32 and bf16 (`tests/inference/test_moe_dispatch.py`).

    Returns:
        `run(expert, row)`, or None when the experts are not fused or this torch build cannot
        run `_grouped_mm` for their dtype and device (tried once, on a row of zeros).
    """
    import torch

    if isinstance(experts, torch.nn.ModuleList):
        from app.inference.nf4_experts import expert_runner as nf4_expert_runner

        return nf4_expert_runner(experts)
    if not hasattr(torch, "_grouped_mm"):
        return None
    gate_up, down = getattr(experts, "gate_up_proj", None), getattr(experts, "down_proj", None)
    if not isinstance(gate_up, torch.Tensor) or not isinstance(down, torch.Tensor):
        return None
    order = torch.arange(gate_up.shape[0], device=gate_up.device)
    act = experts.act_fn

    def run(expert: Any, row: Any) -> Any:  # the weights looked up at each call, as above
        ends = (order >= expert).to(torch.int32)
        gate, up = torch._grouped_mm(row, experts.gate_up_proj, offs=ends).chunk(2, dim=-1)
        return torch._grouped_mm(up * act(gate), experts.down_proj, offs=ends)

    try:
        with torch.inference_mode():
            probe = torch.zeros(1, gate_up.shape[1], dtype=gate_up.dtype, device=gate_up.device)
            run(torch.zeros(1, dtype=torch.long, device=gate_up.device), probe)
    except (RuntimeError, NotImplementedError) as exc:
        log.info("grouped expert GEMM unavailable (%s): the expert is read on the host", exc)
        return None
    return run


def sparse_moe_forward(
    moe: Any, run_expert: ExpertFn, on_device: DeviceExpertFn | None, hidden_states: Any
) -> tuple[Any, Any]:
    """`Llama4TextMoe.forward`, computing only the experts each token was routed to.

    Args:
        moe: the `Llama4TextMoe` (its router, shared expert, `top_k`, `hidden_dim`).
        run_expert: from `expert_runner(moe.experts)`.
        on_device: from `device_expert_runner(moe.experts)` (None: read the expert on the host).
        hidden_states: [batch, seq, hidden] or [tokens, hidden].

    Returns:
        (output [tokens, hidden], router logits [tokens, experts]) like the stock forward.
    """
    import torch

    x = hidden_states.reshape(-1, moe.hidden_dim)  # [T, H]

    # 1. Route. Llama4Router is an nn.Linear; sigmoid in float32, then back to the model's dtype.
    logits = torch.nn.functional.linear(x, moe.router.weight, moe.router.bias)  # [T, E]
    top_logit, expert = torch.topk(logits, moe.top_k, dim=1)  # [T, k]
    gate = torch.sigmoid(top_logit.float()).to(logits.dtype)

    # 2. The shared expert sees every token.
    out = moe.shared_expert(x)

    # 3. The score scales the expert's input. Each (token, expert) pair becomes one row: row r
    # belongs to token r // k (top-1: row r is token r).
    routed_in = (x.unsqueeze(1) * gate.unsqueeze(-1)).reshape(-1, moe.hidden_dim)  # [T*k, H]
    expert = expert.reshape(-1)  # [T*k]
    if routed_in.shape[0] == 1:
        # A decode step of one sequence: one expert, no sorting; chosen on the device where the
        # experts allow it, else `.item()` is the one host sync.
        if on_device is not None:
            out.add_(on_device(expert, routed_in))
        else:
            out.add_(run_expert(int(expert.item()), routed_in))
        return out, logits

    # 4. Prefill (or batched decode): group rows by expert, one call per expert that got rows.
    order = torch.argsort(expert, stable=True)
    counts = torch.bincount(expert, minlength=moe.num_experts).tolist()  # the one host sync
    chunks = routed_in[order].split(counts)
    routed_out = torch.cat([run_expert(e, rows) for e, rows in enumerate(chunks) if counts[e]])
    # 5. Back to token order. Stock sums a token's experts in float32 and rounds once (`sum` over
    # the expert axis), then adds that to the shared output in the model's dtype: so do we.
    routed = torch.zeros_like(out, dtype=torch.float32)
    routed.index_add_(0, order // moe.top_k, routed_out.float())
    out.add_(routed.to(out.dtype))
    return out, logits


__all__ = [
    "MOE_MODES",
    "device_expert_runner",
    "expert_runner",
    "install_moe",
    "moe_mode",
    "sparse_moe_forward",
]

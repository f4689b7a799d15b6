"""Per-expert NF4 experts chosen on the device: one Triton GEMV that reads the expert's index.

`prepare-model` writes Scout's experts as one bitsandbytes NF4 `Linear4bit` per expert and
projection (`SequentialLlama4TextExperts`). bitsandbytes' kernels take the weight's address from
the host, so running the routed expert means reading its index on the host: a synchronisation
per MoE layer, which also keeps a decode step out of a CUDA graph. Here each projection's sixteen
packed weights (and their quantization statistics) are laid out as one stacked tensor, the
`Linear4bit`s keeping views of it (no memory is added), and `nf4_gemv` runs one token through the
expert whose index it loads from device memory: gate and up in one launch, then down. It reads
each packed byte once and each block's scale once.

The layout is bitsandbytes' (`functional.quantize_4bit`, checked against its `dequantize_4bit` in
the tests): the weight [out, in] flattened row-major, two codes a byte (the even element in the
high nibble), one absmax per 64 elements, which double quantization stores as a uint8 code into a
256-entry table times a float32 scale per 256 absmaxes, plus an offset. A weight is
`nf4_code[nibble] × absmax`, rounded to the activations' dtype (as bitsandbytes dequantizes),
multiplied by the input and summed in float32.

Tested on the CPU through Triton's interpreter (`TRITON_INTERPRET=1`) against the `Linear4bit`
modules; not yet run on a GPU. `expert_runner` checks itself against the modules once on the
device and returns None (the host-read path) if they disagree or Triton cannot run.

torch and triton are imported inside the functions only.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: Weight rows one program computes, and input columns it reads at a time (a multiple of the
#: 64-element quantization block).
BLOCK_N = 32
BLOCK_K = 256
#: How far (relative to the largest output) the kernel may be from bitsandbytes on a check row:
#: bf16 results of sums in another order differ by a few units in the last place; a wrong layout
#: is off by the whole output.
CHECK_TOLERANCE = 5e-2

#: The projections stacked together: gate and up (one launch: they read the same input), down.
_GROUPS = (("gate_proj", "up_proj"), ("down_proj",))


def expert_runner(experts: Any) -> Callable[[Any, Any], Any] | None:
    """A runner `run(expert [1] long on the device, row [1, hidden]) -> [1, hidden]` for
    per-expert NF4 experts, or None where it cannot be used.

    Stacks the projections' weights (see the module) the first time; None for experts that are
    not all NF4 `Linear4bit`s of one shape and format (whole quantization blocks a row), on a
    device other than CUDA (unless Triton's interpreter is on, as in the tests), without Triton,
    or when a check row through the kernel disagrees with the modules.
    """
    import torch

    if not _usable(experts):
        return None
    gate_up, down = (_stack(experts, names) for names in _GROUPS)
    act = experts[0].activation_fn

    def run(expert: Any, row: Any) -> Any:
        gate, up = nf4_gemv(row.reshape(-1), gate_up, expert)  # one launch for both
        return nf4_gemv(act(gate) * up, down, expert).view(1, -1)

    try:
        with torch.inference_mode():
            probe = torch.randn(1, gate_up.columns, generator=torch.Generator().manual_seed(0)).to(
                device=gate_up.packed.device, dtype=gate_up.dtype
            )
            last = len(experts) - 1
            ours = run(torch.tensor([last], device=probe.device), probe)
            theirs = experts[last](probe)
    except Exception as exc:  # any failure (no compiler, no kernel) means: the host-read path
        log.info("NF4 expert kernel unavailable (%s): the expert is read on the host", exc)
        return None
    scale = float(theirs.abs().max()) or 1.0
    if float((ours - theirs).abs().max()) > CHECK_TOLERANCE * scale:
        log.warning("NF4 expert kernel disagrees with bitsandbytes: the expert is read on the host")
        return None
    return run


@dataclass(frozen=True)
class Nf4Stack:
    """Projections of one shape (gate and up, or down alone), every expert's NF4 weights stacked
    (views of it stay in the modules).

    Attributes:
        packed: uint8 [projections, experts, rows × columns / 2].
        absmax: [projections, experts, blocks]: uint8 codes (double quantization) or float32.
        absmax2: float32 [projections, experts, blocks / 256] (double quantization; else a
            dummy).
        offset: float32 [projections, experts] (double quantization; else zeros).
        code: float32 [16], the NF4 values.
        code2: float32 [256], the absmax codes' values (double quantization; else a dummy).
        rows: each weight's output size.
        columns: each weight's input size.
        blocksize: elements an absmax covers (64).
        blocksize2: absmaxes a second-level scale covers (256).
        nested: whether absmax is double-quantized.
        dtype: the activations' dtype (what a weight is rounded to).
    """

    packed: Any
    absmax: Any
    absmax2: Any
    offset: Any
    code: Any
    code2: Any
    rows: int
    columns: int
    blocksize: int
    blocksize2: int
    nested: bool
    dtype: Any

    @property
    def projections(self) -> int:
        return int(self.packed.shape[0])


def nf4_gemv(x: Any, stack: Nf4Stack, expert: Any) -> Any:
    """`W[p, expert] @ x` of each projection p for one input vector, the expert read from
    device memory: one launch.

    Args:
        x: [columns] in the activations' dtype.
        stack: the projections' weights.
        expert: a [1] integer tensor on the device.

    Returns:
        [projections, rows] in the activations' dtype ([rows] for a single projection).
    """
    import torch
    import triton

    out = torch.empty(stack.projections, stack.rows, dtype=stack.dtype, device=x.device)
    grid = (triton.cdiv(stack.rows, BLOCK_N), stack.projections)
    _kernel()[grid](
        x, stack.packed, stack.absmax, stack.absmax2, stack.offset, stack.code, stack.code2,
        expert, out, stack.rows, stack.columns, stack.packed.shape[1],
        stack.packed.stride(1), stack.absmax.stride(1), stack.absmax2.stride(1),
        nested=stack.nested, blocksize=stack.blocksize, blocksize2=stack.blocksize2,
        block_n=BLOCK_N, block_k=BLOCK_K,
    )  # fmt: skip
    return out if stack.projections > 1 else out[0]


def _usable(experts: Any) -> bool:
    import torch

    if not isinstance(experts, torch.nn.ModuleList) or len(experts) == 0:
        return False
    try:
        linears = [getattr(mlp, name) for mlp in experts for names in _GROUPS for name in names]
    except AttributeError:
        return False
    if not all(type(linear).__name__ == "Linear4bit" for linear in linears):
        return False
    states = [linear.weight.quant_state for linear in linears]
    if any(state is None or state.quant_type != "nf4" for state in states):
        return False
    device = linears[0].weight.device
    if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    for names in _GROUPS:
        first = getattr(experts[0], names[0]).weight.quant_state
        if first.shape[1] % first.blocksize or BLOCK_K % first.blocksize:
            return False  # the kernel reads whole quantization blocks of one row
        for mlp in experts:
            for name in names:
                state = getattr(mlp, name).weight.quant_state
                same = state.shape == first.shape and state.blocksize == first.blocksize
                if not same or state.nested != first.nested:
                    return False
    return True


def _stack(experts: Any, names: tuple[str, ...]) -> Nf4Stack:
    """Stack projections `names` of every expert, re-pointing each module at its slice."""
    weights = [[getattr(mlp, name).weight for mlp in experts] for name in names]
    stack = stack_nf4(
        [[weight.data for weight in row] for row in weights],
        [[weight.quant_state for weight in row] for row in weights],
    )
    for p, row in enumerate(weights):
        for e, weight in enumerate(row):
            weight.data = stack.packed[p, e].view(weight.data.shape)
    return stack


def stack_nf4(packed_weights: list[list[Any]], states: list[list[Any]]) -> Nf4Stack:
    """One `Nf4Stack` of NF4 weights of one shape and format, given per projection and expert
    as bitsandbytes' packed bytes and `QuantState`s; each state's absmax becomes a view of the
    stack (the packed bytes are the caller's to re-point)."""
    import torch

    first = states[0][0]
    device = first.absmax.device
    nested = bool(first.nested)

    def stacked(tensors: list[list[Any]]) -> Any:
        return torch.stack([torch.stack([t.reshape(-1) for t in row]) for row in tensors])

    packed = stacked(packed_weights)
    absmax = stacked([[s.absmax for s in row] for row in states])
    for p, state_row in enumerate(states):
        for e, state in enumerate(state_row):
            state.absmax = absmax[p, e]
    if nested:
        absmax2 = stacked([[s.state2.absmax for s in row] for row in states])
        for p, state_row in enumerate(states):
            for e, state in enumerate(state_row):
                state.state2.absmax = absmax2[p, e]
        offset = torch.tensor(
            [[float(s.offset) for s in row] for row in states], device=device
        )  # read once, at load
        code2 = first.state2.code.to(device=device, dtype=torch.float32)
        blocksize2 = int(first.state2.blocksize)
    else:
        absmax2 = torch.zeros((*packed.shape[:2], 1), dtype=torch.float32, device=device)
        offset = torch.zeros(packed.shape[:2], dtype=torch.float32, device=device)
        code2 = torch.zeros(256, dtype=torch.float32, device=device)
        blocksize2 = 256
    rows, columns = first.shape
    return Nf4Stack(
        packed=packed, absmax=absmax, absmax2=absmax2, offset=offset,
        code=first.code.to(device=device, dtype=torch.float32), code2=code2,
        rows=int(rows), columns=int(columns), blocksize=int(first.blocksize),
        blocksize2=blocksize2, nested=nested, dtype=first.dtype,
    )  # fmt: skip


@functools.cache
def _kernel() -> Any:
    """The Triton kernel, defined on first use (importing triton; the interpreter is chosen by
    `TRITON_INTERPRET` when it is defined)."""
    import triton
    import triton.language as tl

    @triton.jit
    def nf4_expert_gemv(  # type: ignore[no-untyped-def]  # Triton reads no annotations
        x_ptr, packed_ptr, absmax_ptr, absmax2_ptr, offset_ptr, code_ptr, code2_ptr, expert_ptr,
        out_ptr, rows, columns, experts, packed_stride, absmax_stride, absmax2_stride,
        nested: tl.constexpr, blocksize: tl.constexpr, blocksize2: tl.constexpr,
        block_n: tl.constexpr, block_k: tl.constexpr,
    ):  # fmt: skip
        # Program (i, p): rows i*block_n.. of projection p of the expert read here. Each step
        # of the loop reads whole quantization blocks: [block_n rows, block_k / blocksize
        # blocks, blocksize / 2 bytes], each byte once (its two codes), each absmax once.
        half: tl.constexpr = blocksize // 2
        blocks: tl.constexpr = block_k // blocksize
        slot = tl.program_id(1) * experts + tl.load(expert_ptr).to(tl.int64)
        row = tl.program_id(0) * block_n + tl.arange(0, block_n)
        row_blocks = columns // blocksize
        within = tl.arange(0, blocks)
        byte_in_block = tl.arange(0, half)
        packed = packed_ptr + slot * packed_stride
        absmax_base = absmax_ptr + slot * absmax_stride
        if nested:
            absmax2_base = absmax2_ptr + slot * absmax2_stride
            offset = tl.load(offset_ptr + slot)
        acc = tl.zeros([block_n], dtype=tl.float32)
        for start in range(0, columns, block_k):
            block_in_row = start // blocksize + within  # [blocks]
            there = block_in_row < row_blocks
            inside = (row[:, None] < rows) & there[None, :]  # [block_n, blocks]
            block = row[:, None].to(tl.int64) * row_blocks + block_in_row[None, :]
            if nested:
                code = tl.load(absmax_base + block, mask=inside, other=0).to(tl.int32)
                scale = tl.load(absmax2_base + block // blocksize2, mask=inside, other=0.0)
                absmax = tl.load(code2_ptr + code) * scale + offset
            else:
                absmax = tl.load(absmax_base + block, mask=inside, other=0.0)
            byte = tl.load(
                packed + block[:, :, None] * half + byte_in_block[None, None, :],
                mask=inside[:, :, None],
                other=0,
            ).to(tl.int32)  # [block_n, blocks, half]
            # The even element is the high nibble. A weight is rounded to the activations'
            # dtype first, as bitsandbytes' dequantized weight is.
            even = (tl.load(code_ptr + (byte >> 4)) * absmax[:, :, None]).to(
                out_ptr.dtype.element_ty
            )
            odd = (tl.load(code_ptr + (byte & 15)) * absmax[:, :, None]).to(
                out_ptr.dtype.element_ty
            )
            column = block_in_row[:, None] * blocksize + 2 * byte_in_block[None, :]
            x_even = tl.load(x_ptr + column, mask=there[:, None], other=0.0).to(tl.float32)
            x_odd = tl.load(x_ptr + column + 1, mask=there[:, None], other=0.0).to(tl.float32)
            products = even.to(tl.float32) * x_even[None] + odd.to(tl.float32) * x_odd[None]
            acc += tl.sum(tl.sum(products, axis=2), axis=1)
        out = out_ptr + tl.program_id(1) * rows + row
        tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=row < rows)

    return nf4_expert_gemv

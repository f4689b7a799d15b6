"""Run under `TRITON_INTERPRET=1` by `tests/inference/test_nf4_experts.py` (Triton reads it when
the kernel is defined, so it cannot be switched on inside the test process): loads a
`prepare-model` NF4 folder on the CPU and prints, as one JSON object, what the test checks.

    TRITON_INTERPRET=1 python -m tests.helpers.nf4_interpreted SOURCE_FOLDER WORK_FOLDER
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any


def main(source: Path, work: Path) -> dict[str, Any]:
    import bitsandbytes.functional as bnbf
    import torch

    from app.inference.engine import CancelToken
    from app.inference.llama4_loading import load_llama4
    from app.inference.nf4_experts import nf4_gemv

    folder = work / "nf4"
    from app.inference.prepare import prepare_model

    prepare_model(source, folder, "nf4", device="cpu")
    model = load_llama4(folder, "nf4", "cpu", lambda _p: None, CancelToken()).model
    layers = model.language_model.model.layers
    report: dict[str, Any] = {"runners": [], "layout_ulps": 0.0, "module_error": 0.0}
    generator = torch.Generator().manual_seed(0)
    for layer in layers:
        moe = layer.feed_forward
        run = moe.__dict__["forward"].args[2]
        report["runners"].append(run is not None)
        if run is None:
            continue
        row = torch.randn(1, moe.hidden_dim, generator=generator).to(torch.bfloat16)
        with torch.inference_mode():
            for expert in range(len(moe.experts)):
                mlp = moe.experts[expert]
                # The layout: one projection through the kernel against bitsandbytes' own
                # dequantization of the stacked bytes, multiplied in float32. (The modules'
                # weights cannot serve: on a CPU with AVX512-BF16 bitsandbytes repacks a
                # Linear4bit for its CPU kernel at its first forward.)
                for name, projection in (("gate_up", 0), ("gate_up", 1), ("down", 0)):
                    stack = _stack_of(run, name)
                    dense = bnbf.dequantize_4bit(
                        stack.packed[projection, expert].view(-1, 1),
                        _quant_state(stack, projection, expert),
                    ).float()
                    vector = torch.randn(stack.columns, generator=generator).to(torch.bfloat16)
                    ours = nf4_gemv(vector, stack, torch.tensor([expert])).view(-1, stack.rows)
                    exact = dense @ vector.float()
                    ulp = exact.abs().max() * 2.0**-7  # one bf16 step at the largest output
                    error = (ours[projection].float() - exact).abs().max() / ulp
                    report["layout_ulps"] = max(report["layout_ulps"], float(error))
                # The whole expert against the Linear4bit modules (the engine's host path).
                kernel = run(torch.tensor([expert]), row).float()
                modules = mlp(row).float()
                report["module_error"] = max(
                    report["module_error"],
                    float((kernel - modules).abs().max() / modules.abs().max()),
                )
    report.update(_decode(model))
    report["shapes_ulps"] = _shapes()
    return report


#: (projections, experts, rows, columns, double quantization): several passes over the columns
#: and a partial last one, rows that do not fill a program, more than 256 blocks (the second-level
#: scale index above 0, per projection), and plain float32 absmax.
SHAPES = ((2, 3, 100, 640, True), (1, 3, 70, 320, True), (2, 2, 48, 192, False),
          (2, 2, 300, 1088, True))  # fmt: skip


def _shapes() -> float:
    """The kernel on weights quantized by bitsandbytes at `SHAPES`, against its own
    dequantization multiplied in float32: the largest difference in bf16 steps of the largest
    output."""
    import bitsandbytes.functional as bnbf
    import torch

    from app.inference.nf4_experts import nf4_gemv, stack_nf4

    generator = torch.Generator().manual_seed(1)
    worst = 0.0
    for projections, experts, rows, columns, nested in SHAPES:
        weights = [[
            bnbf.quantize_4bit(
                (torch.randn(rows, columns, generator=generator) * (1 + p + e)).to(torch.bfloat16),
                blocksize=64, compress_statistics=nested, quant_type="nf4",
            )
            for e in range(experts)
        ] for p in range(projections)]  # fmt: skip
        stack = stack_nf4(
            [[packed for packed, _state in row] for row in weights],
            [[state for _packed, state in row] for row in weights],
        )
        for e in range(experts):
            vector = torch.randn(columns, generator=generator).to(torch.bfloat16)
            out = nf4_gemv(vector, stack, torch.tensor([e])).view(projections, rows).float()
            for p, (packed, state) in enumerate(row[e] for row in weights):
                exact = bnbf.dequantize_4bit(packed, state).float() @ vector.float()
                ulp = exact.abs().max() * 2.0**-7
                worst = max(worst, float((out[p] - exact).abs().max() / ulp))
    return worst


def _quant_state(stack: Any, projection: int, expert: int) -> Any:
    """bitsandbytes' description of one weight in `stack` (double quantized)."""
    import torch
    from bitsandbytes.functional import QuantState

    nested = QuantState(
        absmax=stack.absmax2[projection, expert], code=stack.code2, blocksize=stack.blocksize2,
        dtype=torch.float32,
    )  # fmt: skip
    return QuantState(
        absmax=stack.absmax[projection, expert], shape=torch.Size((stack.rows, stack.columns)),
        code=stack.code, blocksize=stack.blocksize, quant_type="nf4", dtype=stack.dtype,
        offset=stack.offset[projection, expert], state2=nested,
    )  # fmt: skip


def _stack_of(run: Any, name: str) -> Any:
    """The runner's stack `name` ("gate_up" or "down"), from its closure."""
    cells = {name: cell.cell_contents for name, cell in zip(
        run.__code__.co_freevars, run.__closure__ or (), strict=True
    )}  # fmt: skip
    return cells[name]


def _decode(model: Any) -> dict[str, Any]:
    """The engine's step with the expert chosen on the device, against the host-read step."""
    import torch

    from app.inference.llama4_kv import new_cache, reserve
    from app.inference.llama4_prefill import prefill
    from app.inference.llama4_step import DecodeStep
    from tests.helpers.host_reads import HostReads

    ids = [5 + (7 * i) % 300 for i in range(20)]
    steps = 12
    with torch.inference_mode():
        cache = new_cache(model.config.get_text_config(), "bf16")
        reserve(cache, len(ids) + steps)
        prefill(model, cache, ids, 0, len(ids) - 1, logits=False)
        twin = copy.deepcopy(cache)
        device = DecodeStep(model, cache, len(ids) - 1, steps, device_experts=True)
        host = DecodeStep(model, twin, len(ids) - 1, steps, device_experts=False)
        token = torch.tensor([ids[-1]])
        reads, worst, same = [], 0.0, 0
        for index in range(steps):
            with HostReads() as counted:
                ours = device.forward(token, torch.tensor([index]))
            reads.append(counted.count)
            theirs = host(token, index)
            worst = max(worst, float((ours.float() - theirs.float()).abs().max()))
            same += int(ours.argmax()) == int(theirs.argmax())
            token = theirs.argmax(-1).view(1)
        capturable = device.capturable
        device.finish()
        host.finish()
    return {"capturable": capturable, "host_reads": reads, "logit_error": worst, "same": same,
            "steps": steps}  # fmt: skip


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]))))

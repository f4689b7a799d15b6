"""Turn official Llama 4 tensors into the per-expert bitsandbytes tensors transformers loads.

The official checkpoint fuses each layer's experts into two 3-D tensors, `experts.gate_up_proj`
[E, hidden, 2*inter] (gate columns first, then up — `Llama4TextExperts.forward` chunks them in that
order) and `experts.down_proj` [E, inter, hidden], computed as `x @ W`. A pre-quantized load swaps
in `SequentialLlama4TextExperts`, a list of `Llama4TextMLP`s whose nn.Linear weights are
[out, in], so expert e's `gate_proj.weight` is `gate_up_proj[e][:, :inter].T` and its
`down_proj.weight` is `down_proj[e].T`. Each quantized weight is stored the way bitsandbytes
serialises its modules: NF4 as packed bytes + `weight.absmax`, `weight.quant_map`,
(`weight.nested_absmax`, `weight.nested_quant_map`,) `weight.quant_state.bitsandbytes__nf4`;
int8 as `weight` + `SCB` + `weight_format`.

torch, bitsandbytes and transformers are imported inside the functions; only prepare-model uses
them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from app.inference.estimate import KEEP_BF16_MODULES

_FUSED = re.compile(r"^(?P<base>.*\.feed_forward\.experts)\.(?P<kind>gate_up_proj|down_proj)$")


@dataclass(frozen=True)
class QuantPlan:
    """What the loader will build for a pre-quantized folder.

    Attributes:
        quantization: "nf4" or "int8".
        quantized: module names bitsandbytes replaces (their `.weight` must be stored quantized).
        parameters: every parameter name the loader's model has (what the folder must provide).
        config: the `quantization_config` dict to write into config.json.
        device: where to quantize ("cuda" is ~100x faster than bitsandbytes' CPU backend).
    """

    quantization: str
    quantized: frozenset[str]
    parameters: frozenset[str]
    config: dict[str, Any]
    device: str = "cpu"


def bnb_config(quantization: str, double_quant: bool = True) -> Any:
    """The `BitsAndBytesConfig` prepare-model writes (and the engine may reuse on the fly).

    Args:
        quantization: "nf4" or "int8".
        double_quant: quantize the NF4 block scales too (~0.37 bits a weight less).

    Returns:
        A `transformers.BitsAndBytesConfig` that keeps `KEEP_BF16_MODULES` in bf16.
    """
    import torch
    from transformers import BitsAndBytesConfig

    if quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=list(KEEP_BF16_MODULES))
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=double_quant,
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_quant_storage=torch.uint8,
        llm_int8_skip_modules=list(KEEP_BF16_MODULES),
    )


def loader_plan(
    config_dict: dict[str, Any], quantization: str, double_quant: bool, device: str = "cpu"
) -> QuantPlan:
    """Ask transformers itself which modules a pre-quantized load will quantize.

    Builds the model skeleton on the meta device (no memory) and applies the same bitsandbytes
    preprocessing `from_pretrained` does, so the converted folder matches the loader exactly.

    Args:
        config_dict: the source config.json.
        quantization: "nf4" or "int8".
        double_quant: NF4 double quantization.
        device: where `convert_tensor` will quantize.

    Returns:
        The plan.
    """
    import torch
    from transformers import Llama4Config, Llama4ForConditionalGeneration
    from transformers.quantizers import AutoHfQuantizer

    bnb = bnb_config(quantization, double_quant)
    fields = {k: v for k, v in config_dict.items() if k != "quantization_config"}
    config = Llama4Config.from_dict(fields)
    with torch.device("meta"):
        model = Llama4ForConditionalGeneration(config)
    quantizer = AutoHfQuantizer.from_config(bnb, pre_quantized=True)
    quantizer.preprocess_model(model, device_map={"": "cpu"})
    import bitsandbytes

    kinds = (bitsandbytes.nn.Linear4bit, bitsandbytes.nn.Linear8bitLt)
    quantized = frozenset(n for n, m in model.named_modules() if isinstance(m, kinds))
    parameters = frozenset(n for n, _ in model.named_parameters())
    return QuantPlan(quantization, quantized, parameters, bnb.to_dict(), device)


def convert_tensor(name: str, tensor: Any, plan: QuantPlan) -> Iterator[tuple[str, Any]]:
    """Yield the output tensors for one source tensor.

    Args:
        name: the source tensor's name.
        tensor: the source tensor (bf16).
        plan: the loader's plan.

    Yields:
        (name, tensor) pairs, contiguous and ready for safetensors.
    """
    fused = _FUSED.match(name)
    if fused:
        base, kind = fused["base"], fused["kind"]
        inter = tensor.shape[-1] // 2
        for e in range(tensor.shape[0]):
            if kind == "gate_up_proj":
                pieces = {"gate_proj": tensor[e][:, :inter], "up_proj": tensor[e][:, inter:]}
            else:
                pieces = {"down_proj": tensor[e]}
            for proj, weight in pieces.items():
                yield from _maybe_quantize(f"{base}.{e}.{proj}", weight.t(), plan)
        return
    module, _, leaf = name.rpartition(".")
    if leaf == "weight" and module in plan.quantized:
        yield from _maybe_quantize(module, tensor, plan)
    else:
        yield name, tensor.contiguous()


def _maybe_quantize(module: str, weight: Any, plan: QuantPlan) -> Iterator[tuple[str, Any]]:
    if module not in plan.quantized:
        yield f"{module}.weight", weight.contiguous()
        return
    weight = weight.to(plan.device).contiguous()
    if plan.quantization == "int8":
        pieces = quantize_int8(module, weight)
    else:
        pieces = quantize_nf4(module, weight, bool(plan.config.get("bnb_4bit_use_double_quant")))
    for name, tensor in pieces:
        yield name, tensor.cpu()


def quantize_nf4(module: str, weight: Any, double_quant: bool) -> Iterator[tuple[str, Any]]:
    """Quantize a [out, in] weight to NF4 and yield bitsandbytes' serialised tensors."""
    import bitsandbytes.functional as bnbf
    import torch

    packed, state = bnbf.quantize_4bit(
        weight,
        blocksize=64,
        compress_statistics=double_quant,
        quant_type="nf4",
        quant_storage=torch.uint8,
    )
    yield f"{module}.weight", packed
    for key, value in state.as_dict(packed=True).items():
        yield f"{module}.weight.{key}", value.contiguous()


def quantize_int8(module: str, weight: Any) -> Iterator[tuple[str, Any]]:
    """Quantize a [out, in] weight to LLM.int8 row-wise and yield its serialised tensors."""
    import bitsandbytes.functional as bnbf
    import torch

    codes, scales, _ = bnbf.int8_vectorwise_quant(weight.to(torch.float16))
    yield f"{module}.weight", codes.contiguous()
    yield f"{module}.SCB", scales.contiguous()
    # bitsandbytes writes the (row-major) layout tag too; the loader accepts 0 = "row".
    yield f"{module}.weight_format", torch.tensor(0, dtype=torch.uint8)

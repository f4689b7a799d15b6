"""The output head in 8 bits: half the bytes every decoded token reads for its logits.

Scout's `lm_head` is a bf16 [202,048 × 5,120] matrix, 2.07 GB, not tied to the embedding and kept
in bf16 by the NF4 and int8 loads (transformers' bitsandbytes integration skips it). Every decode
step reads all of it, a fifth of the ~10 GB a step reads in all. `output_head="int8"` replaces it
after loading by a bitsandbytes `Linear8bitLt` (int8 rows with one float scale each, LLM.int8's
matmul with its default outlier threshold): 1.04 GB. The logits change by the quantization's
rounding; `bench/moe.py` prints how often the greedy token changes on the tiny model, and
`tests/inference/test_output_head.py` bounds the logit error.

torch and bitsandbytes are imported inside the functions only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

from app.core.settings import OutputHead

#: The output head's formats, as settings and the CLI name them.
OUTPUT_HEADS: tuple[str, ...] = get_args(OutputHead)
#: Rows quantized at once (Scout: 16,384 × 5,120 in float16 is 168 MB of transient memory).
_ROWS = 16_384


def quantize_output_head(model: Any) -> int:
    """Replace `model`'s output head by an 8-bit `Linear8bitLt` on the head's device.

    Args:
        model: a loaded `Llama4ForConditionalGeneration` or `Llama4ForCausalLM`.

    Returns:
        The bytes the head held before minus what it holds now (0 when it was already 8-bit).

    Raises:
        ValueError: the head is not a plain bias-free `nn.Linear` (nothing else is expected).
    """
    import bitsandbytes as bnb
    import torch

    language = getattr(model, "language_model", model)
    head = language.lm_head
    if isinstance(head, bnb.nn.Linear8bitLt):
        return 0
    if type(head) is not torch.nn.Linear or head.bias is not None:
        raise ValueError(f"the output head is a {type(head).__name__}, not a plain linear layer")
    before = head.weight.numel() * head.weight.element_size()
    device = head.weight.device
    weight = head.weight.detach()
    codes = torch.empty(weight.shape, dtype=torch.int8, device=device)
    scales = torch.empty(weight.shape[0], dtype=torch.float32, device=device)
    # Row by row is how bitsandbytes quantizes (one absmax scale a row, from float16, as
    # `Int8Params` does when it moves a CPU weight), so blocks of rows give the same codes while
    # only one block exists in float16 at a time.
    with torch.no_grad():
        for first in range(0, weight.shape[0], _ROWS):
            block = weight[first : first + _ROWS].to(torch.float16)
            codes_block, scales_block, _ = bnb.functional.int8_vectorwise_quant(block)
            codes[first : first + _ROWS] = codes_block
            scales[first : first + _ROWS] = scales_block
    quantized = bnb.nn.Linear8bitLt(
        head.in_features, head.out_features, bias=False, has_fp16_weights=False, device="meta"
    )
    quantized.weight = bnb.nn.Int8Params(
        codes, requires_grad=False, has_fp16_weights=False, CB=codes, SCB=scales
    )
    language.lm_head = quantized  # the bf16 matrix goes with the old module
    del head
    return before - head_bytes(model)


def int8_saving(text_config: Mapping[str, Any]) -> int:
    """Bytes `quantize_output_head` frees for a model of this text config: the bf16 head
    (vocab × hidden × 2) minus its int8 rows and float32 scales; 0 when the head is the
    embedding's weight (tied), which stays."""
    if text_config.get("tie_word_embeddings"):
        return 0
    vocab, hidden = int(text_config["vocab_size"]), int(text_config["hidden_size"])
    return vocab * hidden * 2 - (vocab * hidden + vocab * 4)


def head_bytes(model: Any) -> int:
    """Bytes the output head's weights hold (int8 rows and their scales when quantized)."""
    language = getattr(model, "language_model", model)
    weight = language.lm_head.weight
    total = weight.numel() * weight.element_size()
    scales = getattr(weight, "SCB", None)
    if scales is not None:
        total += scales.numel() * scales.element_size()
    return int(total)

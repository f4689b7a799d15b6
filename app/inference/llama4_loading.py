"""Loading a local Llama 4 folder: offline, safetensors only, quantized, progress you can cancel."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.inference.engine import Cancelled, CancelToken, LoadProgress, ModelError, ProgressCallback
from app.inference.model_json import ModelJsonError, object_field, one_line, read_model_json

log = logging.getLogger(__name__)

QUANTIZATIONS = ("nf4", "int8", "bf16")
# Kept in bf16 when quantizing: the router (an nn.Linear subclass whose top-1 choice 4-bit noise
# would flip, transformers PR #44588), the vision tower and projector (small, quality-sensitive)
# and the output head. Names match module paths of transformers 5.23's
# Llama4ForConditionalGeneration by suffix or prefix (`should_convert_module`).


@dataclass
class LoadedModel:
    """A model ready to generate, and how it got there.

    Attributes:
        model: the `Llama4ForConditionalGeneration`.
        processor: the folder's `Llama4Processor` (tokenizer, image processor, chat template).
        device: "cuda:0", "cpu", ...
        quantization: "nf4", "int8" or "bf16" (what the weights are, not what was asked when
            the folder came pre-quantized).
        load_s: seconds the load took.
    """

    model: Any
    processor: Any
    device: str
    quantization: str
    load_s: float


def pick_device(device: str | None) -> str:
    """Return `device`, or "cuda:0" when a CUDA GPU is present, else "cpu"."""
    if device:
        return device
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def folder_quantization(model_dir: Path) -> str | None:
    """The quantization a pre-quantized folder declares in config.json ("nf4"/"int8"), else None."""
    try:
        quant = object_field(
            read_model_json(model_dir / "config.json"), "quantization_config", "config.json"
        )
    except ModelJsonError:  # preflight names the problem; here the folder is just not prequantized
        return None
    if quant is None:
        return None
    if quant.get("load_in_4bit") or quant.get("_load_in_4bit"):
        return "nf4"
    if quant.get("load_in_8bit") or quant.get("_load_in_8bit"):
        return "int8"
    return str(quant.get("quant_method", "unknown"))


def bnb_config(quantization: str) -> Any:
    """The `BitsAndBytesConfig` for on-the-fly quantization (None for bf16).

    The same one prepare-model writes, so the engine, the size estimate and prepared folders
    agree on which modules stay bf16 (`estimate.KEEP_BF16_MODULES`).
    """
    from app.inference.quantize import bnb_config as shared_bnb_config

    return None if quantization == "bf16" else shared_bnb_config(quantization)


def load_llama4(
    model_dir: Path,
    quantization: str,
    device: str | None,
    progress: ProgressCallback,
    cancel: CancelToken,
    moe: str = "sparse",
    output_head: str = "bf16",
) -> LoadedModel:
    """Load processor and model from a local folder, reporting progress weight by weight.

    Args:
        model_dir: the model folder (never a hub id: nothing is downloaded).
        quantization: "nf4", "int8" or "bf16"; ignored when the folder is pre-quantized.
        device: where to put it (None: the GPU if there is one).
        progress: called with each step.
        cancel: checked between steps and between weights.
        moe: "sparse" (run only each token's chosen expert, `app.inference.moe`) or "stock"
            (transformers' dispatch through every expert).
        output_head: "bf16" (as stored) or "int8" (`app.inference.llama4_head`).

    Returns:
        The loaded model.

    Raises:
        Cancelled: the user cancelled (everything loaded so far is freed).
        ModelError: the folder cannot be loaded, with a sentence saying why.
    """
    start = time.perf_counter()
    # Belt and braces next to local_files_only: no code path below may reach the network.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    progress(LoadProgress(0, 0, "Reading the tokenizer and image processor"))
    import torch
    from transformers import AutoProcessor, Llama4ForConditionalGeneration

    device = pick_device(device)
    try:
        processor = AutoProcessor.from_pretrained(
            model_dir, local_files_only=True, trust_remote_code=False
        )
    except MemoryError:
        raise
    except Exception as exc:
        # The folder's files are untrusted input that preflight checks only in part (it does
        # not parse the tens of megabytes of tokenizer.json): whatever transformers or the
        # tokenizers library raises while reading them is a problem with the folder.
        raise ModelError(
            f"Cannot read the tokenizer or processor in {model_dir}: {one_line(exc)}"
        ) from exc
    if cancel.cancelled:
        raise Cancelled
    prequantized = folder_quantization(model_dir)
    effective = prequantized or quantization
    kwargs: dict[str, Any] = {}
    if prequantized is None and quantization != "bf16":
        kwargs["quantization_config"] = bnb_config(quantization)
    total_bytes = sum(p.stat().st_size for p in model_dir.glob("*.safetensors"))
    model = None
    failure: str | None = None
    try:
        with _weight_progress(progress, cancel, total_bytes):
            model = Llama4ForConditionalGeneration.from_pretrained(
                model_dir,
                local_files_only=True,
                trust_remote_code=False,
                use_safetensors=True,
                dtype=torch.bfloat16,
                attn_implementation="sdpa",
                device_map={"": device},
                **kwargs,
            )
    except Cancelled:
        failure = ""
    except MemoryError:
        raise
    except Exception as exc:  # as above: a config value or a shard transformers cannot use
        failure = f"Cannot load the weights in {model_dir}: {one_line(exc)}"
    if failure is not None:
        # Outside the except block: the traceback (and the half-loaded tensors its frames hold)
        # is gone, so the memory really comes back before we report.
        release_memory()
        if failure:
            raise ModelError(failure)
        raise Cancelled
    assert model is not None  # no failure: from_pretrained returned it
    model.eval()
    from app.inference.llama4_attention import register
    from app.inference.llama4_step import fuse_projections
    from app.inference.moe import install_moe

    # The text model's attention copies nothing that grows with the context (llama4_attention);
    # the vision tower keeps transformers' sdpa.
    model.set_attn_implementation({"text_config": register()})
    fuse_projections(model)  # the weights laid out for a decode step (llama4_step)
    install_moe(model, moe)
    if output_head == "int8":
        from app.inference.llama4_head import quantize_output_head

        quantize_output_head(model)
    progress(LoadProgress(1, 1, "Ready"))
    return LoadedModel(model, processor, device, effective, time.perf_counter() - start)


@contextlib.contextmanager
def _weight_progress(
    progress: ProgressCallback, cancel: CancelToken, total_bytes: int
) -> Iterator[None]:
    """Report (and allow cancelling) transformers' weight-by-weight loading loop.

    transformers 5.23 walks the checkpoint's parameters in `core_model_loading` under its own
    `tqdm`; swapping that name for a counting iterator gives per-weight progress and a place to
    stop. On a release without it, loading still works, just without the per-weight steps.
    """
    try:
        from transformers import core_model_loading
    except ImportError:
        yield
        return
    original = getattr(core_model_loading, "tqdm", None)
    if original is None:
        yield
        return

    def counting(iterable: Any = None, *args: Any, **kwargs: Any) -> Iterator[Any]:
        items = list(iterable or ())
        count = len(items)
        step = max(1, count // 100)  # ≤ ~100 progress signals, whatever the weight count
        for done, item in enumerate(items):
            if cancel.cancelled:
                raise Cancelled
            if done % step == 0:
                progress(LoadProgress(done, count, _bytes_message(done, count, total_bytes)))
            yield item
        progress(LoadProgress(count, count, _bytes_message(count, count, total_bytes)))

    # Through the module's namespace: the name is declared as tqdm's class, and a counting
    # generator stands in for it only while this block runs.
    namespace = vars(core_model_loading)
    namespace["tqdm"] = counting
    try:
        yield
    finally:
        namespace["tqdm"] = original


def _bytes_message(done: int, count: int, total_bytes: int) -> str:
    gb = total_bytes / 1e9
    share = gb * done / count if count else 0.0
    precision = 1 if gb >= 1 else 3
    return f"Loading weights: {share:.{precision}f} of {gb:.{precision}f} GB"


def release_memory() -> None:
    """Collect garbage and hand cached accelerator memory back (after an unload or an OOM)."""
    gc.collect()
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

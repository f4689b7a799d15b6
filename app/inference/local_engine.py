"""The local Llama 4 engine: a model folder on this machine, answering in-process."""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.core.messages import StopReason, Timings
from app.inference import budget
from app.inference.engine import (
    Cancelled,
    CancelToken,
    EngineError,
    EngineStatus,
    GenerationRequest,
    GenerationResult,
    LoadProgress,
    ModelError,
    OutOfMemoryError,
    ProgressCallback,
)
from app.inference.llama4_cache import PrefixCache, cut_point
from app.inference.llama4_head import OUTPUT_HEADS
from app.inference.llama4_kv import KV_CACHES
from app.inference.llama4_loading import QUANTIZATIONS, LoadedModel, load_llama4, release_memory
from app.inference.llama4_prefill import DEFAULT_SEGMENT_TOKENS, PrefillProgress
from app.inference.moe import MOE_MODES

if TYPE_CHECKING:
    from app.core.settings import Settings

log = logging.getLogger(__name__)


class LocalLlama4Engine:
    """Llama 4 (Scout or a tiny test model) from a local folder, implementing `Engine`.

    Args:
        model_dir: the model folder.
        quantization: "nf4" (default), "int8" or "bf16"; a pre-quantized folder keeps its own.
        device: "cuda:0", "cpu", ... (None: the GPU when there is one).
        moe: "sparse" (each token runs only its routed expert, `app.inference.moe`) or "stock"
            (transformers' dispatch through every expert, kept for comparison).
        segment_tokens: prompt tokens per prefill forward (`app.inference.llama4_prefill`):
            activation memory is bounded by it, and Stop is honoured after each segment.
        kv_cache: the global layers' KV cache, "bf16" or "int8" (half the bytes a token, see
            `app.inference.llama4_kv`).
        output_head: the output head, "bf16" or "int8" (`app.inference.llama4_head`).
        prefill_progress: `(done, total)` while a prompt is read, or None; see the attribute.
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        quantization: str = "nf4",
        device: str | None = None,
        moe: str = "sparse",
        segment_tokens: int = DEFAULT_SEGMENT_TOKENS,
        kv_cache: str = "bf16",
        output_head: str = "bf16",
        prefill_progress: PrefillProgress | None = None,
    ) -> None:
        if quantization not in QUANTIZATIONS:
            raise ModelError(f"Unknown quantization {quantization!r}: use nf4, int8 or bf16.")
        if moe not in MOE_MODES:
            raise ModelError(f"Unknown MoE mode {moe!r}: use sparse or stock.")
        if segment_tokens < 1:
            raise ModelError(f"segment_tokens must be at least 1, not {segment_tokens}.")
        if kv_cache not in KV_CACHES:
            raise ModelError(f"Unknown KV cache {kv_cache!r}: use bf16 or int8.")
        if output_head not in OUTPUT_HEADS:
            raise ModelError(f"Unknown output head {output_head!r}: use bf16 or int8.")
        self.model_dir = Path(model_dir)
        self.quantization = quantization
        self.device = device
        self.moe = moe
        self.segment_tokens = segment_tokens
        self.kv_cache = kv_cache
        self.output_head = output_head
        #: Called as `prefill_progress(done, total)` while `generate` reads a prompt: first
        #: `(0, total)`, then after each segment, `total` being the prompt tokens this answer
        #: prefills (those not already in the kept cache) and `done` how many of them are read.
        #: It runs on the thread iterating `generate` (the worker, the CLI's main thread), before
        #: the answer's first chunk; assign it any time between answers (None: no reports).
        self.prefill_progress: PrefillProgress | None = prefill_progress
        self._loaded: LoadedModel | None = None
        self._prefix = PrefixCache()
        #: Prompt tokens the last answer actually prefilled (the rest came from the kept cache).
        self.last_prefill_tokens = 0
        #: Token ids of the last answer (for tests and benchmarks; the UI uses the text).
        self.last_token_ids: list[int] = []

    # -- Engine protocol ------------------------------------------------------------------

    def load(self, progress: ProgressCallback, cancel: CancelToken) -> None:
        """Check the folder, then load processor and weights; raise `Cancelled` or `ModelError`."""
        if self._loaded is not None:
            return
        progress(LoadProgress(0, 0, f"Checking {self.model_dir.name}"))
        _preflight(self.model_dir, self.quantization, self.device)
        loaded = load_llama4(
            self.model_dir,
            self.quantization,
            self.device,
            progress,
            cancel,
            moe=self.moe,
            output_head=self.output_head,
        )
        if loaded.quantization == "int8" or self.output_head == "int8":
            _quiet_int8_warning()
        self._loaded = loaded

    def generate(
        self, request: GenerationRequest, cancel: CancelToken
    ) -> Generator[str, None, GenerationResult]:
        """Stream one answer; see `Engine.generate`."""
        from app.inference.llama4_generate import eos_ids, sampling_config, stream
        from app.inference.llama4_prompt import build_prompt

        loaded = self._require_loaded()
        start = time.perf_counter()
        model, processor = loaded.model, loaded.processor
        vision_dtype = model.vision_model.patch_embedding.linear.weight.dtype
        try:
            prompt = build_prompt(processor, request.turns, vision_dtype, cancel=cancel)
        except Cancelled:
            # Stopped while the chat template rendered: an answer that ended before its first
            # word, like a Stop during the first decode step.
            timings = Timings(load_s=loaded.load_s)
            return GenerationResult(StopReason.CANCELLED, timings)
        tokenizer = processor.tokenizer
        cut = cut_point(prompt.ids, tokenizer.convert_tokens_to_ids("<|header_end|>"))
        # Everything but the last token is prefilled here, in segments; generate takes the last.
        end = len(prompt.ids) - 1
        reuse = self._prefix.reusable(prompt.ids[:end])
        self._check_budget(len(prompt.ids), reuse, request.max_new_tokens)
        config = sampling_config(
            model.generation_config, request.max_new_tokens, request.temperature, request.top_p
        )
        self.last_prefill_tokens = len(prompt.ids) - reuse

        def work(streamer: Any, criteria: Any, report: Any) -> list[int]:
            return self._prefill_and_generate(
                prompt.ids, prompt.pixel_values, reuse, cut, config, streamer, criteria, report
            )

        deadline = start + request.max_time_s if request.max_time_s else None
        outcome = yield from stream(work, tokenizer, cancel, deadline, self.prefill_progress)
        reason = outcome.stop_reason
        if isinstance(outcome.error, Cancelled):
            # Stopped (or out of time) between prompt segments: an answer without a word; what
            # was read stays in the kept cache for the next try.
            outcome.error = None
            if reason not in (StopReason.CANCELLED, StopReason.TIME):
                reason = StopReason.CANCELLED
        if outcome.error is not None:
            self._raise_from_thread(outcome, len(prompt.ids), prompt.image_count)
        self.last_token_ids = list(outcome.new_tokens)
        eos = eos_ids(config)
        if reason not in (StopReason.CANCELLED, StopReason.TIME):
            if outcome.new_tokens and outcome.new_tokens[-1] in eos:
                reason = StopReason.EOS
            elif len(outcome.new_tokens) >= request.max_new_tokens:
                reason = StopReason.LENGTH
        return GenerationResult(reason, _timings(loaded, start, outcome, len(prompt.ids)))

    def status(self) -> EngineStatus:
        """Name, device and memory of the loaded model."""
        loaded = self._loaded
        label = loaded.quantization if loaded else self.quantization
        name = f"Llama 4 · {self.model_dir.name} · {label.upper()}"
        if loaded is None:
            return EngineStatus(name=name, device=self.device or "not loaded")
        if loaded.device.startswith("cuda"):
            import torch

            _, total = torch.cuda.mem_get_info(loaded.device)
            used = torch.cuda.memory_allocated(loaded.device)
            return EngineStatus(name, loaded.device, used, total)
        return EngineStatus(name, loaded.device)

    def unload(self) -> None:
        """Free the model, the kept cache and cached accelerator memory."""
        self._prefix.clear()
        self._loaded = None
        release_memory()

    # -- internals ------------------------------------------------------------------------

    @property
    def loaded(self) -> LoadedModel | None:
        """The loaded model (for benchmarks and tests), or None."""
        return self._loaded

    def _require_loaded(self) -> LoadedModel:
        if self._loaded is None:
            raise ModelError("The model is not loaded yet.")
        return self._loaded

    def _prefill_and_generate(
        self,
        ids: list[int],
        pixel_values: Any,
        reuse: int,
        cut: int,
        config: Any,
        streamer: Any,
        criteria: Any,
        report: Any,
    ) -> list[int]:
        """On the helper thread: read `ids[reuse:-1]` into the one cache in segments, keeping it
        once it reaches the kept prefix (`cut`), then generate from the last prompt token: with
        `llama4_decode.decode` when it does all the config asks (else `model.generate`).

        `criteria` is also the prefill's cancel flag (`make_stop_criteria`); `report(done,
        total)` carries the prefill's progress to the caller's thread.
        """
        import torch
        from transformers import StoppingCriteriaList

        from app.inference.llama4_decode import decode, decode_supported
        from app.inference.llama4_generate import eos_ids
        from app.inference.llama4_kv import new_cache, reserve
        from app.inference.llama4_prefill import prefill

        loaded = self._require_loaded()
        model = loaded.model
        device = loaded.device
        end = len(ids) - 1
        keep = max(cut, reuse)  # where the kept prefix ends (reuse: it is already kept)
        total = end - reuse
        with torch.inference_mode():
            cache = self._prefix.take() if reuse else None
            if cache is None:
                self._prefix.clear()
                cache = new_cache(model.config.get_text_config(), self.kv_cache)
            # The whole answer's room at once: the global layers never grow mid-forward.
            reserve(cache, len(ids) + config.max_new_tokens)

            def read(first: int, stop: int) -> None:
                prefill(
                    model, cache, ids, first, stop,
                    pixel_values=pixel_values, segment_tokens=self.segment_tokens,
                    cancel=criteria, logits=stop == end,  # one head call, as one forward makes
                    progress=lambda done, _total: report(first - reuse + done, total),
                )  # fmt: skip

            if total:
                report(0, total)
            try:
                read(reuse, keep)
                if keep:
                    self._prefix.store(ids[:keep], cache)
                read(keep, end)
            except Cancelled:
                done = cache.get_seq_length()
                if 0 < done < keep:  # keep what was read: asking again continues from there
                    self._prefix.store(ids[:done], cache)
                raise
            if decode_supported(config):
                return decode(
                    model, cache, ids[-1], config=config, streamer=streamer, stop=criteria,
                    eos=eos_ids(config),
                )  # fmt: skip
            full = torch.tensor([ids], device=device)
            out = model.generate(
                input_ids=full,
                attention_mask=torch.ones_like(full),
                past_key_values=cache,
                generation_config=config,
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList([criteria]),
            )
            return out.sequences[0, len(ids) :].tolist()

    def _check_budget(self, prompt_tokens: int, reuse: int, max_new_tokens: int) -> None:
        loaded = self._require_loaded()
        text_config = loaded.model.config.get_text_config().to_dict()
        limit = int(text_config.get("max_position_embeddings") or 0) or 1 << 62
        capacity, where = limit, "the model's context window"
        if loaded.device.startswith("cuda"):
            import torch

            free, _ = torch.cuda.mem_get_info(loaded.device)
            # Memory PyTorch holds in its cache is free for us too.
            free += torch.cuda.memory_reserved(loaded.device) - torch.cuda.memory_allocated(
                loaded.device
            )
            # The kept cache is in use, not free, but this answer either extends it (reuse) or
            # drops it before making its own: its memory is this answer's either way.
            kept = self._prefix.held_bytes()
            fits = budget.context_capacity(
                text_config, free + kept, prompt_tokens - reuse,
                kv_cache=self.kv_cache, kept_tokens=reuse, segment_tokens=self.segment_tokens,
            )  # fmt: skip
            if fits < capacity:
                capacity, where = fits, f"the GPU's free memory ({free / 1e9:.1f} GB)"
        budget.check_budget(prompt_tokens, max_new_tokens, capacity, where)

    def _raise_from_thread(self, outcome: Any, prompt_tokens: int, images: int) -> None:
        """Re-raise what the generate thread raised; after an OOM, free memory first."""
        from app.inference.llama4_generate import is_out_of_memory

        error = outcome.error
        outcome.error = None
        if not is_out_of_memory(error):
            raise error
        # Recover here, not in an except block: the traceback's frames (holding activations and
        # the half-grown cache) die with `error`, so the memory is really returned.
        del error
        self._prefix.clear()
        release_memory()
        what = f"{prompt_tokens:,} prompt tokens" + (f" and {images} image(s)" if images else "")
        raise OutOfMemoryError(
            f"Out of memory while answering ({what}). Remove images or attachments, start a new "
            f"chat, or lower the answer length; the model is still loaded."
        )


def create_engine(settings: Settings) -> LocalLlama4Engine:
    """Build the local engine the settings describe (not loaded yet).

    Args:
        settings: the user's settings (`model_dir`, `quantization`).

    Returns:
        The engine.

    Raises:
        ModelError: no model folder has been chosen.
    """
    if not settings.model_dir:
        raise ModelError(
            "No model folder is chosen: pick the Llama 4 Scout folder in Settings, or pass --model "
            "(or set SCOUT_DESK_MODEL)."
        )
    return LocalLlama4Engine(
        Path(settings.model_dir), quantization=settings.quantization, kv_cache=settings.kv_cache,
        output_head=settings.output_head,
    )  # fmt: skip


def _preflight(model_dir: Path, quantization: str, device: str | None) -> None:
    """Refuse a folder that cannot load (or cannot fit), with preflight's sentences."""
    from app.inference.llama4_loading import pick_device
    from app.inference.preflight import check_model_folder

    free_gpu_bytes = None
    target = pick_device(device)
    if target.startswith("cuda"):
        import torch

        free_gpu_bytes, _ = torch.cuda.mem_get_info(target)
    report = check_model_folder(model_dir, quantization, free_gpu_bytes=free_gpu_bytes)
    if report.problems:
        raise ModelError(" ".join(report.problems))


def _timings(loaded: LoadedModel, start: float, outcome: Any, prompt_tokens: int) -> Timings:
    first = outcome.first_token_at
    count = len(outcome.new_tokens)
    ttft = (first - start) if first else 0.0
    decode_s = outcome.finished_at - first if first else 0.0
    rate = (count - 1) / decode_s if count > 1 and decode_s > 0 else 0.0
    return Timings(
        load_s=loaded.load_s,
        ttft_s=ttft,
        decode_tokens_per_s=rate,
        prompt_tokens=prompt_tokens,
        completion_tokens=count,
    )


def _quiet_int8_warning() -> None:
    """bitsandbytes warns on every int8 matmul that bf16 inputs are cast to fp16; once is plenty."""
    import warnings

    warnings.filterwarnings("once", message="MatMul8bitLt: inputs will be cast")


__all__ = ["MOE_MODES", "EngineError", "LocalLlama4Engine", "create_engine"]

"""Decoding one sequence: one forward a token, the next token chosen on the device.

`model.generate` wraps each decode step in its own machinery (logits processors and warpers,
stopping criteria evaluated as tensors, a streamer fed device tensors, unfinished-sequence
bookkeeping for a batch): for one sequence that is dozens of small ops and several host reads a
token. `decode` does what the engine needs and nothing else: one step of the model over a static
cache (`llama4_step.DecodeStep`; a model or cache it does not know gets the model's own forward),
the choice of the next token on the device (greedy, or temperature, top-k and top-p sampling as
transformers' warpers do them, in that order), and one host read of that token, which the
streamer and the end-of-answer check share. Stop, closing the stream and `max_time` are checked in
Python after each token, as the engine's stopping criteria do in `generate`.

On CUDA, when every MoE layer picks its expert on the device, the step is captured as a CUDA
graph after the first token (`DecodeStep.capture`): one launch a token instead of a few hundred.
The graph is kept only if replaying the first step gives its token again; a capture that fails
leaves the decode eager. Not yet run on a GPU (no GPU was lent while it was written).

What `decode` does not do (a repetition penalty, n-gram bans, a minimum length, ...),
`decode_supported` says, and the engine then lets `generate` answer as before.

torch is imported inside the functions only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, Protocol

log = logging.getLogger(__name__)

#: Answers shorter than this stay eager: a capture costs a few steps' time (a warm-up step, the
#: capture, a checking replay) and is made again for every answer (its buffers are the answer's).
GRAPH_MIN_TOKENS = 32

#: Generation-config fields `decode` honours; any other processor setting sends it to `generate`.
_NEUTRAL = {
    "repetition_penalty": (None, 1.0),
    "encoder_repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,),
    "min_length": (None, 0),
    "min_new_tokens": (None, 0),
    "num_beams": (None, 1),
    "num_return_sequences": (None, 1),
    "typical_p": (None, 1.0),
    "min_p": (None, 0.0),
    "epsilon_cutoff": (None, 0.0),
    "eta_cutoff": (None, 0.0),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "sequence_bias": (None,),
    "guidance_scale": (None, 1.0),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "stop_strings": (None,),
}


class StepStop(Protocol):
    """What `decode` asks after each token (the engine's stopping criteria)."""

    def token_sampled(self, now: float) -> bool:
        """Note a token at `now`; True to stop here (Stop pressed, stream closed, time up)."""
        ...


class TokenSink(Protocol):
    """Where the tokens go as they come (transformers' `TextIteratorStreamer`)."""

    def put(self, value: Any) -> None: ...

    def end(self) -> None: ...


def decode_supported(config: Any) -> bool:
    """Whether `decode` does all that the generation config asks (else `generate` must)."""
    for name, neutral in _NEUTRAL.items():
        value = getattr(config, name, None)
        if value not in neutral:
            return False
    return True


def decode(
    model: Any,
    cache: Any,
    last_prompt_id: int,
    *,
    config: Any,
    streamer: TokenSink,
    stop: StepStop,
    eos: Iterable[int],
    graphs: bool = True,
    device_experts: bool | None = None,
) -> list[int]:
    """Generate after a prefill that left every prompt token but the last in `cache`.

    Call it under `torch.inference_mode()`.

    Args:
        model: a `Llama4ForConditionalGeneration` (or `Llama4ForCausalLM`).
        cache: the prompt's cache, holding all but its last token; extended in place.
        last_prompt_id: the prompt's last token, the first one fed here.
        config: the request's generation config (`max_new_tokens`, `do_sample`, `temperature`,
            `top_k`, `top_p`).
        streamer: gets each new token (a CPU tensor of one id) and `end()` at the end.
        stop: asked after each token whether to stop.
        eos: ids that end the answer (kept as its last token, as `generate` keeps them).
        graphs: on CUDA, run the step as a CUDA graph where it can be captured
            (`llama4_step.DecodeStep.capture`); the CPU always runs it eagerly.
        device_experts: how MoE layers pick their expert (`llama4_step.DecodeStep`).

    Returns:
        The new token ids.
    """
    import torch

    from app.inference.llama4_step import DecodeStep, step_supported

    device = model.get_input_embeddings().weight.device
    ends = set(eos)
    new: list[int] = []
    limit = int(config.max_new_tokens)
    token = torch.tensor([[last_prompt_id]], device=device)
    step = None
    if limit > 0 and step_supported(model, cache):
        step = DecodeStep(
            model, cache, cache.get_seq_length(), limit, device_experts=device_experts
        )
    streamer.put(token.cpu())  # the streamer skips its first put: the prompt
    try:
        for index in range(limit):
            if step is not None:
                logits = step(token, index)
                if index == 0 and graphs and limit >= GRAPH_MIN_TOKENS:
                    _capture(step, token, logits)
            else:
                out = model(
                    input_ids=token, past_key_values=cache, use_cache=True, logits_to_keep=1
                )
                logits = out.logits[0, -1]
            chosen = choose_token(logits, config)
            token_id = int(chosen)  # the one host read a token: streamed and checked for EOS
            new.append(token_id)
            streamer.put(torch.tensor([token_id]))
            if stop.token_sampled(time.perf_counter()) or token_id in ends:
                break
            token = chosen.view(1, 1)
    finally:
        if step is not None:
            step.finish()
        streamer.end()
    return new


def _capture(step: Any, token: Any, eager_logits: Any) -> None:
    """Capture `step` as a CUDA graph after its first, eager step, and keep the graph only if
    it gives that step's next token again (a replay rewrites the same cache slots)."""
    import torch

    try:
        if not step.capture():
            return
        replayed = step(token, 0)
    except RuntimeError as exc:  # a kernel that cannot be captured: stay eager
        log.warning("decode step not captured as a CUDA graph (%s): decoding eagerly", exc)
        step.release_graph()
        return
    if not torch.equal(replayed.argmax(-1), eager_logits.argmax(-1)):
        log.warning("the captured decode step disagreed with the eager one: decoding eagerly")
        step.release_graph()
        return
    log.info("decode step captured as a CUDA graph")


def choose_token(logits: Any, config: Any) -> Any:
    """The next token from one row of logits, on their device: a 0-d long tensor.

    Greedy unless `config.do_sample`; sampling applies the temperature, then top-k, then top-p
    (keeping at least one token), as transformers' warpers do, and draws from torch's RNG.
    """
    import torch

    if not config.do_sample:
        return logits.argmax(-1)
    scores = logits.float()
    temperature = float(config.temperature or 1.0)
    if temperature != 1.0:
        scores = scores / temperature
    top_k = int(config.top_k or 0)
    if 0 < top_k < scores.shape[-1]:
        kth = torch.topk(scores, top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    top_p = float(config.top_p if config.top_p is not None else 1.0)
    if top_p < 1.0:
        ordered, order = torch.sort(scores)  # ascending, as transformers' TopPLogitsWarper
        drop = ordered.softmax(-1).cumsum(-1) <= 1 - top_p
        drop[-1] = False  # the likeliest token always stays
        dropped = torch.empty_like(drop).scatter_(0, order, drop)  # back to vocabulary order
        scores = scores.masked_fill(dropped, float("-inf"))
    return torch.multinomial(scores.softmax(-1), 1)[0]

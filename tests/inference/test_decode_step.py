"""The static-cache decode step (`llama4_step.DecodeStep`) against transformers' own forward.

The tiny Llama 4 has 4 layers (3 chunked, 1 global) and a 64-token chunk, so 40 steps after a
50-token prompt cross a chunk boundary: the ring starts again at slot 0.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from app.inference.llama4_attention import register
from app.inference.llama4_kv import new_cache, reserve
from app.inference.llama4_prefill import prefill
from app.inference.llama4_step import DecodeStep, fuse_projections, step_supported
from app.inference.moe import install_moe
from tests.helpers.host_reads import HostReads
from tests.helpers.tiny_models import float32_sparse_tiny

pytestmark = pytest.mark.slow

PROMPT = [5 + (7 * i) % 300 for i in range(50)]
STEPS = 40
#: The largest logit difference from transformers' forward allowed past a chunk boundary in
#: bf16 activations (seen: 0.005 with bf16 weights, 0.013 with per-expert NF4; logits of the
#: tiny model reach about 0.7: a relative 3 %; the greedy choice can flip only on near ties).
TOLERANCE = 0.02


@pytest.fixture(scope="module")
def model() -> Any:
    model = float32_sparse_tiny()
    model.set_attn_implementation({"text_config": register()})
    assert fuse_projections(model) == 8  # q/k/v and the shared gate/up of 4 layers
    return model


def prefilled(model: Any, ids: list[int], kv_cache: str = "bf16") -> Any:
    """A cache holding every prompt token but the last, room for `STEPS` more."""
    cache = new_cache(model.config.get_text_config(), kv_cache)
    reserve(cache, len(ids) + STEPS)
    prefill(model, cache, ids, 0, len(ids) - 1, logits=False)
    return cache


def step_greedy(model: Any, ids: list[int], static: bool = False, **kw: Any) -> list[int]:
    import torch

    with torch.inference_mode():
        cache = prefilled(model, ids)
        step = DecodeStep(model, cache, len(ids) - 1, STEPS, **kw)
        token, out = torch.tensor([ids[-1]]), []
        for index in range(STEPS):
            where = torch.tensor([index])
            logits = step.forward(token, where) if static else step(token, index)
            token = logits.argmax(-1).view(1)
            out.append(int(token))
        step.finish()
    return out


def stock_greedy(model: Any, ids: list[int]) -> list[int]:
    """transformers as it comes: stock MoE, its sdpa, `generate` and a `DynamicCache`."""
    import torch

    model.set_attn_implementation({"text_config": "sdpa"})
    install_moe(model, "stock")
    try:
        with torch.inference_mode():
            prompt = torch.tensor([ids])
            out = model.generate(
                input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=STEPS,
                do_sample=False, eos_token_id=None, pad_token_id=0,
            )  # fmt: skip
    finally:
        model.set_attn_implementation({"text_config": register()})
        install_moe(model, "sparse")
    return out[0, len(ids) :].tolist()


@pytest.fixture(scope="module")
def stock(model: Any) -> list[int]:
    return stock_greedy(model, PROMPT)


def side_by_side(
    model: Any, kv_cache: str = "bf16", ids: list[int] = PROMPT
) -> tuple[list[bool], float]:
    """The step and transformers' forward over twin caches, both fed the forward's greedy
    tokens: whether each step's logits are bit-equal, and the largest difference."""
    import torch

    exact, worst = [], 0.0
    with torch.inference_mode():
        cache = prefilled(model, ids, kv_cache)
        twin = copy.deepcopy(cache)
        step = DecodeStep(model, cache, len(ids) - 1, STEPS)
        token = torch.tensor([[ids[-1]]])
        for index in range(STEPS):
            ours = step(token, index)
            theirs = model(input_ids=token, past_key_values=twin, logits_to_keep=1).logits[0, -1]
            exact.append(torch.equal(ours, theirs))
            worst = max(worst, float((ours.float() - theirs.float()).abs().max()))
            token = theirs.argmax(-1).view(1, 1)
        step.finish()
    return exact, worst


@pytest.mark.parametrize("device_experts", [False, True])
def test_greedy_tokens_equal_stock_in_float32_across_a_chunk_boundary(
    model, stock, device_experts
) -> None:
    assert (len(PROMPT) - 1) // 64 != (len(PROMPT) - 1 + STEPS) // 64  # it does cross one
    assert step_greedy(model, PROMPT, device_experts=device_experts) == stock


def test_the_static_step_gives_the_same_tokens(model, stock) -> None:
    assert step_greedy(model, PROMPT, static=True, device_experts=True) == stock


def test_a_one_token_prompt_starts_from_an_empty_cache(model) -> None:
    assert step_greedy(model, [7]) == stock_greedy(model, [7])


def test_the_static_step_has_the_same_shapes_every_step_and_reads_nothing(model) -> None:
    """What a CUDA graph needs: the same ops on the same shapes, no host read, no `cat`."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class Trace(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops: list[tuple[str, tuple[Any, ...]]] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            out = func(*args, **(kwargs or {}))
            shapes = tuple(
                tuple(t.shape) for t in (out if isinstance(out, tuple | list) else (out,))
                if isinstance(t, torch.Tensor)
            )  # fmt: skip
            self.ops.append((str(func), shapes))
            return out

    traces = []
    with torch.inference_mode():
        cache = prefilled(model, PROMPT)
        step = DecodeStep(model, cache, len(PROMPT) - 1, STEPS, device_experts=True)
        assert step.capturable
        token = torch.tensor([PROMPT[-1]])
        for index in (0, 1, 20, 39):  # 20 and 39 are in the next chunk
            with Trace() as trace, HostReads() as reads:
                logits = step.forward(token, torch.tensor([index]))
            assert reads.count == 0
            traces.append(trace.ops)
            token = logits.argmax(-1).view(1)
        step.finish()
    assert all(trace == traces[0] for trace in traces)
    assert not [op for op, _ in traces[0] if "cat" in op]


def test_bf16_is_bit_for_bit_within_a_chunk_and_close_after(model) -> None:
    """bf16 (on the CPU): the logits equal transformers' forward bit for bit while the decode
    stays in the prompt's chunk. Past a boundary stock attends the kept window under a mask,
    the ring only the new chunk's keys: the sums differ in rounding (`TOLERANCE`)."""
    import torch

    bf16 = float32_sparse_tiny()
    bf16.language_model.to(torch.bfloat16)
    install_moe(bf16, "sparse")
    bf16.set_attn_implementation({"text_config": register()})
    fuse_projections(bf16)
    exact, worst = side_by_side(bf16)
    in_chunk = 64 - (len(PROMPT) - 1)
    assert all(exact[:in_chunk])
    assert worst <= TOLERANCE


@pytest.mark.parametrize("ids", [PROMPT, [7]], ids=["prompt", "one token"])
def test_int8_kv_cache_decodes_like_the_model_forward(model, ids) -> None:
    """The packed global layer: the step writes and reads the same int8 rows as the forward
    (from one token, it makes the packed buffers itself)."""
    _exact, worst = side_by_side(model, "int8", ids)
    assert worst <= 1e-4  # float32 logits of ~0.7: sums in another order


def test_finish_leaves_the_answer_in_the_global_layers(model) -> None:
    import torch

    with torch.inference_mode():
        cache = prefilled(model, PROMPT)
        step = DecodeStep(model, cache, len(PROMPT) - 1, STEPS)
        for index in range(5):
            step(torch.tensor([3]), index)
        with pytest.raises(IndexError):
            step(torch.tensor([3]), STEPS)
        step.finish()
    kinds = model.config.get_text_config().layer_types
    for kind, layer in zip(kinds, cache.layers, strict=True):
        expected = len(PROMPT) - 1 + (5 if kind == "full_attention" else 0)
        assert layer.get_seq_length() == expected


def test_replaced_weights_take_the_module_path_with_the_same_tokens(stock) -> None:
    """A weight replaced after fusing (a reload, a dtype change) is no longer a view of the
    fused tensor: the step sees it and calls the modules, with the same result."""
    import torch

    model = float32_sparse_tiny()
    model.set_attn_implementation({"text_config": register()})
    fuse_projections(model)
    for layer in model.language_model.model.layers:
        for linear in (layer.self_attn.q_proj, layer.feed_forward.shared_expert.up_proj):
            linear.weight = torch.nn.Parameter(linear.weight.detach().clone())
    with torch.inference_mode():
        step = DecodeStep(model, prefilled(model, PROMPT), len(PROMPT) - 1, STEPS)
        assert all(plan.qkv is None and plan.shared is None for plan in step._layers)
        step.finish()
    assert step_greedy(model, PROMPT) == stock


def test_fusing_changes_no_weight(model) -> None:
    import torch

    fresh = float32_sparse_tiny()
    ours, theirs = model.state_dict(), fresh.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert fuse_projections(model) == 8  # idempotent


def test_fusing_lays_the_cpu_experts_out_as_rows_once(model) -> None:
    """Fused experts on the CPU: each parameter keeps its shape over transposed storage (the
    rows `torch.mv` reads), and the step's host path takes them."""
    import torch

    layers = model.language_model.model.layers
    moes = [layer.feed_forward for layer in layers if layer.is_moe_layer]
    shapes = [(moe.experts.gate_up_proj.shape, moe.experts.down_proj.shape) for moe in moes]
    where = [moe.experts.gate_up_proj.data_ptr() for moe in moes]
    fuse_projections(model)  # again: nothing moves
    assert [moe.experts.gate_up_proj.data_ptr() for moe in moes] == where
    for moe, (gate_up_shape, down_shape) in zip(moes, shapes, strict=True):
        assert moe.experts.gate_up_proj.shape == gate_up_shape
        assert moe.experts.down_proj.shape == down_shape
        assert moe.experts.gate_up_proj.mT.is_contiguous()
        assert moe.experts.down_proj.mT.is_contiguous()
    with torch.inference_mode():
        step = DecodeStep(model, prefilled(model, PROMPT), len(PROMPT) - 1, STEPS)
        plans = [plan for plan in step._layers if plan.layer.is_moe_layer]
        assert plans and all(plan.experts is not None for plan in plans)
        step.finish()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_one_row_products_give_the_matrix_products_bits(dtype) -> None:
    """`_times` (`torch.mv`) against `F.linear` of a [1, in] row, on the CPU, at the tiny
    model's and the CPU benchmark's shapes."""
    import torch

    from app.inference.llama4_step import _times

    generator = torch.Generator().manual_seed(0)
    for rows, width in ((16, 64), (384, 64), (128, 256), (4096, 1024), (1024, 2048), (16, 1024)):
        weight = torch.randn(rows, width, generator=generator).to(getattr(torch, dtype))
        for _ in range(4):
            vector = torch.randn(width, generator=generator).to(weight.dtype)
            expected = torch.nn.functional.linear(vector.unsqueeze(0), weight)[0]
            assert torch.equal(_times(vector, weight), expected)


def test_bf16_norms_and_gates_round_as_the_model_does() -> None:
    """The step computes bf16 norms and the router's sigmoid in bf16 ops that work in float32
    inside (one rounding at the end), where the model converts to float32 and back: the same
    bits on the CPU. The sigmoid is checked at every bf16 value."""
    import torch
    from transformers.models.llama4.modeling_llama4 import Llama4TextL2Norm, Llama4TextRMSNorm

    from app.inference.llama4_step import _rms, _rms_norm

    every = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)
    every = every[~every.isnan()]
    assert torch.equal(torch.sigmoid(every), torch.sigmoid(every.float()).to(torch.bfloat16))

    generator = torch.Generator().manual_seed(0)
    for width in (64, 1024, 5120):
        norm = Llama4TextRMSNorm(width, eps=1e-5)
        norm.weight.data = torch.randn(width, generator=generator)
        norm = norm.to(torch.bfloat16)
        l2 = Llama4TextL2Norm(eps=1e-5)
        for scale in (1e-3, 1.0, 1e3):
            hidden = (torch.randn(3, width, generator=generator) * scale).to(torch.bfloat16)
            assert torch.equal(_rms_norm(norm, hidden), norm(hidden))
            assert torch.equal(_rms(hidden, 1e-5), l2(hidden))


def test_a_cache_the_step_does_not_know_is_refused(model) -> None:
    from transformers import DynamicCache

    assert step_supported(model, new_cache(model.config.get_text_config()))
    assert not step_supported(model, DynamicCache(config=model.config.get_text_config()))


def test_no_cuda_graph_on_the_cpu(model) -> None:
    import torch

    with torch.inference_mode():
        cache = prefilled(model, PROMPT)
        step = DecodeStep(model, cache, len(PROMPT) - 1, STEPS, device_experts=True)
        assert step.capturable and not step.capture()
        step.finish()


def test_per_expert_nf4_as_prepare_model_writes_it(tiny_model, tmp_path_factory) -> None:
    """A `prepare-model` NF4 folder through the real loader: bitsandbytes linears everywhere
    (q/k/v cannot be fused), one `Linear4bit` expert module read by index. bf16 activations:
    bit for bit within the chunk, as close as bf16 after it."""
    import torch

    from app.inference.engine import CancelToken
    from app.inference.llama4_loading import load_llama4
    from app.inference.prepare import prepare_model

    folder = tmp_path_factory.mktemp("step-nf4") / "nf4"
    prepare_model(tiny_model, folder, "nf4", device="cpu")
    nf4 = load_llama4(folder, "nf4", "cpu", lambda _p: None, CancelToken()).model
    with torch.inference_mode():
        step = DecodeStep(nf4, prefilled(nf4, PROMPT), len(PROMPT) - 1, STEPS)
        # On the CPU the NF4 experts' index is read on the host (the kernel is CUDA's).
        assert not step.capturable
        assert all(plan.qkv is None for plan in step._layers)
        step.finish()
    exact, worst = side_by_side(nf4)
    assert all(exact[: 64 - (len(PROMPT) - 1)])
    assert worst <= TOLERANCE


class _FakeStep:
    """A step whose capture and replay a test decides (the CPU has no CUDA graphs)."""

    def __init__(self, replay: Any = None, fail: bool = False) -> None:
        self.replay, self.fail, self.graph = replay, fail, False

    def capture(self) -> bool:
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing")
        self.graph = True
        return True

    def __call__(self, _token: Any, _index: int) -> Any:
        return self.replay

    def release_graph(self) -> None:
        self.graph = False


def test_a_graph_is_kept_only_when_its_replay_gives_the_eager_token(caplog) -> None:
    import torch

    from app.inference.llama4_decode import _capture

    eager = torch.tensor([0.1, 0.9, 0.2])
    agreeing = _FakeStep(replay=torch.tensor([0.1, 0.8, 0.3]))
    _capture(agreeing, torch.tensor([1]), eager)
    assert agreeing.graph
    disagreeing = _FakeStep(replay=torch.tensor([0.9, 0.1, 0.2]))
    _capture(disagreeing, torch.tensor([1]), eager)
    assert not disagreeing.graph and "disagreed" in caplog.text
    failing = _FakeStep(fail=True)
    _capture(failing, torch.tensor([1]), eager)
    assert not failing.graph and "not captured" in caplog.text


@pytest.mark.parametrize("static", [False, True])
def test_long_keys_take_the_per_head_attention_with_the_same_tokens(
    model, stock, static, monkeypatch
) -> None:
    """Past `DIRECT_MAX_KEYS` (16,384 for Scout) attention goes one key/value head at a time,
    under the static step's mask too: set to 0 here so the tiny prompt takes that path."""
    from app.inference import llama4_attention

    calls: list[int] = []
    real = llama4_attention.attention_forward

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(llama4_attention, "DIRECT_MAX_KEYS", 0)
    monkeypatch.setattr(llama4_attention, "attention_forward", counted)
    assert step_greedy(model, PROMPT, static=static, device_experts=True) == stock
    assert len(calls) >= STEPS * 4  # every layer of every step

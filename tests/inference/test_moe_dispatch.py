"""Sparse MoE dispatch gives stock's answers on the tiny Llama 4: bf16, NF4, per-expert NF4."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.inference.engine import CancelToken
from app.inference.llama4_loading import load_llama4
from app.inference.local_engine import LocalLlama4Engine
from app.inference.moe import install_moe, moe_mode

pytestmark = pytest.mark.slow

NEW_TOKENS = 8


def _moe_layers(model: Any) -> list[Any]:
    return [m for m in model.modules() if type(m).__name__ == "Llama4TextMoe"]


def _batch() -> tuple[Any, Any]:
    """Three prompts of 24, 17 and 9 tokens, left-padded to one batch as generate expects."""
    import torch

    generator = torch.Generator().manual_seed(7)
    ids = torch.randint(1, 384, (3, 24), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, :7] = 0
    mask[2, :15] = 0
    ids[mask == 0] = 0
    return ids, mask


def _run(model: Any, mode: str) -> tuple[Any, Any, Any]:
    """Prefill logits, greedy tokens for the padded batch, greedy tokens for one sequence alone."""
    import torch

    install_moe(model, mode)
    ids, mask = _batch()
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=mask).logits
        batch = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=NEW_TOKENS, do_sample=False
        )
        # One sequence: every decode step is the single-token path (one expert, no sort).
        single = model.generate(
            input_ids=ids[:1], attention_mask=mask[:1], max_new_tokens=NEW_TOKENS, do_sample=False
        )
    return logits, batch[:, ids.shape[1] :], single[:, ids.shape[1] :]


def _experts_chosen(model: Any) -> set[int]:
    """Which experts layer 0's router picks for the batch (the test is void if only one)."""
    import torch

    chosen: set[int] = set()

    def record(_module: Any, _args: Any, output: Any) -> None:
        chosen.update(output[1].argmax(dim=-1).tolist())

    handle = _moe_layers(model)[0].register_forward_hook(record)
    ids, mask = _batch()
    with torch.inference_mode():
        model(input_ids=ids, attention_mask=mask)
    handle.remove()
    return chosen


def _assert_same_answers(model: Any) -> None:
    import torch

    assert len(_experts_chosen(model)) > 1
    stock = _run(model, "stock")
    sparse = _run(model, "sparse")
    assert {moe_mode(m) for m in _moe_layers(model)} == {"sparse"}
    # The sparse path rounds exactly where stock does (gate in float32 then bf16, input scaled in
    # bf16, a token's experts summed in float32 and added in bf16), so the match is bitwise.
    assert torch.equal(stock[0], sparse[0])
    assert torch.equal(stock[1], sparse[1])
    assert torch.equal(stock[2], sparse[2])


def _load(folder: Path, quantization: str, moe: str = "sparse") -> Any:
    return load_llama4(folder, quantization, "cpu", lambda _p: None, CancelToken(), moe=moe)


def test_bf16_fused_experts_give_stock_answers(tiny_model: Path) -> None:
    loaded = _load(tiny_model, "bf16")
    experts = _moe_layers(loaded.model)[0].experts
    assert experts.gate_up_proj.dim() == 3  # the fused layout: the bmm-free slice path
    _assert_same_answers(loaded.model)


def test_nf4_on_the_fly_gives_stock_answers(tiny_model: Path) -> None:
    # Attention and shared expert in NF4 (bitsandbytes CPU backend); fused experts stay bf16.
    loaded = _load(tiny_model, "nf4")
    assert type(_moe_layers(loaded.model)[0].shared_expert.up_proj).__name__ == "Linear4bit"
    _assert_same_answers(loaded.model)


def test_per_expert_nf4_calls_only_chosen_experts(
    tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from app.inference.prepare import prepare_model

    folder = tmp_path_factory.mktemp("moe-nf4") / "nf4"
    prepare_model(tiny_model, folder, "nf4", device="cpu")
    model = _load(folder, "nf4").model
    moe = _moe_layers(model)[0]
    assert type(moe.experts).__name__ == "SequentialLlama4TextExperts"
    assert type(moe.experts[0].gate_proj).__name__ == "Linear4bit"
    _assert_same_answers(model)

    # One decode-sized token reaches exactly one expert module; stock calls all of them.
    import torch

    calls: list[int] = []
    hooks = [
        expert.register_forward_hook(lambda _m, _a, _o, e=e: calls.append(e))
        for e, expert in enumerate(moe.experts)
    ]
    token = torch.randn(1, 1, moe.hidden_dim, dtype=torch.bfloat16)
    with torch.inference_mode():
        sparse_out, logits = moe(token)
        install_moe(model, "stock")
        stock_out, _ = moe(token)
    for hook in hooks:
        hook.remove()
    assert calls[0] == int(logits.argmax()) and len(calls) == 1 + len(moe.experts)
    assert torch.equal(sparse_out, stock_out)


def test_top2_routing_gives_stock_answers() -> None:
    # Scout and Maverick route top-1; top-2 checks the grouping when a token has two experts:
    # both sum a token's experts in float32 and round once, so this too matches bit for bit.
    import torch
    from transformers import Llama4ForCausalLM

    from app.inference.tiny import tiny_config

    torch.manual_seed(3)
    model = Llama4ForCausalLM(tiny_config(num_experts_per_tok=2).text_config)
    _assert_same_answers(model.to(torch.bfloat16).eval())


def test_engine_passes_its_moe_mode_to_the_loader(tiny_model: Path) -> None:
    for mode in ("stock", "sparse"):
        engine = LocalLlama4Engine(tiny_model, quantization="bf16", device="cpu", moe=mode)
        engine.load(lambda _p: None, CancelToken())
        try:
            layers = _moe_layers(engine.loaded.model)  # type: ignore[union-attr]
            assert len(layers) == 4 and {moe_mode(m) for m in layers} == {mode}
        finally:
            engine.unload()
    assert LocalLlama4Engine(tiny_model).moe == "sparse"


def test_unknown_modes_and_layouts_are_refused_or_left_stock() -> None:
    import torch
    from transformers import Llama4ForCausalLM

    from app.inference.tiny import tiny_config

    model = Llama4ForCausalLM(tiny_config().text_config)
    with pytest.raises(ValueError, match="fast"):
        install_moe(model, "fast")
    _moe_layers(model)[0].experts = torch.nn.Identity()  # a layout we do not know
    assert install_moe(model, "sparse") == 3
    assert [moe_mode(m) for m in _moe_layers(model)] == ["stock", "sparse", "sparse", "sparse"]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fused_experts_are_chosen_on_the_device_bit_for_bit_without_a_host_read(dtype) -> None:
    import torch
    from transformers import Llama4ForCausalLM

    from app.inference.moe import device_expert_runner, expert_runner
    from app.inference.tiny import tiny_config
    from tests.helpers.host_reads import HostReads

    torch.manual_seed(0)
    model = Llama4ForCausalLM(tiny_config().get_text_config()).to(getattr(torch, dtype)).eval()
    moe = _moe_layers(model)[0]
    on_host, on_device = expert_runner(moe.experts), device_expert_runner(moe.experts)
    assert on_host is not None and on_device is not None
    row = torch.randn(1, moe.hidden_dim).to(moe.experts.gate_up_proj.dtype)
    with torch.inference_mode():
        for e in range(moe.experts.gate_up_proj.shape[0]):
            with HostReads() as reads:
                chosen = on_device(torch.tensor([e]), row)
            assert torch.equal(chosen, on_host(e, row)) and reads.count == 0
        # A whole MoE layer on one token: the host read is gone with the device runner only.
        token = torch.randn(1, 1, moe.hidden_dim).to(row.dtype)
        outputs = []
        for device_experts, reads_expected in ((False, 1), (True, 0)):
            install_moe(model, "sparse", device_experts=device_experts)
            with HostReads() as reads:
                outputs.append(moe(token)[0])
            assert reads.count == reads_expected
        assert torch.equal(*outputs)


def test_the_runners_use_the_experts_weights_as_they_are_now() -> None:
    """`fuse_projections` lays the experts out again after `install_moe`: the runners must not
    keep the old tensors (their memory, their values)."""
    import torch
    from transformers import Llama4ForCausalLM

    from app.inference.moe import device_expert_runner, expert_runner
    from app.inference.tiny import tiny_config

    torch.manual_seed(0)
    model = Llama4ForCausalLM(tiny_config().get_text_config()).eval()
    experts = _moe_layers(model)[0].experts
    on_host, on_device = expert_runner(experts), device_expert_runner(experts)
    assert on_host is not None and on_device is not None
    old = experts.gate_up_proj
    experts.gate_up_proj = torch.nn.Parameter(torch.zeros_like(old), requires_grad=False)
    row = torch.randn(1, old.shape[1])
    with torch.inference_mode():
        assert not on_host(1, row).any()  # zero gate and up: a zero output
        assert not on_device(torch.tensor([1]), row).any()

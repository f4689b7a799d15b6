"""One decode step of Llama 4's text model over a static cache: fixed buffers, no growth.

A decode step through `model(...)` costs far more host work than arithmetic: transformers builds
both attention masks and the rotary table for every token, each chunked layer's
`DynamicSlidingWindowLayer` grows by `torch.cat` (and drops its oldest token), and the output is
wrapped and unwrapped. `DecodeStep` runs the same decoder layers (their own projections, norms,
MoE and output head, so quantized linears and the sparse MoE are what runs) over a cache that
never changes shape:

* the global layers write into `llama4_kv.GlobalLayer`'s reserved buffer, in place;
* each chunked layer gets a ring of `attention_chunk_size` slots. Position p sits in slot
  p mod chunk, so the slots 0..p mod chunk hold exactly the keys p may attend to (its own chunk,
  in position order), and a new chunk starts again at slot 0 over the old one. The ring starts
  with the current chunk's keys, copied from the sliding-window layer once;
* the rotary factors and the global layers' temperature scales of every position this decode
  can reach are computed once, as transformers computes them, and looked up per step.

It runs two ways, over the same buffers:

* `__call__(token, index)`, eager: the host knows the position, so attention reads the filled
  slots only (a slice, no mask). This is what runs on the CPU;
* `static(token, index)`: every tensor's shape is the same at every step and the position lives
  in device memory: attention reads whole buffers under a mask computed on the device, writes
  use `index_copy_`. That is what a CUDA graph can hold (`capture`), provided no MoE layer reads
  its expert on the host (`capturable`).

The answer's keys stay in the global layers (`finish` sets their length, so the cache encodes
the prompt and the answer there); the chunked layers keep the prompt's window, as the prefill
left it. A cache that decoded an answer is therefore only reused through
`llama4_cache.crop_cache` back to a prefix of the prompt, which is what the engine's prefix
cache does.

torch is imported inside the functions only.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class _Layer:
    """One decoder layer's parts and cache buffers, as the step uses them."""

    layer: Any  # the Llama4TextDecoderLayer
    chunked: bool
    keys: Any  # [1, kv_heads, slots, head_dim (+2 packed)]
    values: Any
    packed: bool  # int8 rows (`llama4_kv.pack_int8`)
    rope: bool
    qk_norm: bool
    tuned: bool  # temperature tuning of a NoPE layer's queries
    # Weights as [out, in] rows, multiplied by `_times`; None: the module is called instead.
    qkv: Any  # the fused q|k|v projections [(heads + 2 kv_heads) × dim, hidden]
    out: Any  # the attention's output projection
    router: Any  # the router's weight (None also when the layer is not an MoE layer)
    shared: Any  # the shared expert's (or dense MLP's) fused gate|up
    down: Any  # the shared expert's (or dense MLP's) down projection
    experts: Any  # fused experts as rows (`_expert_rows`), for the host-read path
    on_device: Any  # `moe.device_expert_runner` of the layer, when the step uses it
    on_host: Any  # `moe.expert_runner` of the layer (the expert's index read on the host)


def step_supported(model: Any, cache: Any) -> bool:
    """Whether `DecodeStep` knows `model`'s text stack and `cache`'s layers."""
    from app.inference.llama4_kv import global_layer_class
    from app.inference.llama4_prefill import text_model

    try:
        text = text_model(model)
        config = text.config
        layers = list(text.layers)
        kinds = list(config.layer_types)
    except AttributeError:
        return False
    if len(cache.layers) != len(layers) or not config.attention_chunk_size:
        return False
    for kind, cache_layer in zip(kinds, cache.layers, strict=True):
        if kind == "full_attention" and not isinstance(cache_layer, global_layer_class()):
            return False
        if kind == "chunked_attention" and not hasattr(cache_layer, "sliding_window"):
            return False
        if kind not in ("full_attention", "chunked_attention"):
            return False
    return all(type(layer).__name__ == "Llama4TextDecoderLayer" for layer in layers)


def fuse_projections(model: Any) -> int:
    """Lay the weights out for a decode step; no memory is added and no value changes.

    * each attention's q/k/v weights, and each shared expert's gate/up weights, become one
      tensor, the modules' weights views of it: a decode step makes one matrix product where it
      made three (or two). Only plain `nn.Linear`s without bias are fused (quantized linears
      keep their own kernels);
    * on the CPU, fused experts (`gate_up_proj` [E, hidden, 2*inter], `down_proj`
      [E, inter, hidden]) are stored transposed, each parameter a view of the same shape over
      it (`_experts_as_rows`).

    Every other forward computes the same values from the same weights (on the CPU a
    transposed expert can round a float32 product's last bit differently). Idempotent.

    Returns:
        How many groups of projections are fused now.
    """
    import torch

    from app.inference.llama4_prefill import text_model

    count = 0
    with torch.inference_mode(False), torch.no_grad():
        for layer in text_model(model).layers:
            attention = layer.self_attn
            count += _fuse(attention, ("q_proj", "k_proj", "v_proj"))
            shared = getattr(layer.feed_forward, "shared_expert", None)
            if shared is not None:
                count += _fuse(shared, ("gate_proj", "up_proj"))
            experts = getattr(layer.feed_forward, "experts", None)
            if experts is not None:
                _experts_as_rows(experts)
    return count


#: The attribute of a module holding its fused projection weight (`fuse_projections`).
_FUSED = "_scout_fused_weight"


def _fuse(owner: Any, names: tuple[str, ...]) -> int:
    import torch

    linears = [getattr(owner, name) for name in names]
    if not all(_plain(linear) for linear in linears):
        return 0
    if _fused_rows(owner, names) is not None:
        return 1
    fused = torch.cat([linear.weight.detach() for linear in linears])
    first = 0
    for linear in linears:
        rows = linear.weight.shape[0]
        linear.weight = torch.nn.Parameter(fused[first : first + rows], requires_grad=False)
        first += rows
    # A plain attribute, not a parameter: the state dict keeps the three (or two) weights.
    owner.__dict__[_FUSED] = fused
    return 1


def _experts_as_rows(experts: Any) -> None:
    """On the CPU, store fused experts' matrices transposed: each expert's [in, out] matrix
    becomes a view of an [out, in] one whose rows are contiguous.

    One row times such a matrix is `torch.mv` over contiguous rows (`_times`), the fastest
    one-row product torch has on the CPU; over the checkpoint's layout mv reads about half as
    many GB/s in bf16 (`bench/moe.py` prints both). On a GPU the layout stays as loaded.
    """
    import torch

    for name in ("gate_up_proj", "down_proj"):
        weight = getattr(experts, name, None)
        if not isinstance(weight, torch.Tensor) or weight.dim() != 3:
            return
        if weight.device.type != "cpu" or weight.mT.is_contiguous():
            continue
        rows = weight.detach().mT.contiguous()
        setattr(experts, name, torch.nn.Parameter(rows.mT, requires_grad=False))


def _expert_rows(experts: Any) -> tuple[Any, Any] | None:
    """Fused experts' (gate|up [E, 2*inter, hidden], down [E, hidden, inter]) as contiguous
    rows (`_experts_as_rows`), or None for another layout."""
    import torch

    gate_up, down = getattr(experts, "gate_up_proj", None), getattr(experts, "down_proj", None)
    if not isinstance(gate_up, torch.Tensor) or not isinstance(down, torch.Tensor):
        return None
    if gate_up.dim() != 3 or not (gate_up.mT.is_contiguous() and down.mT.is_contiguous()):
        return None
    return gate_up.mT, down.mT


def _plain(linear: Any) -> bool:
    """A bias-free `nn.Linear` of ordinary (not quantized) weights."""
    import torch

    return type(linear) is torch.nn.Linear and linear.bias is None


def _fused_rows(owner: Any, names: tuple[str, ...]) -> Any:
    """The fused weight [sum of outs, in] of `owner`'s linears `names` when they are still
    views of it, in order (`fuse_projections`), else None."""
    fused = owner.__dict__.get(_FUSED)
    linears = [getattr(owner, name) for name in names]
    if fused is None or not all(_plain(linear) for linear in linears):
        return None
    first = 0
    for linear in linears:
        weight = linear.weight
        if weight.data_ptr() != fused[first:].data_ptr() or not weight.is_contiguous():
            return None  # the weights were replaced since
        first += weight.shape[0]
    return fused if first == fused.shape[0] else None


class DecodeStep:
    """Decode steps of one sequence from `position` on, over `cache` (see the module).

    Args:
        model: a `Llama4ForConditionalGeneration` or `Llama4ForCausalLM`.
        cache: a `llama4_kv.new_cache` cache holding exactly `position` tokens.
        position: the position of the first token fed (the prompt's last one).
        steps: the most tokens this decode feeds (`max_new_tokens`).
        device_experts: let MoE layers pick their expert on the device
            (`moe.device_expert_runner`) rather than read its index. None: on a GPU, where the
            read would be a synchronisation, and not on the CPU, where it is not one and torch's
            grouped GEMM is slower than one plain product.
    """

    def __init__(
        self, model: Any, cache: Any, position: int, steps: int, *,
        device_experts: bool | None = None,
    ) -> None:  # fmt: skip
        import torch

        from app.inference.llama4_kv import reserve
        from app.inference.llama4_prefill import text_model

        text = text_model(model)
        config = text.config
        self.start = position
        self.steps = steps
        self.chunk = int(config.attention_chunk_size)
        self._text = text
        self._head = model.get_output_embeddings()
        self._cache = cache
        self._fed = 0
        embed = text.embed_tokens.weight
        self.device, self.dtype = embed.device, embed.dtype
        self._device_experts = (
            self.device.type != "cpu" if device_experts is None else device_experts
        )
        self._heads = int(config.num_attention_heads)
        self._kv_heads = int(config.num_key_value_heads)
        self._head_dim = int(getattr(config, "head_dim", 0) or config.hidden_size // self._heads)
        reserve(cache, position + steps)
        positions = torch.arange(position, position + steps, device=self.device)
        # The rotary factors of every position reachable, exactly as the model computes them,
        # shaped to multiply [1, heads, 1, dim/2] queries and keys after `index_select`.
        freqs = text.rotary_emb(embed[:1], positions.unsqueeze(0))  # [1, steps, dim/2]
        self._freqs = freqs[0].view(steps, 1, 1, -1)
        scales = (
            torch.log1p(torch.floor((positions.float() + 1.0) / config.floor_scale))
            * config.attn_scale
            + 1.0
        )  # float32, as `Llama4TextAttention` computes them for a NoPE layer
        self._scales = scales.view(steps, 1, 1, 1)
        self._layers = [
            self._plan(layer, kind, cache.layers[index])
            for index, (layer, kind) in enumerate(zip(text.layers, config.layer_types, strict=True))
        ]
        self._slots = torch.arange(self.chunk, device=self.device).view(1, 1, 1, -1)
        capacity = max((p.keys.shape[-2] for p in self._layers if not p.chunked), default=0)
        self._places = torch.arange(capacity, device=self.device).view(1, 1, 1, -1)
        self._index = torch.zeros(1, dtype=torch.long, device=self.device)
        self._graph: Any = None

    # -- building -------------------------------------------------------------------------------

    def _plan(self, layer: Any, kind: str, cache_layer: Any) -> _Layer:
        attention = layer.self_attn
        chunked = kind == "chunked_attention"
        if chunked:
            keys, values = self._ring(cache_layer)
            packed = False
        else:
            keys, values = self._global_buffers(cache_layer)
            packed = bool(cache_layer.packed)
            # Masked slots must not hold NaN garbage: a zero weight times NaN is NaN.
            keys[:, :, self.start :].zero_()
            values[:, :, self.start :].zero_()
        moe = bool(layer.is_moe_layer)
        feed = layer.feed_forward
        on_host = on_device = None
        args = getattr(feed.__dict__.get("forward"), "args", None) if moe else None
        if args:  # the sparse MoE's partial: (module, on_host, on_device)
            on_host, on_device = args[1], args[2]
            if not self._device_experts:
                on_device = None
        shared = feed.shared_expert if moe else feed
        return _Layer(
            layer=layer, chunked=chunked, keys=keys, values=values, packed=packed,
            rope=bool(attention.use_rope), qk_norm=hasattr(attention, "qk_norm"),
            tuned=bool(attention.attn_temperature_tuning) and not attention.use_rope,
            qkv=_fused_rows(attention, ("q_proj", "k_proj", "v_proj")),
            out=_rows(attention.o_proj),
            router=_router_rows(feed.router, self.dtype) if moe else None,
            shared=_fused_rows(shared, ("gate_proj", "up_proj")),
            down=_rows(shared.down_proj),
            experts=_expert_rows(feed.experts) if on_host is not None else None,
            on_device=on_device, on_host=on_host,
        )  # fmt: skip

    def _ring(self, window_layer: Any) -> tuple[Any, Any]:
        """A zeroed ring of `chunk` slots holding the current chunk's keys before `start`."""
        import torch

        shape = (1, self._kv_heads, self.chunk, self._head_dim)
        keys = torch.zeros(shape, dtype=self.dtype, device=self.device)
        values = torch.zeros(shape, dtype=self.dtype, device=self.device)
        filled = self.start % self.chunk  # the chunk's tokens before `start`
        if filled:
            # The window ends at `start`: its last `filled` keys are the chunk's first ones.
            keys[:, :, :filled] = window_layer.keys[:, :, -filled:]
            values[:, :, :filled] = window_layer.values[:, :, -filled:]
        return keys, values

    def _global_buffers(self, global_layer: Any) -> tuple[Any, Any]:
        """The global layer's reserved buffers (made here when the prefill wrote nothing)."""
        import torch

        from app.inference.llama4_kv import SCALE_BYTES

        keys, values = global_layer.buffers()
        if keys is None:
            width = self._head_dim + (SCALE_BYTES if global_layer.packed else 0)
            dtype = torch.int8 if global_layer.packed else self.dtype
            shape = (1, self._kv_heads, self.start + self.steps, width)
            keys = torch.zeros(shape, dtype=dtype, device=self.device)
            values = torch.zeros(shape, dtype=dtype, device=self.device)
            global_layer.adopt(keys, values, self.dtype, self.device)
        return keys, values

    # -- running --------------------------------------------------------------------------------

    def __call__(self, token: Any, index: int) -> Any:
        """Feed `token` (one id, any shape) at position `start + index`; the next-token logits
        [vocab].

        Steps run in order, each index once: `index` is how many tokens were fed before. The
        captured graph runs it when there is one (`capture`), else `forward`.
        """
        if not 0 <= index < self.steps:
            raise IndexError(f"decode step {index} is outside the {self.steps} reserved")
        if self._graph is not None:
            graph, token_in, index_in, logits = self._graph
            token_in.copy_(token.view(1))
            index_in.fill_(index)
            graph.replay()
        else:
            self._index.fill_(index)
            logits = self.forward(token.view(1), self._index, self.start + index)
        self._fed = index + 1
        return logits

    def forward(self, token: Any, index: Any, position: int | None = None) -> Any:
        """One step; `token` and `index` are [1] long tensors on the device.

        Args:
            token: the id fed.
            index: how many tokens this decode fed before it (selects the position).
            position: the same position (`start + index`) known on the host: attention reads
                the filled slots only, a slice each (the eager step, whose answers do not
                depend on how much room was reserved). None: the static step, whose shapes are
                the same at every step (what a CUDA graph holds): attention reads whole buffers
                under masks made on the device from `index`; a reserved slot adds a masked key,
                which can change the last bit of bf16 sums.

        Returns:
            The next-token logits [vocab].
        """
        where = index + self.start
        slot = where.remainder(self.chunk)
        masks = None
        if position is None:
            masks = (self._slots <= slot, self._places <= where)  # [1, 1, 1, slots] each
        freqs = self._freqs.index_select(0, index)  # [1, 1, 1, dim/2]
        scale = self._scales.index_select(0, index)  # [1, 1, 1, 1]
        hidden = self._text.embed_tokens(token)[0]  # [hidden]: one token is a vector here
        for plan in self._layers:
            if plan.chunked:
                seen = None if position is None else position % self.chunk + 1
                hidden = self._layer(plan, hidden, freqs, scale, slot, masks and masks[0], seen)
            else:
                seen = None if position is None else position + 1
                hidden = self._layer(plan, hidden, freqs, scale, where, masks and masks[1], seen)
        hidden = _rms_norm(self._text.norm, hidden)
        return _call(self._head, hidden)  # the module: its hooks (and quantized kernels) run

    def _layer(
        self, plan: _Layer, hidden: Any, freqs: Any, scale: Any, where: Any, mask: Any,
        seen: int | None,
    ) -> Any:  # fmt: skip
        """One decoder layer for one token: [hidden] in, [hidden] out.

        `where` is the slot written ([1] on the device); `seen` how many slots attention reads
        (None: all of them, under `mask`).
        """
        import torch

        from app.inference.llama4_attention import DIRECT_MAX_KEYS, attention_forward

        layer = plan.layer
        attention = layer.self_attn
        query, key, value = self._qkv(plan, _rms_norm(layer.input_layernorm, hidden), freqs, scale)
        if plan.packed:
            from app.inference.llama4_kv import pack_int8

            key, value = pack_int8(key), pack_int8(value)
        plan.keys.index_copy_(2, where, key)
        plan.values.index_copy_(2, where, value)
        keys, values = plan.keys, plan.values
        if seen is not None:
            keys, values = keys[:, :, :seen], values[:, :, :seen]
        if not plan.packed and keys.shape[-2] <= DIRECT_MAX_KEYS:
            attended = torch.nn.functional.scaled_dot_product_attention(
                query, keys, values, attn_mask=mask, scale=attention.scaling, enable_gqa=True
            ).reshape(-1)
        else:  # one key/value head at a time, int8 unpacked a head at a time
            attended, _ = attention_forward(
                attention, query, keys, values, mask, scaling=attention.scaling
            )
            attended = attended.reshape(-1)
        projected = (
            _call(attention.o_proj, attended) if plan.out is None else _times(attended, plan.out)
        )
        return self._feed_forward(plan, hidden + projected)

    def _qkv(self, plan: _Layer, normed: Any, freqs: Any, scale: Any) -> tuple[Any, Any, Any]:
        """Queries [1, heads, 1, dim], keys and values [1, kv_heads, 1, dim] of one token, with
        rotary factors, the queries' and keys' L2 norm and the temperature as the model has them."""
        import torch

        attention = plan.layer.self_attn
        heads, kv_heads, dim = self._heads, self._kv_heads, self._head_dim
        if plan.qkv is not None:  # one product; for one token [1, h, 1, d] is [1, 1, h, d]
            qkv = _times(normed, plan.qkv).view(1, heads + 2 * kv_heads, 1, dim)
            qk, value = qkv.split((heads + kv_heads, kv_heads), dim=1)
        else:
            qk = normed.new_empty((1, heads + kv_heads, 1, dim))
            qk[:, :heads] = _call(attention.q_proj, normed).view(1, heads, 1, dim)
            qk[:, heads:] = _call(attention.k_proj, normed).view(1, kv_heads, 1, dim)
            value = _call(attention.v_proj, normed).view(1, kv_heads, 1, dim)
        if plan.rope:  # `apply_rotary_emb` on queries and keys at once: the same per element
            pairs = torch.view_as_complex(_to_float(qk).reshape(1, heads + kv_heads, 1, -1, 2))
            qk = _as(torch.view_as_real(pairs * freqs).flatten(3), qk.dtype)
        if plan.qk_norm:  # `Llama4TextL2Norm` (an RMS norm without weight), both at once
            qk = _rms(qk, attention.qk_norm.eps)
        query, key = qk.split((heads, kv_heads), dim=1)
        if plan.tuned:
            query = _as(query * scale, query.dtype)
        return query, key, value

    def _feed_forward(self, plan: _Layer, hidden: Any) -> Any:
        """The post-attention norm, the MoE (or MLP) and the residual: [hidden] out."""
        import torch

        layer = plan.layer
        feed = layer.feed_forward
        normed = _rms_norm(layer.post_attention_layernorm, hidden)
        if plan.router is None or (plan.on_device is None and plan.on_host is None):
            out = feed(normed.unsqueeze(0))  # a dense MLP, the stock MoE or an unknown router
            return hidden + (out[0] if isinstance(out, tuple) else out).view(hidden.shape)
        # The sparse MoE of one token (`moe.sparse_moe_forward`, top-1): route, scale the input
        # by the gate, run the chosen expert (picked on the device, or by its index read here)
        # and the shared one.
        top, expert = _times(normed, plan.router).topk(1)  # [1] each
        # The sigmoid of a float32 copy rounded back, as stock computes it, has the same bits:
        # a CPU test compares every bf16 value (`tests/inference/test_decode_step.py`).
        scaled = normed * torch.sigmoid(top)
        if plan.on_device is not None:
            routed = plan.on_device(expert, scaled.unsqueeze(0)).view(-1)
        elif plan.experts is not None:  # `moe.expert_runner`'s fused expert, as rows
            gate_up, down = plan.experts
            chosen = int(expert)
            gate_in, up = _times(scaled, gate_up[chosen]).chunk(2)
            routed = _times(up * feed.experts.act_fn(gate_in), down[chosen])
        else:
            routed = _call(functools.partial(plan.on_host, int(expert)), scaled)
        shared = feed.shared_expert
        if plan.shared is not None:  # gate and up in one product
            gate_in, up = _times(normed, plan.shared).chunk(2)
            activated = shared.activation_fn(gate_in) * up
            out = (
                _call(shared.down_proj, activated)
                if plan.down is None
                else _times(activated, plan.down)
            )
        else:
            out = _call(shared, normed)
        # In stock's order (and so its rounding): the routed output onto the shared one, then
        # the residual.
        return hidden + out.add_(routed)

    # -- CUDA graphs ----------------------------------------------------------------------------

    @property
    def capturable(self) -> bool:
        """Whether `forward` reads nothing on the host: every MoE layer picks its expert on the
        device (fused experts, and per-expert NF4 on CUDA: `moe.device_expert_runner`)."""
        return all(plan.on_device is not None for plan in self._layers if plan.layer.is_moe_layer)

    def capture(self) -> bool:
        """Record `forward` as a CUDA graph (CUDA only); False where it cannot be.

        After this, calls replay the graph.
        """
        import torch

        if self.device.type != "cuda" or not self.capturable:
            return False
        token = torch.zeros(1, dtype=torch.long, device=self.device)
        index = torch.full((1,), self._fed, dtype=torch.long, device=self.device)
        # Warm up on a side stream (allocator, library handles), as torch's docs ask. It writes
        # the slot of the next step, which that step writes again before anything reads it.
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            self.forward(token, index)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            logits = self.forward(token, index)
        self._graph = (graph, token, index, logits)
        return True

    def release_graph(self) -> None:
        """Forget the captured graph: steps run `forward` again."""
        self._graph = None

    # -- the end --------------------------------------------------------------------------------

    def finish(self) -> None:
        """Make the cache's global layers hold the tokens fed (prompt and answer); drop the rings.

        Safe after an error: only whole steps are counted.
        """
        for plan, cache_layer in zip(self._layers, self._cache.layers, strict=True):
            if not plan.chunked:
                cache_layer.advance(self.start + self._fed)
        self._layers = []
        self._graph = None


def _router_rows(router: Any, dtype: Any) -> Any:
    """The router's weight, when it is transformers' own bias-free `Llama4Router` in the
    activations' dtype (a quantized or unknown router is called as a module)."""
    known = type(router).__name__ == "Llama4Router" and router.bias is None
    return router.weight if known and router.weight.dtype == dtype else None


def _rows(linear: Any) -> Any:
    """A plain linear's weight [out, in] (None for a quantized one: its module is called)."""
    return linear.weight if _plain(linear) else None


def _times(vector: Any, weight: Any) -> Any:
    """`weight` [out, in] times `vector` [in]: [out], what `nn.Linear` computes for one row.

    `torch.mv`: on the CPU it gives the matrix product's bits
    (`tests/inference/test_decode_step.py`) and, in bf16, 1.3-1.5x the GB/s of torch's CPU
    product of a [1, in] row (`F.linear`, `mm`; `bench/moe.py` prints both). One op, where a
    [1, in] row would add two views.
    """
    import torch

    return torch.mv(weight, vector)


def _call(module: Any, vector: Any) -> Any:
    """`module` (any callable of [rows, in]: quantized linears, hooks) on one vector: [out]."""
    return module(vector.unsqueeze(0))[0]


def _to_float(tensor: Any) -> Any:
    """`tensor` in float32 (itself when it already is: no op dispatched)."""
    import torch

    return _as(tensor, torch.float32)


def _as(tensor: Any, dtype: Any) -> Any:
    """`tensor.to(dtype)`, without dispatching an op when it already has that dtype."""
    return tensor if tensor.dtype == dtype else tensor.to(dtype)


def _rms_norm(norm: Any, hidden: Any) -> Any:
    """`Llama4TextRMSNorm`: normalised (in float32), rounded to `hidden`'s dtype, then
    multiplied by the weight, as the module rounds."""
    return _rms(hidden, norm.eps) * norm.weight


def _rms(tensor: Any, eps: float) -> Any:
    """`tensor * rsqrt(mean(tensor², last dim) + eps)` computed in float32, in `tensor`'s dtype.

    One op (`aten._fused_rms_norm`, which torch has on the CPU and CUDA since 2.8, and which
    computes a bf16 input in float32) instead of seven; torch builds without it get the formula
    spelled out. On the CPU the fused op gives the spelled-out formula's bits, for float32 and
    for bf16 rounded once at the end (`tests/inference/test_decode_step.py`).
    """
    import torch

    fused = getattr(torch.ops.aten, "_fused_rms_norm", None)
    if fused is not None:
        return fused(tensor, [tensor.shape[-1]], None, eps)[0]
    wide = _to_float(tensor)
    return _as(wide * torch.rsqrt(wide.pow(2).mean(-1, keepdim=True) + eps), tensor.dtype)

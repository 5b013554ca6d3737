"""A static (pre-allocated) KV cache and a compiled one-token decoding step (chapter 18).

The KV cache of chapter 13 (:class:`~transformer.attention.KVCache`) grows by ``torch.cat`` at
every step: each step has new shapes, so ``torch.compile`` would see a new graph per step. As
gpt-fast does, :class:`StaticKVCache` allocates the keys and values of all ``max_len``
positions once and writes step ``t``'s key and value into slot ``t`` (``index_copy_``);
attention runs over all ``max_len`` slots with a mask that allows only the slots written so
far. Every decoding step then has the same shapes, and the step (embedding, every block,
the output projection and the greedy pick) is compiled once into one graph.

:class:`CompiledDecoder` does greedy decoding of a
:class:`~transformer.model.DecoderOnlyTransformer` this way; it gives the same tokens as
``greedy_decode(model, prompts, max_new_tokens=n)`` (the tests check it). It supports
sinusoidal and learned positions, pre- and post-LN, every norm and activation, grouped-query
attention; it refuses RoPE (whose rotation takes its offset as a Python integer, a new graph
per step) and models that are not a ``DecoderOnlyTransformer``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transformer.attention import MultiHeadAttention
from transformer.embeddings import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from transformer.model import DecoderOnlyTransformer

__all__ = ["CompiledDecoder", "StaticKVCache"]


# --8<-- [start:static_cache]
class StaticKVCache(nn.Module):
    """Keys and values of ``max_len`` positions, allocated once: ``(batch, heads, max_len,
    d_head)`` each. :meth:`update` writes the new positions in place and returns the whole
    buffers, so every decoding step sees tensors of the same shapes.

    Args:
        batch: rows decoded together.
        heads: key/value heads (``n_kv_heads`` under grouped-query attention).
        max_len: positions the cache holds (prompt + new tokens).
        d_head: width of one head.
        dtype, device: of the buffers.
    """

    def __init__(self, batch: int, heads: int, max_len: int, d_head: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
                 ) -> None:
        super().__init__()
        shape = (batch, heads, max_len, d_head)
        self.register_buffer("key", torch.zeros(shape, dtype=dtype, device=device),
                             persistent=False)
        self.register_buffer("value", torch.zeros(shape, dtype=dtype, device=device),
                             persistent=False)

    def update(self, positions: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
        """Write ``key``/``value`` ``(batch, heads, new, d_head)`` at ``positions`` ``(new,)``;
        return all ``max_len`` slots ``(batch, heads, max_len, d_head)``."""
        self.key.index_copy_(2, positions, key)  # slot positions[i] <- key[:, :, i]
        self.value.index_copy_(2, positions, value)
        return self.key, self.value
# --8<-- [end:static_cache]


# --8<-- [start:static_attention]
def _attend(attn: MultiHeadAttention, x: Tensor, cache: StaticKVCache, positions: Tensor,
            mask: Tensor) -> Tensor:
    """Self-attention of ``x`` ``(B, new, d_model)`` at ``positions`` over the static cache;
    ``mask`` ``(new, max_len)`` allows slot ``j`` to the query at position ``p`` iff ``j <= p``."""
    q, k, v = (attn._split_heads(t) for t in attn._project(x, x, x))  # (B, h or h_kv, new, d_h)
    k, v = cache.update(positions, k, v)  # (B, h_kv, max_len, d_head): every slot
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=attn.grouped)
    out = out.transpose(1, 2).reshape(x.shape[0], -1, attn.d_model)  # (B, new, d_model)
    return attn.w_o(out)


def _decode_positions(model: DecoderOnlyTransformer, caches: list[StaticKVCache],
                      tokens: Tensor, positions: Tensor) -> Tensor:
    """Logits ``(B, new, vocab)`` of ``tokens`` ``(B, new)`` at ``positions`` ``(new,)``, their
    keys and values written into ``caches``: the model's forward pass over a static cache."""
    slots = torch.arange(caches[0].key.shape[2], device=tokens.device)  # (max_len,)
    mask = slots[None, :] <= positions[:, None]  # (new, max_len): no future, no empty slot
    x = model.embed(tokens) + _position_vectors(model, positions)  # (B, new, d_model)
    for layer, cache in zip(model.layers, caches, strict=True):
        x = layer.sublayer1(x, lambda y, a=layer.self_attn, c=cache: _attend(a, y, c, positions,
                                                                             mask))
        x = layer.sublayer2(x, layer.feed_forward)  # (B, new, d_model)
    return model.generator(model.norm(x))  # (B, new, vocab)


def _greedy_step(model: DecoderOnlyTransformer, caches: list[StaticKVCache], tokens: Tensor,
                 positions: Tensor) -> Tensor:
    """The step that is compiled: feed ``tokens`` ``(B, new)``, return the most probable next
    token of each row ``(B,)`` (never ``pad_id``, as in greedy_decode)."""
    logits = _decode_positions(model, caches, tokens, positions)[:, -1]  # (B, vocab)
    return logits.float().index_fill(-1, _pad_index(model, logits), float("-inf")).argmax(-1)
# --8<-- [end:static_attention]


def _pad_index(model: DecoderOnlyTransformer, logits: Tensor) -> Tensor:
    return torch.tensor([model.config.pad_id], device=logits.device)


def _position_vectors(model: DecoderOnlyTransformer, positions: Tensor) -> Tensor:
    """The positional vectors ``(new, d_model)`` of ``positions`` ``(new,)``."""
    if isinstance(model.positions, SinusoidalPositionalEncoding):
        table: Tensor = model.positions.table  # type: ignore[assignment]
        return table[positions]
    assert isinstance(model.positions, LearnedPositionalEmbedding)
    return model.positions.embedding(positions)


def _check_model(model: object) -> DecoderOnlyTransformer:
    if not isinstance(model, DecoderOnlyTransformer):
        raise TypeError(f"model must be a DecoderOnlyTransformer, got {type(model).__name__}")
    cfg = model.config
    if cfg.positional not in ("sinusoidal", "learned"):
        raise ValueError(f"CompiledDecoder supports positional='sinusoidal' or 'learned', got "
                         f"positional={cfg.positional!r} (RoPE rotates by a Python offset, "
                         "a new graph per step; decode it with greedy_decode)")
    return model


# --8<-- [start:compiled_decoder]
class CompiledDecoder:
    """Greedy decoding of a :class:`~transformer.model.DecoderOnlyTransformer` with a static
    KV cache and, with ``compile=True``, the one-token step compiled by ``torch.compile``.

    The prompt (prefill) runs through the same function, uncompiled; each new token then costs
    one call of the compiled step, whose shapes never change. The model is put in eval mode.
    Each decoder compiles the step for its own model and cache sizes; ``torch._dynamo`` keeps
    a bounded number of such graphs per process (``torch._dynamo.config.recompile_limit``)
    and runs the step eagerly beyond it.

    Args:
        model: the model to decode with (its weights are used, not copied).
        batch: rows decoded together (the prompts' batch size).
        max_len: positions of the cache, prompt + new tokens; default ``config.max_len``.
        compile: compile the one-token step (``False``: the same code, eager).
        compile_options: keyword arguments of ``torch.compile`` (default ``fullgraph=True``).

    Raises:
        TypeError: ``model`` is not a ``DecoderOnlyTransformer``.
        ValueError: RoPE positions, or ``batch``/``max_len`` not integers in range
            (``1 <= max_len <= config.max_len``).
    """

    def __init__(self, model: DecoderOnlyTransformer, batch: int = 1, max_len: int | None = None,
                 *, compile: bool = True, compile_options: dict | None = None) -> None:
        self.model = _check_model(model).eval()
        cfg = model.config
        max_len = cfg.max_len if max_len is None else max_len
        for name, value, top in (("batch", batch, None), ("max_len", max_len, cfg.max_len)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1 or \
                    (top is not None and value > top):
                bound = f" and <= config.max_len={top}" if top is not None else ""
                raise ValueError(f"{name} must be an integer >= 1{bound}, got {value!r}")
        self.batch, self.max_len = batch, max_len
        weight = model.generator.weight
        first = model.layers[0].self_attn
        self.caches = [StaticKVCache(batch, first.n_kv_heads, max_len, first.d_head,
                                     weight.dtype, weight.device) for _ in model.layers]
        step: Callable[..., Tensor] = _greedy_step
        if compile:
            step = torch.compile(_greedy_step, **(compile_options or {"fullgraph": True}))
        self._step = step

    @torch.no_grad()
    def generate(self, prompts: Tensor, max_new_tokens: int) -> Tensor:
        """Greedy continuation of ``prompts`` ``(batch, prompt_len)``: ``(batch,
        max_new_tokens)`` new ids, as ``greedy_decode(model, prompts, max_new_tokens=...)``.

        Raises:
            ValueError: ``prompts`` not ``(batch, prompt_len)`` long ids of this decoder's batch,
                holding ``pad_id``, or ``prompt_len + max_new_tokens - 1 > max_len``.
        """
        self._check_prompts(prompts, max_new_tokens)
        device = self.caches[0].key.device
        prompt_len = prompts.shape[1]
        positions = torch.arange(prompt_len, device=device)  # (prompt_len,): the prefill
        out = torch.empty(self.batch, max_new_tokens, dtype=torch.long, device=device)
        token = _greedy_step(self.model, self.caches, prompts.to(device), positions)  # (B,)
        out[:, 0] = token
        position = torch.tensor([prompt_len], device=device)  # a tensor: one graph for all steps
        for i in range(1, max_new_tokens):  # one token per step
            token = self._step(self.model, self.caches, token[:, None], position)  # (B,)
            out[:, i] = token
            position += 1
        return out  # (batch, max_new_tokens)
    # --8<-- [end:compiled_decoder]

    def _check_prompts(self, prompts: Tensor, max_new_tokens: int) -> None:
        if not isinstance(prompts, Tensor) or prompts.dim() != 2 or \
                prompts.dtype != torch.long or prompts.shape[0] != self.batch or \
                prompts.shape[1] < 1:
            got = (f"{tuple(prompts.shape)} {prompts.dtype}" if isinstance(prompts, Tensor)
                   else type(prompts).__name__)
            raise ValueError(f"prompts must be (batch={self.batch}, prompt_len >= 1) torch.long "
                             f"ids, got {got}")
        if bool((prompts == self.model.config.pad_id).any()):
            raise ValueError(f"prompts must not hold pad_id={self.model.config.pad_id}")
        if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or \
                max_new_tokens < 1 or prompts.shape[1] + max_new_tokens - 1 > self.max_len:
            raise ValueError(f"max_new_tokens must be an integer in [1, max_len - prompt_len + 1"
                             f" = {self.max_len - prompts.shape[1] + 1}], got {max_new_tokens!r}")

"""The encoder-decoder Transformer (§3, Figure 1) and a decoder-only (GPT-style) model.

``TransformerConfig`` holds every switch; its defaults reproduce the paper's base model
(post-LN, ReLU, sinusoidal positions, dropout 0.1, tied embeddings scaled by sqrt(d_model)).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from torch import Tensor, nn

from transformer.attention import KVCache
from transformer.embeddings import (
    LearnedPositionalEmbedding,
    SinusoidalPositionalEncoding,
    TokenEmbedding,
)
from transformer.layers import ACTIVATIONS, DecoderLayer, DecoderLayerCache, EncoderLayer
from transformer.masks import decoder_mask, padding_mask

__all__ = [
    "Decoder",
    "DecoderOnlyTransformer",
    "Encoder",
    "Transformer",
    "TransformerConfig",
    "count_parameters",
]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # True is an int in Python


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


def _require(name: str, value: Any, expected: str, of_type: Callable[[Any], bool],
             in_range: Callable[[Any], bool] = lambda v: True) -> None:
    """Raise ``ValueError("NAME must be EXPECTED, got VALUE (TYPE)")`` unless ``value`` fits."""
    if not (of_type(value) and in_range(value)):
        raise ValueError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})")


# --8<-- [start:config]
@dataclass
class TransformerConfig:
    """Every hyper-parameter of the model. Names follow the paper (Table 3).

    Attributes:
        vocab_size: source vocabulary (shared with the target when ``tgt_vocab_size`` is None;
            the paper's EN-DE model shares "about 37000 tokens").
        tgt_vocab_size: target vocabulary, if different (then embeddings cannot be tied).
        d_model: width of every sublayer output and embedding (512).
        n_heads: attention heads ``h`` (8).
        d_ff: inner width of the feed-forward network (2048).
        n_layers: ``N``, layers in the encoder and in the decoder (6).
        dropout: ``P_drop`` (0.1).
        activation: ``"relu"`` (paper) or ``"gelu"``.
        norm_first: pre-LN (``True``) instead of the paper's post-LN.
        final_norm: a LayerNorm after the last layer of each stack; ``None`` means "only with
            pre-LN" (the paper's post-LN stack needs none; ``torch.nn.Transformer`` always has one).
        positional: ``"sinusoidal"`` (paper) or ``"learned"``.
        max_len: longest sequence the positional table covers.
        tie_embeddings: share source/target embeddings and the pre-softmax matrix (§3.4).
        pad_id: padding token id, masked out of attention.
        layer_norm_eps: epsilon of every LayerNorm.
        bias: biases in the linear layers. The paper's attention projections have none
            (its eq. 2 has b_1, b_2); the default follows PyTorch and The Annotated
            Transformer.
        fused_qkv: store the Q/K/V projections as one matrix (faster self-attention).
    """

    vocab_size: int = 37000
    tgt_vocab_size: int | None = None
    d_model: int = 512
    n_heads: int = 8
    d_ff: int = 2048
    n_layers: int = 6
    dropout: float = 0.1
    activation: str = "relu"
    norm_first: bool = False
    final_norm: bool | None = None
    positional: str = "sinusoidal"
    max_len: int = 5000
    tie_embeddings: bool = True
    pad_id: int = 0
    layer_norm_eps: float = 1e-5
    bias: bool = True
    fused_qkv: bool = False
# --8<-- [end:config]

    def __post_init__(self) -> None:
        """Check every field's type and range; errors name the field, what it must be and
        what it got."""
        for name in ("vocab_size", "d_model", "n_heads", "d_ff", "n_layers", "max_len"):
            _require(name, getattr(self, name), "a positive integer", _is_int,
                     lambda v: v > 0)
        _require("tgt_vocab_size", self.tgt_vocab_size, "None or a positive integer",
                 lambda v: v is None or _is_int(v), lambda v: v is None or v > 0)
        _require("dropout", self.dropout, "a number in [0, 1)", _is_number,
                 lambda v: 0.0 <= v < 1.0)
        _require("activation", self.activation, f"one of {sorted(ACTIVATIONS)}",
                 lambda v: isinstance(v, str), lambda v: v in ACTIVATIONS)
        _require("positional", self.positional, "'sinusoidal' or 'learned'",
                 lambda v: isinstance(v, str), lambda v: v in ("sinusoidal", "learned"))
        for name in ("norm_first", "tie_embeddings", "bias", "fused_qkv"):
            _require(name, getattr(self, name), "True or False", _is_bool)
        _require("final_norm", self.final_norm, "None, True or False",
                 lambda v: v is None or _is_bool(v))
        _require("layer_norm_eps", self.layer_norm_eps, "a finite number > 0", _is_number,
                 lambda v: math.isfinite(v) and v > 0)
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads "
                             f"({self.n_heads})")
        if self.positional == "sinusoidal" and self.d_model % 2 != 0:
            raise ValueError(f"d_model must be even for sinusoidal positions, got "
                             f"{self.d_model}")
        if self.tie_embeddings and self.tgt_vocab_size not in (None, self.vocab_size):
            raise ValueError("tie_embeddings needs one shared vocabulary: tgt_vocab_size "
                             f"({self.tgt_vocab_size}) != vocab_size ({self.vocab_size})")
        shared = min(self.vocab_size, self.target_vocab_size)
        _require("pad_id", self.pad_id,
                 f"an integer token id of both vocabularies, in [0, {shared})", _is_int,
                 lambda v: 0 <= v < shared)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TransformerConfig:
        """Rebuild a config from :meth:`to_dict`'s output, e.g. read back from a checkpoint.

        Fields that ``data`` leaves out take their defaults.

        Raises:
            ValueError: if ``data`` is not a dict, has a key that is not a field, or holds a
                value of the wrong type or range (the message names the field).
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a TransformerConfig is read from a dict of field values, got "
                             f"{type(data).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(repr(k) for k in data if k not in known)
        if unknown:
            raise ValueError(f"unknown TransformerConfig field(s) {', '.join(unknown)}; the "
                             f"fields are {known}")
        return cls(**data)

    @property
    def target_vocab_size(self) -> int:
        """The target vocabulary size (``vocab_size`` when shared)."""
        return self.vocab_size if self.tgt_vocab_size is None else self.tgt_vocab_size

    @property
    def use_final_norm(self) -> bool:
        """Whether each stack ends with a LayerNorm."""
        return self.norm_first if self.final_norm is None else self.final_norm

    def replace(self, **changes: Any) -> TransformerConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary, e.g. for saving next to a checkpoint."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    # --8<-- [start:presets]
    @classmethod
    def paper_base(cls, vocab_size: int = 37000, **changes: Any) -> TransformerConfig:
        """Table 3, "base": N=6, d_model=512, d_ff=2048, h=8, P_drop=0.1 (65M parameters)."""
        settings: dict[str, Any] = dict(d_model=512, d_ff=2048, n_heads=8, n_layers=6,
                                        dropout=0.1)
        settings.update(changes)  # e.g. paper_base(n_layers=2)
        return cls(vocab_size=vocab_size, **settings)

    @classmethod
    def paper_big(cls, vocab_size: int = 37000, **changes: Any) -> TransformerConfig:
        """Table 3, "big": N=6, d_model=1024, d_ff=4096, h=16, P_drop=0.3 (213M parameters)."""
        settings: dict[str, Any] = dict(d_model=1024, d_ff=4096, n_heads=16, n_layers=6,
                                        dropout=0.3)
        settings.update(changes)
        return cls(vocab_size=vocab_size, **settings)

    @classmethod
    def tiny(cls, vocab_size: int = 16, **changes: Any) -> TransformerConfig:
        """A model small enough to train in seconds on a CPU (tests and examples)."""
        settings: dict[str, Any] = dict(d_model=32, d_ff=64, n_heads=4, n_layers=2,
                                        dropout=0.0, max_len=256)
        settings.update(changes)
        return cls(vocab_size=vocab_size, **settings)
    # --8<-- [end:presets]


def _positions(cfg: TransformerConfig) -> nn.Module:
    if cfg.positional == "learned":
        return LearnedPositionalEmbedding(cfg.d_model, cfg.max_len)
    return SinusoidalPositionalEncoding(cfg.d_model, cfg.max_len)


def _layer_kwargs(cfg: TransformerConfig) -> dict[str, Any]:
    return dict(d_model=cfg.d_model, n_heads=cfg.n_heads, d_ff=cfg.d_ff, dropout=cfg.dropout,
                activation=cfg.activation, norm_first=cfg.norm_first, eps=cfg.layer_norm_eps,
                bias=cfg.bias, fused_qkv=cfg.fused_qkv)


def _final_norm(cfg: TransformerConfig) -> nn.Module:
    return nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps) if cfg.use_final_norm \
        else nn.Identity()


def _init_weights(model: nn.Module) -> None:
    """Xavier-uniform for every matrix, as The Annotated Transformer and ``nn.Transformer`` do."""
    for p in model.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)


def _check_ids(name: str, ids: Tensor) -> None:
    """Token ids must be ``(batch, seq)`` with at least one sequence of at least one token."""
    if not isinstance(ids, Tensor):
        raise TypeError(f"{name} must be a (batch, seq) tensor of token ids, got "
                        f"{type(ids).__name__}")
    if ids.dim() != 2:
        raise ValueError(f"{name} must have shape (batch, seq), got {tuple(ids.shape)}")
    if ids.shape[0] == 0 or ids.shape[1] == 0:
        raise ValueError(f"{name} must have shape (batch, seq) with batch >= 1 and seq >= 1, "
                         f"got {tuple(ids.shape)}")


def _check_memory(memory: Tensor, d_model: int) -> None:
    if not isinstance(memory, Tensor) or memory.dim() != 3 or memory.shape[-1] != d_model:
        got = tuple(memory.shape) if isinstance(memory, Tensor) else type(memory).__name__
        raise ValueError(f"memory must have shape (batch, src_len, d_model={d_model}), got {got}")
    if memory.shape[1] == 0:
        raise ValueError(f"memory must have src_len >= 1, got shape {tuple(memory.shape)}")


def _check_batch(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{name_a} and {name_b} must have the same batch size, got "
                         f"{a.shape[0]} and {b.shape[0]}")


# --8<-- [start:encoder]
class Encoder(nn.Module):
    """A stack of ``N`` identical :class:`~transformer.layers.EncoderLayer` (§3.1)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(**_layer_kwargs(cfg)) for _ in range(cfg.n_layers))
        self.norm = _final_norm(cfg)

    def forward(self, x: Tensor, *, src_mask: Tensor | None = None) -> Tensor:
        """``x``: embedded source ``(batch, src_len, d_model)``; ``src_mask``: e.g. the
        padding mask ``(batch, 1, 1, src_len)``. Returns the "memory" ``(batch, src_len,
        d_model)``."""
        for layer in self.layers:
            x = layer(x, src_mask=src_mask)
        return self.norm(x)
# --8<-- [end:encoder]


# --8<-- [start:decoder]
class Decoder(nn.Module):
    """A stack of ``N`` identical :class:`~transformer.layers.DecoderLayer` (§3.1)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(**_layer_kwargs(cfg)) for _ in range(cfg.n_layers))
        self.norm = _final_norm(cfg)

    def forward(self, x: Tensor, memory: Tensor, *, tgt_mask: Tensor | None = None,
                memory_mask: Tensor | None = None,
                cache: list[DecoderLayerCache] | None = None) -> Tensor:
        """``x``: embedded target ``(batch, tgt_len, d_model)``; ``memory``: encoder output
        ``(batch, src_len, d_model)``; ``tgt_mask`` for self-attention, ``memory_mask`` for
        cross-attention. Returns ``(batch, tgt_len, d_model)``."""
        for i, layer in enumerate(self.layers):
            x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                      cache=None if cache is None else cache[i])
        return self.norm(x)
# --8<-- [end:decoder]


# --8<-- [start:transformer]
class Transformer(nn.Module):
    """The encoder-decoder model of Figure 1.

    ``forward(src, tgt)`` returns logits ``(batch, tgt_len, target_vocab_size)``; the softmax
    of Figure 1 is left to the loss (or to decoding). With ``tie_embeddings`` the source
    embedding, target embedding and pre-softmax projection are one matrix (§3.4).

    Masks are keyword arguments, one per kind of attention: ``src_mask`` (encoder
    self-attention), ``tgt_mask`` (decoder self-attention), ``memory_mask`` (cross-attention).
    """

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.config = cfg
        self.src_embed = TokenEmbedding(cfg.vocab_size, cfg.d_model)
        self.tgt_embed = self.src_embed if cfg.tie_embeddings else \
            TokenEmbedding(cfg.target_vocab_size, cfg.d_model)
        self.positions = _positions(cfg)
        self.dropout = nn.Dropout(cfg.dropout)  # §5.4: on the sums of embeddings and positions
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.generator = nn.Linear(cfg.d_model, cfg.target_vocab_size, bias=False)
        _init_weights(self)
        if cfg.tie_embeddings:
            self.generator.weight = self.tgt_embed.weight  # one matrix, three uses

    def encode(self, src: Tensor, *, src_mask: Tensor | None = None) -> Tensor:
        """Source ids ``(batch, src_len)`` → memory ``(batch, src_len, d_model)``.

        ``src_mask`` defaults to the source's padding mask ``(batch, 1, 1, src_len)``.

        Raises:
            ValueError: if ``src`` is not ``(batch, src_len)`` with both at least 1, or a
                token id, position or mask shape is out of range.
            TypeError: if ``src`` does not hold integer ids or the mask is not boolean.
        """
        _check_ids("src", src)
        if src_mask is None:
            src_mask = padding_mask(src, self.config.pad_id)  # (batch, 1, 1, src_len)
        x = self.dropout(self.positions(self.src_embed(src)))  # (batch, src_len, d_model)
        return self.encoder(x, src_mask=src_mask)

    def decode(self, tgt: Tensor, memory: Tensor, *, tgt_mask: Tensor | None = None,
               memory_mask: Tensor | None = None,
               cache: list[DecoderLayerCache] | None = None) -> Tensor:
        """Target ids ``(batch, tgt_len)`` and memory → logits ``(batch, tgt_len, vocab)``.

        ``tgt_mask`` defaults to :func:`~transformer.masks.decoder_mask` (future and padding
        hidden); ``memory_mask`` defaults to none: pass the source's padding mask to hide it.
        With a cache (:meth:`new_cache`), ``tgt`` holds only the new positions; they follow
        the cached ones.

        Raises:
            ValueError: if ``tgt`` is not ``(batch, tgt_len)`` with both at least 1,
                ``memory`` is not ``(batch, src_len, d_model)``, they differ in batch size, or
                a token id, position or mask shape is out of range.
            TypeError: if ``tgt`` does not hold integer ids or a mask is not boolean.
        """
        _check_ids("tgt", tgt)
        _check_memory(memory, self.config.d_model)
        _check_batch("tgt", tgt, "memory", memory)
        cache_len = None if cache is None else len(cache[0].self_attn)  # positions cached
        if tgt_mask is None:
            tgt_mask = decoder_mask(tgt, self.config.pad_id, cache_len)  # no future, no pads
        x = self.dropout(self.positions(self.tgt_embed(tgt), cache_len or 0))  # (B, T, d_model)
        x = self.decoder(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask, cache=cache)
        return self.generator(x)  # (batch, tgt_len, vocab)

    def forward(self, src: Tensor, tgt: Tensor, *, src_mask: Tensor | None = None,
                tgt_mask: Tensor | None = None, memory_mask: Tensor | None = None) -> Tensor:
        """Teacher forcing: ``src`` ``(batch, src_len)``, shifted-right ``tgt``
        ``(batch, tgt_len)`` → logits ``(batch, tgt_len, vocab)``.

        ``src_mask`` defaults to the source's padding mask, ``memory_mask`` to ``src_mask``
        and ``tgt_mask`` to :func:`~transformer.masks.decoder_mask`.

        Raises:
            ValueError: if ``src`` or ``tgt`` is not ``(batch, len)`` with both at least 1,
                they differ in batch size, or a token id, position or mask shape is out of
                range.
            TypeError: if the ids are not integers or a mask is not boolean.
        """
        _check_ids("src", src)
        _check_ids("tgt", tgt)
        _check_batch("src", src, "tgt", tgt)
        if src_mask is None:
            src_mask = padding_mask(src, self.config.pad_id)  # (batch, 1, 1, src_len)
        memory = self.encode(src, src_mask=src_mask)  # (batch, src_len, d_model)
        memory_mask = src_mask if memory_mask is None else memory_mask
        return self.decode(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask)

    def new_cache(self) -> list[DecoderLayerCache]:
        """An empty KV cache for incremental decoding, one entry per decoder layer."""
        return [DecoderLayerCache() for _ in self.decoder.layers]
# --8<-- [end:transformer]


# --8<-- [start:decoder_only]
class DecoderOnlyTransformer(nn.Module):
    """A GPT-style language model: token + position embeddings, ``N`` blocks of causal
    self-attention and feed-forward (an encoder layer under a causal mask; no cross-attention),
    and the tied pre-softmax projection. ``forward(tokens)`` → logits ``(batch, seq, vocab)``.
    """

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embed = TokenEmbedding(cfg.vocab_size, cfg.d_model)
        self.positions = _positions(cfg)
        self.dropout = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(EncoderLayer(**_layer_kwargs(cfg)) for _ in range(cfg.n_layers))
        self.norm = _final_norm(cfg)
        self.generator = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        _init_weights(self)
        if cfg.tie_embeddings:
            self.generator.weight = self.embed.weight

    def forward(self, tokens: Tensor, *, mask: Tensor | None = None,
                cache: list[KVCache] | None = None) -> Tensor:
        """``tokens``: ``(batch, seq)`` ids (only the new ones when ``cache`` is given).

        ``mask`` is the one mask, of every block's self-attention (the encoder-decoder's
        ``tgt_mask``); it defaults to :func:`~transformer.masks.decoder_mask`: causal, and
        hiding padding keys when there is no cache.

        Raises:
            ValueError: if ``tokens`` is not ``(batch, seq)`` with both at least 1, or a token
                id, position or mask shape is out of range.
            TypeError: if ``tokens`` does not hold integer ids or ``mask`` is not boolean.
        """
        _check_ids("tokens", tokens)
        cache_len = None if cache is None else len(cache[0])  # positions cached
        if mask is None:
            mask = decoder_mask(tokens, self.config.pad_id, cache_len)  # no future, no pads
        x = self.dropout(self.positions(self.embed(tokens), cache_len or 0))  # (B, seq, d_model)
        for i, layer in enumerate(self.layers):
            x = layer(x, src_mask=mask, cache=None if cache is None else cache[i])
        return self.generator(self.norm(x))  # (batch, seq, vocab)

    def new_cache(self) -> list[KVCache]:
        """An empty KV cache, one per block."""
        return [KVCache() for _ in self.layers]
# --8<-- [end:decoder_only]


# --8<-- [start:count_parameters]
def count_parameters(model: nn.Module) -> dict[str, int]:
    """Trainable parameters per top-level part, each shared tensor counted once.

    Returns:
        ``{part name: count, ..., "total": count}``; a tied matrix is counted under the
        first part that owns it (e.g. ``src_embed``).
    """
    seen: set[int] = set()
    parts: dict[str, int] = {}
    for part, module in model.named_children():
        n = 0
        for p in module.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                n += p.numel()
        parts[part] = n
    parts["total"] = sum(parts.values())
    return parts
# --8<-- [end:count_parameters]


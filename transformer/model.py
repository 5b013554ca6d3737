"""The encoder-decoder Transformer (§3, Figure 1) and a decoder-only (GPT-style) model.

``TransformerConfig`` holds every switch; its defaults reproduce the paper's base model
(post-LN, ReLU, sinusoidal positions, dropout 0.1, tied embeddings scaled by sqrt(d_model)).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
from torch import Tensor, nn

from transformer.attention import KVCache
from transformer.embeddings import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    TokenEmbedding,
    _check_positions,
)
from transformer.layers import (
    ACTIVATIONS,
    GATED_ACTIVATIONS,
    NORMS,
    DecoderLayer,
    DecoderLayerCache,
    EncoderLayer,
    make_norm,
)
from transformer.masks import decoder_mask, padding_mask

__all__ = [
    "BaseDecodingState",
    "Decoder",
    "DecoderOnlyState",
    "DecoderOnlyTransformer",
    "Encoder",
    "EncoderDecoderState",
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


FEED_FORWARDS = sorted(ACTIVATIONS) + sorted(GATED_ACTIVATIONS)  # "gelu", "relu", "swiglu"
POSITIONALS = ["sinusoidal", "learned", "rope"]


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
        activation: ``"relu"`` (paper), ``"gelu"``, or ``"swiglu"``: the gated feed-forward
            of chapter 15, whose inner width is ``int(2·d_ff/3)``, so that its three matrices
            hold about the weights of the ReLU network's two.
        norm_first: pre-LN (``True``) instead of the paper's post-LN.
        final_norm: a LayerNorm after the last layer of each stack; ``None`` means "only with
            pre-LN" (the paper's post-LN stack needs none; ``torch.nn.Transformer`` always has one).
        positional: ``"sinusoidal"`` (paper), ``"learned"``, or ``"rope"``: rotary positions
            inside self-attention, nothing added to the embeddings (chapter 15).
        max_len: longest sequence the positional table covers.
        tie_embeddings: share source/target embeddings and the pre-softmax matrix (§3.4).
        pad_id: padding token id, masked out of attention.
        layer_norm_eps: epsilon of every LayerNorm (or RMSNorm).
        bias: biases in every linear layer and every LayerNorm; ``False`` removes them all,
            as nanoGPT's ``bias=False`` and ``nn.TransformerEncoderLayer(bias=False)`` do. The
            paper's attention projections have none (its eq. 2 has b_1, b_2); the default
            follows PyTorch and The Annotated Transformer.
        fused_qkv: store the Q/K/V projections as one matrix (faster self-attention).
        norm: ``"layernorm"`` (paper) or ``"rmsnorm"`` (chapter 15), in every sublayer and
            the final norm.
        n_kv_heads: key/value heads of every attention; ``None`` means ``n_heads`` (the
            paper's), fewer is grouped-query attention, 1 multi-query (chapter 15). Must
            divide ``n_heads``.
        rope_base: the base of the rotary wavelengths (``positional="rope"``).
        init: ``"xavier"`` (Xavier-uniform matrices, as The Annotated Transformer and
            ``nn.Transformer``; embeddings scaled by √d_model, §3.4) or ``"gpt2"`` (GPT-2 and
            nanoGPT: every matrix and embedding N(0, 0.02²), the residual output projections
            N(0, (0.02/√(2N))²), biases zero, and no √d_model scale: chapter 12).
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
    norm: str = "layernorm"
    n_kv_heads: int | None = None
    rope_base: float = 10000.0
    init: str = "xavier"
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
        _require("activation", self.activation, f"one of {FEED_FORWARDS}",
                 lambda v: isinstance(v, str), lambda v: v in FEED_FORWARDS)
        _require("positional", self.positional, "'sinusoidal', 'learned' or 'rope'",
                 lambda v: isinstance(v, str), lambda v: v in POSITIONALS)
        _require("norm", self.norm, f"one of {list(NORMS)}", lambda v: isinstance(v, str),
                 lambda v: v in NORMS)
        _require("n_kv_heads", self.n_kv_heads,
                 f"None or a positive integer that divides n_heads ({self.n_heads})",
                 lambda v: v is None or _is_int(v),
                 lambda v: v is None or (v > 0 and self.n_heads % v == 0))
        _require("rope_base", self.rope_base, "a finite number > 1", _is_number,
                 lambda v: math.isfinite(v) and v > 1)
        _require("init", self.init, "'xavier' or 'gpt2'", lambda v: isinstance(v, str),
                 lambda v: v in ("xavier", "gpt2"))
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
        if self.positional == "rope" and (self.d_model // self.n_heads) % 2 != 0:
            raise ValueError(f"positional='rope' needs an even d_head = d_model / n_heads, got "
                             f"{self.d_model} / {self.n_heads} = {self.d_model // self.n_heads}")
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


class _PositionsInAttention(nn.Module):
    """RoPE adds nothing to the embeddings (the positions enter self-attention); this only
    checks that ``offset + seq`` fits ``max_len``, as the other positional modules do."""

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        self.d_model, self.max_len = d_model, max_len

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        _check_positions(x, self.d_model, self.max_len, offset)
        return x  # (batch, seq, d_model), unchanged


def _positions(cfg: TransformerConfig) -> nn.Module:
    if cfg.positional == "learned":
        return LearnedPositionalEmbedding(cfg.d_model, cfg.max_len)
    if cfg.positional == "rope":
        return _PositionsInAttention(cfg.d_model, cfg.max_len)
    return SinusoidalPositionalEncoding(cfg.d_model, cfg.max_len)


def _layer_kwargs(cfg: TransformerConfig) -> dict[str, Any]:
    rotary = RotaryEmbedding(cfg.d_model // cfg.n_heads, cfg.max_len, cfg.rope_base) \
        if cfg.positional == "rope" else None  # one table per layer, as labml's
    return dict(d_model=cfg.d_model, n_heads=cfg.n_heads, d_ff=cfg.d_ff, dropout=cfg.dropout,
                activation=cfg.activation, norm_first=cfg.norm_first, eps=cfg.layer_norm_eps,
                bias=cfg.bias, fused_qkv=cfg.fused_qkv, norm=cfg.norm, n_kv_heads=cfg.n_kv_heads,
                rotary=rotary)


def _final_norm(cfg: TransformerConfig) -> nn.Module:
    return make_norm(cfg.norm, cfg.d_model, cfg.layer_norm_eps, cfg.bias) if cfg.use_final_norm \
        else nn.Identity()


def _init_weights(model: nn.Module) -> None:
    """Xavier-uniform for every matrix, as The Annotated Transformer and ``nn.Transformer`` do;
    or, with ``config.init == "gpt2"``, GPT-2's initialization (:func:`_init_gpt2`)."""
    config = getattr(model, "config", None)
    if getattr(config, "init", "xavier") == "gpt2":
        _init_gpt2(model, config.n_layers)
        return
    for p in model.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)


# --8<-- [start:init_gpt2]
def _init_gpt2(model: nn.Module, n_layers: int) -> None:
    """GPT-2's start (Radford et al., 2019; nanoGPT): N(0, 0.02²) for every matrix and
    embedding, biases 0, the projections that write into the residual stream (W^O and the
    feed-forward's output) scaled by 1/√(2N), and token embeddings used as they are."""
    residual = (".w_o.weight", ".linear2.weight", ".w2.weight")
    for name, p in model.named_parameters():
        if p.dim() > 1:
            std = 0.02 / math.sqrt(2 * n_layers) if name.endswith(residual) else 0.02
            nn.init.normal_(p, mean=0.0, std=std)
        elif name.endswith(".bias"):
            nn.init.zeros_(p)
    for module in model.modules():
        if isinstance(module, TokenEmbedding):
            module.scale = 1.0  # GPT-2 adds positions to the raw embeddings
# --8<-- [end:init_gpt2]


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

    # --8<-- [start:transformer_parts]
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
    # --8<-- [end:transformer_parts]

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

    # ------------------------------------------------ the decoding protocol (chapter 11)
    # --8<-- [start:transformer_decoding]
    @property
    def pad_id(self) -> int:
        """The padding id (``config.pad_id``): hidden from attention, never generated."""
        return self.config.pad_id

    @property
    def output_vocab_size(self) -> int:
        """How many ids the logits score: ``config.target_vocab_size``."""
        return self.config.target_vocab_size

    def start_decoding(self, inputs: Tensor, *, bos_id: int | None = None, beams: int = 1,
                       use_cache: bool = True) -> EncoderDecoderState:
        """Encode the sources once and start every target with ``bos_id``.

        Args:
            inputs: ``(batch, src_len)`` source ids, padded with ``pad_id``.
            bos_id: the first decoder input ("the output embeddings are offset by one
                position", §3.1); required, and not ``pad_id``.
            beams: copies of each source; the ``batch * beams`` rows hold the copies of one
                source side by side.
            use_cache: keep keys and values between steps (chapter 13).

        Raises:
            ValueError: if ``bos_id`` is missing, out of range or equal to ``pad_id``, or
                ``beams`` is not an integer >= 1.
        """
        _check_bos(bos_id, self.config)
        _check_beams(beams)
        with torch.no_grad():
            memory = self.encode(inputs)  # (B, src_len, d_model): once for the whole decoding
        memory_mask = padding_mask(inputs, self.pad_id)  # (B, 1, 1, src_len)
        tokens = inputs.new_full((inputs.shape[0] * beams, 1), bos_id)  # (B * beams, 1)
        return EncoderDecoderState(self, memory.repeat_interleave(beams, dim=0),
                                   memory_mask.repeat_interleave(beams, dim=0), tokens,
                                   self.new_cache() if use_cache else None)

    def new_token_limits(self, inputs: Tensor, max_new_tokens: int | None = None) -> Tensor:
        """How many tokens each output may get, ``(batch,)``: ``max_new_tokens``, or by default
        each source's length + 50 (§6.1: "maximum output length during inference to input
        length + 50"). The decoder is fed ``BOS`` and every output token but the last, so at
        most ``max_len`` fit the positional table.

        Raises:
            ValueError: if ``max_new_tokens`` is not an integer in ``[1, max_len]``.
        """
        if max_new_tokens is None:
            src_len = (inputs != self.pad_id).sum(dim=1)  # (batch,)
            return (src_len + EXTRA_OUTPUT_LENGTH).clamp(max=self.config.max_len)
        return _fixed_limits(inputs, max_new_tokens, room=self.config.max_len,
                             max_len=self.config.max_len)

    def sequence_logits(self, inputs: Tensor, sequences: Tensor, *,
                        bos_id: int | None = None) -> Tensor:
        """Teacher forcing (chapter 9): the logits that score each token of ``sequences``.

        Args:
            inputs: ``(batch, src_len)`` sources.
            sequences: ``(batch, steps)`` outputs (no ``BOS``), ``pad_id`` after their end.
            bos_id: as in :meth:`start_decoding`.

        Returns:
            ``(batch, steps, target_vocab_size)``: position ``t`` scores ``sequences[:, t]``
            given the source and ``sequences[:, :t]``.
        """
        _check_bos(bos_id, self.config)
        bos = sequences.new_full((sequences.shape[0], 1), bos_id)  # (batch, 1)
        return self(inputs, torch.cat([bos, sequences[:, :-1]], dim=1))  # shifted right
    # --8<-- [end:transformer_decoding]


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
                cache: list[KVCache] | None = None, is_causal: bool = False) -> Tensor:
        """``tokens``: ``(batch, seq)`` ids (only the new ones when ``cache`` is given).

        ``mask`` is the one mask, of every block's self-attention (the encoder-decoder's
        ``tgt_mask``); it defaults to :func:`~transformer.masks.decoder_mask`: causal, and
        hiding padding keys when there is no cache. ``is_causal=True`` says that ``tokens``
        hold no padding (windows of running text, as in language-model training): attention
        is then only causal, no mask tensor is built, and the fused kernel skips the future
        keys instead of reading a mask (same result as the default mask, faster).

        Raises:
            ValueError: if ``tokens`` is not ``(batch, seq)`` with both at least 1, or a token
                id, position or mask shape is out of range.
            TypeError: if ``tokens`` does not hold integer ids or ``mask`` is not boolean.
        """
        _check_ids("tokens", tokens)
        cache_len = None if cache is None else len(cache[0])  # positions cached
        if is_causal and (mask is not None or cache is not None):
            raise ValueError("is_causal=True replaces the mask of a sequence without padding "
                             "and without a cache; got a mask or a cache too")
        if mask is None and not is_causal:
            mask = decoder_mask(tokens, self.config.pad_id, cache_len)  # no future, no pads
        x = self.dropout(self.positions(self.embed(tokens), cache_len or 0))  # (B, seq, d_model)
        for i, layer in enumerate(self.layers):
            x = layer(x, src_mask=mask, cache=None if cache is None else cache[i],
                      is_causal=is_causal)
        return self.generator(self.norm(x))  # (batch, seq, vocab)

    def new_cache(self) -> list[KVCache]:
        """An empty KV cache, one per block."""
        return [KVCache() for _ in self.layers]
# --8<-- [end:decoder_only]

    # ------------------------------------------------ the decoding protocol (chapter 11)
    # --8<-- [start:decoder_only_decoding]
    @property
    def pad_id(self) -> int:
        """The padding id (``config.pad_id``): hidden from attention, never generated."""
        return self.config.pad_id

    @property
    def output_vocab_size(self) -> int:
        """How many ids the logits score: ``config.vocab_size``."""
        return self.config.vocab_size

    def start_decoding(self, inputs: Tensor, *, bos_id: int | None = None, beams: int = 1,
                       use_cache: bool = True) -> DecoderOnlyState:
        """Start every row as its prompt (``bos_id`` is not used: a prompt starts itself).

        Args:
            inputs: ``(batch, prompt_len)`` prompts, all of one length (no ``pad_id``).
            bos_id: ignored, so that one call serves both model kinds.
            beams: copies of each prompt, side by side in the ``batch * beams`` rows.
            use_cache: keep keys and values between steps (chapter 13).

        Raises:
            ValueError: if a prompt holds ``pad_id`` or ``beams`` is not an integer >= 1.
        """
        _check_prompts(inputs, self.pad_id)
        _check_beams(beams)
        return DecoderOnlyState(self, inputs.repeat_interleave(beams, dim=0),  # (B * beams, P)
                                self.new_cache() if use_cache else None)

    def new_token_limits(self, inputs: Tensor, max_new_tokens: int | None = None) -> Tensor:
        """``max_new_tokens`` for each row, ``(batch,)``; the model is fed the prompt and every
        new token but the last, so at most ``max_len - prompt_len + 1`` fit.

        Raises:
            ValueError: if ``max_new_tokens`` is missing (there is no source to measure), or not
                an integer in ``[1, max_len - prompt_len + 1]``.
        """
        if max_new_tokens is None:
            raise ValueError("max_new_tokens is required to continue prompts with a "
                             "DecoderOnlyTransformer")
        return _fixed_limits(inputs, max_new_tokens, room=self.config.max_len - inputs.shape[1] + 1,
                             max_len=self.config.max_len)

    def sequence_logits(self, inputs: Tensor, sequences: Tensor, *,
                        bos_id: int | None = None) -> Tensor:
        """One pass over prompt + ``sequences``: the logits that score each token of
        ``sequences``, ``(batch, steps, vocab)`` (``bos_id`` is not used).

        Raises:
            ValueError: if a prompt holds ``pad_id``.
        """
        _check_prompts(inputs, self.pad_id)
        logits = self(torch.cat([inputs, sequences[:, :-1]], dim=1))  # (B, P + steps - 1, V)
        return logits[:, inputs.shape[1] - 1 :]  # from the prompt's last position on
    # --8<-- [end:decoder_only_decoding]


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



# ------------------------------------------------------------- decoding, one step at a time

EXTRA_OUTPUT_LENGTH = 50  # §6.1: "maximum output length during inference to input length + 50"


def _check_bos(bos_id: object, cfg: TransformerConfig) -> None:
    if bos_id is None:
        raise ValueError("bos_id is required to decode with a Transformer (the first decoder "
                         "input, §3.1: 'output embeddings are offset by one position')")
    if not isinstance(bos_id, int) or isinstance(bos_id, bool) \
            or not 0 <= bos_id < cfg.target_vocab_size:
        raise ValueError(f"bos_id must be a token id in [0, {cfg.target_vocab_size}), got "
                         f"{bos_id!r}")
    if bos_id == cfg.pad_id:  # refused rather than worked around: see chapter 11
        raise ValueError(f"bos_id={bos_id} must differ from pad_id={cfg.pad_id}: padding is "
                         "hidden from attention, so a BOS equal to padding would be invisible "
                         "to the decoder (and cached decoding, which masks no earlier position, "
                         "would disagree with teacher forcing)")


def _check_prompts(inputs: Tensor, pad_id: int) -> None:
    if bool((inputs == pad_id).any()):
        raise ValueError(f"prompts must not contain pad_id={pad_id}: prompts decoded together "
                         "share one length (decode prompts of other lengths separately)")


def _check_beams(beams: object) -> None:
    if not isinstance(beams, int) or isinstance(beams, bool) or beams < 1:
        raise ValueError(f"beams must be an integer >= 1, got {beams!r}")


def _fixed_limits(inputs: Tensor, max_new_tokens: object, *, room: int, max_len: int) -> Tensor:
    """``(batch,)`` copies of ``max_new_tokens``, checked to fit the ``room`` left."""
    if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) \
            or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    if max_new_tokens > room:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} is too large for the positional table "
            f"(max_len={max_len}, input length {inputs.shape[1]}): at most {max(room, 0)} "
            "new tokens fit")
    return torch.full((inputs.shape[0],), max_new_tokens, device=inputs.device)


# --8<-- [start:decoding_state]
class BaseDecodingState:
    """Rows of tokens that grow by one token per step, and the model that scores them.

    It offers what search needs (:class:`~transformer.generation.DecodingState`):
    ``next_logits()``, ``append(tokens)``, ``reorder(index)`` and ``generated``. With a KV cache
    (chapter 13) the first ``next_logits()`` runs the model on the whole prefix and each later
    one on the newest token only; without it, on the whole prefix every time. A subclass says
    how its model turns new tokens into logits (``_logits``) and which caches follow the rows
    when beam search reorders them (``_row_caches``).

    Args:
        tokens: ``(rows, prefix_len)``, the start of every row (``BOS``, or a prompt).
        cache: the model's empty cache (``model.new_cache()``), or ``None`` for no cache.
    """

    def __init__(self, tokens: Tensor, cache: list[Any] | None) -> None:
        self.tokens = tokens  # (rows, len)
        self.prefix_len = tokens.shape[1]
        self.cache = cache
        self._fed = 0  # positions already in the cache

    @property
    def generated(self) -> Tensor:
        """The tokens appended so far, ``(rows, steps)``."""
        return self.tokens[:, self.prefix_len :]

    @torch.no_grad()
    def next_logits(self) -> Tensor:
        """Logits of every row's next token, ``(rows, vocab)``.

        Raises:
            RuntimeError: if called twice with the cache and no :meth:`append` in between.
        """
        if self.cache is None:
            new = self.tokens  # (rows, len): the whole prefix, every step
        else:
            new = self.tokens[:, self._fed :]  # (rows, len - cached): what the cache lacks
            if new.shape[1] == 0:
                raise RuntimeError("append() a token before asking for the next logits")
            self._fed = self.tokens.shape[1]
        return self._logits(new)[:, -1]  # (rows, vocab): the prediction after the last position

    def append(self, tokens: Tensor) -> None:
        """Extend every row by one token; ``tokens`` is ``(rows,)``.

        Raises:
            ValueError: if ``tokens`` is not ``(rows,)``.
        """
        if tokens.shape != self.tokens.shape[:1]:
            raise ValueError(f"tokens must have shape (rows={self.tokens.shape[0]},), got "
                             f"{tuple(tokens.shape)}")
        self.tokens = torch.cat([self.tokens, tokens[:, None]], dim=1)  # (rows, len + 1)

    def reorder(self, index: Tensor) -> None:
        """Keep rows ``index`` ``(rows,)``: row ``i`` continues what row ``index[i]`` was."""
        self.tokens = self.tokens.index_select(0, index)
        for kv in self._row_caches():
            kv.reorder(index)

    def _logits(self, new: Tensor) -> Tensor:  # (rows, new_len) -> (rows, new_len, vocab)
        raise NotImplementedError

    def _row_caches(self) -> list[KVCache]:
        raise NotImplementedError
# --8<-- [end:decoding_state]


# --8<-- [start:decoding_states]
class EncoderDecoderState(BaseDecodingState):
    """Decoding with a :class:`Transformer` (made by :meth:`Transformer.start_decoding`).

    The encoder output ``memory`` ``(rows, src_len, d_model)`` is computed once; with the
    cache, the cross-attention keys and values over it are projected at the first step and
    reused after (:meth:`~transformer.attention.KVCache.set`).
    """

    def __init__(self, model: Transformer, memory: Tensor, memory_mask: Tensor, tokens: Tensor,
                 cache: list[DecoderLayerCache] | None) -> None:
        super().__init__(tokens, cache)
        self.model = model
        self.memory = memory  # (rows, src_len, d_model)
        self.memory_mask = memory_mask  # (rows, 1, 1, src_len)

    def _logits(self, new: Tensor) -> Tensor:
        return self.model.decode(new, self.memory, memory_mask=self.memory_mask,
                                 cache=self.cache)

    def _row_caches(self) -> list[KVCache]:
        # Only self-attention moves. Beam search picks rows among the copies of one source,
        # whose memory and cross-attention keys/values are equal: those stay computed once.
        return [layer.self_attn for layer in self.cache or []]


class DecoderOnlyState(BaseDecodingState):
    """Decoding with a :class:`DecoderOnlyTransformer`: every row starts as its prompt."""

    def __init__(self, model: DecoderOnlyTransformer, tokens: Tensor,
                 cache: list[KVCache] | None) -> None:
        super().__init__(tokens, cache)
        self.model = model

    def _logits(self, new: Tensor) -> Tensor:
        return self.model(new, cache=self.cache)

    def _row_caches(self) -> list[KVCache]:
        return list(self.cache or [])
# --8<-- [end:decoding_states]

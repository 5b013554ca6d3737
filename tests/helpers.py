"""What several test files share: the tolerance of "equal", random float64 inputs, padding
masks and padded batches, and pairs of our module and PyTorch's holding the same weights.

Imported as ``from helpers import ...`` (pytest puts ``tests/`` on ``sys.path``). Not a test
module: pytest collects only ``test_*.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from transformer import (
    DecoderLayer,
    EncoderLayer,
    MultiHeadAttention,
    Transformer,
    TransformerConfig,
)
from transformer.interop import (
    load_torch_decoder_layer,
    load_torch_encoder_layer,
    load_torch_multihead_attention,
    load_torch_transformer,
)

TOL = dict(rtol=0.0, atol=1e-10)  # float64, dropout 0: this close counts as "equal"
PAD = 0  # the padding id of every test model (TransformerConfig's default)


def rng(seed: int) -> torch.Generator:
    """A CPU random generator started at ``seed``."""
    return torch.Generator().manual_seed(seed)


def randn(g: torch.Generator, *shape: int) -> torch.Tensor:
    """Standard-normal float64 tensor of ``shape`` drawn from ``g``."""
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def lengths_mask(lengths: list[int], k_len: int) -> torch.Tensor:
    """Our padding mask ``(batch, 1, 1, k_len)`` for right-padded rows of the given lengths."""
    return (torch.arange(k_len)[None, :] < torch.tensor(lengths)[:, None])[:, None, None, :]


def padded_tokens(g: torch.Generator, lengths: list[int], vocab: int) -> torch.Tensor:
    """Random ids in ``[1, vocab)``, ``(len(lengths), max(lengths))``, right-padded with PAD."""
    tokens = torch.randint(1, vocab, (len(lengths), max(lengths)), generator=g)
    for row, n in enumerate(lengths):
        tokens[row, n:] = PAD
    return tokens


def randomize_norms_and_biases(module: nn.Module, seed: int) -> None:
    """PyTorch starts LayerNorm at (1, 0) and attention biases at 0: make every number count."""
    g = rng(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() == 1:
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5
                        + (1.0 if name.endswith("weight") else 0.0))


def mha_pair(seed: int, d_model: int, n_heads: int, fused: bool = False
             ) -> tuple[MultiHeadAttention, nn.MultiheadAttention]:
    """Our ``MultiHeadAttention`` holding a random ``nn.MultiheadAttention``'s weights
    (float64, biases randomized), both in eval mode."""
    torch.manual_seed(seed)
    theirs = nn.MultiheadAttention(d_model, n_heads, batch_first=True, dtype=torch.float64)
    randomize_norms_and_biases(theirs, seed)
    ours = MultiHeadAttention(d_model, n_heads, fused=fused).double()
    load_torch_multihead_attention(ours, theirs)
    return ours.eval(), theirs.eval()


def encoder_layer_pair(seed: int, d_model: int, n_heads: int, d_ff: int, activation: str,
                       norm_first: bool) -> tuple[EncoderLayer, nn.TransformerEncoderLayer]:
    """Our ``EncoderLayer`` holding a random ``nn.TransformerEncoderLayer``'s weights."""
    torch.manual_seed(seed)
    theirs = nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout=0.0,
                                        activation=activation, batch_first=True,
                                        norm_first=norm_first, dtype=torch.float64)
    randomize_norms_and_biases(theirs, seed)
    ours = EncoderLayer(d_model, n_heads, d_ff, dropout=0.0, activation=activation,
                        norm_first=norm_first).double()
    load_torch_encoder_layer(ours, theirs)
    return ours.eval(), theirs.eval()


def decoder_layer_pair(seed: int, d_model: int, n_heads: int, d_ff: int, activation: str,
                       norm_first: bool) -> tuple[DecoderLayer, nn.TransformerDecoderLayer]:
    """Our ``DecoderLayer`` holding a random ``nn.TransformerDecoderLayer``'s weights."""
    torch.manual_seed(seed)
    theirs = nn.TransformerDecoderLayer(d_model, n_heads, d_ff, dropout=0.0,
                                        activation=activation, batch_first=True,
                                        norm_first=norm_first, dtype=torch.float64)
    randomize_norms_and_biases(theirs, seed)
    ours = DecoderLayer(d_model, n_heads, d_ff, dropout=0.0, activation=activation,
                        norm_first=norm_first).double()
    load_torch_decoder_layer(ours, theirs)
    return ours.eval(), theirs.eval()


def transformer_pair(seed: int, cfg: TransformerConfig) -> tuple[Transformer, nn.Transformer]:
    """Our ``Transformer`` (``cfg`` needs ``final_norm=True``) holding a random
    ``nn.Transformer``'s encoder and decoder weights."""
    torch.manual_seed(seed)
    theirs = nn.Transformer(cfg.d_model, cfg.n_heads, cfg.n_layers, cfg.n_layers, cfg.d_ff,
                            dropout=0.0, activation=cfg.activation, batch_first=True,
                            norm_first=cfg.norm_first, dtype=torch.float64)
    randomize_norms_and_biases(theirs, seed)
    ours = Transformer(cfg).double()
    load_torch_transformer(ours, theirs)
    return ours.eval(), theirs.eval()

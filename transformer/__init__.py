"""The Executable Transformer: "Attention Is All You Need" (Vaswani et al., 2017) in PyTorch.

The public API, re-exported from the modules that implement it::

    from transformer import Transformer, TransformerConfig
    model = Transformer(TransformerConfig.paper_base())
"""

from transformer.attention import (
    KVCache,
    MultiHeadAttention,
    RotaryMultiHeadAttention,
    record_attention,
    scaled_dot_product_attention,
)
from transformer.embeddings import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    TokenEmbedding,
    rotary_tables,
    sinusoidal_table,
)
from transformer.generation import (
    Decodable,
    DecodingState,
    Generation,
    beam_search,
    generate,
    greedy_decode,
    length_penalty,
    sample,
    score_sequences,
    top_k_filter,
    top_p_filter,
)
from transformer.layers import (
    DecoderLayer,
    EncoderLayer,
    PositionwiseFeedForward,
    ResidualSublayer,
    RMSNorm,
    SwiGLUFeedForward,
    swiglu_hidden_size,
)
from transformer.masks import causal_mask, decoder_mask, padding_mask, to_torch_masks
from transformer.model import (
    Decoder,
    DecoderOnlyTransformer,
    Encoder,
    Transformer,
    TransformerConfig,
    count_parameters,
)

__version__ = "0.1.0"

__all__ = [
    "Decodable",
    "Decoder",
    "DecoderLayer",
    "DecoderOnlyTransformer",
    "DecodingState",
    "Encoder",
    "EncoderLayer",
    "Generation",
    "KVCache",
    "LearnedPositionalEmbedding",
    "MultiHeadAttention",
    "PositionwiseFeedForward",
    "RMSNorm",
    "ResidualSublayer",
    "RotaryEmbedding",
    "RotaryMultiHeadAttention",
    "SinusoidalPositionalEncoding",
    "SwiGLUFeedForward",
    "TokenEmbedding",
    "Transformer",
    "TransformerConfig",
    "__version__",
    "beam_search",
    "causal_mask",
    "count_parameters",
    "decoder_mask",
    "generate",
    "greedy_decode",
    "length_penalty",
    "padding_mask",
    "record_attention",
    "rotary_tables",
    "sample",
    "scaled_dot_product_attention",
    "score_sequences",
    "sinusoidal_table",
    "swiglu_hidden_size",
    "to_torch_masks",
    "top_k_filter",
    "top_p_filter",
]

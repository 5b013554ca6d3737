"""The modern variants of chapter 15 against references someone else wrote.

RMSNorm equals ``torch.nn.RMSNorm``; SwiGLU equals ``silu(x W) * (x V) @ W_2`` written out here;
rotary positions give scores that depend only on the offset between query and key, and equal
Hugging Face's "rotate half" convention after a documented permutation; grouped-query attention
equals ``torch.nn.functional.scaled_dot_product_attention(..., enable_gqa=True)``; ``bias=False``
leaves no bias anywhere and equals ``nn.TransformerEncoderLayer(bias=False)``. Every variant works
with the KV cache of both model kinds (float64: cached == uncached within 1e-10).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import TOL, randn, randomize_norms_and_biases, rng
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from transformer import (
    DecoderLayer,
    DecoderOnlyTransformer,
    EncoderLayer,
    KVCache,
    MultiHeadAttention,
    RMSNorm,
    RotaryEmbedding,
    RotaryMultiHeadAttention,
    SwiGLUFeedForward,
    Transformer,
    TransformerConfig,
    causal_mask,
    count_parameters,
    swiglu_hidden_size,
)
from transformer.interop import load_torch_decoder_layer, load_torch_encoder_layer
from transformer.layers import PositionwiseFeedForward, feed_forward

PAD, BOS = 0, 1
KINDS = pytest.mark.parametrize("kind", [Transformer, DecoderOnlyTransformer],
                                ids=["encoder-decoder", "decoder-only"])
VARIANTS = {  # name -> the TransformerConfig switches (chapter 15's table)
    "paper": {},
    "pre-LN": dict(norm_first=True),
    "RMSNorm": dict(norm="rmsnorm"),
    "SwiGLU": dict(activation="swiglu"),
    "RoPE": dict(positional="rope"),
    "GQA-2": dict(n_kv_heads=2),
    "MQA": dict(n_kv_heads=1, fused_qkv=True),
    "no-bias": dict(bias=False),
    "modern": dict(norm_first=True, norm="rmsnorm", activation="swiglu", positional="rope",
                   n_kv_heads=2, bias=False),
}


# ---------------------------------------------------------------------------------- RMSNorm

@pytest.mark.parametrize("eps", [1e-5, 1e-6, 0.1])
def test_rms_norm_equals_torch_rms_norm_with_the_same_eps(eps: float) -> None:
    g = rng(0)
    ours = RMSNorm(12, eps=eps).double()
    theirs = nn.RMSNorm(12, eps=eps, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(randn(g, 12))
        ours.weight.copy_(theirs.weight)
    x = randn(g, 3, 5, 12) * 4
    torch.testing.assert_close(ours(x), theirs(x), **TOL)
    assert sum(p.numel() for p in ours.parameters()) == 12  # a gain, no bias


def test_rms_norm_config_replaces_every_layer_norm_including_the_final_one() -> None:
    model = Transformer(TransformerConfig.tiny(norm="rmsnorm", norm_first=True))
    kinds = {type(m) for m in model.modules()}
    assert RMSNorm in kinds and nn.LayerNorm not in kinds
    assert isinstance(model.decoder.norm, RMSNorm)


# ----------------------------------------------------------------------------------- SwiGLU

@pytest.mark.parametrize("bias", [True, False])
def test_swiglu_is_silu_of_xw_times_xv_times_w2(bias: bool) -> None:
    g = rng(1)
    ffn = SwiGLUFeedForward(8, 10, bias=bias).double().eval()
    randomize_norms_and_biases(ffn, seed=1)
    x = randn(g, 2, 5, 8)
    W, V, W2 = ffn.w.weight.T, ffn.v.weight.T, ffn.w2.weight.T  # (8, 10), (8, 10), (10, 8)
    if bias:
        b, c, b2 = ffn.w.bias, ffn.v.bias, ffn.w2.bias
        want = (F.silu(x @ W + b) * (x @ V + c)) @ W2 + b2
    else:
        want = (F.silu(x @ W) * (x @ V)) @ W2
    torch.testing.assert_close(ffn(x), want, **TOL)
    torch.testing.assert_close(F.silu(x), x * torch.sigmoid(x), **TOL)  # Swish_1 is SiLU


@pytest.mark.parametrize("d_ff", [24, 64, 1024, 2048, 4096])
def test_swiglu_hidden_size_keeps_the_weights_of_the_relu_network(d_ff: int) -> None:
    hidden = swiglu_hidden_size(d_ff)
    assert hidden == int(2 * d_ff / 3)
    d_model = 512
    relu_weights, swiglu_weights = 2 * d_model * d_ff, 3 * d_model * hidden
    assert relu_weights - 3 * d_model < swiglu_weights <= relu_weights  # at most 1 row short
    assert swiglu_hidden_size(d_ff, multiple_of=256) % 256 == 0
    assert swiglu_hidden_size(2048, multiple_of=256) == 1536  # LLaMA's rounding, upwards


def test_swiglu_config_builds_swiglu_with_two_thirds_of_d_ff() -> None:
    layer = DecoderOnlyTransformer(TransformerConfig.tiny(activation="swiglu")).layers[0]
    assert isinstance(layer.feed_forward, SwiGLUFeedForward)
    assert layer.feed_forward.w.out_features == swiglu_hidden_size(64) == 42
    assert isinstance(feed_forward(8, 16, activation="gelu"), PositionwiseFeedForward)


# ------------------------------------------------------------------------------------- RoPE

def hf_rotate_half_rope(x: torch.Tensor, positions: torch.Tensor, base: float) -> torch.Tensor:
    """RoPE as Hugging Face's LLaMA writes it: feature i pairs with feature i + d/2."""
    d = x.shape[-1]
    inv_freq = 1.0 / base ** (torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
    freqs = positions.double()[:, None] * inv_freq[None, :]  # (seq, d/2)
    emb = torch.cat((freqs, freqs), dim=-1)  # (seq, d)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    rotate_half = torch.cat((-x2, x1), dim=-1)
    return x * emb.cos() + rotate_half * emb.sin()


def interleaved_to_halves(d: int) -> torch.Tensor:
    """The permutation from our interleaved pairs (2i, 2i+1) to halves (i, i + d/2)."""
    return torch.cat([torch.arange(0, d, 2), torch.arange(1, d, 2)])


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**16), half=st.integers(1, 8), m=st.integers(0, 40),
       n=st.integers(0, 40), shift=st.integers(0, 200), base=st.sampled_from([100.0, 1e4, 5e5]))
def test_rope_scores_depend_only_on_the_offset_between_query_and_key(
        seed: int, half: int, m: int, n: int, shift: int, base: float) -> None:
    d = 2 * half
    rope = RotaryEmbedding(d, max_len=256, base=base, dtype=torch.float64)
    g = rng(seed)
    q, k = randn(g, 1, 1, 1, d), randn(g, 1, 1, 1, d)  # one query, one key

    def score(i: int, j: int) -> torch.Tensor:
        return (rope(q, offset=i) * rope(k, offset=j)).sum()

    torch.testing.assert_close(score(m + shift, n + shift), score(m, n), rtol=0, atol=1e-10)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), seq=st.integers(1, 6), shift=st.integers(1, 20),
       n_kv_heads=st.sampled_from([1, 2, 4]), need_weights=st.booleans())
def test_rotary_attention_output_is_the_same_when_every_position_shifts(
        seed: int, seq: int, shift: int, n_kv_heads: int, need_weights: bool) -> None:
    """Through MultiHeadAttention's hook: tokens at positions shift.. (after `shift` hidden
    cached keys) attend exactly as the same tokens at positions 0.."""
    torch.manual_seed(seed)
    mha = RotaryMultiHeadAttention(16, 4, RotaryEmbedding(4, 64, dtype=torch.float64),
                                   n_kv_heads=n_kv_heads).double().eval()
    x = randn(rng(seed), 2, seq, 16)
    at_zero, _ = mha(x, x, x, causal_mask(seq), need_weights=need_weights)
    cache = KVCache()
    cache.append(torch.zeros(2, n_kv_heads, shift, 4, dtype=torch.float64),
                 torch.zeros(2, n_kv_heads, shift, 4, dtype=torch.float64))
    hidden = torch.zeros(1, 1, seq, shift, dtype=torch.bool)  # the filler is never attended
    mask = torch.cat([hidden, causal_mask(seq)], dim=-1)  # (1, 1, seq, shift + seq)
    shifted, _ = mha(x, x, x, mask, cache=cache, need_weights=need_weights)
    torch.testing.assert_close(shifted, at_zero, **TOL)


@pytest.mark.parametrize("d", [2, 8, 64])
def test_rope_equals_hugging_face_rotate_half_after_the_permutation(d: int) -> None:
    g = rng(d)
    rope = RotaryEmbedding(d, max_len=32, base=10000.0, dtype=torch.float64)
    x, k = randn(g, 2, 3, 7, d), randn(g, 2, 3, 7, d)  # (batch, heads, seq, d_head)
    offset, perm = 5, interleaved_to_halves(d)
    positions = torch.arange(offset, offset + 7)
    ours = rope(x, offset=offset)
    theirs = hf_rotate_half_rope(x[..., perm], positions, 10000.0)
    torch.testing.assert_close(ours[..., perm], theirs, **TOL)
    # So the attention scores agree when queries and keys are permuted alike.
    scores = ours @ rope(k, offset=offset).transpose(-2, -1)
    theirs_scores = theirs @ hf_rotate_half_rope(k[..., perm], positions, 1e4).transpose(-2, -1)
    torch.testing.assert_close(scores, theirs_scores, **TOL)
    if d > 2:  # without the permutation the two conventions differ
        assert (hf_rotate_half_rope(x, positions, 1e4) - ours).abs().max() > 1e-3


def test_rope_is_a_rotation_and_position_zero_is_the_identity() -> None:
    rope = RotaryEmbedding(8, max_len=16, dtype=torch.float64)
    x = randn(rng(3), 1, 2, 9, 8)
    torch.testing.assert_close(rope(x[:, :, :1]), x[:, :, :1], **TOL)
    torch.testing.assert_close(rope(x, offset=4).norm(dim=-1), x.norm(dim=-1), **TOL)


def test_rope_model_adds_nothing_to_the_embeddings_and_rotates_only_self_attention() -> None:
    model = Transformer(TransformerConfig.tiny(positional="rope"))
    tokens = torch.randint(3, 16, (2, 5))
    x = model.src_embed(tokens)
    assert torch.equal(model.positions(x), x)
    for layer in model.decoder.layers:
        assert isinstance(layer.self_attn, RotaryMultiHeadAttention)
        assert not isinstance(layer.cross_attn, RotaryMultiHeadAttention)
    assert all(isinstance(layer.self_attn, RotaryMultiHeadAttention)
               for layer in model.encoder.layers)
    assert "cos" not in "".join(model.state_dict())  # the tables are not saved


# ------------------------------------------------------------------ grouped-query attention

def _heads(x: torch.Tensor, n: int) -> torch.Tensor:
    batch, seq, _ = x.shape
    return x.view(batch, seq, n, -1).transpose(1, 2)  # (batch, n, seq, d_head)


@pytest.mark.parametrize("n_kv_heads", [1, 2, 4])
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("need_weights", [False, True], ids=["fused-path", "explicit-path"])
def test_grouped_query_attention_equals_torch_sdpa_with_enable_gqa(
        n_kv_heads: int, fused: bool, need_weights: bool) -> None:
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, 8, n_kv_heads=n_kv_heads, fused=fused).double().eval()
    randomize_norms_and_biases(mha, seed=0)
    g = rng(0)
    x, memory = randn(g, 3, 6, 32), randn(g, 3, 9, 32)
    keys_real = torch.arange(9)[None, :] < torch.tensor([9, 4, 1])[:, None]  # (3, 9), key 0 real
    mask = keys_real[:, None, None, :]  # (batch, 1, 1, k_len)
    if fused:
        w_q, w_k, w_v = mha.w_qkv.weight.split([32, 4 * n_kv_heads, 4 * n_kv_heads])
        b_q, b_k, b_v = mha.w_qkv.bias.split([32, 4 * n_kv_heads, 4 * n_kv_heads])
    else:
        (w_q, b_q), (w_k, b_k), (w_v, b_v) = ((m.weight, m.bias)
                                              for m in (mha.w_q, mha.w_k, mha.w_v))
    q = _heads(F.linear(x, w_q, b_q), 8)  # (3, 8, 6, 4)
    k, v = _heads(F.linear(memory, w_k, b_k), n_kv_heads), _heads(F.linear(memory, w_v, b_v),
                                                                  n_kv_heads)
    assert k.shape == (3, n_kv_heads, 9, 4)
    heads = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    want = mha.w_o(heads.transpose(1, 2).reshape(3, 6, 32))
    got, weights = mha(x, memory, memory, mask, need_weights=need_weights)
    torch.testing.assert_close(got, want, **TOL)
    if need_weights:
        assert weights.shape == (3, 8, 6, 9)  # one map per query head


@pytest.mark.parametrize("n_kv_heads", [1, 2])
def test_grouped_attention_explicit_and_fused_paths_agree_under_a_causal_mask(
        n_kv_heads: int) -> None:
    torch.manual_seed(1)
    mha = MultiHeadAttention(16, 4, n_kv_heads=n_kv_heads).double().eval()
    x = randn(rng(1), 2, 5, 16)
    fast, _ = mha(x, x, x, causal_mask(5))
    explicit, weights = mha(x, x, x, causal_mask(5), need_weights=True)
    torch.testing.assert_close(fast, explicit, **TOL)
    assert torch.equal(weights[:, 0] == 0, weights[:, 1] == 0)  # same mask in every head


def test_grouped_attention_projects_keys_and_values_to_n_kv_heads_only() -> None:
    d_model, h = 512, 8
    full = MultiHeadAttention(d_model, h, bias=False)
    for n_kv_heads in (8, 4, 2, 1):
        mha = MultiHeadAttention(d_model, h, bias=False, n_kv_heads=n_kv_heads)
        d_kv = n_kv_heads * d_model // h
        assert mha.w_k.weight.shape == mha.w_v.weight.shape == (d_kv, d_model)
        n = sum(p.numel() for p in mha.parameters())
        assert n == 2 * d_model**2 + 2 * d_model * d_kv
    assert sum(p.numel() for p in full.parameters()) == 4 * d_model**2  # the paper's


@KINDS
@pytest.mark.parametrize("n_kv_heads", [1, 2])
def test_kv_cache_stores_n_kv_heads_heads(kind: type, n_kv_heads: int) -> None:
    torch.manual_seed(0)
    model = kind(TransformerConfig.tiny(vocab_size=16, n_kv_heads=n_kv_heads)).eval()
    inputs = torch.randint(3, 16, (3, 7))
    state = model.start_decoding(inputs, bos_id=BOS)
    state.next_logits()
    state.append(torch.full((3,), 5))
    state.next_logits()
    d_head = 32 // 4
    caches = state.cache if kind is DecoderOnlyTransformer else \
        [c for layer in state.cache for c in (layer.self_attn, layer.cross_attn)]
    for cache in caches:
        assert cache.key.shape[1] == cache.value.shape[1] == n_kv_heads
        assert cache.key.shape[-1] == d_head
    self_len = 8 if kind is DecoderOnlyTransformer else 2  # prompt + 1, or BOS + 1
    first = state.cache[0] if kind is DecoderOnlyTransformer else state.cache[0].self_attn
    assert first.key.shape == (3, n_kv_heads, self_len, d_head)
    if kind is Transformer:
        assert state.cache[0].cross_attn.key.shape == (3, n_kv_heads, 7, d_head)


# ---------------------------------------------------------------------------------- no bias

@pytest.mark.parametrize("variant", ["paper", "RMSNorm", "SwiGLU", "MQA", "modern"])
@KINDS
def test_bias_false_leaves_no_bias_in_any_linear_or_norm(kind: type, variant: str) -> None:
    switches = VARIANTS[variant] | dict(bias=False, final_norm=True)
    model = kind(TransformerConfig.tiny(vocab_size=16, **switches))
    assert [n for n, _ in model.named_parameters() if "bias" in n] == []
    assert all(getattr(m, "bias", None) is None for m in model.modules()
               if isinstance(m, (nn.Linear, nn.LayerNorm)))


def test_bias_false_removes_exactly_the_bias_vectors_of_the_parameter_count() -> None:
    d, d_ff, n_layers, vocab = 32, 64, 2, 16
    cfg = TransformerConfig.tiny(vocab_size=vocab, final_norm=True)
    with_bias = count_parameters(DecoderOnlyTransformer(cfg))["total"]
    without = count_parameters(DecoderOnlyTransformer(cfg.replace(bias=False)))["total"]
    per_layer = 4 * d + (d_ff + d) + 2 * d  # W^Q, W^K, W^V, W^O; b_1, b_2; two LayerNorm betas
    assert with_bias - without == n_layers * per_layer + d  # + the final LayerNorm's beta
    weights = n_layers * (4 * d * d + 2 * d * d_ff + 2 * d) + d + vocab * d  # + tied embedding
    assert without == weights


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_no_bias_layers_equal_torch_layers_with_bias_false(norm_first: bool) -> None:
    torch.manual_seed(0)
    kw = dict(dropout=0.0, batch_first=True, norm_first=norm_first, bias=False,
              dtype=torch.float64)
    theirs_enc = nn.TransformerEncoderLayer(16, 4, 24, **kw).eval()
    theirs_dec = nn.TransformerDecoderLayer(16, 4, 24, **kw).eval()
    randomize_norms_and_biases(theirs_enc, 0)
    randomize_norms_and_biases(theirs_dec, 0)
    ours_enc = load_torch_encoder_layer(
        EncoderLayer(16, 4, 24, 0.0, norm_first=norm_first, bias=False).double(), theirs_enc).eval()
    ours_dec = load_torch_decoder_layer(
        DecoderLayer(16, 4, 24, 0.0, norm_first=norm_first, bias=False).double(), theirs_dec).eval()
    g = rng(0)
    x, memory = randn(g, 2, 5, 16), randn(g, 2, 7, 16)
    torch.testing.assert_close(ours_enc(x), theirs_enc(x), **TOL)
    mask = causal_mask(5)
    want = theirs_dec(x, memory, tgt_mask=~mask[0, 0])  # torch: True = may NOT attend
    torch.testing.assert_close(ours_dec(x, memory, tgt_mask=mask), want, **TOL)


def test_interop_refuses_variants_torch_does_not_have() -> None:
    theirs = nn.TransformerEncoderLayer(16, 4, 24, batch_first=True)
    with pytest.raises(ValueError, match="SwiGLUFeedForward"):
        load_torch_encoder_layer(EncoderLayer(16, 4, 24, activation="swiglu"), theirs)
    with pytest.raises(ValueError, match="ours is a RMSNorm, theirs a LayerNorm"):
        load_torch_encoder_layer(EncoderLayer(16, 4, 24, norm="rmsnorm"), theirs)


# ------------------------------------------------------------- every variant, with the cache

def _step_logits(state, tokens: torch.Tensor) -> list[torch.Tensor]:
    out = []
    for step in range(tokens.shape[1]):
        out.append(state.next_logits())
        state.append(tokens[:, step])
    return out


@KINDS
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_decodes_the_same_with_and_without_the_cache(kind: type,
                                                                   variant: str) -> None:
    """float64, a 7-token prompt (several positions at once), then 12 steps one at a time."""
    torch.manual_seed(0)
    model = kind(TransformerConfig.tiny(vocab_size=16, **VARIANTS[variant])).double().eval()
    g = torch.Generator().manual_seed(1)
    inputs = torch.randint(3, 16, (3, 7), generator=g)
    fed = torch.randint(3, 16, (3, 12), generator=g)
    cached = _step_logits(model.start_decoding(inputs, bos_id=BOS, use_cache=True), fed)
    uncached = _step_logits(model.start_decoding(inputs, bos_id=BOS, use_cache=False), fed)
    for step, (a, b) in enumerate(zip(cached, uncached, strict=True)):
        torch.testing.assert_close(a, b, **TOL, msg=f"step {step}")


@pytest.mark.parametrize("variant", ["RoPE", "GQA-2", "modern"])
def test_decoder_only_cache_fed_in_uneven_chunks_equals_one_pass(variant: str) -> None:
    """Offsets: chunks of 3, 1, 4 and 2 new tokens after the cached ones."""
    torch.manual_seed(2)
    model = DecoderOnlyTransformer(TransformerConfig.tiny(vocab_size=16, **VARIANTS[variant]))
    model = model.double().eval()
    tokens = torch.randint(3, 16, (2, 10), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        whole = model(tokens)
        cache, parts, start = model.new_cache(), [], 0
        for size in (3, 1, 4, 2):
            parts.append(model(tokens[:, start:start + size], cache=cache))
            start += size
    torch.testing.assert_close(torch.cat(parts, dim=1), whole, **TOL)


# ------------------------------------------------------------------------ paper by default

def test_defaults_are_the_papers_model() -> None:
    cfg = TransformerConfig()
    assert (cfg.norm, cfg.activation, cfg.positional, cfg.n_kv_heads, cfg.bias, cfg.norm_first) \
        == ("layernorm", "relu", "sinusoidal", None, True, False)
    torch.manual_seed(0)
    paper = Transformer(TransformerConfig.tiny())
    torch.manual_seed(0)
    explicit = Transformer(TransformerConfig.tiny(n_kv_heads=4, norm="layernorm"))
    tokens = torch.randint(3, 16, (2, 6))
    assert torch.equal(paper.eval()(tokens, tokens), explicit.eval()(tokens, tokens))
    assert list(paper.state_dict()) == list(explicit.state_dict())
    assert not any(isinstance(m, (RMSNorm, SwiGLUFeedForward, RotaryEmbedding))
                   for m in paper.modules())


def test_variant_parameter_counts_stay_close_to_the_papers() -> None:
    base = TransformerConfig.paper_base()
    with torch.device("meta"):  # shapes only, no memory
        paper = count_parameters(Transformer(base))["total"]
        counts = {name: count_parameters(Transformer(base.replace(**switches)))["total"]
                  for name, switches in VARIANTS.items()}
    assert counts["RoPE"] == paper  # no parameters: the sinusoidal table was none either
    assert counts["pre-LN"] == paper + 2 * 2 * 512  # + a final LayerNorm per stack
    assert abs(counts["SwiGLU"] / paper - 1) < 0.001  # 3 · 1365 rows instead of 2 · 2048
    d_model, n_layers = 512, 6
    assert paper - counts["RMSNorm"] == d_model * n_layers * 5  # 5 LayerNorm betas per N
    gqa_saving = 2 * (d_model * d_model - d_model * 2 * 64) + 2 * (d_model - 2 * 64)
    assert paper - counts["GQA-2"] == 3 * n_layers * gqa_saving  # 3 attentions per N

"""Embeddings (§3.4) and positional encodings (§3.5)."""

import math

import pytest
import torch

from transformer import (
    LearnedPositionalEmbedding,
    SinusoidalPositionalEncoding,
    TokenEmbedding,
    sinusoidal_table,
)


def _pe_by_hand(pos: int, dim: int, d_model: int) -> float:
    """§3.5 read literally: PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...)."""
    i = dim // 2
    angle = pos / 10000 ** (2 * i / d_model)
    return math.sin(angle) if dim % 2 == 0 else math.cos(angle)


@pytest.mark.parametrize("d_model", [8, 64, 512])
@pytest.mark.parametrize("pos", [0, 1, 17, 999])
def test_sinusoidal_table_equals_the_formula_of_section_3_5(d_model, pos):
    table = sinusoidal_table(1000, d_model)
    assert table.shape == (1000, d_model)
    for dim in sorted({0, 1, 2, 3, d_model // 2, d_model // 2 + 1, d_model - 2, d_model - 1}):
        assert math.isclose(float(table[pos, dim]), _pe_by_hand(pos, dim, d_model),
                            rel_tol=0, abs_tol=1e-6)  # the table is float32


def test_sinusoidal_wavelengths_grow_geometrically_from_2pi_to_10000_2pi():
    d_model = 512
    table = sinusoidal_table(4, d_model).double()
    # Dimension 2i oscillates with wavelength 2π·10000^(2i/d_model): read it back from pos 1.
    first, last = math.asin(float(table[1, 0])), math.asin(float(table[1, d_model - 2]))
    assert math.isclose(2 * math.pi / first, 2 * math.pi, rel_tol=1e-6)
    assert math.isclose(2 * math.pi / last, 2 * math.pi * 10000 ** ((d_model - 2) / d_model),
                        rel_tol=1e-4)


def test_sinusoidal_encoding_adds_the_table_at_the_given_offset():
    pe = SinusoidalPositionalEncoding(16, max_len=50)
    x = torch.randn(2, 5, 16)
    torch.testing.assert_close(pe(x), x + sinusoidal_table(50, 16)[:5], rtol=0, atol=0)
    torch.testing.assert_close(pe(x, offset=7), x + sinusoidal_table(50, 16)[7:12],
                               rtol=0, atol=0)
    # one step at offset t is the t-th row of a full pass: what a KV cache relies on
    full = pe(torch.zeros(1, 10, 16))
    torch.testing.assert_close(pe(torch.zeros(1, 1, 16), offset=9), full[:, 9:], rtol=0, atol=0)


def test_sinusoidal_encoding_keeps_the_input_dtype():
    pe = SinusoidalPositionalEncoding(8, max_len=10)
    assert pe(torch.zeros(1, 3, 8, dtype=torch.float64)).dtype == torch.float64


def test_sinusoidal_table_is_not_a_parameter_nor_saved():
    pe = SinusoidalPositionalEncoding(8, max_len=10)
    assert list(pe.parameters()) == [] and pe.state_dict() == {}


def test_learned_positions_add_one_trained_vector_per_position_at_an_offset():
    torch.manual_seed(0)
    pe = LearnedPositionalEmbedding(8, max_len=20)
    x = torch.randn(3, 4, 8)
    torch.testing.assert_close(pe(x, offset=2), x + pe.embedding.weight[2:6], rtol=0, atol=0)
    assert sum(p.numel() for p in pe.parameters()) == 20 * 8


@pytest.mark.parametrize("d_model", [4, 16, 512])
def test_token_embedding_multiplies_by_sqrt_d_model(d_model):
    torch.manual_seed(0)
    emb = TokenEmbedding(10, d_model)
    tokens = torch.tensor([[1, 9, 0], [3, 3, 2]])
    out = emb(tokens)
    assert out.shape == (2, 3, d_model)
    torch.testing.assert_close(out, emb.weight[tokens] * math.sqrt(d_model), rtol=1e-6,
                               atol=0)


def test_token_embedding_weight_is_the_embedding_matrix():
    emb = TokenEmbedding(10, 6)
    assert emb.weight is emb.embedding.weight and emb.weight.shape == (10, 6)


def test_token_embedding_accepts_every_integer_dtype_in_range():
    emb = TokenEmbedding(10, 4)
    for dtype in (torch.int64, torch.int32):
        assert emb(torch.tensor([[0, 9]], dtype=dtype)).shape == (1, 2, 4)


# --- the id range check never makes the host wait for an accelerator -----------------------

def test_out_of_range_id_on_the_cpu_is_named_with_the_range_and_the_bad_ids():
    with pytest.raises(ValueError, match=r"tokens must hold ids in \[0, vocab_size=10\), got "
                                         r"ids in \[2, 12\]"):
        TokenEmbedding(10, 4)(torch.tensor([[2, 12, 5]]))


def _record_async_asserts(monkeypatch) -> list[torch.Tensor]:
    calls: list[torch.Tensor] = []
    real = torch._assert_async

    def spy(condition, *args):
        calls.append(condition)
        return real(condition, *args)

    monkeypatch.setattr(torch, "_assert_async", spy)
    return calls


def test_accelerator_tokens_are_checked_on_the_device_without_reading_them(monkeypatch):
    """A "meta" tensor has a device but no values: reading one (``int(t.max())``, ``.item()``,
    ``bool(t)``) raises. So a forward that passes on "meta" never synchronised, and the range
    check it still made is the device-side ``torch._assert_async`` (what CUDA runs)."""
    calls = _record_async_asserts(monkeypatch)
    tokens = torch.randint(0, 10, (2, 3), device="meta")
    with pytest.raises(RuntimeError, match="meta"):
        int(tokens.max())  # the old check: a host read, impossible here
    emb = TokenEmbedding(10, 4).to("meta")
    assert emb(tokens).shape == (2, 3, 4)
    assert len(calls) == 1
    assert calls[0].device.type == "meta" and calls[0].dtype == torch.bool
    assert calls[0].shape == ()  # one flag for the whole batch, left on the device


def test_cpu_tokens_are_checked_eagerly_not_by_a_device_assert(monkeypatch):
    calls = _record_async_asserts(monkeypatch)
    TokenEmbedding(10, 4)(torch.tensor([[0, 9]]))
    assert calls == []


@pytest.mark.gpu
def test_cuda_forward_makes_no_host_synchronisation():
    from transformer import DecoderOnlyTransformer, Transformer, TransformerConfig

    cfg = TransformerConfig.tiny(vocab_size=16)
    models = [Transformer(cfg).cuda().eval(), DecoderOnlyTransformer(cfg).cuda().eval()]
    src = torch.randint(1, 16, (2, 7), device="cuda")
    tgt = torch.randint(1, 16, (2, 5), device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any synchronising call raises
    try:
        logits = [models[0](src, tgt), models[1](tgt)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert [t.shape for t in logits] == [(2, 5, 16), (2, 5, 16)]

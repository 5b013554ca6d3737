"""The static KV cache and the compiled decoding step (chapter 18) give greedy_decode's tokens.

The reference is the package's eager decoder with the growing KV cache of chapter 13
(``greedy_decode(model, prompts, max_new_tokens=n)``), itself proven equal to decoding without a
cache in tests/test_kv_cache.py. The static cache is checked eagerly for several
configurations (sinusoidal and learned positions, pre-LN + RMSNorm + SwiGLU, grouped-query
attention, a batch of prompts), and compiled once with ``torch.compile``.
"""

from __future__ import annotations

import pytest
import torch

from transformer import DecoderOnlyTransformer, Transformer, TransformerConfig
from transformer.generation import greedy_decode
from transformer.static_cache import CompiledDecoder, StaticKVCache, _decode_positions

CONFIGS = {
    "paper": {},
    "learned positions": dict(positional="learned"),
    "modern": dict(norm_first=True, norm="rmsnorm", activation="swiglu", bias=False),
    "grouped-query": dict(n_kv_heads=1),
}


def make(seed: int = 0, **changes) -> DecoderOnlyTransformer:
    torch.manual_seed(seed)
    return DecoderOnlyTransformer(TransformerConfig.tiny(vocab_size=16, max_len=64,
                                                         **changes)).eval()


def prompts(batch: int = 2, length: int = 5) -> torch.Tensor:
    return torch.randint(1, 16, (batch, length), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("changes", CONFIGS.values(), ids=list(CONFIGS))
def test_static_cache_decoding_gives_the_tokens_of_greedy_decode(changes: dict) -> None:
    model, inputs = make(**changes), prompts()
    expected = greedy_decode(model, inputs, max_new_tokens=40)
    got = CompiledDecoder(model, batch=2, compile=False).generate(inputs, 40)
    assert torch.equal(got, expected)


def test_static_cache_logits_equal_the_models_forward_pass() -> None:
    model, inputs = make(), prompts(length=12)
    caches = [StaticKVCache(2, 4, 64, 8) for _ in model.layers]  # tiny: d_model 32, 4 heads
    with torch.no_grad():
        first = _decode_positions(model, caches, inputs[:, :7], torch.arange(7))
        rest = [_decode_positions(model, caches, inputs[:, t : t + 1], torch.tensor([t]))
                for t in range(7, 12)]
        full = model(inputs)  # (2, 12, vocab): no cache at all
    torch.testing.assert_close(torch.cat([first, *rest], dim=1), full, atol=1e-5, rtol=1e-5)


def test_the_cache_is_written_in_place_and_keeps_its_shape() -> None:
    cache = StaticKVCache(1, 2, 10, 4)
    key, value = torch.ones(1, 2, 3, 4), torch.full((1, 2, 3, 4), 2.0)
    k, v = cache.update(torch.tensor([4, 5, 6]), key, value)
    assert k.shape == v.shape == (1, 2, 10, 4)
    assert k.data_ptr() == cache.key.data_ptr()  # the same buffer, every step
    assert k[:, :, 4:7].eq(1).all() and k[:, :, :4].eq(0).all() and k[:, :, 7:].eq(0).all()
    assert v[:, :, 4:7].eq(2).all()


def test_a_second_generate_reuses_the_cache_and_gives_the_same_tokens() -> None:
    model, inputs = make(), prompts()
    decoder = CompiledDecoder(model, batch=2, max_len=30, compile=False)
    first = decoder.generate(inputs, 20)
    assert torch.equal(decoder.generate(inputs[:, :3], 20),
                       greedy_decode(model, inputs[:, :3], max_new_tokens=20))
    assert torch.equal(decoder.generate(inputs, 20), first)


@pytest.mark.slow
def test_compiled_step_gives_the_tokens_of_greedy_decode() -> None:
    model = make(**CONFIGS["grouped-query"])
    inputs = prompts()
    expected = greedy_decode(model, inputs, max_new_tokens=30)
    decoder = CompiledDecoder(model, batch=2)
    assert torch.equal(decoder.generate(inputs, 30), expected)
    assert torch.equal(decoder.generate(inputs[:, :4], 30),  # another prompt length: the
                       greedy_decode(model, inputs[:, :4], max_new_tokens=30))  # same graph


def test_rope_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match=r"positional='sinusoidal' or 'learned'.*'rope'"):
        CompiledDecoder(make(positional="rope"), compile=False)


def test_an_encoder_decoder_model_is_refused() -> None:
    torch.manual_seed(0)
    with pytest.raises(TypeError, match="DecoderOnlyTransformer, got Transformer"):
        CompiledDecoder(Transformer(TransformerConfig.tiny()), compile=False)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(batch=0), r"batch must be an integer >= 1, got 0"),
    (dict(max_len=65), r"max_len must be an integer >= 1 and <= config.max_len=64, got 65"),
    (dict(max_len=2.5), r"max_len must be .* got 2.5"),
])
def test_bad_sizes_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CompiledDecoder(make(), compile=False, **kwargs)


@pytest.mark.parametrize(("inputs", "new", "match"), [
    (prompts(batch=3), 5, r"prompts must be \(batch=2, prompt_len >= 1\) torch.long ids, got "
                          r"\(3, 5\)"),
    (prompts().float(), 5, r"torch.float32"),
    (torch.zeros(2, 3, dtype=torch.long), 5, r"must not hold pad_id=0"),
    (prompts(), 0, r"max_new_tokens must be an integer in \[1, max_len - prompt_len \+ 1 = 16\]"),
    (prompts(), 17, r"= 16\], got 17"),
])
def test_bad_prompts_are_refused(inputs: torch.Tensor, new: int, match: str) -> None:
    decoder = CompiledDecoder(make(), batch=2, max_len=20, compile=False)
    with pytest.raises(ValueError, match=match):
        decoder.generate(inputs, new)

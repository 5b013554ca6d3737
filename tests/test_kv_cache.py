"""The KV cache: decoding with it gives what decoding without it gives, with less work.

For both model kinds, 100 decoding steps with the cache produce the same logits (float32,
within 1e-5) as re-running the model on the whole prefix, hence the same tokens; a
Transformer's cross-attention keys/values over the encoder output are computed once.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transformer import DecoderOnlyTransformer, KVCache, Transformer, TransformerConfig
from transformer.generation import DecodingState, beam_search, greedy_decode, sample
from transformer.layers import DecoderLayerCache

PAD, BOS, EOS = 0, 1, 2
STEPS = 100
KINDS = pytest.mark.parametrize("kind", [Transformer, DecoderOnlyTransformer],
                                ids=["encoder-decoder", "decoder-only"])


def make(kind: type, seed: int = 0, **changes) -> Transformer | DecoderOnlyTransformer:
    torch.manual_seed(seed)
    return kind(TransformerConfig.tiny(vocab_size=16, **changes)).eval()


def inputs_for(kind: type) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randint(3, 16, (3, 7), generator=generator)
    if kind is Transformer:
        inputs[1, 5:] = PAD  # sources of different lengths in one batch
    return inputs


def step_logits(state: DecodingState, tokens: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Logits of every step, feeding ``tokens`` (or the greedy choice, never PAD)."""
    out = []
    for step in range(STEPS):
        logits = state.next_logits()  # (rows, vocab)
        out.append(logits)
        if tokens is None:
            choice = logits.clone()
            choice[:, PAD] = float("-inf")
            state.append(choice.argmax(dim=-1))
        else:
            state.append(tokens[:, step])
    return out


@KINDS
def test_cached_and_uncached_logits_agree_for_100_steps(kind: type) -> None:
    model, inputs = make(kind), inputs_for(kind)
    cached = model.start_decoding(inputs, bos_id=BOS, use_cache=True)
    with_cache = step_logits(cached)
    fed = cached.generated  # (rows, STEPS): the tokens chosen with the cache
    without_cache = step_logits(model.start_decoding(inputs, bos_id=BOS, use_cache=False), fed)
    for step, (a, b) in enumerate(zip(with_cache, without_cache, strict=True)):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0, msg=f"step {step}")


@KINDS
@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_cached_and_uncached_greedy_decoding_give_the_same_tokens(kind: type,
                                                                  norm_first: bool) -> None:
    model, inputs = make(kind, norm_first=norm_first), inputs_for(kind)
    kwargs = dict(max_new_tokens=STEPS, bos_id=BOS, eos_id=EOS)
    cached = greedy_decode(model, inputs, use_cache=True, **kwargs)
    assert cached.shape[1] > 1
    assert torch.equal(cached, greedy_decode(model, inputs, use_cache=False, **kwargs))


@KINDS
@pytest.mark.parametrize("beam_size", [1, 4])
def test_beam_search_with_and_without_cache_is_identical(kind: type, beam_size: int) -> None:
    model, inputs = make(kind, seed=3), inputs_for(kind)
    kwargs = dict(beam_size=beam_size, max_new_tokens=30, bos_id=BOS, eos_id=EOS)
    cached = beam_search(model, inputs, use_cache=True, **kwargs)
    uncached = beam_search(model, inputs, use_cache=False, **kwargs)
    assert torch.equal(cached.sequences, uncached.sequences)
    torch.testing.assert_close(cached.scores, uncached.scores, atol=1e-5, rtol=0)


@KINDS
def test_sampling_with_and_without_cache_draws_the_same_tokens(kind: type) -> None:
    model, inputs = make(kind), inputs_for(kind)

    def draw(use_cache: bool) -> torch.Tensor:
        return sample(model, inputs, max_new_tokens=25, top_p=0.9, bos_id=BOS, eos_id=EOS,
                      use_cache=use_cache, generator=torch.Generator().manual_seed(0))

    assert torch.equal(draw(True), draw(False))


def _count_calls(modules: list[nn.Module]) -> list[int]:
    counts = [0] * len(modules)
    for i, module in enumerate(modules):
        def hook(*_, i=i) -> None:
            counts[i] += 1
        module.register_forward_hook(hook)
    return counts


def test_cross_attention_keys_and_values_are_computed_once() -> None:
    model, sources = make(Transformer), inputs_for(Transformer)
    layers = model.decoder.layers
    key_calls = _count_calls([layer.cross_attn.w_k for layer in layers])
    value_calls = _count_calls([layer.cross_attn.w_v for layer in layers])
    state = model.start_decoding(sources, bos_id=BOS, use_cache=True)
    state.next_logits()
    first = [(c.cross_attn.key, c.cross_attn.value) for c in state.cache]
    for _ in range(20):
        state.append(torch.full((len(sources),), 5))
        state.next_logits()
    assert key_calls == value_calls == [1] * len(layers)
    for (key, value), c in zip(first, state.cache, strict=True):
        assert c.cross_attn.key is key and c.cross_attn.value is value  # the same tensors
        assert len(c.self_attn) == 21  # one more position per step


def test_without_cache_cross_attention_keys_are_recomputed_every_step() -> None:
    """The control for the test above: the counting does see recomputation."""
    model, sources = make(Transformer), inputs_for(Transformer)
    key_calls = _count_calls([layer.cross_attn.w_k for layer in model.decoder.layers])
    greedy_decode(model, sources, max_new_tokens=10, bos_id=BOS, use_cache=False)
    assert key_calls == [10] * len(model.decoder.layers)


def test_beam_search_computes_cross_attention_keys_once() -> None:
    model, sources = make(Transformer), inputs_for(Transformer)
    key_calls = _count_calls([layer.cross_attn.w_k for layer in model.decoder.layers])
    beam_search(model, sources, beam_size=4, max_new_tokens=12, bos_id=BOS)
    assert key_calls == [1] * len(model.decoder.layers)


@KINDS
def test_cached_decoding_runs_the_model_on_one_new_position_per_step(kind: type) -> None:
    model, inputs = make(kind), inputs_for(kind)
    embed = model.tgt_embed if kind is Transformer else model.embed
    positions: list[int] = []
    embed.register_forward_hook(lambda _m, args, _out: positions.append(args[0].shape[1]))
    greedy_decode(model, inputs, max_new_tokens=10, bos_id=BOS)
    prefix = 1 if kind is Transformer else inputs.shape[1]
    assert positions[-10:] == [prefix] + [1] * 9
    positions.clear()
    greedy_decode(model, inputs, max_new_tokens=10, bos_id=BOS, use_cache=False)
    assert positions[-10:] == [prefix + t for t in range(10)]


@KINDS
def test_reorder_makes_each_row_continue_the_hypothesis_it_names(kind: type) -> None:
    model, inputs = make(kind), inputs_for(kind)[:1]
    cached = model.start_decoding(inputs, bos_id=BOS, beams=3, use_cache=True)
    cached.next_logits()
    cached.append(torch.tensor([4, 5, 6]))
    cached.next_logits()
    cached.append(torch.tensor([7, 8, 9]))
    index = torch.tensor([2, 0, 0])
    cross = [c.cross_attn.key for c in cached.cache] if kind is Transformer else []
    cached.reorder(index)
    # copies of one source share equal cross-attention keys: those are not moved, nor copied
    assert all(c.cross_attn.key is k for c, k in zip(cached.cache, cross, strict=False))
    cached.append(torch.tensor([10, 11, 12]))
    assert cached.generated.tolist() == [[6, 9, 10], [4, 7, 11], [4, 7, 12]]
    fresh = model.start_decoding(inputs.repeat(3, 1), bos_id=BOS, use_cache=False)
    fresh.append(cached.generated[:, 0])
    fresh.append(cached.generated[:, 1])
    fresh.append(cached.generated[:, 2])
    torch.testing.assert_close(cached.next_logits(), fresh.next_logits(), atol=1e-5, rtol=0)


def test_a_cache_holds_two_tensors_per_layer_of_batch_by_length_by_d_model() -> None:
    cfg = TransformerConfig.tiny(vocab_size=16)
    model = make(DecoderOnlyTransformer)
    state = model.start_decoding(torch.randint(3, 16, (2, 5)), use_cache=True)
    state.next_logits()
    assert all(isinstance(c, KVCache) for c in state.cache)
    numbers = sum(c.key.numel() + c.value.numel() for c in state.cache)
    assert numbers == 2 * cfg.n_layers * 2 * 5 * cfg.d_model  # K and V, per layer


def test_asking_twice_without_a_new_token_raises() -> None:
    state = make(DecoderOnlyTransformer).start_decoding(torch.tensor([[3, 4]]), use_cache=True)
    state.next_logits()
    with pytest.raises(RuntimeError, match="append"):
        state.next_logits()


def test_decoder_layer_cache_starts_empty() -> None:
    cache = make(Transformer).new_cache()
    assert all(isinstance(c, DecoderLayerCache) for c in cache)
    assert all(len(c.self_attn) == 0 and len(c.cross_attn) == 0 for c in cache)


# ----------------------------------------------------------------- BOS and padding


def test_a_bos_equal_to_padding_would_be_hidden_by_the_uncached_mask_so_it_is_refused() -> None:
    """With ``bos_id == pad_id`` the uncached decoder hid the BOS key as padding while the
    cached one showed it, and their first-step logits differed. The combination is refused."""
    torch.manual_seed(0)
    model = Transformer(TransformerConfig.tiny(vocab_size=9)).eval()  # pad_id = 0
    src = torch.tensor([[3, 4, 5]])
    bos = torch.zeros(1, 1, dtype=torch.long)  # BOS = PAD = 0
    with torch.no_grad():
        memory = model.encode(src)
        hidden = model.decode(bos, memory)  # default mask: padding and future hidden
        shown = model.decode(bos, memory, tgt_mask=torch.ones(1, 1, 1, 1, dtype=torch.bool))
    assert (hidden - shown).abs().max() > 0.5  # the disagreement the refusal prevents
    message = "bos_id=0 must differ from pad_id=0: padding is hidden from attention"
    for use_cache in (True, False):
        with pytest.raises(ValueError, match=message):
            model.start_decoding(src, bos_id=0, use_cache=use_cache)
    with pytest.raises(ValueError, match=message):
        beam_search(model, src, bos_id=0, max_new_tokens=3)
    with pytest.raises(ValueError, match=message):
        model.sequence_logits(src, torch.tensor([[3, 4]]), bos_id=0)


@pytest.mark.parametrize("bos_id", range(1, 9))
def test_cached_and_uncached_decoding_agree_for_every_allowed_bos_id(bos_id: int) -> None:
    torch.manual_seed(0)
    model = Transformer(TransformerConfig.tiny(vocab_size=9)).eval()
    src = torch.tensor([[3, 4, 5], [6, 7, PAD]])
    cached = model.start_decoding(src, bos_id=bos_id, use_cache=True)
    uncached = model.start_decoding(src, bos_id=bos_id, use_cache=False)
    for _ in range(5):
        a, b = cached.next_logits(), uncached.next_logits()
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
        cached.append(a.argmax(dim=-1).clamp(min=1))
        uncached.append(a.argmax(dim=-1).clamp(min=1))


def test_append_checks_the_shape_of_the_new_tokens() -> None:
    state = make(DecoderOnlyTransformer).start_decoding(torch.tensor([[3, 4], [5, 6]]))
    with pytest.raises(ValueError, match=r"tokens must have shape \(rows=2,\), got \(3,\)"):
        state.append(torch.tensor([1, 2, 3]))

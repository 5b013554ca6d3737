"""The full models (§3, Figure 1): the KV cache changes no number, the parameter counts match
Table 3, tied weights are one matrix, and the decoder never looks ahead."""

import dataclasses
import json

import pytest
import torch
from helpers import PAD, TOL, rng

from transformer import (
    DecoderOnlyTransformer,
    Transformer,
    TransformerConfig,
    count_parameters,
    decoder_mask,
    padding_mask,
)


def _model(cls, seed: int, **changes):
    torch.manual_seed(seed)
    cfg = TransformerConfig.tiny(vocab_size=29, **changes)
    return cls(cfg).double().eval()


# --- 6. KV cache: cached decoding == the full sequence ---------------------------------------

@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("prefill", [1, 5], ids=["step_by_step", "prefill_then_steps"])
def test_transformer_decode_with_cache_equals_full_sequence(seed, prefill):
    # seeds 1 and 2 also switch on pre-LN and fused Q/K/V projections
    model = _model(Transformer, seed, norm_first=seed == 1, fused_qkv=seed == 2)
    g = rng(seed)
    src = torch.randint(1, 29, (2, 11), generator=g)
    src[1, 7:] = PAD  # a padded source row: memory_mask matters
    tgt = torch.randint(1, 29, (2, 30), generator=g)
    src_mask = (src != PAD)[:, None, None, :]
    memory = model.encode(src, src_mask=src_mask)
    full = model.decode(tgt, memory, memory_mask=src_mask)

    cache = model.new_cache()
    pieces = [model.decode(tgt[:, :prefill], memory, memory_mask=src_mask, cache=cache)]
    for t in range(prefill, tgt.shape[1]):
        pieces.append(model.decode(tgt[:, t:t + 1], memory, memory_mask=src_mask, cache=cache))
    assert len(cache[0].self_attn) == 30 and len(cache[0].cross_attn) == 11
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, **TOL)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("prefill", [1, 6], ids=["step_by_step", "prefill_then_steps"])
def test_decoder_only_with_cache_equals_full_sequence(seed, prefill):
    # seeds 1 and 2 also switch on learned positions + pre-LN, and fused Q/K/V projections
    model = _model(DecoderOnlyTransformer, seed, positional="learned" if seed == 1 else
                   "sinusoidal", norm_first=seed == 1, fused_qkv=seed == 2)
    tokens = torch.randint(1, 29, (3, 30), generator=rng(seed))
    full = model(tokens)

    cache = model.new_cache()
    pieces = [model(tokens[:, :prefill], cache=cache)]
    for t in range(prefill, tokens.shape[1]):
        pieces.append(model(tokens[:, t:t + 1], cache=cache))
    assert len(cache[0]) == 30
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, **TOL)


def test_decoder_only_never_looks_ahead():
    model = _model(DecoderOnlyTransformer, 0)
    tokens = torch.randint(1, 29, (2, 12), generator=rng(0))
    changed = tokens.clone()
    changed[:, 8:] = (changed[:, 8:] % 28) + 1  # different, still no padding
    before, after = model(tokens), model(changed)
    torch.testing.assert_close(after[:, :8], before[:, :8], **TOL)
    assert not torch.allclose(after[:, 8], before[:, 8])


def test_transformer_target_never_looks_ahead_but_sees_the_whole_source():
    model = _model(Transformer, 0)
    g = rng(1)
    src, tgt = torch.randint(1, 29, (2, 7), generator=g), torch.randint(1, 29, (2, 9),
                                                                        generator=g)
    before = model(src, tgt)
    tgt2 = tgt.clone()
    tgt2[:, 5] = tgt[:, 5] % 28 + 1
    after = model(src, tgt2)
    torch.testing.assert_close(after[:, :5], before[:, :5], **TOL)
    src2 = src.clone()
    src2[:, -1] = src[:, -1] % 28 + 1
    assert not torch.allclose(model(src2, tgt)[:, 0], before[:, 0])  # the last source token


# --- 7. parameter counts (Table 3) ------------------------------------------------------------

@pytest.mark.parametrize(("preset", "paper_millions"), [("paper_base", 65), ("paper_big", 213)])
def test_parameter_count_is_within_3_percent_of_table_3(preset, paper_millions):
    cfg = getattr(TransformerConfig, preset)(vocab_size=37000)
    with torch.device("meta"):  # shapes only: no memory, no initialisation time
        model = Transformer(cfg)
    counts = count_parameters(model)
    print(f"{preset}: " + ", ".join(f"{k}={v:,}" for k, v in counts.items()))
    assert abs(counts["total"] / (paper_millions * 1e6) - 1) <= 0.03, counts


def _unique_numel(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


@pytest.mark.parametrize("cls", [Transformer, DecoderOnlyTransformer])
@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_count_parameters_counts_each_tensor_once(cls, positional):
    model = cls(TransformerConfig.tiny(vocab_size=50, positional=positional))
    counts = count_parameters(model)
    assert counts["total"] == _unique_numel(model)
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")


def test_tied_embeddings_are_one_matrix_and_untying_adds_two():
    """§3.4: the source and target embeddings and the pre-softmax projection share one
    weight matrix; untied, there are two more vocab × d_model matrices."""
    tied = Transformer(TransformerConfig.tiny(vocab_size=50))
    assert tied.src_embed.weight is tied.tgt_embed.weight is tied.generator.weight
    untied = Transformer(TransformerConfig.tiny(vocab_size=50, tie_embeddings=False))
    assert untied.src_embed.weight is not untied.tgt_embed.weight
    extra = count_parameters(untied)["total"] - count_parameters(tied)["total"]
    assert extra == 2 * 50 * 32
    assert count_parameters(untied)["total"] == _unique_numel(untied)


def test_untied_model_may_have_its_own_target_vocabulary():
    cfg = TransformerConfig.tiny(vocab_size=50, tgt_vocab_size=70, tie_embeddings=False)
    model = Transformer(cfg)
    logits = model(torch.randint(1, 50, (2, 4)), torch.randint(1, 70, (2, 3)))
    assert logits.shape == (2, 3, 70)
    assert count_parameters(model)["generator"] == 70 * 32


def test_decoder_only_generator_is_the_embedding():
    model = DecoderOnlyTransformer(TransformerConfig.tiny(vocab_size=50))
    assert model.generator.weight is model.embed.weight
    assert count_parameters(model)["generator"] == 0


# --- shapes, presets and config --------------------------------------------------------------

def test_forward_and_encode_shapes():
    model = _model(Transformer, 0)
    src, tgt = torch.randint(1, 29, (3, 7)), torch.randint(1, 29, (3, 5))
    assert model.encode(src).shape == (3, 7, 32)
    assert model(src, tgt).shape == (3, 5, 29)
    assert _model(DecoderOnlyTransformer, 0)(tgt).shape == (3, 5, 29)


def test_presets_have_the_papers_hyper_parameters():
    base, big = TransformerConfig.paper_base(), TransformerConfig.paper_big()
    assert (base.n_layers, base.d_model, base.d_ff, base.n_heads, base.dropout) == (
        6, 512, 2048, 8, 0.1)
    assert (big.n_layers, big.d_model, big.d_ff, big.n_heads, big.dropout) == (
        6, 1024, 4096, 16, 0.3)
    assert base.d_model // base.n_heads == 64  # d_k = d_v = 64 (§3.2.2)
    assert not base.norm_first and base.activation == "relu" and base.tie_embeddings
    assert not base.use_final_norm and TransformerConfig(norm_first=True).use_final_norm


def test_config_replace_revalidates_and_to_dict_round_trips():
    cfg = TransformerConfig.tiny()
    assert TransformerConfig(**cfg.to_dict()) == cfg
    assert cfg.replace(n_layers=3).n_layers == 3 and cfg.n_layers == 2
    with pytest.raises(ValueError, match="n_heads"):
        cfg.replace(n_heads=5)
    assert set(cfg.to_dict()) == {f.name for f in dataclasses.fields(cfg)}


def test_config_from_dict_round_trips_through_json_and_fills_defaults():
    cfg = TransformerConfig.tiny(vocab_size=50, tgt_vocab_size=70, tie_embeddings=False,
                                 final_norm=True, layer_norm_eps=1e-6)
    assert TransformerConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    partial = TransformerConfig.from_dict({"d_model": 64, "n_heads": 4})
    assert partial == TransformerConfig(d_model=64, n_heads=4)  # the rest: paper defaults


def test_config_accepts_the_valid_values_next_to_each_check():
    """The checks are not over-eager: whole-number floats stay out of int fields, but an int
    is a fine number for dropout or epsilon, and None is allowed where it has a meaning."""
    cfg = TransformerConfig(dropout=0, layer_norm_eps=1, final_norm=None, tgt_vocab_size=None,
                            pad_id=36999, norm_first=True, bias=False, fused_qkv=True)
    assert cfg.target_vocab_size == 37000 and cfg.use_final_norm
    assert TransformerConfig(d_model=9, n_heads=3, positional="learned").d_model == 9


def test_final_norm_follows_the_config():
    assert isinstance(Transformer(TransformerConfig.tiny()).encoder.norm, torch.nn.Identity)
    with_norm = Transformer(TransformerConfig.tiny(final_norm=True))
    assert isinstance(with_norm.decoder.norm, torch.nn.LayerNorm)


def test_matrices_start_xavier_uniform():
    model = Transformer(TransformerConfig.tiny(vocab_size=50))
    w = model.encoder.layers[0].feed_forward.linear1.weight  # (d_ff, d_model)
    bound = (6 / sum(w.shape)) ** 0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.8 * bound


def test_dropout_is_active_in_training_and_off_in_eval():
    torch.manual_seed(0)
    model = Transformer(TransformerConfig.tiny(vocab_size=29, dropout=0.3))
    src, tgt = torch.randint(1, 29, (2, 6)), torch.randint(1, 29, (2, 5))
    model.train()
    assert not torch.equal(model(src, tgt), model(src, tgt))
    model.eval()
    assert torch.equal(model(src, tgt), model(src, tgt))


@pytest.mark.parametrize("preset", ["paper_base", "paper_big", "tiny"])
def test_presets_accept_overrides_of_their_own_settings(preset):
    cfg = getattr(TransformerConfig, preset)(vocab_size=100, n_layers=1, dropout=0.0)
    assert (cfg.n_layers, cfg.dropout, cfg.vocab_size) == (1, 0.0, 100)
    assert cfg.d_model == getattr(TransformerConfig, preset)().d_model  # the rest is kept


@pytest.mark.parametrize("cls", [Transformer, DecoderOnlyTransformer])
def test_forward_and_cached_decoding_never_read_tensor_values(cls):
    """On the "meta" device tensors have shapes but no values, and any host read (``.item()``,
    ``int(t)``, ``if t:``) raises: passing there means no forward step waits for a GPU."""
    with torch.device("meta"):
        model = cls(TransformerConfig.tiny(vocab_size=29, norm_first=True)).eval()
        src, tgt = torch.randint(1, 29, (2, 7)), torch.randint(1, 29, (2, 5))
        cache = model.new_cache()
        if cls is Transformer:
            memory = model.encode(src)
            assert model(src, tgt).shape == (2, 5, 29)
            model.decode(tgt[:, :3], memory, memory_mask=padding_mask(src, PAD), cache=cache)
            step = model.decode(tgt[:, 3:4], memory, cache=cache)
        else:
            assert model(tgt).shape == (2, 5, 29)
            model(tgt[:, :3], cache=cache)
            step = model(tgt[:, 3:4], cache=cache)
    assert step.shape == (2, 1, 29) and step.device.type == "meta"


@pytest.mark.parametrize("cls", [Transformer, DecoderOnlyTransformer])
def test_default_self_attention_mask_is_decoder_mask(cls):
    """Both models build their default self-attention mask with ``decoder_mask``: passing it
    explicitly changes nothing, with or without padding."""
    model = _model(cls, 0)
    tokens = torch.randint(1, 29, (2, 6), generator=rng(3))
    tokens[1, 4:] = PAD
    mask = decoder_mask(tokens, PAD)
    if cls is Transformer:
        src = torch.randint(1, 29, (2, 4), generator=rng(4))
        torch.testing.assert_close(model(src, tokens, tgt_mask=mask), model(src, tokens), **TOL)
    else:
        torch.testing.assert_close(model(tokens, mask=mask), model(tokens), **TOL)

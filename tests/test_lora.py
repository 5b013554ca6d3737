"""LoRA (transformer/lora.py): the adapted model starts as the base, only the adapters train,
merging changes no output, and the outputs equal peft's LoRA with the same A, B, alpha and rank."""

from __future__ import annotations

import copy
import math
import os

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from transformer import DecoderOnlyTransformer, Transformer, TransformerConfig
from transformer.lora import (
    LoRALinear,
    apply_lora,
    load_lora_state_dict,
    lora_state_dict,
    merge_lora,
    trainable_parameters,
    unmerge_lora,
)

ALL_LINEARS = ("w_q", "w_k", "w_v", "w_o", "linear1", "linear2")


def _decoder_only(dtype: torch.dtype = torch.float32, **changes) -> DecoderOnlyTransformer:
    torch.manual_seed(0)
    cfg = TransformerConfig.tiny(vocab_size=16, **changes)
    return DecoderOnlyTransformer(cfg).to(dtype).eval()


def _randomize_adapters(model: nn.Module, seed: int = 1) -> None:
    """Give every B a non-zero value, as training would, so that ΔW ≠ 0."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LoRALinear):
                m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=g, dtype=m.lora_B.dtype))


def _tokens(n: int = 3, seq: int = 10) -> torch.Tensor:
    return torch.randint(3, 16, (n, seq), generator=torch.Generator().manual_seed(2))


# ----------------------------------------------------------------- start, init and freezing


def test_adapted_model_starts_equal_to_the_base() -> None:
    base = _decoder_only()
    adapted = copy.deepcopy(base)
    apply_lora(adapted, rank=4, alpha=8, targets=ALL_LINEARS)
    tokens = _tokens()
    with torch.no_grad():
        assert torch.equal(adapted(tokens), base(tokens))  # B = 0: ΔW x is exactly 0


def test_a_is_kaiming_uniform_like_peft_and_b_is_zero() -> None:
    base = nn.Linear(24, 10)
    torch.manual_seed(5)
    layer = LoRALinear(base, rank=3, alpha=6)
    torch.manual_seed(5)
    expected = nn.init.kaiming_uniform_(torch.empty(3, 24), a=math.sqrt(5))
    assert torch.equal(layer.lora_A, expected)
    assert layer.lora_A.abs().max() <= 1 / math.sqrt(24)  # the bound of kaiming_uniform, a=√5
    assert torch.equal(layer.lora_B, torch.zeros(10, 3))
    assert layer.scaling == 2.0  # alpha / rank


def test_adapters_follow_the_base_dtype() -> None:
    layer = LoRALinear(nn.Linear(8, 4).double(), rank=2, alpha=2)
    assert layer.lora_A.dtype == layer.lora_B.dtype == torch.float64


def test_apply_lora_returns_the_adapted_names_in_model_order() -> None:
    model = _decoder_only()
    names = apply_lora(model, rank=2, alpha=2)  # the default: w_q and w_v, as the paper
    assert names == ["layers.0.self_attn.w_q", "layers.0.self_attn.w_v",
                     "layers.1.self_attn.w_q", "layers.1.self_attn.w_v"]
    assert all(isinstance(model.get_submodule(n), LoRALinear) for n in names)
    assert isinstance(model.layers[0].self_attn.w_k, nn.Linear)


def test_targets_match_full_names_suffixes_or_a_predicate() -> None:
    model = _decoder_only()
    assert apply_lora(model, rank=2, alpha=2, targets="layers.1.feed_forward.linear2") == \
        ["layers.1.feed_forward.linear2"]
    model = _decoder_only()
    chosen = apply_lora(model, rank=2, alpha=2, targets=lambda n: n.startswith("layers.0."))
    assert chosen == [f"layers.0.{n}" for n in ("self_attn.w_q", "self_attn.w_k",
                                                "self_attn.w_v", "self_attn.w_o",
                                                "feed_forward.linear1", "feed_forward.linear2")]


def test_everything_but_the_adapters_is_frozen() -> None:
    model = _decoder_only()
    apply_lora(model, rank=2, alpha=2, targets=ALL_LINEARS)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert trainable and all(n.endswith((".lora_A", ".lora_B")) for n in trainable)
    assert len(trainable) == 2 * 6 * 2  # A and B, six linears, two layers
    assert not any("lora_" in n for n in frozen)
    assert "embed.embedding.weight" in frozen and "layers.0.sublayer1.norm.weight" in frozen


def test_an_optimizer_step_changes_only_the_adapters() -> None:
    model = _decoder_only()
    apply_lora(model, rank=2, alpha=4, targets=ALL_LINEARS)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)  # given every parameter
    tokens = _tokens()
    model.train()
    for _ in range(2):  # step 1 moves B only (B = 0 gives A no gradient), step 2 moves A too
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(tokens[:, :-1]).flatten(0, 1),
                                    tokens[:, 1:].flatten()).backward()
        assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
        optimizer.step()
    after = model.state_dict()
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    expected = sorted(k for k in before if k.endswith((".lora_A", ".lora_B")))
    assert changed == expected


def test_trainable_parameters_counts_r_times_d_in_plus_d_out() -> None:
    model = _decoder_only()  # tiny: d_model 32, d_ff 64, 2 layers, tied embeddings
    base_total = sum(p.numel() for p in model.parameters())
    assert trainable_parameters(model) == (base_total, base_total)
    apply_lora(model, rank=4, alpha=8, targets=ALL_LINEARS)
    d, d_ff, r = 32, 64, 4
    per_layer = 4 * r * (d + d) + r * (d + d_ff) + r * (d_ff + d)  # attention, then FFN
    assert trainable_parameters(model) == (2 * per_layer, base_total + 2 * per_layer)


def test_trainable_parameters_counts_a_tied_matrix_once() -> None:
    model = _decoder_only()  # generator.weight is embed's matrix
    vocab, d = 16, 32
    untied = sum(p.numel() for p in model.parameters()) + vocab * d
    assert trainable_parameters(model)[1] == untied - vocab * d


# --------------------------------------------------------------------------- merge, unmerge


def test_merged_and_unmerged_outputs_are_equal_in_float64() -> None:
    model = _decoder_only(torch.float64)
    tokens = _tokens()
    base_out = model(tokens)
    apply_lora(model, rank=4, alpha=8, targets=ALL_LINEARS)
    _randomize_adapters(model)  # B ~ N(0, 1): a large update
    with torch.no_grad():
        unmerged = model(tokens)
        assert (unmerged - base_out).abs().max() > 0.1  # ΔW ≠ 0: the check below means something
        merge_lora(model)
        torch.testing.assert_close(model(tokens), unmerged, rtol=0, atol=1e-12)
        unmerge_lora(model)
        torch.testing.assert_close(model(tokens), unmerged, rtol=0, atol=1e-12)


def test_merged_and_unmerged_layer_outputs_are_within_1e_6_in_float32() -> None:
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(64, 64), rank=8, alpha=16)
    with torch.no_grad():
        layer.lora_B.normal_(std=0.02)
    x = torch.randn(32, 64)
    with torch.no_grad():
        unmerged = layer(x)  # (32, 64), entries of order 1
        assert (unmerged - layer.base(x)).abs().max() > 1e-2
        layer.merge()
        torch.testing.assert_close(layer(x), unmerged, rtol=0, atol=1e-6)
        layer.unmerge()
        torch.testing.assert_close(layer(x), unmerged, rtol=0, atol=1e-6)


def test_merged_and_unmerged_model_outputs_agree_to_float32_rounding() -> None:
    """Through a whole model the rounding of every layer adds up: the logits agree to 1e-6 of
    their size (a few float32 ulps), for updates of the size training gives (B ~ N(0, 0.02²))."""
    model = _decoder_only(torch.float32)
    apply_lora(model, rank=4, alpha=8, targets=ALL_LINEARS)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LoRALinear):
                m.lora_B.normal_(std=0.02)
        tokens = _tokens()
        unmerged = model(tokens)
        merge_lora(model)
        merged = model(tokens)
        unmerge_lora(model)
        restored = model(tokens)
    scale = unmerged.abs().max()
    assert (merged - unmerged).abs().max() <= 1e-6 * scale
    assert (restored - unmerged).abs().max() <= 1e-6 * scale


def test_merge_folds_alpha_over_r_times_b_a_into_the_weight() -> None:
    base = nn.Linear(6, 5).double()
    w0 = base.weight.detach().clone()
    layer = LoRALinear(base, rank=2, alpha=3)
    with torch.no_grad():
        layer.lora_B.normal_()
    delta = (3 / 2) * layer.lora_B.detach() @ layer.lora_A.detach()  # (α/r) B A, (5, 6)
    torch.testing.assert_close(layer.weight, w0 + delta, rtol=0, atol=1e-12)
    layer.merge()
    torch.testing.assert_close(layer.base.weight, w0 + delta, rtol=0, atol=1e-12)
    torch.testing.assert_close(layer.weight, w0 + delta, rtol=0, atol=1e-12)
    layer.unmerge()
    torch.testing.assert_close(layer.base.weight, w0, rtol=0, atol=1e-12)


def test_merge_returns_names_and_refuses_twice() -> None:
    model = _decoder_only()
    names = apply_lora(model, rank=2, alpha=2)
    assert merge_lora(model) == names
    with pytest.raises(ValueError, match="already merged; call unmerge_lora first"):
        merge_lora(model)
    assert unmerge_lora(model) == names
    with pytest.raises(ValueError, match="not merged; call merge_lora first"):
        unmerge_lora(model)


def test_merge_refuses_a_weight_tied_to_the_embedding() -> None:
    model = _decoder_only()  # tie_embeddings=True: generator.weight is the embedding
    apply_lora(model, rank=2, alpha=2, targets=("w_q", "generator"))
    w_q = model.layers[0].self_attn.w_q.base.weight.detach().clone()
    with pytest.raises(ValueError, match=r"'generator'.*shared with \['embed.embedding.weight'\]"):
        merge_lora(model)
    assert torch.equal(model.layers[0].self_attn.w_q.base.weight, w_q)  # nothing merged
    assert not model.layers[0].self_attn.w_q.merged


def test_merge_without_adapters_says_to_apply_lora_first() -> None:
    with pytest.raises(ValueError, match=r"has none; call apply_lora\(model, \.\.\.\) first"):
        merge_lora(_decoder_only())


# ---------------------------------------------------------------------- fused Q/K/V matrix


def test_fused_qkv_gets_one_adapter_whose_update_reaches_cross_attention() -> None:
    """With fused_qkv, cross-attention applies row blocks of ``w_qkv.weight`` directly; the
    adapted model must equal a plain model whose w_qkv is W0 + (α/r) B A."""
    torch.manual_seed(0)
    cfg = TransformerConfig.tiny(vocab_size=16, fused_qkv=True)
    model = Transformer(cfg).double().eval()
    reference = copy.deepcopy(model)
    names = apply_lora(model, rank=3, alpha=6, targets="w_qkv")
    assert "decoder.layers.0.cross_attn.w_qkv" in names and len(names) == 6
    adapter = model.get_submodule("decoder.layers.0.cross_attn.w_qkv")
    assert adapter.lora_B.shape == (3 * 32, 3) and adapter.lora_A.shape == (3, 32)
    _randomize_adapters(model)
    with torch.no_grad():
        for name in names:
            plain = reference.get_submodule(name)
            plain.weight += model.get_submodule(name).delta_weight()
    src, tgt = _tokens(2, 7), _tokens(2, 5)
    out = model(src, tgt)
    torch.testing.assert_close(out, reference(src, tgt), rtol=0, atol=1e-12)
    out.sum().backward()
    assert adapter.lora_B.grad is not None and adapter.lora_B.grad.abs().max() > 0


def test_fused_qkv_rejects_adapter_dropout() -> None:
    model = Transformer(TransformerConfig.tiny(vocab_size=16, fused_qkv=True))
    with pytest.raises(ValueError, match=r"dropout must be 0 for the fused projection "
                                         r"'encoder.layers.0.self_attn.w_qkv', got 0.1"):
        apply_lora(model, rank=2, alpha=2, dropout=0.1, targets="w_qkv")
    assert not any(isinstance(m, LoRALinear) for m in model.modules())  # nothing replaced


def test_dropout_acts_on_the_adapter_input_only() -> None:
    base = nn.Linear(16, 8).double()
    layer = LoRALinear(base, rank=2, alpha=4, dropout=0.5)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(4, 16, dtype=torch.float64)
    torch.manual_seed(3)
    out = layer(x)
    torch.manual_seed(3)
    dropped = nn.functional.dropout(x, p=0.5)  # the same draw
    expected = base(x) + 2.0 * dropped @ layer.lora_A.T @ layer.lora_B.T
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    layer.eval()  # no dropout at evaluation
    torch.testing.assert_close(layer(x), base(x) + x @ layer.delta_weight().T, rtol=0,
                               atol=1e-12)


# ----------------------------------------------------------------------------- saving


def test_lora_state_dict_holds_only_the_adapters_and_round_trips_through_safetensors(
        tmp_path) -> None:
    model = _decoder_only()
    names = apply_lora(model, rank=2, alpha=4, targets=("w_q", "linear1"))
    _randomize_adapters(model)
    state = lora_state_dict(model)
    assert sorted(state) == sorted(f"{n}.lora_{p}" for n in names for p in "AB")
    save_file(state, tmp_path / "adapter.safetensors")  # no shared or non-contiguous tensors
    fresh = _decoder_only()
    apply_lora(fresh, rank=2, alpha=4, targets=("w_q", "linear1"))
    load_lora_state_dict(fresh, load_file(tmp_path / "adapter.safetensors"))
    tokens = _tokens()
    with torch.no_grad():
        torch.testing.assert_close(fresh(tokens), model(tokens), rtol=0, atol=0)


def test_lora_state_dict_is_a_copy() -> None:
    model = _decoder_only()
    apply_lora(model, rank=2, alpha=2)
    state = lora_state_dict(model)
    state["layers.0.self_attn.w_q.lora_A"].zero_()
    assert model.layers[0].self_attn.w_q.lora_A.abs().max() > 0


def test_load_lora_state_dict_names_missing_unexpected_and_misshapen_keys() -> None:
    model = _decoder_only()
    apply_lora(model, rank=2, alpha=2)
    state = lora_state_dict(model)
    state.pop("layers.1.self_attn.w_v.lora_B")
    state["layers.0.self_attn.w_k.lora_A"] = torch.zeros(2, 32)
    with pytest.raises(ValueError, match=r"missing keys \['layers.1.self_attn.w_v.lora_B'\], "
                                         r"unexpected keys \['layers.0.self_attn.w_k.lora_A'\]"):
        load_lora_state_dict(model, state)
    wrong_rank = lora_state_dict(model)
    wrong_rank["layers.0.self_attn.w_q.lora_A"] = torch.zeros(3, 32)
    with pytest.raises(ValueError, match=r"'layers.0.self_attn.w_q.lora_A'\] must have shape "
                                         r"\(2, 32\), got \(3, 32\)"):
        load_lora_state_dict(model, wrong_rank)


# ------------------------------------------------------------------------------ bad input


def test_a_target_that_matches_nothing_lists_the_linear_names() -> None:
    model = _decoder_only()
    with pytest.raises(ValueError, match=r"targets \['q_proj'\] match no linear layer.*named "
                                         r"w_q, w_k, w_v, w_o, linear1, linear2, generator"):
        apply_lora(model, rank=2, alpha=2, targets=("w_q", "q_proj"))
    assert not any(isinstance(m, LoRALinear) for m in model.modules())


def test_unfused_names_on_a_fused_model_point_to_w_qkv() -> None:
    model = _decoder_only(fused_qkv=True)
    with pytest.raises(ValueError, match=r"\['w_q', 'w_v'\] match no.*named w_qkv, w_o.*target "
                                         r"'w_qkv'"):
        apply_lora(model, rank=2, alpha=2)


def test_a_predicate_that_selects_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"predicate selects no linear layer.*named w_q"):
        apply_lora(_decoder_only(), rank=2, alpha=2, targets=lambda name: False)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    (dict(rank=0, alpha=1), ValueError, r"rank must be an integer >= 1, got 0"),
    (dict(rank=-2, alpha=1), ValueError, r"rank must be an integer >= 1, got -2"),
    (dict(rank=2.0, alpha=1), TypeError, r"rank must be an integer >= 1, got 2.0 \(float\)"),
    (dict(rank=True, alpha=1), TypeError, r"rank must be an integer >= 1, got True \(bool\)"),
    (dict(rank=2, alpha=0), ValueError, r"alpha must be a finite number > 0, got 0"),
    (dict(rank=2, alpha=-1.5), ValueError, r"alpha must be a finite number > 0, got -1.5"),
    (dict(rank=2, alpha=math.nan), ValueError, r"alpha must be a finite number > 0, got nan"),
    (dict(rank=2, alpha="8"), TypeError, r"alpha must be a number, got '8' \(str\)"),
    (dict(rank=2, alpha=2, dropout=1.0), ValueError, r"dropout must be in \[0, 1\), got 1.0"),
    (dict(rank=2, alpha=2, targets=()), TypeError, r"targets must be module names"),
    (dict(rank=2, alpha=2, targets=("w_q", 3)), TypeError, r"targets must be module names"),
])
def test_bad_hyperparameters_are_named(kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        apply_lora(_decoder_only(), **kwargs)


def test_applying_twice_is_an_error() -> None:
    model = _decoder_only()
    apply_lora(model, rank=2, alpha=2)
    with pytest.raises(ValueError, match=r"already applied to this model \(adapted: "
                                         r"layers.0.self_attn.w_q, "):
        apply_lora(model, rank=2, alpha=2, targets="linear1")


def test_lora_linear_wraps_only_a_linear() -> None:
    with pytest.raises(TypeError, match=r"base must be an nn\.Linear, got Conv1d"):
        LoRALinear(nn.Conv1d(2, 2, 1), rank=1, alpha=1)
    with pytest.raises(TypeError, match=r"model must be an nn\.Module, got dict"):
        apply_lora({}, rank=1, alpha=1)


# ---------------------------------------------------------------------- peft, the reference


def _peft():
    """peft is in the test extra; without it the comparison skips, except under CI=true."""
    try:
        import peft
    except ImportError as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"peft is needed for the LoRA reference test ({err}); install the "
                        f"test extra: pip install -e '.[test]'", pytrace=False)
        pytest.skip(f"peft is not installed ({err}); pip install -e '.[test]'")
    return peft


class _TwoLayers(nn.Module):
    """A plain torch module for peft to adapt: no transformers model, nothing downloaded."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(12, 20)
        self.out = nn.Linear(20, 7, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.proj(x)))


@pytest.mark.parametrize(("rank", "alpha"), [(4, 8), (3, 1.5)])
def test_outputs_equal_peft_lora_with_the_same_a_b_alpha_and_rank(rank: int,
                                                                   alpha: float) -> None:
    peft = _peft()
    torch.manual_seed(0)
    ours = _TwoLayers().double()
    base, theirs = copy.deepcopy(ours), copy.deepcopy(ours)
    apply_lora(ours, rank=rank, alpha=alpha, targets=("proj", "out"))
    _randomize_adapters(ours)
    config = peft.LoraConfig(target_modules=["proj", "out"], r=rank, lora_alpha=alpha,
                             lora_dropout=0.0)
    theirs = peft.inject_adapter_in_model(config, theirs)
    with torch.no_grad():
        for name in ("proj", "out"):
            mine, layer = ours.get_submodule(name), theirs.get_submodule(name)
            assert layer.scaling["default"] == mine.scaling == alpha / rank
            layer.lora_A["default"].weight.copy_(mine.lora_A)
            layer.lora_B["default"].weight.copy_(mine.lora_B)
    x = torch.randn(5, 12, dtype=torch.float64)
    with torch.no_grad():
        expected = theirs(x)
        assert (expected - base(x)).abs().max() > 0.1  # peft's adapters are live
        torch.testing.assert_close(ours(x), expected, rtol=0, atol=1e-12)
        for name in ("proj", "out"):  # peft's merge folds in the same ΔW as ours
            theirs.get_submodule(name).merge()
        merge_lora(ours)
        for name in ("proj", "out"):
            torch.testing.assert_close(ours.get_submodule(name).base.weight,
                                       theirs.get_submodule(name).base_layer.weight,
                                       rtol=0, atol=1e-12)
    frozen_by_peft = sorted(n for n, p in theirs.named_parameters() if not p.requires_grad)
    assert frozen_by_peft == ["out.base_layer.weight", "proj.base_layer.bias",
                              "proj.base_layer.weight"]  # the same freezing as ours

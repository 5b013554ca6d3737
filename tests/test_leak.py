"""No information flows from the future (§3.2.3): for every configuration the package offers,
changing the tokens after position t never changes the logits at positions <= t, in the
decoder-only model and on the decoder side of the encoder-decoder, with and without padding.
Nor does one sequence of a batch change another's logits.

Hypothesis draws the switches of ``TransformerConfig`` together with the data; every model is
small, in float64 and in eval mode, so "unchanged" means within 1e-12.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from transformer import DecoderOnlyTransformer, Transformer, TransformerConfig
from transformer.model import FEED_FORWARDS, POSITIONALS

VOCAB = 11
TOL = dict(rtol=0.0, atol=1e-12)

# Every architectural switch of TransformerConfig, with all its values (n_heads is 2 below).
SWITCHES: dict[str, list[Any]] = {
    "positional": POSITIONALS,
    "norm_first": [False, True],
    "final_norm": [None, False, True],
    "activation": FEED_FORWARDS,
    "fused_qkv": [False, True],
    "bias": [False, True],
    "tie_embeddings": [False, True],
    "norm": ["layernorm", "rmsnorm"],
    "n_kv_heads": [None, 1, 2],
    "init": ["xavier", "gpt2"],
}
DRAWN_ELSEWHERE = {"tgt_vocab_size"}  # separate_target_vocab, in the encoder-decoder test
PAD_LAYOUTS = ["none", "left", "right", "scattered"]

configs = st.fixed_dictionaries({name: st.sampled_from(values)
                                 for name, values in SWITCHES.items()})


def _config(switches: dict[str, Any], pad_id: int, **changes: Any) -> TransformerConfig:
    return TransformerConfig.tiny(vocab_size=VOCAB, d_model=16, n_heads=2, d_ff=24, n_layers=2,
                                  max_len=16, pad_id=pad_id, **switches, **changes)


def _model(cls: type, cfg: TransformerConfig, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return cls(cfg).double().eval()


def _tokens(g: torch.Generator, batch: int, seq: int, pad_id: int, layout: str) -> torch.Tensor:
    """Random ids ``(batch, seq)``: no padding, or padding on the left, the right, or anywhere."""
    tokens = torch.randint(0, VOCAB - 1, (batch, seq), generator=g)
    tokens = tokens + (tokens >= pad_id).long()  # every id but pad_id
    if layout == "none":
        return tokens
    if layout == "scattered":
        return tokens.masked_fill(torch.rand(batch, seq, generator=g) < 0.3, pad_id)
    lengths = torch.randint(1, seq + 1, (batch,), generator=g)  # real tokens per row
    position = torch.arange(seq)[None, :]
    is_pad = position >= lengths[:, None] if layout == "right" else \
        position < (seq - lengths)[:, None]
    return tokens.masked_fill(is_pad, pad_id)


def _change_after(g: torch.Generator, tokens: torch.Tensor, t: int) -> torch.Tensor:
    """The same prefix ``[:, :t + 1]``, a different future (any id, padding included)."""
    changed = tokens.clone()
    future = changed[:, t + 1:]
    future.copy_(torch.randint(0, VOCAB, future.shape, generator=g))
    changed[:, t + 1] = (tokens[:, t + 1] + 1) % VOCAB  # at least one token differs per row
    return changed


def _change_row(g: torch.Generator, tokens: torch.Tensor, row: int) -> torch.Tensor:
    changed = tokens.clone()
    changed[row] = (tokens[row] + torch.randint(1, VOCAB, tokens[row].shape, generator=g)) % VOCAB
    return changed


data = st.fixed_dictionaries({
    "seed": st.integers(0, 2**16),
    "batch": st.integers(1, 3),
    "seq": st.integers(2, 9),
    "t_fraction": st.floats(0.0, 1.0),
    "pad_id": st.sampled_from([0, 4]),
    "layout": st.sampled_from(PAD_LAYOUTS),
})


def _cut(d: dict[str, Any]) -> int:
    """The last position kept, in ``[0, seq - 2]`` (there is always a future to change)."""
    return min(int(d["t_fraction"] * (d["seq"] - 1)), d["seq"] - 2)


def test_every_switch_of_the_config_is_drawn() -> None:
    """A new architectural switch on TransformerConfig must join SWITCHES above: every field
    that is a choice (a string, a flag, or an optional integer such as n_kv_heads)."""
    switches = {f.name for f in fields(TransformerConfig)
                if f.type in ("bool", "str", "bool | None", "str | None", "int | None")}
    assert switches - DRAWN_ELSEWHERE == set(SWITCHES)


@settings(max_examples=60, deadline=None)
@given(switches=configs, d=data)
def test_decoder_only_logits_up_to_t_ignore_every_token_after_t(switches: dict[str, Any],
                                                               d: dict[str, Any]) -> None:
    model = _model(DecoderOnlyTransformer, _config(switches, d["pad_id"]), d["seed"])
    g = torch.Generator().manual_seed(d["seed"])
    tokens = _tokens(g, d["batch"], d["seq"], d["pad_id"], d["layout"])
    t = _cut(d)
    with torch.no_grad():
        logits = model(tokens)  # (batch, seq, vocab)
        changed = model(_change_after(g, tokens, t))
        torch.testing.assert_close(changed[:, : t + 1], logits[:, : t + 1], **TOL)
        if d["batch"] > 1:
            other = model(_change_row(g, tokens, 0))
            torch.testing.assert_close(other[1:], logits[1:], **TOL)


@settings(max_examples=40, deadline=None)
@given(switches=configs, d=data, src_len=st.integers(1, 7), src_layout=st.sampled_from(PAD_LAYOUTS),
       separate_target_vocab=st.booleans())
def test_encoder_decoder_logits_up_to_t_ignore_every_target_token_after_t(
        switches: dict[str, Any], d: dict[str, Any], src_len: int, src_layout: str,
        separate_target_vocab: bool) -> None:
    untied = separate_target_vocab and not switches["tie_embeddings"]
    cfg = _config(switches, d["pad_id"], tgt_vocab_size=VOCAB + 2 if untied else None)
    model = _model(Transformer, cfg, d["seed"])
    g = torch.Generator().manual_seed(d["seed"])
    src = _tokens(g, d["batch"], src_len, d["pad_id"], src_layout)
    tgt = _tokens(g, d["batch"], d["seq"], d["pad_id"], d["layout"])
    t = _cut(d)
    with torch.no_grad():
        logits = model(src, tgt)  # (batch, tgt_len, target_vocab)
        changed = model(src, _change_after(g, tgt, t))
        torch.testing.assert_close(changed[:, : t + 1], logits[:, : t + 1], **TOL)
        if d["batch"] > 1:
            other = model(_change_row(g, src, 0), _change_row(g, tgt, 0))
            torch.testing.assert_close(other[1:], logits[1:], **TOL)


def test_the_check_catches_a_model_that_sees_the_future() -> None:
    """The property above can fail: without the causal mask, the future leaks."""
    model = _model(DecoderOnlyTransformer, _config({}, pad_id=0), seed=0)
    g = torch.Generator().manual_seed(0)
    tokens = _tokens(g, 2, 6, 0, "none")
    sees_all = torch.ones(1, 1, 6, 6, dtype=torch.bool)  # no look-ahead mask
    with torch.no_grad():
        logits = model(tokens, mask=sees_all)
        changed = model(_change_after(g, tokens, 2), mask=sees_all)
    assert (changed[:, :3] - logits[:, :3]).abs().max() > 1e-3

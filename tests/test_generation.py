"""Decoding (§6.1): greedy search, beam search with the length penalty, sampling filters.

Beam search is checked against brute force: on a vocabulary of five ids and outputs of at most
four tokens, every possible output is scored by one teacher-forced pass and the best is known.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from transformer import DecoderOnlyTransformer, Transformer, TransformerConfig
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

PAD, BOS, EOS = 0, 1, 2
VOCAB = 5  # PAD, BOS, EOS and two more; every id but PAD may be generated
MAX_NEW = 4
LIVE_TOKENS = [t for t in range(VOCAB) if t not in (PAD, EOS)]
WIDE_BEAM = len(LIVE_TOKENS) ** (MAX_NEW - 1)  # the most live hypotheses there can be


def peaked_model(kind: type, seed: int) -> Transformer | DecoderOnlyTransformer:
    """A fixed random model whose next-token distributions are far from uniform.

    A freshly initialised model is nearly uniform, so the shortest output always wins and a
    search test could pass by luck; an untied, larger output matrix gives distinct choices.
    """
    torch.manual_seed(seed)
    cfg = TransformerConfig.tiny(vocab_size=VOCAB, norm_first=True, tie_embeddings=False)
    model = kind(cfg).eval()
    with torch.no_grad():
        model.generator.weight.normal_(0.0, 1.0)
    return model


def every_output() -> torch.Tensor:
    """Every output of at most MAX_NEW tokens: ended by EOS, or cut at MAX_NEW; PAD after."""
    outputs = [[*p, EOS] for n in range(MAX_NEW) for p in itertools.product(LIVE_TOKENS, repeat=n)]
    outputs += [list(p) for p in itertools.product(LIVE_TOKENS, repeat=MAX_NEW)]
    return torch.tensor([o + [PAD] * (MAX_NEW - len(o)) for o in outputs])


def brute_force_best(model, inputs: torch.Tensor, alpha: float) -> tuple[list[int], float]:
    outputs = every_output()
    scores = score_sequences(model, inputs.expand(len(outputs), -1), outputs, alpha=alpha,
                             bos_id=BOS)
    best = int(scores.argmax())
    return [t for t in outputs[best].tolist() if t != PAD], float(scores[best])


def strip(row: torch.Tensor) -> list[int]:
    return [t for t in row.tolist() if t != PAD]


INPUTS = {
    Transformer: torch.tensor([[3, 4, 3], [4, 4, PAD], [1, 3, 4], [3, PAD, PAD]]),
    DecoderOnlyTransformer: torch.tensor([[3, 4], [4, 4], [1, 3], [3, 3], [4, 3], [1, 1], [3, 1],
                                          [4, 1]]),
}
# Seeds whose models give, for some input and for each alpha, a best output greedy search misses.
SEEDS = {Transformer: (1, 3), DecoderOnlyTransformer: (0, 4)}
KINDS = pytest.mark.parametrize("kind", [Transformer, DecoderOnlyTransformer],
                                ids=["encoder-decoder", "decoder-only"])


# ----------------------------------------------------------------- beam search vs brute force


@KINDS
@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])  # 2.0: early stopping must respect lp
def test_wide_beam_search_finds_the_best_of_all_sequences(kind: type, alpha: float) -> None:
    found_non_greedy = False
    for seed in SEEDS[kind]:
        model = peaked_model(kind, seed)
        inputs = INPUTS[kind]
        greedy = greedy_decode(model, inputs, max_new_tokens=MAX_NEW, bos_id=BOS, eos_id=EOS)
        for i in range(len(inputs)):
            best, best_score = brute_force_best(model, inputs[i : i + 1], alpha)
            out = beam_search(model, inputs[i : i + 1], beam_size=WIDE_BEAM, alpha=alpha,
                              max_new_tokens=MAX_NEW, bos_id=BOS, eos_id=EOS)
            assert strip(out.sequences[0]) == best
            assert float(out.scores[0]) == pytest.approx(best_score, abs=1e-5)
            found_non_greedy |= strip(greedy[i]) != best
    assert found_non_greedy, "the test cases must include one where greedy search is not best"


@KINDS
def test_wide_beam_finds_the_best_of_several_inputs_at_once(kind: type) -> None:
    model, inputs = peaked_model(kind, SEEDS[kind][0]), INPUTS[kind]
    out = beam_search(model, inputs, beam_size=WIDE_BEAM, alpha=0.6, max_new_tokens=MAX_NEW,
                      bos_id=BOS, eos_id=EOS)
    for i in range(len(inputs)):
        best, best_score = brute_force_best(model, inputs[i : i + 1], 0.6)
        assert strip(out.sequences[i]) == best
        assert float(out.scores[i]) == pytest.approx(best_score, abs=1e-5)


@KINDS
@pytest.mark.parametrize("beam_size", [1, 2, 4])
def test_batched_beam_search_equals_one_input_at_a_time(kind: type, beam_size: int) -> None:
    model, inputs = peaked_model(kind, SEEDS[kind][1]), INPUTS[kind]
    batched = beam_search(model, inputs, beam_size=beam_size, max_new_tokens=6, bos_id=BOS,
                          eos_id=EOS)
    for i in range(len(inputs)):
        alone = beam_search(model, inputs[i : i + 1], beam_size=beam_size, max_new_tokens=6,
                            bos_id=BOS, eos_id=EOS)
        assert strip(batched.sequences[i]) == strip(alone.sequences[0])
        torch.testing.assert_close(batched.scores[i], alone.scores[0], atol=1e-5, rtol=0)


@KINDS
def test_beam_score_is_the_length_penalised_log_probability_of_its_output(kind: type) -> None:
    model, inputs = peaked_model(kind, SEEDS[kind][0]), INPUTS[kind]
    out = beam_search(model, inputs, beam_size=3, alpha=0.6, max_new_tokens=6, bos_id=BOS,
                      eos_id=EOS)
    rescored = score_sequences(model, inputs, out.sequences, alpha=0.6, bos_id=BOS)
    torch.testing.assert_close(out.scores, rescored, atol=1e-5, rtol=0)


def test_beam_search_stops_a_hypothesis_at_eos_and_pads_after_it() -> None:
    model, inputs = peaked_model(Transformer, SEEDS[Transformer][0]), INPUTS[Transformer]
    out = beam_search(model, inputs, beam_size=4, max_new_tokens=8, bos_id=BOS, eos_id=EOS)
    for row in out.sequences.tolist():
        if EOS in row:
            end = row.index(EOS)
            assert all(t == PAD for t in row[end + 1 :])
            assert PAD not in row[:end]


# ----------------------------------------------------------------- greedy search


@KINDS
def test_without_eos_beam_size_one_is_greedy_decoding(kind: type) -> None:
    for seed in SEEDS[kind]:
        model, inputs = peaked_model(kind, seed), INPUTS[kind]
        greedy = greedy_decode(model, inputs, max_new_tokens=8, bos_id=BOS)
        beam = beam_search(model, inputs, beam_size=1, max_new_tokens=8, bos_id=BOS)
        assert torch.equal(beam.sequences, greedy)


@KINDS
@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_beam_size_one_returns_greedys_output_or_a_better_scoring_one(kind: type,
                                                                       alpha: float) -> None:
    """Beam size 1 follows the greedy path, but also remembers finished hypotheses it passed
    (an EOS that was not the most probable token), so it can only do better."""
    same = 0
    for seed in SEEDS[kind]:
        model, inputs = peaked_model(kind, seed), INPUTS[kind]
        greedy = greedy_decode(model, inputs, max_new_tokens=MAX_NEW, bos_id=BOS, eos_id=EOS)
        beam = beam_search(model, inputs, beam_size=1, alpha=alpha, max_new_tokens=MAX_NEW,
                           bos_id=BOS, eos_id=EOS)
        greedy_score = score_sequences(model, inputs, greedy, alpha=alpha, bos_id=BOS)
        for i in range(len(inputs)):
            if strip(beam.sequences[i]) == strip(greedy[i]):
                same += 1
            else:
                assert float(beam.scores[i]) > float(greedy_score[i])
    assert same > 0


@KINDS
def test_greedy_takes_the_most_probable_token_at_every_step(kind: type) -> None:
    model, inputs = peaked_model(kind, SEEDS[kind][1]), INPUTS[kind]
    out = greedy_decode(model, inputs, max_new_tokens=6, bos_id=BOS)  # no EOS: 6 tokens each
    with torch.no_grad():
        if kind is Transformer:
            bos = torch.full((len(inputs), 1), BOS)
            logits = model(inputs, torch.cat([bos, out[:, :-1]], dim=1))  # teacher forcing
        else:
            logits = model(torch.cat([inputs, out[:, :-1]], dim=1))[:, inputs.shape[1] - 1 :]
    logits[..., PAD] = -math.inf
    assert torch.equal(out, logits.argmax(dim=-1))


def test_padding_is_never_generated() -> None:
    model = peaked_model(DecoderOnlyTransformer, SEEDS[DecoderOnlyTransformer][0])
    with torch.no_grad():
        model.generator.weight[PAD] = 10 * model.generator.weight[3]  # PAD would win every step
    prompts = INPUTS[DecoderOnlyTransformer]
    assert not (greedy_decode(model, prompts, max_new_tokens=10) == PAD).any()
    assert not (beam_search(model, prompts, max_new_tokens=10).sequences == PAD).any()
    gen = torch.Generator().manual_seed(0)
    assert not (sample(model, prompts, max_new_tokens=10, generator=gen) == PAD).any()


def test_default_maximum_output_length_is_input_length_plus_50() -> None:
    model = peaked_model(Transformer, SEEDS[Transformer][0])
    sources = torch.tensor([[3, 4, 3], [4, PAD, PAD]])
    out = greedy_decode(model, sources, bos_id=BOS)  # no EOS: every row runs to its limit
    assert (out != PAD).sum(dim=1).tolist() == [3 + 50, 1 + 50]
    beam = beam_search(model, sources, beam_size=2, bos_id=BOS)
    assert (beam.sequences != PAD).sum(dim=1).tolist() == [3 + 50, 1 + 50]


def test_default_maximum_length_is_capped_by_the_positional_table() -> None:
    torch.manual_seed(0)
    model = Transformer(TransformerConfig.tiny(vocab_size=VOCAB, max_len=20))
    out = greedy_decode(model, torch.tensor([[3, 4, 3]]), bos_id=BOS)
    assert out.shape == (1, 20)


def test_decoding_runs_without_dropout_and_restores_training_mode() -> None:
    torch.manual_seed(0)
    model = DecoderOnlyTransformer(TransformerConfig.tiny(vocab_size=VOCAB, dropout=0.5))
    model.train()
    prompt = torch.tensor([[3, 4]])
    first = greedy_decode(model, prompt, max_new_tokens=10)
    assert torch.equal(first, greedy_decode(model, prompt, max_new_tokens=10))
    assert model.training


# ----------------------------------------------------------------- length penalty


def test_length_penalty_is_the_gnmt_formula() -> None:
    lengths = torch.tensor([1, 2, 7, 50])
    expected = torch.tensor([((5 + n) / 6) ** 0.6 for n in lengths.tolist()])
    torch.testing.assert_close(length_penalty(lengths, 0.6), expected)
    assert float(length_penalty(1, 0.6)) == 1.0  # one token: no penalty
    assert torch.equal(length_penalty(lengths, 0.0), torch.ones(4))


def test_a_length_penalty_lets_a_longer_output_win() -> None:
    short, long = -2.0, -2.4  # log P of a 1-token and of a 10-token output
    assert short / length_penalty(1, 0.0) > long / length_penalty(10, 0.0)
    assert short / length_penalty(1, 0.6) < long / length_penalty(10, 0.6)


# ----------------------------------------------------------------- top-k and top-p filters


def smallest_nucleus(probs: list[float], p: float) -> set[int]:
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    kept, mass = set(), 0.0
    for i in order:
        kept.add(i)
        mass += probs[i]
        if mass >= p:
            break
    return kept


@settings(max_examples=200, deadline=None)
@given(
    logits=st.lists(st.floats(-5.0, 5.0), min_size=2, max_size=12, unique=True),
    p=st.floats(0.01, 0.99),
)
def test_top_p_keeps_the_smallest_set_whose_mass_reaches_p(logits: list[float], p: float) -> None:
    x = torch.tensor(logits, dtype=torch.float64)
    probs = x.softmax(-1).tolist()
    ranked = sorted(probs, reverse=True)
    assume(min(a - b for a, b in itertools.pairwise(ranked)) > 1e-9)  # ties: any choice is right
    assume(all(abs(m - p) > 1e-9 for m in itertools.accumulate(ranked)))  # p on a boundary
    kept = set(torch.nonzero(top_p_filter(x, p) > -math.inf).flatten().tolist())
    assert kept == smallest_nucleus(probs, p)
    assert sum(probs[i] for i in kept) >= p


def test_top_p_stops_as_soon_as_the_mass_reaches_p_exactly() -> None:
    logits = torch.tensor([0.5, 0.25, 0.125, 0.125]).log()  # exact in binary floating point
    kept = [(top_p_filter(logits, p) > -math.inf).sum().item() for p in (0.5, 0.75, 0.875, 1.0)]
    assert kept == [1, 2, 3, 4]


def test_top_p_always_keeps_the_most_probable_token() -> None:
    logits = torch.tensor([[0.1, 3.0, 0.2], [2.0, 2.5, 2.4]])
    kept = top_p_filter(logits, 1e-6) > -math.inf
    assert kept.tolist() == [[False, True, False], [False, True, False]]
    assert torch.equal(top_p_filter(logits, 1.0), logits)


def test_top_k_keeps_the_k_largest_logits() -> None:
    logits = torch.tensor([[0.5, -1.0, 2.0, 0.0, 1.5], [3.0, 2.0, 1.0, 0.0, -1.0]])
    kept = top_k_filter(logits, 2) > -math.inf
    assert kept.tolist() == [[False, False, True, False, True], [True, True, False, False, False]]
    assert torch.equal(top_k_filter(logits, 99), logits)


FIXED_LOGITS = torch.tensor([2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0])


def test_top_p_sampling_never_draws_outside_the_nucleus() -> None:
    p = 0.8
    nucleus = smallest_nucleus(FIXED_LOGITS.softmax(-1).tolist(), p)
    assert 1 < len(nucleus) < len(FIXED_LOGITS)
    probs = top_p_filter(FIXED_LOGITS, p).softmax(-1)
    draws = torch.multinomial(probs, 10_000, replacement=True,
                              generator=torch.Generator().manual_seed(0))
    assert set(draws.tolist()) == nucleus
    # inside the nucleus the odds are the model's, renormalised
    expected = FIXED_LOGITS[sorted(nucleus)].softmax(-1)
    observed = torch.bincount(draws, minlength=len(FIXED_LOGITS))[sorted(nucleus)] / 10_000
    torch.testing.assert_close(observed, expected, atol=0.02, rtol=0)


def test_top_k_sampling_never_draws_outside_the_k_most_probable() -> None:
    probs = top_k_filter(FIXED_LOGITS, 3).softmax(-1)
    draws = torch.multinomial(probs, 10_000, replacement=True,
                              generator=torch.Generator().manual_seed(0))
    assert set(draws.tolist()) == {0, 1, 2}


def test_sample_draws_only_within_top_k_and_top_p() -> None:
    model = peaked_model(DecoderOnlyTransformer, SEEDS[DecoderOnlyTransformer][0])
    prompts = INPUTS[DecoderOnlyTransformer].repeat(50, 1)  # (200, 2)
    gen = torch.Generator().manual_seed(0)
    top1 = sample(model, prompts, max_new_tokens=5, top_k=1, generator=gen)
    assert torch.equal(top1, greedy_decode(model, prompts, max_new_tokens=5))
    tiny_p = sample(model, prompts, max_new_tokens=5, top_p=1e-6, generator=gen)
    assert torch.equal(tiny_p, greedy_decode(model, prompts, max_new_tokens=5))


# ----------------------------------------------------------------- sampling


@KINDS
def test_sampling_at_near_zero_temperature_is_greedy(kind: type) -> None:
    model, inputs = peaked_model(kind, SEEDS[kind][1]), INPUTS[kind]
    gen = torch.Generator().manual_seed(0)
    cold = sample(model, inputs, max_new_tokens=8, temperature=1e-4, bos_id=BOS, eos_id=EOS,
                  generator=gen)
    assert torch.equal(cold, greedy_decode(model, inputs, max_new_tokens=8, bos_id=BOS,
                                           eos_id=EOS))


@KINDS
def test_sampling_with_a_seeded_generator_is_reproducible(kind: type) -> None:
    model, inputs = peaked_model(kind, SEEDS[kind][0]), INPUTS[kind].repeat(8, 1)

    def draw(seed: int) -> torch.Tensor:
        return sample(model, inputs, max_new_tokens=8, temperature=1.5, top_p=0.95, bos_id=BOS,
                      eos_id=EOS, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(draw(1), draw(1))
    assert not torch.equal(draw(1), draw(2))


def test_higher_temperature_gives_more_varied_samples() -> None:
    model = peaked_model(DecoderOnlyTransformer, SEEDS[DecoderOnlyTransformer][0])
    prompts = torch.tensor([[3, 4]]).repeat(300, 1)

    def distinct(temperature: float) -> int:
        out = sample(model, prompts, max_new_tokens=4, temperature=temperature,
                     generator=torch.Generator().manual_seed(0))
        return len({tuple(r) for r in out.tolist()})

    assert distinct(0.3) < distinct(1.0) < distinct(3.0)


# ----------------------------------------------------------------- argument errors


def _lm() -> DecoderOnlyTransformer:
    return peaked_model(DecoderOnlyTransformer, SEEDS[DecoderOnlyTransformer][0])


def _s2s() -> Transformer:
    return peaked_model(Transformer, SEEDS[Transformer][0])


PROMPT = torch.tensor([[3, 4]])


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: beam_search(_lm(), PROMPT, beam_size=0, max_new_tokens=3), ValueError,
         "beam_size must be an integer >= 1, got 0"),
        (lambda: beam_search(_lm(), PROMPT, alpha=-0.1, max_new_tokens=3), ValueError,
         "alpha must be a number >= 0"),
        (lambda: sample(_lm(), PROMPT, temperature=0.0, max_new_tokens=3), ValueError,
         "temperature must be a finite number > 0, got 0.0"),
        (lambda: sample(_lm(), PROMPT, temperature=-1, max_new_tokens=3), ValueError,
         "temperature"),
        (lambda: sample(_lm(), PROMPT, top_p=0.0, max_new_tokens=3), ValueError,
         r"top_p must be in \(0, 1\], got 0.0"),
        (lambda: sample(_lm(), PROMPT, top_p=1.5, max_new_tokens=3), ValueError,
         "top_p must be in"),
        (lambda: sample(_lm(), PROMPT, top_k=0, max_new_tokens=3), ValueError,
         "top_k must be an integer >= 1, got 0"),
        (lambda: top_k_filter(torch.zeros(3), 0), ValueError, "k must be an integer >= 1"),
        (lambda: top_p_filter(torch.zeros(3), 2.0), ValueError, "p must be in"),
        (lambda: greedy_decode(_lm(), PROMPT, max_new_tokens=256), ValueError,
         "max_new_tokens=256 is too large for the positional table"),
        (lambda: greedy_decode(_s2s(), PROMPT, max_new_tokens=257, bos_id=BOS), ValueError,
         "max_len=256"),
        (lambda: greedy_decode(_lm(), PROMPT, max_new_tokens=0), ValueError,
         "max_new_tokens must be an integer >= 1"),
        (lambda: greedy_decode(_lm(), PROMPT), ValueError, "max_new_tokens is required"),
        (lambda: greedy_decode(_s2s(), PROMPT), ValueError, "bos_id is required"),
        (lambda: greedy_decode(_s2s(), PROMPT, bos_id=VOCAB), ValueError,
         r"bos_id must be a token id in \[0, 5\), got 5"),
        (lambda: greedy_decode(_lm(), PROMPT, max_new_tokens=3, eos_id=PAD), ValueError,
         "eos_id must differ from pad_id"),
        (lambda: greedy_decode(_lm(), torch.tensor([[3, PAD]]), max_new_tokens=3), ValueError,
         "prompts must not contain pad_id"),
        (lambda: greedy_decode(_lm(), torch.tensor([3, 4]), max_new_tokens=3), ValueError,
         r"inputs must have shape \(batch, seq\)"),
        (lambda: greedy_decode(_lm(), PROMPT.float(), max_new_tokens=3), TypeError,
         "inputs must hold token ids of dtype torch.long"),
        (lambda: greedy_decode(torch.nn.Linear(2, 2), PROMPT, max_new_tokens=3), TypeError,
         r"model must offer the decoding protocol \(Decodable\), but Linear lacks "
         "new_token_limits, output_vocab_size, pad_id, sequence_logits, start_decoding"),
        (lambda: greedy_decode(_s2s(), PROMPT, bos_id=PAD), ValueError,
         "bos_id=0 must differ from pad_id=0: padding is hidden from attention"),
        (lambda: score_sequences(_s2s(), PROMPT, torch.tensor([[3, VOCAB]]), bos_id=BOS),
         ValueError, r"sequences must hold token ids in \[0, 5\), got ids in \[3, 5\]"),
        (lambda: score_sequences(_lm(), PROMPT, torch.tensor([[-1, 3]])), ValueError,
         r"sequences must hold token ids in \[0, 5\), got ids in \[-1, 3\]"),
        (lambda: score_sequences(_lm(), PROMPT, torch.tensor([[3], [4]])), ValueError,
         r"sequences must have shape \(batch=1, steps\)"),
        (lambda: score_sequences(_lm(), PROMPT, torch.tensor([[3.0]])), TypeError,
         "sequences must be a tensor of token ids of dtype torch.long"),
        (lambda: generate(_lm(), PROMPT, strategy="nucleus", max_new_tokens=3), ValueError,
         "strategy must be one of 'greedy', 'beam', 'sample', got 'nucleus'"),
        (lambda: generate(_lm(), PROMPT, top_k=3, max_new_tokens=3), ValueError,
         "top_k only apply to strategy='sample', got strategy='greedy'"),
        (lambda: generate(_lm(), PROMPT, strategy="beam", temperature=0.5, max_new_tokens=3),
         ValueError, "temperature only apply to strategy='sample'"),
        (lambda: generate(_lm(), PROMPT, strategy="sample", top_p=2.0, max_new_tokens=3),
         ValueError, "top_p must be in"),
        (lambda: generate(_lm(), PROMPT, alpha=-1.0, max_new_tokens=3), ValueError,
         "alpha must be a number >= 0"),
        (lambda: _lm().start_decoding(PROMPT, beams=0), ValueError,
         "beams must be an integer >= 1, got 0"),
    ],
)
def test_bad_arguments_raise_errors_that_name_them(call, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call()


# ----------------------------------------------------------------- one entry point: generate


@KINDS
def test_generate_runs_each_strategy_as_its_own_function_does(kind: type) -> None:
    model, inputs = peaked_model(kind, SEEDS[kind][0]), INPUTS[kind]
    args = dict(max_new_tokens=6, bos_id=BOS, eos_id=EOS)
    greedy = generate(model, inputs, **args)
    assert isinstance(greedy, Generation)
    assert torch.equal(greedy.sequences, greedy_decode(model, inputs, **args))
    beam = generate(model, inputs, strategy="beam", beam_size=3, alpha=0.6, **args)
    expected = beam_search(model, inputs, beam_size=3, alpha=0.6, **args)
    assert torch.equal(beam.sequences, expected.sequences)
    assert torch.equal(beam.scores, expected.scores)
    drawn = generate(model, inputs, strategy="sample", top_k=3, temperature=1.5,
                     generator=torch.Generator().manual_seed(5), **args)
    assert torch.equal(drawn.sequences, sample(model, inputs, top_k=3, temperature=1.5,
                                               generator=torch.Generator().manual_seed(5),
                                               **args))


@KINDS
@pytest.mark.parametrize("strategy", ["greedy", "beam", "sample"])
@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_generate_scores_are_the_length_penalised_log_probability_of_its_output(
        kind: type, strategy: str, alpha: float) -> None:
    model, inputs = peaked_model(kind, SEEDS[kind][1]), INPUTS[kind]
    options = dict(generator=torch.Generator().manual_seed(0)) if strategy == "sample" else {}
    out = generate(model, inputs, strategy=strategy, alpha=alpha, max_new_tokens=6, bos_id=BOS,
                   eos_id=EOS, **options)
    assert out.scores.shape == (len(inputs),)
    rescored = score_sequences(model, inputs, out.sequences, alpha=alpha, bos_id=BOS)
    torch.testing.assert_close(out.scores, rescored, atol=1e-5, rtol=0)


def test_generate_serves_a_caller_choosing_greedy_or_beam_by_beam_size() -> None:
    """How the CLI and the copy task decode: beam search for beam_size > 1, else greedy."""
    model, src = peaked_model(Transformer, SEEDS[Transformer][0]), INPUTS[Transformer]
    for beam_size in (1, 2):
        out = generate(model, src, strategy="beam" if beam_size > 1 else "greedy",
                       beam_size=beam_size, max_new_tokens=5, bos_id=BOS, eos_id=EOS)
        if beam_size == 1:
            expected = greedy_decode(model, src, max_new_tokens=5, bos_id=BOS, eos_id=EOS)
        else:
            expected = beam_search(model, src, beam_size=2, max_new_tokens=5, bos_id=BOS,
                                   eos_id=EOS).sequences
        assert torch.equal(out.sequences, expected)


# ----------------------------------------------------------------- the decoding protocol


@KINDS
def test_both_models_offer_the_decoding_protocol(kind: type) -> None:
    model = peaked_model(kind, 0)
    assert isinstance(model, Decodable)
    state = model.start_decoding(INPUTS[kind], bos_id=BOS, beams=2)
    assert isinstance(state, DecodingState)
    assert state.next_logits().shape == (2 * len(INPUTS[kind]), VOCAB)
    assert state.generated.shape == (2 * len(INPUTS[kind]), 0)


class BigramModel:
    """Not a Transformer: a fixed table of next-token logits, ``table[previous token]``.

    It offers the decoding protocol and nothing else, so that search working on it shows that
    the search code depends on the protocol alone.
    """

    pad_id, output_vocab_size, training = PAD, VOCAB, False

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table  # (vocab, vocab)

    def train(self, mode: bool = True) -> BigramModel:
        self.training = mode
        return self

    def start_decoding(self, inputs, *, bos_id=None, beams=1, use_cache=True) -> BigramState:
        return BigramState(self.table, inputs[:, -1:].repeat_interleave(beams, dim=0))

    def new_token_limits(self, inputs, max_new_tokens) -> torch.Tensor:
        return torch.full((inputs.shape[0],), max_new_tokens)

    def sequence_logits(self, inputs, sequences, *, bos_id=None) -> torch.Tensor:
        previous = torch.cat([inputs[:, -1:], sequences[:, :-1]], dim=1)  # (batch, steps)
        return self.table[previous]  # (batch, steps, vocab)


class BigramState:
    def __init__(self, table: torch.Tensor, tokens: torch.Tensor) -> None:
        self.table, self.tokens = table, tokens  # tokens: (rows, 1 + steps)

    @property
    def generated(self) -> torch.Tensor:
        return self.tokens[:, 1:]

    def next_logits(self) -> torch.Tensor:
        return self.table[self.tokens[:, -1]]  # (rows, vocab)

    def append(self, tokens: torch.Tensor) -> None:
        self.tokens = torch.cat([self.tokens, tokens[:, None]], dim=1)

    def reorder(self, index: torch.Tensor) -> None:
        self.tokens = self.tokens[index]


def test_search_needs_nothing_but_the_protocol() -> None:
    table = torch.randn(VOCAB, VOCAB, generator=torch.Generator().manual_seed(0)) * 3
    model, prompts = BigramModel(table), torch.tensor([[3], [4], [1]])
    assert isinstance(model, Decodable)
    greedy = greedy_decode(model, prompts, max_new_tokens=MAX_NEW)
    masked = table.clone()
    masked[:, PAD] = -math.inf
    previous = prompts[:, 0]
    for step in range(MAX_NEW):  # greedy follows the table's argmax from each token
        previous = masked[previous].argmax(dim=-1)
        assert torch.equal(greedy[:, step], previous)
    for i in range(len(prompts)):  # and a wide beam finds the best of all outputs
        best, best_score = brute_force_best(model, prompts[i : i + 1], alpha=0.6)
        out = generate(model, prompts[i : i + 1], strategy="beam", beam_size=WIDE_BEAM,
                       max_new_tokens=MAX_NEW, eos_id=EOS)
        assert strip(out.sequences[0]) == best
        assert float(out.scores[0]) == pytest.approx(best_score, abs=1e-5)

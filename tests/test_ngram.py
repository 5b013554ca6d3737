"""The character n-gram baseline: distributions sum to 1, hand-worked Kneser–Ney numbers, the
floored unigram, and agreement with NLTK's independent implementations (nltk.lm)."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from transformer.tasks.ngram import UNKNOWN, CharNGramLM, NGramScore

ABRA = "abracadabra"
# Starts with a phrase that recurs, so that no n-gram of up to 4 characters occurs only at the
# very start of the text (where NLTK's and our type counts would differ; see _nltk_model).
CORPUS = ("the cat sat on the mat. the dog sat on the log. the cat ate the rat, "
          "and the rat ran to the mat. then the dog ate the cat's hat.")
HELD_OUT = "the bat sat on a cat; the mat ate the dog? zebra!"  # 'z', 'b', ';', '?', '!' unseen


def _contexts(model: CharNGramLM, text: str) -> list[str]:
    """Every context the model meets scoring ``text``, plus unseen and unknown-character ones."""
    n = model.order
    seen = {text[max(0, i - n + 1):i] for i in range(len(text))}
    return sorted(seen | {"", "q" * (n - 1), "zz" + "the"[: max(n - 3, 0)]})


@pytest.mark.parametrize("order", [1, 2, 3, 5])
@pytest.mark.parametrize(("smoothing", "discount"), [
    ("kneser-ney", 0.75), ("kneser-ney", 0.3), ("kneser-ney", 1.0), ("kneser-ney", "estimate"),
    ("witten-bell", None)])
def test_every_context_distribution_sums_to_one(order, smoothing, discount) -> None:
    model = CharNGramLM.fit(CORPUS, order, smoothing=smoothing, discount=discount)
    for context in _contexts(model, HELD_OUT + CORPUS[:40]):
        dist = model.distribution(context)
        assert len(dist) == len(set(CORPUS)) + 1  # the alphabet and UNKNOWN
        assert min(dist.values()) > 0
        assert math.fsum(dist.values()) == pytest.approx(1.0, abs=1e-9), context


def test_abracadabra_bigram_kneser_ney_by_hand() -> None:
    model = CharNGramLM.fit(ABRA, 2, discount=0.75)
    D, V = 0.75, 6  # alphabet {a, b, c, d, r} + UNKNOWN
    # Unigram order: continuation counts N1+(• w) from the bigram types
    # {ab, br, ra, ac, ca, ad, da}: a <- {r, c, d} = 3; b, r, c, d: 1 each; N1+(• •) = 7, and
    # 5 characters have a count, so the uniform floor gets D * 5 / 7.
    assert model.counts[0] == {"a": 3, "b": 1, "r": 1, "c": 1, "d": 1}
    p1 = {w: (max(c - D, 0) + D * 5 / V) / 7 for w, c in model.counts[0].items()}
    assert p1["a"] == pytest.approx(2.875 / 7, abs=1e-15)
    assert p1["b"] == pytest.approx(0.125, abs=1e-15)
    assert model.prob("", "a") == pytest.approx(2.875 / 7, abs=1e-15)
    assert model.prob("", "b") == pytest.approx(0.125, abs=1e-15)
    assert model.prob("", "z") == pytest.approx(0.625 / 7, abs=1e-15)  # unseen: D*5/7 * 1/6
    # Bigram order: raw counts. After 'a': b twice, c once, d once (total 4, 3 types).
    assert model.contexts[1]["a"] == (4, 3)
    assert model.prob("a", "b") == pytest.approx((2 - D + D * 3 * 0.125) / 4, abs=1e-15)
    assert model.prob("a", "b") == pytest.approx(0.3828125, abs=1e-15)
    assert model.prob("a", "a") == pytest.approx(D * 3 * (2.875 / 7) / 4, abs=1e-15)
    # After 'b': r twice (total 2, 1 type).
    assert model.prob("b", "r") == pytest.approx((2 - D + D * 1 * 0.125) / 2, abs=1e-15)
    assert model.prob("b", "r") == pytest.approx(0.671875, abs=1e-15)
    # 'z' is an unseen context: all of it goes to the unigram order.
    assert model.prob("z", "a") == model.prob("", "a")
    # A context longer than order - 1 uses only its last character.
    assert model.prob("xyzab", "r") == model.prob("b", "r")


def test_abracadabra_score_is_the_sum_of_hand_log_probs() -> None:
    model = CharNGramLM.fit(ABRA, 2)
    text = "abz"  # a: unigram (no context); b after a; z (unknown) after b
    p_a, p_b_a = 2.875 / 7, 0.3828125
    p_z_b = 0.75 * 1 * (0.625 / 7) / 2  # only the backed-off mass of context 'b' reaches UNK
    score = model.score(text)
    expected = -(math.log(p_a) + math.log(p_b_a) + math.log(p_z_b))
    assert score.nats == pytest.approx(expected, rel=1e-13)
    assert (score.characters, score.unseen) == (3, 1)


def test_estimated_discount_is_n1_over_n1_plus_2_n2_per_order() -> None:
    model = CharNGramLM.fit(ABRA, 2, discount="estimate")
    # order 1 (continuation counts a 3, b 1, r 1, c 1, d 1): n1 = 4, n2 = 0 -> D = 1
    # order 2 (raw counts ab 2, br 2, ra 2, ac 1, ca 1, ad 1, da 1): n1 = 4, n2 = 3 -> 4/10
    assert model.discounts == (1.0, 0.4)
    assert model.prob("a", "b") == pytest.approx((2 - 0.4 + 0.4 * 3 * (1 * 5 / 6) / 7) / 4)


@pytest.mark.parametrize("discount", [0.75, 0.5])
def test_order_1_kneser_ney_is_the_unigram_with_the_interpolation_floor(discount) -> None:
    model = CharNGramLM.fit(CORPUS, 1, discount=discount)
    counts = Counter(CORPUS)  # the add-nothing unigram: c(w) / N
    N, T, V = len(CORPUS), len(counts), len(counts) + 1
    for w, c in counts.items():
        expected = (c - discount) / N + discount * T / N / V
        assert model.prob("any context", w) == pytest.approx(expected, rel=1e-13)
    assert model.prob("", "Z") == pytest.approx(discount * T / N / V, rel=1e-13)


def test_order_1_witten_bell_is_the_unigram_with_the_interpolation_floor() -> None:
    model = CharNGramLM.fit(CORPUS, 1, smoothing="witten-bell")
    counts = Counter(CORPUS)
    N, T, V = len(CORPUS), len(counts), len(counts) + 1
    for w, c in counts.items():
        assert model.prob("", w) == pytest.approx((c + T / V) / (N + T), rel=1e-13)
    assert model.prob("", "Z") == pytest.approx((T / V) / (N + T), rel=1e-13)


def test_score_uses_shorter_contexts_for_the_first_characters_and_counts_unseen() -> None:
    model = CharNGramLM.fit(CORPUS, 4)
    score = model.score(HELD_OUT)
    by_hand = -math.fsum(model.log_prob(HELD_OUT[max(0, i - 3):i], c)
                         for i, c in enumerate(HELD_OUT))
    assert score.nats == pytest.approx(by_hand, rel=1e-12)
    assert score.characters == len(HELD_OUT)
    assert score.unseen == sum(c not in set(CORPUS) for c in HELD_OUT) == 6
    assert model.log_prob("", "t") == math.log(model.prob("", "t"))


def test_bits_per_character_is_nats_over_ln_2_and_perplexity_is_exp() -> None:
    model = CharNGramLM.fit(CORPUS, 3)
    nats = model.cross_entropy(HELD_OUT)
    assert nats == pytest.approx(model.score(HELD_OUT).nats / len(HELD_OUT))
    assert model.bits_per_character(HELD_OUT) == pytest.approx(nats / math.log(2), rel=1e-15)
    assert model.perplexity(HELD_OUT) == pytest.approx(math.exp(nats), rel=1e-15)
    score = NGramScore(nats=math.log(2) * 10, characters=5, unseen=0)
    assert score.bits_per_character == pytest.approx(2.0)
    assert score.perplexity == pytest.approx(4.0)


def test_longer_contexts_predict_a_repetitive_text_better() -> None:
    text = "abcabcabcabd" * 20
    bpc = [CharNGramLM.fit(text, n).bits_per_character(text) for n in (1, 2, 4)]
    assert bpc[0] > bpc[1] > bpc[2]
    assert bpc[0] < math.log2(5)  # better than uniform over {a, b, c, d} + UNKNOWN


# ------------------------------------------------------------- NLTK, written by someone else
# nltk.lm.KneserNeyInterpolated (nltk/lm/smoothing.py, models.py) agrees with our definitions
# at every order above the unigram: raw counts at the highest order, continuation counts
# N1+(• h w) / N1+(• h •) below it, gamma = D * N1+(h •) / total, one D for all orders, and an
# unseen context deferring to the next lower order. It differs in two places:
#   1. its unigram is the continuation unigram N1+(• w) / N1+(• •), neither discounted nor
#      interpolated with a uniform distribution: a character never seen in training gets
#      probability 0 (logscore -inf). We discount it and interpolate with the uniform
#      distribution over the alphabet + UNKNOWN (the same size as NLTK's vocabulary, which
#      includes its "<UNK>" label). The adapter below gives NLTK our unigram.
#   2. its N1+(h •) in gamma counts the characters that follow h in the raw counts, ours those
#      with a continuation count; they differ only for an n-gram whose one occurrence starts
#      the training text (it has no character before it). CORPUS is chosen so none does.
# Witten–Bell (nltk.lm.WittenBellInterpolated) differs only in the unigram as well: NLTK's is
# c(w) / N, ours (c(w) + T / V) / (N + T).


def _nltk_model(kind: str, text: str, order: int, discount: float | None = None):
    from nltk.lm import KneserNeyInterpolated, WittenBellInterpolated
    from nltk.lm.smoothing import KneserNey, WittenBell
    from nltk.util import everygrams

    chars = list(text)
    if kind == "kneser-ney":
        lm = KneserNeyInterpolated(order, discount=discount)
    else:
        lm = WittenBellInterpolated(order)
    lm.fit([everygrams(chars, max_len=order)], vocabulary_text=chars)  # no padding, like ours
    V = len(set(text)) + 1  # our alphabet + UNKNOWN: NLTK's vocabulary, with its "<UNK>"
    assert len(lm.vocab) == V

    class FlooredKneserNey(KneserNey):  # test-only adapter: our unigram, NLTK's counts
        def unigram_score(self, word):
            count, total = self._continuation_counts(word)  # N1+(• w), N1+(• •)
            return (max(count - self.discount, 0) + self.discount * types / V) / total

    class FlooredWittenBell(WittenBell):
        def unigram_score(self, word):
            unigrams = self.counts.unigrams
            return (unigrams[word] + types / V) / (unigrams.N() + types)

    if kind == "kneser-ney":
        est = FlooredKneserNey(lm.vocab, lm.counts, order=order, discount=discount)
        types = sum(1 for w in set(text) if est._continuation_counts(w)[0] > 0)
    else:
        est = FlooredWittenBell(lm.vocab, lm.counts)
        types = len(lm.counts.unigrams)
    original, lm.estimator = lm.estimator, est
    return lm, original


def _assert_prefixes_recur(text: str, order: int) -> None:
    for k in range(2, order):  # difference 2 above: no k-gram only at the start of the text
        assert text.find(text[:k], 1) > 0, text[:k]


@pytest.mark.parametrize("order", [2, 3, 4])
@pytest.mark.parametrize("discount", [0.75, 0.4])
def test_kneser_ney_matches_nltk_kneser_ney_interpolated(order, discount) -> None:
    _assert_prefixes_recur(CORPUS, order)
    ours = CharNGramLM.fit(CORPUS, order, discount=discount)
    theirs, _ = _nltk_model("kneser-ney", CORPUS, order, discount)
    compared = 0
    for context in _contexts(ours, HELD_OUT + CORPUS[5:60]):
        for w in (*sorted(set(CORPUS)), "z"):
            expected = theirs.score(w, tuple(context[-(order - 1):]) if order > 1 else None)
            assert ours.log_prob(context, w) == pytest.approx(math.log(expected), abs=1e-12)
            compared += 1
    assert compared > 300


@pytest.mark.parametrize("order", [2, 3, 4])
def test_witten_bell_matches_nltk_witten_bell_interpolated(order) -> None:
    ours = CharNGramLM.fit(CORPUS, order, smoothing="witten-bell")
    theirs, _ = _nltk_model("witten-bell", CORPUS, order)
    for context in _contexts(ours, HELD_OUT):
        for w in (*sorted(set(CORPUS)), "z"):
            expected = theirs.score(w, tuple(context[-(order - 1):]))
            assert ours.log_prob(context, w) == pytest.approx(math.log(expected), abs=1e-12)


def test_nltk_unigram_is_our_continuation_unigram_undiscounted_and_zero_for_unseen() -> None:
    ours = CharNGramLM.fit(CORPUS, 3)
    _, original = _nltk_model("kneser-ney", CORPUS, 3, 0.75)
    total = sum(ours.counts[0].values())  # N1+(• •)
    for w, count in ours.counts[0].items():
        assert original.unigram_score(w) == pytest.approx(count / total, abs=1e-15)
    assert original.unigram_score("<UNK>") == 0.0  # difference 1: NLTK has no floor
    assert ours.prob("", "z") > 0


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"text": ""}, ValueError, "text must hold at least one character"),
    ({"text": b"abc"}, TypeError, "text must be a str, got bytes"),
    ({"order": 0}, ValueError, "order must be >= 1, got 0"),
    ({"order": 2.0}, TypeError, "order must be an integer"),
    ({"smoothing": "laplace"}, ValueError, "smoothing must be one of"),
    ({"discount": 0}, ValueError, r"discount must be a number in \(0, 1\]"),
    ({"discount": 1.5}, ValueError, r"discount must be a number in \(0, 1\]"),
    ({"discount": "ney"}, ValueError, "or 'estimate', got 'ney'"),
    ({"smoothing": "witten-bell", "discount": 0.75}, ValueError, "Witten-Bell .* no discount"),
    ({"text": "aaaa", "order": 1, "discount": "estimate"}, ValueError, "n1"),
])
def test_bad_arguments_are_named(kwargs, error, match) -> None:
    args = {"text": CORPUS, "order": 3} | kwargs
    with pytest.raises(error, match=match):
        CharNGramLM.fit(args.pop("text"), args.pop("order"), **args)


def test_bad_queries_are_named() -> None:
    model = CharNGramLM.fit(ABRA, 2)
    with pytest.raises(ValueError, match="char must be one character or UNKNOWN"):
        model.prob("a", "ab")
    with pytest.raises(TypeError, match="context must be a str"):
        model.prob(None, "a")
    with pytest.raises(ValueError, match="text must hold at least one character"):
        model.score("")
    assert model.prob("a", UNKNOWN) == model.prob("a", "z")

"""SQuAD v1.1 question answering: the official metrics (EM, F1) and the sliding-window baseline.

The metrics are those of the official evaluation script, ``evaluate-v1.1.py`` (Rajpurkar et al.,
2016, §6): answers are compared after :func:`normalize_answer`; *exact match* asks for equal
strings, *F1* measures the overlap of their bags of tokens; each question takes its best score
over its gold answers, and the scores are averaged over questions, in percent. A question with
no prediction scores 0, as in the official script.

The baseline is the paper's *sliding window* (§5, after Richardson et al., 2013, MCTest): it
needs no training, only word overlap with the question (the paper's abstract calls it "a simple
baseline (20%)", its F1). Any model of ours should beat it; :func:`sliding_window_predict`
documents how closely we follow the paper.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import pairwise

from transformer.data.squad import (
    SquadData,
    SquadExample,
    Token,
    char_span_to_token_span,
    token_span_to_char_span,
    tokenize_with_offsets,
)

__all__ = [
    "STOPWORDS",
    "char_span_to_token_span",
    "evaluate",
    "exact_match_score",
    "f1_score",
    "max_over_ground_truths",
    "normalize_answer",
    "sliding_window_predict",
    "token_span_to_char_span",
    "tokenize_with_offsets",
]

# --------------------------------------------------------------------------- official metrics

_PUNCTUATION = frozenset(string.punctuation)  # the 32 ASCII marks; "–" or "’" are kept
_ARTICLES = re.compile(r"\b(a|an|the)\b")  # whole words only: "theater" keeps its "the"


# --8<-- [start:metric]
def normalize_answer(s: str) -> str:
    """Normalise an answer as the official SQuAD v1.1 script does, in its order.

    1. lower-case; 2. delete every ``string.punctuation`` character; 3. replace the articles
    *a*, *an*, *the* (whole words, regex ``\\b(a|an|the)\\b``) by a space; 4. collapse white
    space to single spaces and strip the ends. ``"The Denver Broncos!"`` -> ``"denver broncos"``.
    """
    text = s.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match_score(prediction: str, ground_truth: str) -> float:
    """1.0 if the two answers are equal after :func:`normalize_answer`, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def f1_score(prediction: str, ground_truth: str) -> float:
    """Token-level F1 of two answers, as the official SQuAD v1.1 script computes it.

    The tokens are the white-space-separated words of the normalised answers; the overlap
    counts each token as often as it occurs in both (a ``Counter`` intersection);
    precision = overlap / len(prediction tokens), recall = overlap / len(gold tokens),
    F1 = 2·P·R / (P + R), and 0.0 when nothing overlaps (two empty answers included).
    """
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(prediction_tokens)
    recall = num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)
# --8<-- [end:metric]


def max_over_ground_truths(
    metric: Callable[[str, str], float], prediction: str, ground_truths: Iterable[str]
) -> float:
    """The best score of ``prediction`` against any of the gold answers.

    Raises:
        ValueError: ``ground_truths`` is empty.
    """
    scores = [metric(prediction, truth) for truth in ground_truths]
    if not scores:
        raise ValueError("ground_truths must hold at least one answer, got none")
    return max(scores)


def evaluate(
    predictions: Mapping[str, str], examples: SquadData | Iterable[SquadExample]
) -> dict[str, float | int]:
    """Exact match and F1 of predicted answers, in percent, as ``evaluate-v1.1.py`` reports.

    Every question of ``examples`` counts: its score is the best over its gold answer texts,
    and a question missing from ``predictions`` scores 0 (counted in ``missing``).
    Predictions for ids that are not in ``examples`` are ignored, as in the official script.

    Args:
        predictions: question id -> predicted answer text.
        examples: the questions, a :class:`~transformer.data.squad.SquadData` or its examples.

    Returns:
        ``{"exact_match": %, "f1": %, "count": questions, "missing": questions unanswered}``.

    Raises:
        ValueError: ``predictions`` is not a mapping of strings; no examples.
    """
    if not isinstance(predictions, Mapping):
        raise ValueError(f"predictions must map question ids to strings, got "
                         f"{type(predictions).__name__}")
    bad = next(((k, v) for k, v in predictions.items() if not isinstance(v, str)), None)
    if bad is not None:
        raise ValueError(f"predictions[{bad[0]!r}] must be a string, got "
                         f"{type(bad[1]).__name__}")
    items = examples.examples if isinstance(examples, SquadData) else tuple(examples)
    if not items:
        raise ValueError("examples must hold at least one question, got none")
    exact_match = f1 = 0.0
    missing = 0
    for example in items:
        if example.id not in predictions:
            missing += 1
            continue
        prediction, truths = predictions[example.id], example.answer_texts
        exact_match += max_over_ground_truths(exact_match_score, prediction, truths)
        f1 += max_over_ground_truths(f1_score, prediction, truths)
    total = len(items)
    return {"exact_match": 100.0 * exact_match / total, "f1": 100.0 * f1 / total,
            "count": total, "missing": missing}


# --------------------------------------------------------------------------- sliding window

# Function words left out of the distance feature (Richardson et al. 2013 remove stop words
# there, and only there). A short fixed list; the overlap and window scores use every word.
_STOPWORD_TEXT = (
    "a an the of in on at to for from by with about as into than and or but not no is are was "
    "were be been being has have had do does did it its this that these those there their they "
    "he she his her him we our you your i what which who whom whose when where why how"
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_WORD = re.compile(r"\w")
_SENTENCE_END = frozenset(".!?")


def _is_word(token: str) -> bool:
    return _WORD.match(token) is not None


def _sentences(tokens: Sequence[Token]) -> list[tuple[int, int]]:
    """Token ranges ``[lo, hi)`` of the sentences: a sentence ends at ".", "!" or "?" that is
    followed by white space and then a capital, a digit or a quote, unless (for ".") the
    token before is a single capital letter (an initial, "U.S." or "J. Smith")."""
    spans, lo = [], 0
    for i, tok in enumerate(tokens[:-1]):
        nxt = tokens[i + 1]
        if tok.token not in _SENTENCE_END or nxt.start == tok.end:
            continue
        if not (nxt.token[0].isupper() or nxt.token[0].isdigit() or nxt.token[0] in "\"'“‘"):
            continue
        if tok.token == "." and i > 0 and len(tokens[i - 1].token) == 1 \
                and tokens[i - 1].token.isupper():
            continue
        spans.append((lo, i + 1))
        lo = i + 1
    if lo < len(tokens):
        spans.append((lo, len(tokens)))
    return spans


def _bigrams(words: Sequence[str]) -> set[tuple[str, str]]:
    return set(pairwise(words))


def _window_score(sentence: Sequence[str], targets: set[str], weight: dict[str, float]) -> float:
    """MCTest's SW: the best sum of inverse counts of target words in a window of |targets|
    consecutive words of the sentence (windows may run past its end)."""
    size = len(targets)
    prefix = [0.0]
    for word in sentence:
        prefix.append(prefix[-1] + (weight[word] if word in targets else 0.0))
    n = len(sentence)
    return max(prefix[min(k + size, n)] - prefix[k] for k in range(n))


def _distance(sentence: Sequence[str], question: set[str], candidate: set[str]) -> float:
    """MCTest's distance term: the fewest words from a question word to a candidate word
    (stop words and the candidate's question words left out) over the sentence length - 1;
    1 when either side has no such word."""
    s_q = (question & set(sentence)) - STOPWORDS
    s_a = candidate - question - STOPWORDS
    if not s_q or not s_a:
        return 1.0
    q_at = [m for m, w in enumerate(sentence) if w in s_q]
    a_at = [m for m, w in enumerate(sentence) if w in s_a]
    return min(abs(m - n) for m in q_at for n in a_at) / (len(sentence) - 1)


def sliding_window_predict(context: str, question: str, *, max_answer_tokens: int = 4) -> str:
    """Answer a question with the SQuAD paper's sliding-window baseline (no learning).

    Rajpurkar et al. (2016), §5 "Sliding Window Baseline": for each candidate answer, count
    the unigram/bigram overlap between the question and the sentence containing the candidate,
    *excluding the candidate itself*; keep the candidates with maximal overlap; among them pick
    the best by the sliding-window score of Richardson et al. (2013, MCTest) with its
    distance-based extension, using only the candidate's sentence as its passage. Here:

    1. ``tokenize_with_offsets``; words are compared lower-cased, punctuation is ignored.
       Sentences end at ".", "!" or "?" before white space and a capital (a simple rule).
    2. Candidates: every span of 1 to ``max_answer_tokens`` tokens inside one sentence that
       begins and ends with a word. **Simplification**: the paper uses only constituents of a
       Stanford CoreNLP parse; we have no parser, so a length limit stands in for it.
    3. Overlap = distinct question unigrams + distinct question bigrams found in the sentence's
       words left and right of the candidate (no bigram bridges the candidate).
    4. Among the maximal-overlap candidates, score = SW - d (MCTest, Algorithms 1 and 2):
       SW = the best sum, over windows of |S| consecutive words of the sentence, of
       IC(w) = log(1 + 1/C(w)) for the words w in S = question words ∪ candidate words, with
       C(w) the count of w in the whole paragraph; d = the fewest words between a question
       word and a candidate word of the sentence (stop words, :data:`STOPWORDS`, and the
       candidate's question words left out), over the sentence length - 1, or 1 if there is
       no such pair.
    5. Ties go to the earliest candidate (by start, then the shorter one), so the output is
       deterministic. The answer is the context's characters from the first to the last token.

    SW sums over the candidate's own words too, so among spans of the same sentence the longer
    ones tend to win; the paper's constituents hold that in check, our length limit only caps
    it, so expect fewer exact matches than the paper for a similar F1. Words are compared as
    written (no stemming: "stand" does not match "stands").

    Args:
        context: the paragraph. question: the question.
        max_answer_tokens: the longest candidate, in tokens (>= 1).

    Returns:
        The predicted answer, a substring of ``context``; ``""`` if it holds no word.

    Raises:
        ValueError: ``context`` or ``question`` not a string; ``max_answer_tokens`` < 1.
    """
    _check_inputs(context, question, max_answer_tokens)
    tokens = tokenize_with_offsets(context)
    q_words = [t.token.lower() for t in tokenize_with_offsets(question) if _is_word(t.token)]
    q_uni, q_bi = set(q_words), _bigrams(q_words)
    counts = Counter(t.token.lower() for t in tokens if _is_word(t.token))
    weight = {w: math.log(1.0 + 1.0 / c) for w, c in counts.items()}

    best: tuple[int, float] | None = None  # (overlap, SW - d) of the best candidate so far
    answer = ""
    for lo, hi in _sentences(tokens):
        at = [i for i in range(lo, hi) if _is_word(tokens[i].token)]  # word positions
        words = [tokens[i].token.lower() for i in at]
        for a in range(len(at)):  # the candidate is the words a .. b, tokens at[a] .. at[b]
            for b in range(a, len(at)):
                if at[b] - at[a] + 1 > max_answer_tokens:
                    break
                left, right = words[:a], words[b + 1:]
                overlap = len(q_uni & (set(left) | set(right))) \
                    + len(q_bi & (_bigrams(left) | _bigrams(right)))
                if best is not None and overlap < best[0]:
                    continue
                candidate = set(words[a:b + 1])
                score = _window_score(words, q_uni | candidate, weight) \
                    - _distance(words, q_uni, candidate)
                if best is None or (overlap, score) > best:
                    best = (overlap, score)
                    start, end = token_span_to_char_span(tokens, at[a], at[b] + 1)
                    answer = context[start:end]
    return answer


def _check_inputs(context: object, question: object, max_answer_tokens: object) -> None:
    for name, value in (("context", context), ("question", question)):
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    if not isinstance(max_answer_tokens, int) or isinstance(max_answer_tokens, bool) \
            or max_answer_tokens < 1:
        raise ValueError(f"max_answer_tokens must be an integer >= 1, got {max_answer_tokens!r}")

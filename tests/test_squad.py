"""SQuAD v1.1: the reader, the article split, offsets, the official metrics and the baseline.

The metrics are checked against a literal transcription of the official ``evaluate-v1.1.py``
(Rajpurkar et al., 2016) kept in this file, on hand-worked cases and on random strings."""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transformer.data.squad import (
    SquadData,
    char_span_to_token_span,
    read_squad,
    split_by_article,
    token_span_to_char_span,
    tokenize_with_offsets,
)
from transformer.tasks.squad import (
    evaluate,
    exact_match_score,
    f1_score,
    max_over_ground_truths,
    normalize_answer,
    sliding_window_predict,
)

# ---------------------------------------------------------------- the official script, verbatim
# Transcribed from the official SQuAD v1.1 evaluation script (evaluate-v1.1.py, SQuAD-explorer),
# functions normalize_answer, f1_score, exact_match_score, metric_max_over_ground_truths and
# evaluate, kept literal (only the stderr message of evaluate left out) to serve as the reference.


def official_normalize_answer(s):
    """Lower text and remove punctuation, articles and extra whitespace."""
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def official_f1_score(prediction, ground_truth):
    prediction_tokens = official_normalize_answer(prediction).split()
    ground_truth_tokens = official_normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def official_exact_match_score(prediction, ground_truth):
    return (official_normalize_answer(prediction) == official_normalize_answer(ground_truth))


def official_metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)


def official_evaluate(dataset, predictions):
    f1 = exact_match = total = 0
    for article in dataset:
        for paragraph in article['paragraphs']:
            for qa in paragraph['qas']:
                total += 1
                if qa['id'] not in predictions:
                    continue
                ground_truths = list(map(lambda x: x['text'], qa['answers']))
                prediction = predictions[qa['id']]
                exact_match += official_metric_max_over_ground_truths(
                    official_exact_match_score, prediction, ground_truths)
                f1 += official_metric_max_over_ground_truths(
                    official_f1_score, prediction, ground_truths)

    exact_match = 100.0 * exact_match / total
    f1 = 100.0 * f1 / total

    return {'exact_match': exact_match, 'f1': f1}


# ---------------------------------------------------------------- a small file of the v1.1 form

CONTEXT_A = "Super Bowl 50 was won by the Denver Broncos. The game was played in Santa Clara."
CONTEXT_B = "The Eiffel Tower is in Paris. The Colosseum is in Rome."
CONTEXT_C = "Water boils at 100 degrees Celsius at sea level."


def _answer(context: str, text: str, shift: int = 0) -> dict:
    return {"text": text, "answer_start": context.index(text) + shift}


def _squad_json() -> dict:
    return {
        "version": "1.1",
        "data": [
            {"title": "Super_Bowl_50", "paragraphs": [
                {"context": CONTEXT_A, "qas": [
                    {"id": "q1", "question": "Who won Super Bowl 50?",
                     "answers": [_answer(CONTEXT_A, "Denver Broncos"),
                                 _answer(CONTEXT_A, "the Denver Broncos")]},
                    {"id": "q2", "question": "Where was the game played?",
                     "answers": [_answer(CONTEXT_A, "Santa Clara"),
                                 _answer(CONTEXT_A, "Santa Clara", shift=3)]},  # misaligned
                ]},
            ]},
            {"title": "Landmarks", "paragraphs": [
                {"context": CONTEXT_B, "qas": [
                    {"id": "q3", "question": "Where is the Eiffel Tower?",
                     "answers": [_answer(CONTEXT_B, "Paris")]},
                ]},
                {"context": CONTEXT_C, "qas": [
                    {"id": "q4", "question": "At what temperature does water boil?",
                     "answers": [_answer(CONTEXT_C, "100 degrees Celsius"),
                                 {"text": "100 degrees", "answer_start": 999}]},  # past the end
                ]},
            ]},
        ],
    }


def _write(tmp_path: Path, content: object, name: str = "dev.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content),
                    encoding="utf-8")
    return path


@pytest.fixture
def squad(tmp_path: Path) -> SquadData:
    return read_squad(_write(tmp_path, _squad_json()))


def _many_articles(tmp_path: Path, n: int = 20) -> SquadData:
    data = [{"title": f"Article_{a}", "paragraphs": [{"context": "x y z", "qas": [
        {"id": f"a{a}q{q}", "question": "what?", "answers": [{"text": "y", "answer_start": 2}]}
        for q in range(3)]}]} for a in range(n)]
    return read_squad(_write(tmp_path, {"version": "1.1", "data": data}, "many.json"))


# ---------------------------------------------------------------- reader


def test_read_squad_flattens_questions_in_file_order(squad: SquadData) -> None:
    assert [e.id for e in squad.examples] == ["q1", "q2", "q3", "q4"]
    assert [e.article_index for e in squad.examples] == [0, 0, 1, 1]
    assert [e.paragraph_index for e in squad.examples] == [0, 0, 0, 1]
    assert squad.titles == {0: "Super_Bowl_50", 1: "Landmarks"}
    q1 = squad.examples[0]
    assert q1.title == "Super_Bowl_50" and q1.context == CONTEXT_A
    assert q1.question == "Who won Super Bowl 50?"
    assert q1.answers == (("Denver Broncos", CONTEXT_A.index("Denver Broncos")),
                          ("the Denver Broncos", CONTEXT_A.index("the Denver Broncos")))
    assert q1.answer_texts == ["Denver Broncos", "the Denver Broncos"]
    assert len(squad) == 4 and squad.version == "1.1"


def test_misaligned_answers_are_counted_and_kept_for_scoring_but_not_as_span_targets(
    squad: SquadData,
) -> None:
    assert squad.misaligned == (("q2", 1), ("q4", 1))
    q2, q4 = squad.examples[1], squad.examples[3]
    assert q2.aligned == (True, False) and q4.aligned == (True, False)
    assert q2.answer_texts == ["Santa Clara", "Santa Clara"]  # both still scored
    assert q2.span_answers == [("Santa Clara", CONTEXT_A.index("Santa Clara"))]
    assert q4.span_answers == [("100 degrees Celsius", CONTEXT_C.index("100"))]
    for e in squad.examples:
        for text, start in e.span_answers:
            assert e.context[start:start + len(text)] == text


def test_summary_states_the_counts_and_the_misaligned_answers(squad: SquadData) -> None:
    summary = squad.summary()
    assert "2 articles, 3 paragraphs, 4 questions, 7 answers" in summary
    assert "2 answers in 2 questions misaligned" in summary
    assert summary.startswith(squad.source)


def _set(doc: dict, path: tuple, value: object) -> dict:
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def _drop(doc: dict, path: tuple) -> dict:
    node = doc
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return doc


MALFORMED = [
    ("answer_start_not_int",
     lambda d: _set(d, ("data", 1, "paragraphs", 1, "qas", 0, "answers", 0, "answer_start"), "x"),
     'dev.json: data[1].paragraphs[1].qas[0].answers[0].answer_start: '
     'expected an integer, got "x"'),
    ("answer_start_bool",
     lambda d: _set(d, ("data", 0, "paragraphs", 0, "qas", 0, "answers", 1, "answer_start"), True),
     "data[0].paragraphs[0].qas[0].answers[1].answer_start: expected an integer, got true"),
    ("answer_start_negative",
     lambda d: _set(d, ("data", 0, "paragraphs", 0, "qas", 0, "answers", 0, "answer_start"), -1),
     "data[0].paragraphs[0].qas[0].answers[0].answer_start: expected an integer >= 0, got -1"),
    ("missing_data", lambda d: _drop(d, ("data",)), 'dev.json: top level: missing key "data"'),
    ("missing_version", lambda d: _drop(d, ("version",)),
     'dev.json: top level: missing key "version"'),
    ("wrong_version", lambda d: _set(d, ("version",), "v2.0"),
     'dev.json: version: expected "1.1" (SQuAD v1.1), got "v2.0"'),
    ("data_not_list", lambda d: _set(d, ("data",), {"a": 1}),
     "dev.json: data: expected an array, got an object"),
    ("missing_context", lambda d: _drop(d, ("data", 1, "paragraphs", 0, "context")),
     'dev.json: data[1].paragraphs[0]: missing key "context"'),
    ("context_not_string", lambda d: _set(d, ("data", 1, "paragraphs", 0, "context"), 7),
     "dev.json: data[1].paragraphs[0].context: expected a string, got 7"),
    ("paragraph_not_object", lambda d: _set(d, ("data", 0, "paragraphs", 0), "text"),
     'dev.json: data[0].paragraphs[0]: expected an object, got "text"'),
    ("no_answers", lambda d: _set(d, ("data", 0, "paragraphs", 0, "qas", 1, "answers"), []),
     "dev.json: data[0].paragraphs[0].qas[1].answers: expected at least one answer, got []"),
    ("empty_answer_text",
     lambda d: _set(d, ("data", 1, "paragraphs", 0, "qas", 0, "answers", 0, "text"), ""),
     'data[1].paragraphs[0].qas[0].answers[0].text: expected a non-empty string, got ""'),
    ("duplicate_id", lambda d: _set(d, ("data", 1, "paragraphs", 0, "qas", 0, "id"), "q1"),
     'dev.json: data[1].paragraphs[0].qas[0].id: duplicate question id "q1" '
     r"(first at data[0].paragraphs[0].qas[0])"),
    ("top_level_not_object", lambda d: [d],
     "dev.json: top level: expected an object, got an array"),
]


@pytest.mark.parametrize(("change", "message"), [c[1:] for c in MALFORMED],
                         ids=[c[0] for c in MALFORMED])
def test_malformed_file_raises_one_error_naming_file_and_json_path(
    tmp_path: Path, change, message: str
) -> None:
    path = _write(tmp_path, change(_squad_json()))
    with pytest.raises(ValueError, match=re.escape(message)):
        read_squad(path)


def test_invalid_json_reports_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, '{"version": "1.1",\n  "data": [\n    {"title" "x"}]}')
    with pytest.raises(ValueError, match=r"dev\.json: invalid JSON at line 3, column 14: "
                                         r"Expecting ':' delimiter"):
        read_squad(path)


def test_non_utf8_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes('{"version": "1.1", "data": [{"title": "Café"}]}'.encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.json: not UTF-8 text"):
        read_squad(path)


# ---------------------------------------------------------------- split by article


def test_split_by_article_is_disjoint_complete_and_deterministic(tmp_path: Path) -> None:
    data = _many_articles(tmp_path)
    train, held = split_by_article(data, held_out_fraction=0.25, seed=3)
    assert len(held.titles) == 5 and len(train.titles) == 15
    assert set(train.titles).isdisjoint(held.titles)
    assert set(train.titles) | set(held.titles) == set(data.titles)
    assert {e.article_index for e in held.examples} == set(held.titles)
    assert len(train) + len(held) == len(data)
    assert [e.id for e in train.examples] == [e.id for e in data.examples
                                              if e.article_index in train.titles]  # file order
    again = split_by_article(data, held_out_fraction=0.25, seed=3)
    assert again[1].titles == held.titles
    other = split_by_article(data, held_out_fraction=0.25, seed=4)
    assert other[1].titles != held.titles  # the seed changes which articles are held out


def test_split_by_article_fraction_follows_the_documented_sha256_rule(tmp_path: Path) -> None:
    import hashlib

    data = _many_articles(tmp_path)
    ranked = sorted(data.titles, key=lambda a: hashlib.sha256(
        f"7\x00{data.titles[a]}".encode()).hexdigest())
    _, held = split_by_article(data, held_out_fraction=0.1, seed=7)
    assert set(held.titles) == set(ranked[:2])


def test_split_by_article_with_explicit_titles_keeps_misaligned_with_their_side(
    squad: SquadData,
) -> None:
    train, held = split_by_article(squad, held_out_titles=["Landmarks"])
    assert [e.id for e in held.examples] == ["q3", "q4"]
    assert [e.id for e in train.examples] == ["q1", "q2"]
    assert held.misaligned == (("q4", 1),) and train.misaligned == (("q2", 1),)
    assert held.titles == {1: "Landmarks"}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "give exactly one of held_out_fraction or held_out_titles"),
    ({"held_out_fraction": 0.5, "held_out_titles": ["Landmarks"]}, "give exactly one"),
    ({"held_out_fraction": 1.0}, r"held_out_fraction must be a number in \(0, 1\), got 1.0"),
    ({"held_out_fraction": 0.1}, "holds out 0: each side needs at least one article"),
    ({"held_out_titles": ["Nope"]}, r"held_out_titles: not articles of .*\['Nope'\]"),
    ({"held_out_titles": "Landmarks"}, "must be a list of titles, got the string"),
])
def test_split_by_article_rejects_bad_arguments(squad: SquadData, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        split_by_article(squad, **kwargs)


# ---------------------------------------------------------------- tokens and offsets


@settings(max_examples=200, derandomize=True)
@given(st.text(alphabet=st.sampled_from(list("ab Z9_ \t\n.,'’-–é(\")")), max_size=40))
def test_tokens_round_trip_to_their_characters(text: str) -> None:
    tokens = tokenize_with_offsets(text)
    for t in tokens:
        assert text[t.start:t.end] == t.token
    assert all(a.end <= b.start for a, b in pairwise(tokens))
    covered = "".join(t.token for t in tokens)
    assert covered == "".join(text.split())  # nothing but white space is dropped
    for i in range(len(tokens)):
        for j in range(i + 1, len(tokens) + 1):
            start, end = token_span_to_char_span(tokens, i, j)
            assert char_span_to_token_span(tokens, start, end) == (i, j)


def test_tokenizer_splits_words_from_punctuation() -> None:
    tokens = tokenize_with_offsets("Levi's Stadium, 24–10.")
    assert [t.token for t in tokens] == ["Levi", "'", "s", "Stadium", ",", "24", "–", "10", "."]
    assert tokens[3].start == 7 and tokens[3].end == 14


def test_every_aligned_answer_maps_to_tokens_that_cover_it(squad: SquadData) -> None:
    for e in squad.examples:
        tokens = tokenize_with_offsets(e.context)
        for text, start in e.span_answers:
            first, stop = char_span_to_token_span(tokens, start, start + len(text))
            s, t = token_span_to_char_span(tokens, first, stop)
            assert e.context[s:t] == text  # SQuAD answers here fall on token boundaries


def test_char_span_inside_a_word_keeps_the_whole_token() -> None:
    text = "the Broncos' win"
    tokens = tokenize_with_offsets(text)
    assert char_span_to_token_span(tokens, 5, 8) == (1, 2)  # "ron" -> "Broncos"
    assert char_span_to_token_span(tokens, 3, 12) == (1, 3)  # " Broncos'" -> "Broncos", "'"


@pytest.mark.parametrize(("start", "end", "message"), [
    (3, 4, r"no token overlaps characters \[3, 4\)"),  # the space between two words
    (4, 4, "need 0 <= start < end, got start=4, end=4"),
    (-1, 2, "need 0 <= start < end"),
    (50, 60, "no token overlaps"),
    (0.0, 2, "start must be an integer, got 0.0"),
])
def test_char_span_to_token_span_rejects_spans_without_tokens(start, end, message) -> None:
    with pytest.raises(ValueError, match=message):
        char_span_to_token_span(tokenize_with_offsets("the Broncos"), start, end)


def test_token_span_to_char_span_rejects_out_of_range() -> None:
    message = r"need 0 <= first < stop <= len\(offsets\)=2, got first=1, stop=3"
    with pytest.raises(ValueError, match=message):
        token_span_to_char_span(tokenize_with_offsets("the Broncos"), 1, 3)


# ---------------------------------------------------------------- official metrics


@pytest.mark.parametrize(("raw", "normal"), [
    ("The Denver Broncos!", "denver broncos"),
    ("  a   theater, an  ANT ", "theater ant"),  # articles go only as whole words
    ("the", ""),
    ("", ""),
    ("A-ha", "aha"),  # punctuation is deleted before articles are looked for
    ("Levi's  Stadium\n", "levis stadium"),
    ("24–10", "24–10"),  # the en dash is not in string.punctuation
    ("l'an", "lan"),
])
def test_normalize_answer_follows_the_official_steps(raw: str, normal: str) -> None:
    assert normalize_answer(raw) == normal


def test_exact_match_ignores_case_articles_and_punctuation() -> None:
    assert exact_match_score("the Denver Broncos", "Denver Broncos") == 1.0
    assert exact_match_score("Denver Broncos.", "denver broncos") == 1.0
    assert exact_match_score("Broncos", "Denver Broncos") == 0.0
    assert exact_match_score("the theater", "theater") == 1.0
    assert exact_match_score("theater", "heater") == 0.0


def test_f1_on_hand_worked_cases() -> None:
    # "Broncos" vs "Denver Broncos": P = 1/1, R = 1/2, F1 = 2 * 1 * 0.5 / 1.5
    assert f1_score("Broncos", "Denver Broncos") == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert f1_score("Broncos", "Denver Broncos") == pytest.approx(0.6667, abs=1e-4)
    # "the Denver Broncos won" vs "Denver Broncos": P = 2/3, R = 1, F1 = 0.8
    assert f1_score("the Denver Broncos won", "Denver Broncos") == pytest.approx(0.8)
    # a repeated token counts as often as it occurs in both: "x x" vs "x x y" overlap 2 (a set
    # intersection would give 1), P = 2/2, R = 2/3, F1 = 0.8
    assert f1_score("x x", "x x y") == pytest.approx(0.8)
    assert f1_score("x x y", "x y") == pytest.approx(0.8)  # overlap min(2, 1) + 1 = 2
    assert f1_score("Carolina Panthers", "Denver Broncos") == 0.0
    assert f1_score("", "Denver Broncos") == 0.0
    assert f1_score("the", "an") == 0.0  # both empty after normalising: F1 0, yet EM 1
    assert exact_match_score("the", "an") == 1.0


def test_scores_take_the_best_gold_answer() -> None:
    golds = ["Santa Clara, California", "Levi's Stadium", "Santa Clara"]
    assert max_over_ground_truths(exact_match_score, "santa clara", golds) == 1.0
    assert max_over_ground_truths(f1_score, "Levi's", golds) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="ground_truths must hold at least one answer"):
        max_over_ground_truths(f1_score, "x", [])


_PIECES = ["the", "The", "a", "A", "an", "AN", "theater", "another", "x", "y", "Ünï", "é",
           " ", "  ", "\t", "\n", ",", ".", "'", "’", "-", "–", "(", ")", "$", "50", "ﬁ"]
_WORDS = ["the", "The", "a", "x", "x,", "y", "theater", "é", "ﬁ"]
_answers = st.one_of(
    st.lists(st.sampled_from(_PIECES), max_size=8).map("".join),
    st.lists(st.sampled_from(_WORDS), max_size=6).map(" ".join),  # repeated words
    st.text(max_size=12),
)


@settings(max_examples=400, derandomize=True)
@given(prediction=_answers, golds=st.lists(_answers, min_size=1, max_size=3))
def test_metrics_equal_the_official_script_on_random_strings(prediction: str, golds) -> None:
    assert normalize_answer(prediction) == official_normalize_answer(prediction)
    for gold in golds:
        assert exact_match_score(prediction, gold) == official_exact_match_score(prediction, gold)
        assert f1_score(prediction, gold) == official_f1_score(prediction, gold)
    assert max_over_ground_truths(f1_score, prediction, golds) == \
        official_metric_max_over_ground_truths(official_f1_score, prediction, golds)


def test_evaluate_equals_the_official_script_and_counts_missing_questions(
    squad: SquadData,
) -> None:
    predictions = {"q1": "the Denver Broncos", "q2": "Santa", "q4": "100 degrees",
                   "not-a-question": "ignored"}
    ours = evaluate(predictions, squad)
    official = official_evaluate(_squad_json()["data"], predictions)
    assert ours["exact_match"] == official["exact_match"]
    assert ours["f1"] == official["f1"]
    assert ours["count"] == 4 and ours["missing"] == 1  # q3 unanswered scores 0
    # by hand: EM (1 + 0 + 0 + 1) / 4; F1 (1 + 2/3 + 0 + 1) / 4
    assert ours["exact_match"] == pytest.approx(50.0)
    assert ours["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1) / 4)
    assert evaluate(predictions, squad.examples) == ours


def test_evaluate_rejects_bad_predictions(squad: SquadData) -> None:
    with pytest.raises(ValueError, match=r"predictions\['q1'\] must be a string, got int"):
        evaluate({"q1": 3}, squad)
    with pytest.raises(ValueError, match="predictions must map question ids to strings, got list"):
        evaluate(["Denver"], squad)
    with pytest.raises(ValueError, match="examples must hold at least one question"):
        evaluate({}, [])


# ---------------------------------------------------------------- sliding-window baseline

PARAGRAPH = "The Eiffel Tower is in Paris. The Colosseum is in Rome. Big Ben stands in London."


@pytest.mark.parametrize(("question", "answer"), [
    ("Where is the Colosseum?", "Rome"),
    ("Where is the Eiffel Tower?", "Paris"),
])
def test_sliding_window_finds_the_obvious_one_word_answer(question: str, answer: str) -> None:
    assert sliding_window_predict(PARAGRAPH, question, max_answer_tokens=1) == answer
    # longer candidates may take a neighbour word along, but keep the answer
    assert answer in sliding_window_predict(PARAGRAPH, question)


def test_sliding_window_finds_the_year_in_the_sentence_that_matches_the_question() -> None:
    context = ("Marie Curie was born in Warsaw in 1867. She moved to Paris to study physics. "
               "In 1903 she won the Nobel Prize in Physics. She died in 1934.")
    predicted = sliding_window_predict(context, "In what year did Marie Curie win the Nobel Prize?")
    assert "1903" in predicted
    assert f1_score(predicted, "1903") > 0


GAME = "Denver beat Carolina in Super Bowl 50. The game was played in Santa Clara."


@pytest.mark.parametrize(("question", "answer"), [
    ("Who beat Carolina in Super Bowl 50?", "Denver"),
    ("Who did Denver beat in Super Bowl 50?", "Carolina"),
    ("The Colosseum is in which city?", "Rome"),
])
def test_sliding_window_leaves_the_question_words_out_of_the_answer(question, answer) -> None:
    # the overlap is counted outside the candidate (§5), so a span that takes question words
    # along ("Denver beat Carolina") loses overlap to the bare answer
    context = GAME if "Bowl" in question else PARAGRAPH
    assert sliding_window_predict(context, question) == answer


def test_sliding_window_weighs_rare_words_more() -> None:
    # IC(w) = log(1 + 1/C(w)): "in" occurs twice in the paragraph, "Clara" once, so the window
    # holding "Santa Clara" outscores the one holding "in Santa"
    assert sliding_window_predict(GAME, "Where was the game played?", max_answer_tokens=2) \
        == "Santa Clara"


def test_sliding_window_distance_term_prefers_a_word_near_the_question_words() -> None:
    # same overlap and window score for "Elm" and "and"; "and" is a stop word, so its
    # distance is the maximal 1, while "Elm" sits next to "town"
    context = ("The river flows north through the valley, and the river town of Elm lies far "
               "to the north of the old mill.")
    assert sliding_window_predict(context, "What town lies on the river?",
                                  max_answer_tokens=1) == "Elm"


def test_sliding_window_is_deterministic_and_returns_a_substring() -> None:
    questions = ["Where does Big Ben stand?", "What is in Paris?", "Which city?", ""]
    first = [sliding_window_predict(PARAGRAPH, q) for q in questions]
    assert first == [sliding_window_predict(PARAGRAPH, q) for q in questions]
    assert all(p and p in PARAGRAPH for p in first)
    assert all(len(tokenize_with_offsets(p)) <= 4 for p in first)


def test_sliding_window_without_words_answers_empty() -> None:
    assert sliding_window_predict("", "Who?") == ""
    assert sliding_window_predict("... !", "Who?") == ""


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"context": None}, "context must be a string, got NoneType"),
    ({"question": 3}, "question must be a string, got int"),
    ({"max_answer_tokens": 0}, "max_answer_tokens must be an integer >= 1, got 0"),
])
def test_sliding_window_rejects_bad_arguments(kwargs, message) -> None:
    args = {"context": PARAGRAPH, "question": "Where?", **kwargs}
    with pytest.raises(ValueError, match=message):
        sliding_window_predict(args.pop("context"), args.pop("question"), **args)

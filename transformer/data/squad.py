"""SQuAD v1.1: read the official JSON, split it by article, and tokenize with character offsets.

SQuAD (Rajpurkar et al., 2016, "SQuAD: 100,000+ Questions for Machine Comprehension of Text")
asks a question about a Wikipedia paragraph; the answer is a span of that paragraph. The official
file is one JSON object::

    {"version": "1.1",
     "data": [{"title": ...,
               "paragraphs": [{"context": ...,
                               "qas": [{"id": ..., "question": ...,
                                        "answers": [{"text": ..., "answer_start": ...}]}]}]}]}

:func:`read_squad` flattens it into one :class:`SquadExample` per question, in file order. A
malformed file raises one ``ValueError`` that names the file and the JSON path of the problem.
An answer whose ``answer_start`` does not point at its text is *kept* (the official script
scores against the text, not the offset) but listed in :attr:`SquadData.misaligned` and marked
unusable as a span-training target (:attr:`SquadExample.span_answers` leaves it out).

:func:`tokenize_with_offsets` splits text into words and punctuation marks, each with its
character span, and :func:`char_span_to_token_span` maps an answer's characters to the tokens
that cover them: the link between the dataset's character offsets and a model's token positions.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "SquadData",
    "SquadExample",
    "Token",
    "char_span_to_token_span",
    "read_squad",
    "split_by_article",
    "token_span_to_char_span",
    "tokenize_with_offsets",
]

SQUAD_VERSION = "1.1"


@dataclass(frozen=True)
class SquadExample:
    """One SQuAD question with its paragraph and gold answers.

    ``answers`` holds every gold answer as ``(text, answer_start)``, misaligned ones included
    (they still count for EM/F1, which compare texts). ``aligned[i]`` says whether
    ``context[start:start + len(text)] == text`` for answer ``i``; only aligned answers are
    usable as span-training targets (:attr:`span_answers`).
    """

    id: str
    title: str
    article_index: int  # position of the article in the source file's "data" list
    paragraph_index: int  # position of the paragraph in its article
    context: str
    question: str
    answers: tuple[tuple[str, int], ...]
    aligned: tuple[bool, ...]

    @property
    def answer_texts(self) -> list[str]:
        """The gold answer texts, the ground truths of the official metrics."""
        return [text for text, _ in self.answers]

    @property
    def span_answers(self) -> list[tuple[str, int]]:
        """The answers whose ``answer_start`` matches the context: usable as span targets."""
        return [a for a, ok in zip(self.answers, self.aligned, strict=True) if ok]


@dataclass(frozen=True)
class SquadData:
    """The questions of a SQuAD file (or of one side of a split), flat and in file order.

    ``titles`` maps the source file's article index to its title, for the articles present;
    ``misaligned`` lists ``(question id, answer index)`` for every answer whose
    ``answer_start`` does not match the context.
    """

    source: str
    version: str
    titles: dict[int, str]
    examples: tuple[SquadExample, ...]
    misaligned: tuple[tuple[str, int], ...] = field(default=())

    def __len__(self) -> int:
        return len(self.examples)

    def summary(self) -> str:
        """One line of counts: articles, paragraphs, questions, answers and misaligned answers."""
        paragraphs = {(e.article_index, e.paragraph_index) for e in self.examples}
        answers = sum(len(e.answers) for e in self.examples)
        questions = {qid for qid, _ in self.misaligned}
        return (
            f"{self.source}: {len(self.titles)} articles, {len(paragraphs)} paragraphs, "
            f"{len(self.examples)} questions, {answers} answers; "
            f"{len(self.misaligned)} answers in {len(questions)} questions misaligned "
            "(answer_start does not match the text: kept for scoring, not used as span targets)"
        )


# --------------------------------------------------------------------------- reading


class _Malformed(Exception):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")


def _show(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _get(obj: object, key: str, where: str) -> Any:
    if not isinstance(obj, dict):
        raise _Malformed(where, f"expected an object, got {_show(obj)}")
    if key not in obj:
        raise _Malformed(where, f"missing key {json.dumps(key)}")
    return obj[key]


def _expect(value: object, kind: type, where: str, what: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _Malformed(where, f"expected {what}, got {_show(value)}")
    return value


def _join(where: str, key: str) -> str:
    return key if where == "top level" else f"{where}.{key}"


def _parse(raw: object, source: str) -> SquadData:
    version = _expect(_get(raw, "version", "top level"), str, "version", "a string")
    if version != SQUAD_VERSION:
        raise _Malformed("version", f"expected {json.dumps(SQUAD_VERSION)} (SQuAD v1.1), "
                                    f"got {_show(version)}")
    articles = _expect(_get(raw, "data", "top level"), list, "data", "an array")
    titles: dict[int, str] = {}
    examples: list[SquadExample] = []
    misaligned: list[tuple[str, int]] = []
    seen: dict[str, str] = {}
    for a, article in enumerate(articles):
        at = f"data[{a}]"
        title = _expect(_get(article, "title", at), str, f"{at}.title", "a string")
        titles[a] = title
        paragraphs = _expect(_get(article, "paragraphs", at), list, f"{at}.paragraphs",
                             "an array")
        for p, paragraph in enumerate(paragraphs):
            pt = f"{at}.paragraphs[{p}]"
            context = _expect(_get(paragraph, "context", pt), str, f"{pt}.context", "a string")
            qas = _expect(_get(paragraph, "qas", pt), list, f"{pt}.qas", "an array")
            for q, qa in enumerate(qas):
                qt = f"{pt}.qas[{q}]"
                qid = _expect(_get(qa, "id", qt), str, f"{qt}.id", "a string")
                if qid in seen:
                    raise _Malformed(f"{qt}.id", f"duplicate question id {_show(qid)} "
                                                 f"(first at {seen[qid]})")
                seen[qid] = qt
                question = _expect(_get(qa, "question", qt), str, f"{qt}.question", "a string")
                gold = _expect(_get(qa, "answers", qt), list, f"{qt}.answers", "an array")
                if not gold:
                    raise _Malformed(f"{qt}.answers", "expected at least one answer, got []")
                answers, aligned = [], []
                for i, answer in enumerate(gold):
                    it = f"{qt}.answers[{i}]"
                    text = _expect(_get(answer, "text", it), str, f"{it}.text", "a string")
                    if not text:
                        raise _Malformed(f"{it}.text", 'expected a non-empty string, got ""')
                    start = _expect(_get(answer, "answer_start", it), int,
                                    f"{it}.answer_start", "an integer")
                    if start < 0:
                        raise _Malformed(f"{it}.answer_start",
                                         f"expected an integer >= 0, got {start}")
                    ok = context[start:start + len(text)] == text
                    if not ok:
                        misaligned.append((qid, i))
                    answers.append((text, start))
                    aligned.append(ok)
                examples.append(SquadExample(
                    id=qid, title=title, article_index=a, paragraph_index=p, context=context,
                    question=question, answers=tuple(answers), aligned=tuple(aligned)))
    return SquadData(source=source, version=version, titles=titles, examples=tuple(examples),
                     misaligned=tuple(misaligned))


def read_squad(path: str | Path) -> SquadData:
    """Read an official SQuAD v1.1 JSON file into a flat list of questions, in file order.

    Rajpurkar et al. (2016), §2: each question comes with its paragraph (``context``) and one
    or more crowd-sourced answers, ``(text, answer_start)`` character spans of the context.

    Args:
        path: the JSON file (``train-v1.1.json``, ``dev-v1.1.json`` or one of the same form).

    Returns:
        :class:`SquadData`; answers whose ``answer_start`` does not match their text are kept
        and listed in ``misaligned`` (see :meth:`SquadData.summary`).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not UTF-8 JSON (line and column given), or breaks the v1.1
            schema; the message names the file and the JSON path, e.g.
            ``dev.json: data[3].paragraphs[0].qas[12].answers[0].answer_start: expected an
            integer, got "x"``.
    """
    path = Path(path)
    source = str(path)
    try:
        raw = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{source}: not UTF-8 text (byte {err.start}: {err.reason})") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{source}: invalid JSON at line {err.lineno}, column {err.colno}: "
                         f"{err.msg}") from None
    try:
        return _parse(raw, source)
    except _Malformed as err:
        raise ValueError(f"{source}: {err}") from None


# --------------------------------------------------------------------------- splitting


def _article_rank(seed: int, title: str, index: int) -> tuple[str, int]:
    digest = hashlib.sha256(f"{seed}\x00{title}".encode()).hexdigest()
    return digest, index


def _subset(data: SquadData, articles: set[int], suffix: str) -> SquadData:
    examples = tuple(e for e in data.examples if e.article_index in articles)
    ids = {e.id for e in examples}
    return SquadData(
        source=f"{data.source} ({suffix})",
        version=data.version,
        titles={a: t for a, t in data.titles.items() if a in articles},
        examples=examples,
        misaligned=tuple(m for m in data.misaligned if m[0] in ids),
    )


def split_by_article(
    data: SquadData,
    *,
    held_out_fraction: float | None = None,
    held_out_titles: Sequence[str] | None = None,
    seed: int = 0,
) -> tuple[SquadData, SquadData]:
    """Split SQuAD into (train, held_out) by whole articles, deterministically.

    The SQuAD paper (§3) partitions its articles at random into training (80%), development
    (10%) and test (10%) sets; splitting by article means no paragraph of a held-out article
    is ever seen in training. Give exactly one of:

    * ``held_out_titles``: these articles (every article with one of these titles) are held
      out;
    * ``held_out_fraction`` in (0, 1): the articles are ranked by the SHA-256 hex digest of
      ``f"{seed}\\x00{title}"`` (ties by article index) and the first
      ``round(held_out_fraction * n_articles)`` are held out. The rule depends only on the
      titles and the seed, not on Python's ``random`` module or the file's order.

    Both sides keep file order, the source file's article indices, and their share of
    ``misaligned``.

    Raises:
        ValueError: neither or both of the two options given; a fraction outside (0, 1) or
            one that would leave either side without an article; a title not in ``data``.
    """
    if (held_out_fraction is None) == (held_out_titles is None):
        raise ValueError("give exactly one of held_out_fraction or held_out_titles, got "
                         f"held_out_fraction={held_out_fraction!r}, "
                         f"held_out_titles={held_out_titles!r}")
    if held_out_titles is not None:
        if isinstance(held_out_titles, str):
            raise ValueError("held_out_titles must be a list of titles, got the string "
                             f"{held_out_titles!r}")
        wanted = set(held_out_titles)
        unknown = sorted(wanted - set(data.titles.values()))
        if unknown:
            raise ValueError(f"held_out_titles: not articles of {data.source}: {unknown}")
        held = {a for a, t in data.titles.items() if t in wanted}
    else:
        fraction = held_out_fraction
        if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) \
                or not 0.0 < fraction < 1.0:
            raise ValueError(f"held_out_fraction must be a number in (0, 1), got {fraction!r}")
        n = len(data.titles)
        k = round(fraction * n)
        if not 0 < k < n:
            raise ValueError(f"held_out_fraction={fraction} of {n} articles holds out {k}: "
                             "each side needs at least one article")
        ranked = sorted(data.titles, key=lambda a: _article_rank(seed, data.titles[a], a))
        held = set(ranked[:k])
    train = set(data.titles) - held
    return _subset(data, train, "train"), _subset(data, held, "held out")


# --------------------------------------------------------------------------- tokens


class Token(NamedTuple):
    """A token and its character span in the text: ``text[start:end] == token``."""

    token: str
    start: int
    end: int


# A word is a run of letters, digits or underscores; any other visible character is a token
# of its own ("Levi's" -> "Levi", "'", "s"; "24–10" -> "24", "–", "10"). Small tokens let most
# answer boundaries fall between tokens.
_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize_with_offsets(text: str) -> list[Token]:
    """Split text into words and single punctuation marks, keeping each one's character span.

    Words are maximal runs of ``\\w`` characters (Unicode letters, digits, ``_``); every other
    non-space character is a token by itself; white space separates and is dropped. Every
    token satisfies ``text[t.start:t.end] == t.token``.

    Raises:
        ValueError: ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    return [Token(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def char_span_to_token_span(offsets: Sequence[Token], start: int, end: int) -> tuple[int, int]:
    """The tokens covering the characters ``[start, end)``, as a half-open range ``(first, stop)``.

    ``first`` is the first token that ends after ``start``, ``stop - 1`` the last one that
    begins before ``end``: every token overlapping the span, so ``offsets[first:stop]`` covers
    it (a span that cuts a word, such as "Broncos" inside "Broncos'", keeps the whole token).
    This is how an answer ``(text, answer_start)`` becomes the start and end positions an
    extractive model is trained to predict.

    Args:
        offsets: the tokens of the text, from :func:`tokenize_with_offsets`.
        start, end: a character span, ``0 <= start < end``.

    Raises:
        ValueError: ``start``/``end`` not integers with ``0 <= start < end``; no token
            overlaps the span (it holds only white space, or lies past the end).
    """
    for name, value in (("start", start), ("end", end)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if not 0 <= start < end:
        raise ValueError(f"need 0 <= start < end, got start={start}, end={end}")
    covering = [i for i, t in enumerate(offsets) if t.end > start and t.start < end]
    if not covering:
        raise ValueError(f"no token overlaps characters [{start}, {end})")
    return covering[0], covering[-1] + 1


def token_span_to_char_span(offsets: Sequence[Token], first: int, stop: int) -> tuple[int, int]:
    """The characters ``[start, end)`` from the start of token ``first`` to the end of token
    ``stop - 1``: the inverse of :func:`char_span_to_token_span` for token-aligned spans.

    Raises:
        ValueError: not ``0 <= first < stop <= len(offsets)``.
    """
    for name, value in (("first", first), ("stop", stop)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if not 0 <= first < stop <= len(offsets):
        raise ValueError(f"need 0 <= first < stop <= len(offsets)={len(offsets)}, "
                         f"got first={first}, stop={stop}")
    return offsets[first].start, offsets[stop - 1].end

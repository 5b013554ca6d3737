"""Every chapter ends with a section "## Exercises": two or three questions, each a collapsible
Material admonition (``??? question "..."``) holding its answer, and right after each one a
runnable ```python block (executed by pytest-markdown-docs) that asserts what the answer says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
CHAPTERS = ["index.md", "01-embeddings.md", "02-positional-encoding.md", "03-attention.md",
            "03b-why-self-attention.md", "16-question-answering.md", "18-scaling-out.md",
            "04-multi-head-attention.md", "05-masks.md", "06-feed-forward-and-norm.md",
            "07-encoder-decoder.md", "08-full-model.md", "09-training.md", "10-copy-task.md",
            "11-decoding.md", "12-language-model.md", "13-kv-cache.md", "14-looking-inside.md",
            "15-modern-variants.md", "16-translation.md", "17-lora.md"]
QUESTION = re.compile(r'^\?\?\? question "[^"]+"\n((?:    .*\n|\n)+?)(?=\S)', re.M)


def exercises(text: str) -> str:
    """The text of the last ``## `` section, which must be the exercises."""
    sections = re.split(r"^## ", text, flags=re.M)
    assert len(sections) > 1, "no ## section"
    last = sections[-1]
    assert last.startswith("Exercises\n"), f"the last section is {last.splitlines()[0]!r}"
    return last


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_ends_with_exercises_each_answer_folded_and_checked(chapter: str) -> None:
    section = exercises((DOCS / chapter).read_text(encoding="utf-8"))
    questions = list(QUESTION.finditer(section))
    assert 2 <= len(questions) <= 3, f"{chapter}: {len(questions)} questions"
    assert section.count("??? question") == len(questions)
    for match in questions:
        answer = match.group(1).strip()
        assert answer, f"{chapter}: a question without an answer"
        after = section[match.end():]
        assert after.startswith("```python\n"), \
            f"{chapter}: no runnable block right after the answer to {match.group(0)[:60]!r}"
        block = after[len("```python\n"): after.index("\n```")]
        assert "assert" in block, f"{chapter}: the block after an answer asserts nothing"


def test_the_pattern_reads_a_question_its_answer_and_its_block() -> None:
    text = ('## Exercises\n\n??? question "Why?"\n    Because.\n\n    Really.\n\n'
            "```python\nassert True\n```\n")
    section = exercises(text)
    [match] = QUESTION.finditer(section)
    assert match.group(1).split() == ["Because.", "Really."]
    assert section[match.end():].startswith("```python\n")

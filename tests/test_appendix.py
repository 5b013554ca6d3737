"""Appendix A is complete and true: every equation and hyper-parameter of the paper that
book/paper_index.py lists has an implementation whose value is the paper's, and a test that
exists and mentions it. An entry may lack its implementation only when marked pending."""

from __future__ import annotations

from pathlib import Path

import pytest

from book.paper_index import ENTRIES, Entry, has_test, implemented, resolve

ROOT = Path(__file__).resolve().parent.parent


def _id(entry: Entry) -> str:
    return f"{entry.where}: {entry.spec}"


@pytest.mark.parametrize("entry", ENTRIES, ids=_id)
def test_every_entry_is_implemented_with_the_papers_value(entry: Entry) -> None:
    if entry.pending and not implemented(entry):
        pytest.skip(f"pending: {entry.spec} is not merged yet")
    value = resolve(entry)
    if entry.is_equation:
        assert callable(value), f"{entry.spec} is not a function or class"
    else:
        assert value == entry.paper, f"{entry.spec} is {value!r}, the paper says {entry.paper!r}"
        assert type(value) is type(entry.paper), f"{entry.spec}: {type(value).__name__}"


@pytest.mark.parametrize("entry", ENTRIES, ids=_id)
def test_every_entry_names_a_test_that_exists_and_mentions_it(entry: Entry) -> None:
    if entry.pending and not (ROOT / entry.test.partition("::")[0]).is_file():
        pytest.skip(f"pending: {entry.test} is not merged yet")
    assert has_test(entry, ROOT), (
        f"{entry.test} does not exist or does not mention {entry.mentioned_name!r}")


def test_the_paper_is_covered() -> None:
    places = {entry.where for entry in ENTRIES}
    assert {"eq. 1", "eq. 2", "eq. 3", "§5.1", "§5.3", "§5.4", "§6.1", "Table 3, base",
            "Table 3, big"} <= places
    paper = {(entry.where, entry.what): entry.paper for entry in ENTRIES}
    assert paper["§5.3", r"warm-up steps \(w\)"] == 4000
    assert paper["§6.1", "beam size"] == 4
    assert paper["Table 3, big", r"\(P_{drop}\)"] == 0.3
    assert sum(e.where.startswith("Table 3") for e in ENTRIES) == 18  # 9 columns x 2 rows


def test_a_wrong_value_or_a_missing_implementation_is_caught() -> None:
    entry = next(e for e in ENTRIES if e.spec.endswith(":warmup_steps"))
    assert implemented(entry)
    assert not implemented(Entry(entry.where, entry.what, 4001, entry.spec, entry.test))
    assert not implemented(Entry("eq. 9", "x", 1, "transformer.nowhere.thing", entry.test))
    assert not has_test(Entry("eq. 9", "x", 1, entry.spec, "tests/test_appendix.py::no_such"),
                        ROOT)


def test_pending_entries_are_still_pending() -> None:
    done = [e.spec for e in ENTRIES if e.pending and implemented(e)]
    assert done == [], f"implemented now: set pending=False for {done} in book/paper_index.py"

"""Tokenizers: decode(encode(text)) == text exactly, the character vocabulary is nanoGPT's,
byte-level BPE covers every byte, special ids are distinct and first, unknown characters are
named, and tokenizer.json round-trips (a broken one is named in the error)."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from transformer.data.tokenizers import (
    BOS,
    DEFAULT_SPECIALS,
    EOS,
    PAD,
    TOKENIZER_FILE,
    UNK,
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    load_tokenizer,
)

BPE_VOCAB = 512

TEXTS = {
    "ascii": "The quick brown fox jumps over the lazy dog.",
    "newlines": "First line\nSecond line\n\n\nafter blank lines\r\nwindows\n",
    "spaces": "   leading spaces, inner  double   and trailing   ",
    "tabs": "\tindented\t\tcode\n    four spaces\n",
    "emoji": "I 😀 love 👩🏽‍💻 and 🇫🇷 flags",
    "accents": "café naïve résumé Ångström crème brûlée façade",
    "chinese": "我们的模型学习语言。中文没有空格",
    "mixed": " ¿Qué? Ça va — «très» bien…\n 東京 😀\n",
    "only_space": " ",
    "only_newline": "\n",
}

CORPUS = "\n".join(TEXTS.values()) * 3  # training text for the tokenizers that need one


def _train(tokenizer_cls: type[Tokenizer], text: str) -> Tokenizer:
    if tokenizer_cls is BPETokenizer:
        return BPETokenizer.train(text, vocab_size=BPE_VOCAB)
    assert tokenizer_cls is CharTokenizer
    return CharTokenizer.train(text)


def _assert_round_trip(tokenizer_cls: type[Tokenizer], text: str) -> Tokenizer:
    """Train ``tokenizer_cls`` on ``text`` and check ``decode(encode(text)) == text`` exactly,
    with ids in range and no special id; return the tokenizer. For corpora too: the message
    names the first character that differs instead of printing the whole text."""
    tokenizer = _train(tokenizer_cls, text)
    ids = tokenizer.encode(text)
    assert all(len(tokenizer.specials) <= i < tokenizer.vocab_size for i in ids)
    decoded = tokenizer.decode(ids)
    if decoded != text:
        first = next((i for i, (a, b) in enumerate(zip(decoded, text, strict=False)) if a != b),
                     min(len(decoded), len(text)))
        pytest.fail(f"{tokenizer_cls.__name__} round trip differs at character {first}: "
                    f"text {text[first:first + 20]!r}, decoded {decoded[first:first + 20]!r} "
                    f"(lengths {len(text)} and {len(decoded)})")
    return tokenizer


@cache
def _english_bpe() -> BPETokenizer:
    """A BPE trained on English only: everything else must go through its byte tokens."""
    return BPETokenizer.train(TEXTS["ascii"] * 20 + TEXTS["newlines"] * 20, vocab_size=300)


# ---- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("tokenizer_cls", [CharTokenizer, BPETokenizer])
@pytest.mark.parametrize("name", sorted(TEXTS))
def test_decode_of_encode_is_the_text_exactly(tokenizer_cls: type[Tokenizer], name: str) -> None:
    _assert_round_trip(tokenizer_cls, TEXTS[name])


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_bpe_round_trips_text_unlike_its_training_text(name: str) -> None:
    text = TEXTS[name]
    assert _english_bpe().decode(_english_bpe().encode(text)) == text


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60))
def test_bpe_round_trip_holds_for_arbitrary_unicode(text: str) -> None:
    tokenizer = _english_bpe()
    assert tokenizer.decode(tokenizer.encode(text)) == text


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=60))
def test_char_round_trip_holds_for_arbitrary_unicode(text: str) -> None:
    tokenizer = CharTokenizer.train(text)
    assert tokenizer.decode(tokenizer.encode(text)) == text


# ---- the character vocabulary --------------------------------------------------------------


def test_char_ids_are_nanogpts_without_specials() -> None:
    text = TEXTS["mixed"] + TEXTS["ascii"]
    chars = sorted(set(text))  # nanoGPT's shakespeare_char/prepare.py
    stoi = {ch: i for i, ch in enumerate(chars)}
    tokenizer = CharTokenizer.train(text, specials=())
    assert tokenizer.encode(text) == [stoi[c] for c in text]
    assert tokenizer.vocab_size == len(chars)


def test_char_vocabulary_is_specials_then_sorted_characters() -> None:
    tokenizer = CharTokenizer.train("banana!")
    assert tokenizer.itos == [PAD, BOS, EOS, "!", "a", "b", "n"]
    assert tokenizer.vocab_size == 7
    assert tokenizer.encode("nab") == [6, 4, 5]


def test_char_unknown_character_error_names_it_its_position_and_the_missing_unk() -> None:
    tokenizer = CharTokenizer.train("hello world")
    with pytest.raises(ValueError) as info:
        tokenizer.encode("hello wörld")
    message = str(info.value)
    assert "'ö' (U+00F6) at position 7" in message
    assert "no unknown token" in message and "unk=True" in message


def test_char_unknown_error_names_the_first_few_and_counts_the_rest() -> None:
    tokenizer = CharTokenizer.train("abc")
    with pytest.raises(ValueError, match=r"8 character\(s\).*position 4.* and 3 more"):
        tokenizer.encode("xyzwvuts")


def test_char_with_unk_maps_unknown_characters_and_decodes_them_as_the_symbol() -> None:
    tokenizer = CharTokenizer.train("abc", unk=True)
    assert tokenizer.specials == (*DEFAULT_SPECIALS, UNK)
    ids = tokenizer.encode("a?c")
    assert ids[1] == tokenizer.unk_id
    assert tokenizer.decode(ids) == f"a{UNK}c"
    assert tokenizer.decode(ids, skip_specials=True) == "ac"


def test_char_rejects_elements_that_are_not_single_characters() -> None:
    with pytest.raises(ValueError, match="single characters"):
        CharTokenizer(["a", "bc"])


def test_char_train_rejects_empty_text() -> None:
    with pytest.raises(ValueError, match="at least one character"):
        CharTokenizer.train("")


# ---- byte-level BPE ------------------------------------------------------------------------


def test_bpe_without_merges_gives_one_id_per_utf8_byte() -> None:
    text = TEXTS["mixed"]
    tokenizer = BPETokenizer.train("", vocab_size=256 + len(DEFAULT_SPECIALS))
    assert tokenizer.vocab_size == 256 + len(DEFAULT_SPECIALS)
    assert len(tokenizer.encode(text)) == len(text.encode("utf-8"))
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_bpe_merges_make_its_training_text_shorter_than_its_bytes() -> None:
    tokenizer = _train(BPETokenizer, CORPUS)
    assert len(tokenizer.encode(CORPUS)) < len(CORPUS.encode("utf-8")) / 2


def test_bpe_vocab_size_reaches_the_request_and_never_exceeds_it() -> None:
    assert BPETokenizer.train(CORPUS, vocab_size=300).vocab_size == 300
    assert 259 <= BPETokenizer.train("ab", vocab_size=2000).vocab_size < 2000  # few pairs


@pytest.mark.parametrize("vocab_size", [100, 258, 3.5])
def test_bpe_vocab_size_below_bytes_plus_specials_is_rejected(vocab_size: object) -> None:
    with pytest.raises(ValueError, match=r"vocab_size must be an integer >= 259"):
        BPETokenizer.train(CORPUS, vocab_size=vocab_size)  # type: ignore[arg-type]


def test_bpe_trains_on_an_iterator_of_texts() -> None:
    tokenizer = BPETokenizer.train((t for t in TEXTS.values()), vocab_size=300)
    assert tokenizer.decode(tokenizer.encode(CORPUS)) == CORPUS


def test_bpe_training_rejects_a_text_that_is_not_a_string() -> None:
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str, got bytes"):
        BPETokenizer.train(["fine", b"bytes"], vocab_size=300)  # type: ignore[list-item]


def test_bpe_training_is_deterministic() -> None:
    first = BPETokenizer.train(CORPUS, vocab_size=BPE_VOCAB)
    second = BPETokenizer.train(CORPUS, vocab_size=BPE_VOCAB)
    assert first.encode(CORPUS) == second.encode(CORPUS)


def test_bpe_decodes_special_symbols_outside_the_byte_alphabet_verbatim() -> None:
    tokenizer = BPETokenizer.train(CORPUS, vocab_size=300, specials=("<end of text>", "é"))
    ids = [0, *tokenizer.encode("ab"), 1]
    assert tokenizer.decode(ids) == "<end of text>abé"
    assert tokenizer.decode(ids, skip_specials=True) == "ab"


# ---- special tokens ------------------------------------------------------------------------


@pytest.mark.parametrize("tokenizer_cls", [CharTokenizer, BPETokenizer])
def test_special_ids_are_distinct_and_first(tokenizer_cls: type[Tokenizer]) -> None:
    tokenizer = _train(tokenizer_cls, CORPUS)
    assert (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id) == (0, 1, 2)
    assert tokenizer.unk_id is None
    assert [tokenizer.decode([i]) for i in range(3)] == [PAD, BOS, EOS]


def test_bpe_has_no_unknown_token_even_if_named_among_specials() -> None:
    tokenizer = BPETokenizer.train(CORPUS, vocab_size=300, specials=(PAD, UNK))
    assert tokenizer.unk_id is None
    assert tokenizer.special_id(UNK) == 1


@pytest.mark.parametrize("tokenizer_cls", [CharTokenizer, BPETokenizer])
def test_without_specials_the_special_ids_are_none(tokenizer_cls: type[Tokenizer]) -> None:
    tokenizer = (CharTokenizer.train(CORPUS, specials=()) if tokenizer_cls is CharTokenizer
                 else BPETokenizer.train(CORPUS, vocab_size=300, specials=()))
    assert (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.unk_id) == (None,) * 4


@pytest.mark.parametrize("tokenizer_cls", [CharTokenizer, BPETokenizer])
def test_a_special_symbol_inside_the_text_is_encoded_as_text(
        tokenizer_cls: type[Tokenizer]) -> None:
    text = f"one{EOS} two {PAD}{BOS}"
    tokenizer = _train(tokenizer_cls, CORPUS + text)
    ids = tokenizer.encode(text)
    assert not set(ids) & {tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id}
    assert tokenizer.decode(ids) == text


@pytest.mark.parametrize("tokenizer_cls", [CharTokenizer, BPETokenizer])
def test_repeated_specials_are_rejected(tokenizer_cls: type[Tokenizer]) -> None:
    with pytest.raises(ValueError, match=r"specials must be distinct, got \['<pad>'\]"):
        if tokenizer_cls is CharTokenizer:
            CharTokenizer.train(CORPUS, specials=(PAD, EOS, PAD))
        else:
            BPETokenizer.train(CORPUS, vocab_size=300, specials=(PAD, EOS, PAD))


def test_specials_given_as_one_string_are_rejected() -> None:
    with pytest.raises(TypeError, match="single string"):
        CharTokenizer.train(CORPUS, specials="<pad>")


# ---- encode / decode arguments -------------------------------------------------------------


@pytest.mark.parametrize("tokenizer_cls", [CharTokenizer, BPETokenizer])
def test_decode_accepts_a_1d_tensor_and_skips_specials_on_request(
        tokenizer_cls: type[Tokenizer]) -> None:
    tokenizer = _train(tokenizer_cls, CORPUS)
    ids = [tokenizer.bos_id, *tokenizer.encode("café"), tokenizer.eos_id, tokenizer.pad_id]
    assert tokenizer.decode(torch.tensor(ids)) == f"{BOS}café{EOS}{PAD}"
    assert tokenizer.decode(ids, skip_specials=True) == "café"
    assert tokenizer.decode(np.array(ids)) == tokenizer.decode(ids)


@pytest.mark.parametrize("tokenizer_cls", [CharTokenizer, BPETokenizer])
def test_decode_rejects_ids_out_of_range_naming_the_id_and_position(
        tokenizer_cls: type[Tokenizer]) -> None:
    tokenizer = _train(tokenizer_cls, CORPUS)
    n = tokenizer.vocab_size
    with pytest.raises(ValueError, match=rf"in \[0, vocab_size={n}\), got {n} at position 1"):
        tokenizer.decode([3, n])
    with pytest.raises(ValueError, match=r"got -1 at position 0"):
        tokenizer.decode([-1])
    with pytest.raises(TypeError, match=r"ids must be integers, got float 1.0 at position 0"):
        tokenizer.decode([1.0])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"got bool True at position 0"):
        tokenizer.decode([True])
    with pytest.raises(ValueError, match=r"1-D .* shape \(1, 2\)"):
        tokenizer.decode(torch.tensor([[3, 4]]))


@pytest.mark.parametrize("tokenizer_cls", [CharTokenizer, BPETokenizer])
def test_encode_rejects_what_is_not_a_string(tokenizer_cls: type[Tokenizer]) -> None:
    tokenizer = _train(tokenizer_cls, CORPUS)
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        tokenizer.encode(b"abc")  # type: ignore[arg-type]


# ---- tokenizer.json ------------------------------------------------------------------------


@pytest.mark.parametrize("tokenizer_cls", [CharTokenizer, BPETokenizer])
def test_save_then_load_gives_identical_encodings(tokenizer_cls: type[Tokenizer],
                                                  tmp_path: Path) -> None:
    tokenizer = _train(tokenizer_cls, CORPUS)
    path = tokenizer.save(tmp_path / "run")
    assert path == tmp_path / "run" / TOKENIZER_FILE
    loaded = tokenizer_cls.load(tmp_path / "run")
    assert type(loaded) is tokenizer_cls
    assert loaded.vocab_size == tokenizer.vocab_size and loaded.specials == tokenizer.specials
    assert loaded.encode(CORPUS) == tokenizer.encode(CORPUS)
    every_id = list(range(tokenizer.vocab_size))
    assert loaded.decode(every_id) == tokenizer.decode(every_id)


def test_loaded_bpe_still_encodes_special_symbols_as_text(tmp_path: Path) -> None:
    _train(BPETokenizer, CORPUS).save(tmp_path)
    loaded = BPETokenizer.load(tmp_path)
    assert loaded.eos_id not in loaded.encode(f"a{EOS}b")


def test_saved_unk_survives_loading(tmp_path: Path) -> None:
    CharTokenizer.train("abc", unk=True).save(tmp_path)
    loaded = CharTokenizer.load(tmp_path)
    assert loaded.decode(loaded.encode("a?")) == f"a{UNK}"


@pytest.mark.parametrize("tokenizer_cls", [CharTokenizer, BPETokenizer])
def test_tokenizer_file_is_plain_json_naming_its_kind(tokenizer_cls: type[Tokenizer],
                                                      tmp_path: Path) -> None:
    path = _train(tokenizer_cls, CORPUS).save(tmp_path)
    content = json.loads(path.read_text(encoding="utf-8"))
    assert content["kind"] == tokenizer_cls.kind
    assert content["specials"] == list(DEFAULT_SPECIALS)
    assert [p.name for p in tmp_path.iterdir()] == [TOKENIZER_FILE]  # no temporary file left


@pytest.mark.parametrize("tokenizer_cls", [CharTokenizer, BPETokenizer])
def test_load_tokenizer_returns_the_class_that_was_saved(tokenizer_cls: type[Tokenizer],
                                                         tmp_path: Path) -> None:
    tokenizer = _train(tokenizer_cls, CORPUS)
    tokenizer.save(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert type(loaded) is tokenizer_cls
    assert loaded.encode(TEXTS["mixed"]) == tokenizer.encode(TEXTS["mixed"])


def test_loading_the_other_kind_is_refused_naming_both(tmp_path: Path) -> None:
    _train(BPETokenizer, CORPUS).save(tmp_path)
    with pytest.raises(ValueError, match=r"holds a 'bpe' tokenizer, not 'char'"):
        CharTokenizer.load(tmp_path)


def test_a_missing_tokenizer_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / TOKENIZER_FILE))):
        load_tokenizer(tmp_path)


def _corrupt(content: dict, how: str) -> str:
    if how == "truncated":
        return json.dumps(content)[:50]
    if how == "not_an_object":
        return "[1, 2, 3]"
    if how == "unknown_kind":
        return json.dumps({**content, "kind": "wordpiece"})
    if how == "wrong_version":
        return json.dumps({**content, "version": 99})
    if how == "missing_field":
        return json.dumps({k: v for k, v in content.items() if k != "specials"})
    if how == "repeated_char":
        return json.dumps({**content, "chars": ["a", "a"]})
    if how == "broken_hf_model":
        return json.dumps({**content, "hf_tokenizer": {**content["hf_tokenizer"], "model": 7}})
    if how == "not_byte_level":
        hf = {**content["hf_tokenizer"], "decoder": {"type": "WordPiece"}}
        return json.dumps({**content, "hf_tokenizer": hf})
    raise AssertionError(how)


@pytest.mark.parametrize(("tokenizer_cls", "how"), [
    (CharTokenizer, "truncated"), (CharTokenizer, "not_an_object"),
    (CharTokenizer, "unknown_kind"), (CharTokenizer, "wrong_version"),
    (CharTokenizer, "missing_field"), (CharTokenizer, "repeated_char"),
    (BPETokenizer, "truncated"), (BPETokenizer, "missing_field"),
    (BPETokenizer, "broken_hf_model"), (BPETokenizer, "not_byte_level"),
])
def test_a_corrupted_tokenizer_file_gives_an_error_naming_the_file(
        tokenizer_cls: type[Tokenizer], how: str, tmp_path: Path) -> None:
    path = _train(tokenizer_cls, CORPUS).save(tmp_path)
    path.write_text(_corrupt(json.loads(path.read_text(encoding="utf-8")), how),
                    encoding="utf-8")
    with pytest.raises(ValueError) as info:
        load_tokenizer(tmp_path)
    assert str(path) in str(info.value)


# ---- real corpora --------------------------------------------------------------------------


@pytest.mark.parametrize("tokenizer_cls", [CharTokenizer, BPETokenizer])
@pytest.mark.parametrize(("dataset", "file"), [("tinyshakespeare", "input.txt"),
                                               ("wikitext-2-raw", "wiki.valid.raw"),
                                               ("wikitext-2-raw", "wiki.test.raw")])
def test_every_character_of_a_real_corpus_survives_encode_then_decode(
        tokenizer_cls: type[Tokenizer], dataset: str, file: str, dataset_file) -> None:
    text = dataset_file(dataset, file).read_text(encoding="utf-8")
    assert len(text) > 1_000_000 or file == "wiki.valid.raw"
    tokenizer = _assert_round_trip(tokenizer_cls, text)
    if tokenizer_cls is CharTokenizer and dataset == "tinyshakespeare":
        assert tokenizer.vocab_size == 65 + len(tokenizer.specials)  # nanoGPT's 65 characters

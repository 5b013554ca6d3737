"""Tokenizers: text to token ids and back.

Two implementations of one small interface (:class:`Tokenizer`):

* :class:`CharTokenizer`, written here in full: one token per character, the vocabulary is the
  sorted set of characters seen in training (as nanoGPT's ``stoi`` / ``itos``), special tokens
  first.
* :class:`BPETokenizer`: byte-level byte-pair encoding (GPT-2's scheme) through the Hugging Face
  ``tokenizers`` library. Every byte is a token, so any Unicode text round-trips exactly.

Special tokens are named by convention: ``"<pad>"``, ``"<bos>"``, ``"<eos>"`` and (character
tokenizer only) ``"<unk>"``; ``pad_id``, ``bos_id``, ``eos_id`` and ``unk_id`` look them up and
are ``None`` when absent. They come first, so with the default specials ``pad_id == 0``, the
``pad_id`` that :class:`~transformer.model.TransformerConfig` masks by default. ``encode`` never
produces a special id: a literal ``"<eos>"`` in the text is text, and code that wants the end
token appends ``eos_id`` itself.

A tokenizer is saved as ``tokenizer.json`` in a directory (beside a run's checkpoints): plain
JSON holding its kind, never a pickle. :func:`load_tokenizer` reads the kind and returns the
right class.

This file imports nothing of ours.
"""

from __future__ import annotations

import json
import operator
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # HF `tokenizers` is imported when a BPE tokenizer is built or loaded
    from tokenizers import Tokenizer as HFTokenizer

__all__ = [
    "BOS",
    "DEFAULT_SPECIALS",
    "EOS",
    "PAD",
    "TOKENIZER_FILE",
    "UNK",
    "BPETokenizer",
    "CharTokenizer",
    "Tokenizer",
    "load_tokenizer",
]

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
DEFAULT_SPECIALS: tuple[str, ...] = (PAD, BOS, EOS)
TOKENIZER_FILE = "tokenizer.json"
_FORMAT_VERSION = 1
_MAX_REPORTED = 5  # unknown characters named in an error message


def _check_text(text: object, name: str = "text") -> str:
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    return text


def _check_specials(specials: Iterable[str]) -> tuple[str, ...]:
    if isinstance(specials, str):
        raise TypeError(f"specials must be a sequence of strings such as {DEFAULT_SPECIALS}, "
                        f"got the single string {specials!r}")
    out = tuple(specials)
    bad = [s for s in out if not isinstance(s, str) or not s]
    if bad:
        raise ValueError(f"specials must be non-empty strings, got {bad!r}")
    repeated = sorted({s for s in out if out.count(s) > 1})
    if repeated:
        raise ValueError(f"specials must be distinct, got {repeated!r} more than once")
    return out


class Tokenizer(ABC):
    """The interface every tokenizer offers: ``encode``, ``decode``, ``vocab_size``, special ids,
    ``save`` and ``load``.

    Ids run over ``[0, vocab_size)``; the special tokens hold the first ids, in the order given.
    """

    kind: ClassVar[str]  # the name stored in tokenizer.json
    specials: tuple[str, ...]

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of token ids, special tokens included."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (never a special id).

        Raises:
            TypeError: if ``text`` is not a str.
        """

    @abstractmethod
    def _decode_ids(self, ids: list[int], skip_specials: bool) -> str: ...

    @abstractmethod
    def _state(self) -> dict[str, Any]: ...

    @classmethod
    @abstractmethod
    def _from_state(cls, state: dict[str, Any], path: Path) -> Tokenizer: ...

    def decode(self, ids: Iterable[int], *, skip_specials: bool = False) -> str:
        """The text of token ids: a list, or a 1-D integer tensor.

        ``decode(encode(text)) == text`` for every text the tokenizer can encode. Special tokens
        appear as their symbols (``"<eos>"``) unless ``skip_specials``.

        Raises:
            ValueError: if an id is outside ``[0, vocab_size)`` or a tensor is not 1-D.
            TypeError: if an id is not an integer.
        """
        return self._decode_ids(self._check_ids(ids), skip_specials)

    def special_id(self, symbol: str) -> int | None:
        """The id of special token ``symbol``, or ``None`` if this tokenizer has none."""
        return self.specials.index(symbol) if symbol in self.specials else None

    @property
    def pad_id(self) -> int | None:
        """Id of ``"<pad>"`` (``None`` if absent)."""
        return self.special_id(PAD)

    @property
    def bos_id(self) -> int | None:
        """Id of ``"<bos>"`` (``None`` if absent)."""
        return self.special_id(BOS)

    @property
    def eos_id(self) -> int | None:
        """Id of ``"<eos>"`` (``None`` if absent)."""
        return self.special_id(EOS)

    @property
    def unk_id(self) -> int | None:
        """Id that unknown characters map to (``None``: unknown input is an error)."""
        return self.special_id(UNK)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``directory/tokenizer.json`` (plain JSON; the directory is created if needed).

        The file is written to a temporary name and renamed into place, so a reader never
        sees half a file. Returns the file's path.
        """
        path = Path(directory) / TOKENIZER_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        content = {"kind": self.kind, "version": _FORMAT_VERSION, **self._state()}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tokenizer-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(content, f, ensure_ascii=False, indent=1)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Tokenizer:
        """Read ``directory/tokenizer.json`` written by :meth:`save`.

        Raises:
            FileNotFoundError: if the file does not exist.
            ValueError: naming the file, if it is not valid JSON, holds another kind of
                tokenizer, or its content is malformed.
        """
        path, state = _read_tokenizer_file(directory)
        if cls is Tokenizer:
            return _kind_class(state, path)._from_state(state, path)
        if state["kind"] != cls.kind:
            raise ValueError(f"{path} holds a {state['kind']!r} tokenizer, not {cls.kind!r}; "
                             f"load_tokenizer(directory) returns whichever kind was saved")
        return cls._from_state(state, path)

    def _check_ids(self, ids: Iterable[int]) -> list[int]:
        if hasattr(ids, "tolist") and hasattr(ids, "dim"):  # a tensor
            if ids.dim() != 1:  # type: ignore[attr-defined]
                raise ValueError(f"ids must be a 1-D sequence of token ids, got a tensor of "
                                 f"shape {tuple(ids.shape)}")  # type: ignore[attr-defined]
            ids = ids.tolist()  # type: ignore[attr-defined]
        out, n = [], self.vocab_size
        for position, value in enumerate(ids):
            if isinstance(value, bool) or not hasattr(value, "__index__"):
                raise TypeError(f"ids must be integers, got {type(value).__name__} {value!r} "
                                f"at position {position}")
            i = operator.index(value)  # int, or a NumPy integer
            out.append(i)
            if not 0 <= i < n:
                raise ValueError(f"ids must be in [0, vocab_size={n}), got {i} at position "
                                 f"{position}")
        return out


# --------------------------------------------------------------------------------------------
# Characters
# --------------------------------------------------------------------------------------------


class CharTokenizer(Tokenizer):
    """One token per character (a Unicode code point), as in nanoGPT's Shakespeare model.

    The vocabulary is ``specials`` (in order) followed by the sorted characters: ``itos[i]`` is
    the string of id ``i`` and ``stoi[c]`` the id of character ``c``. A character outside the
    vocabulary is an error, unless the tokenizer has the unknown token ``"<unk>"``
    (``unk=True``): then it maps to ``unk_id`` and decodes as ``"<unk>"``.

    Args:
        chars: the characters of the vocabulary (order and repeats do not matter).
        specials: special tokens, given the first ids.
        unk: add ``"<unk>"`` after ``specials`` and map unknown characters to it.

    Raises:
        ValueError: if an element of ``chars`` is not a single character, or ``specials``
            repeat a symbol.
    """

    kind = "char"

    def __init__(self, chars: Iterable[str], *, specials: Sequence[str] = DEFAULT_SPECIALS,
                 unk: bool = False) -> None:
        specials = _check_specials(specials)
        if unk and UNK not in specials:
            specials = (*specials, UNK)
        vocabulary = sorted(set(chars))
        bad = [c for c in vocabulary if not isinstance(c, str) or len(c) != 1]
        if bad:
            raise ValueError(f"chars must be single characters, got {bad[:_MAX_REPORTED]!r}")
        self.specials = specials
        self.itos: list[str] = [*specials, *vocabulary]  # id -> string
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(vocabulary, len(specials))}

    @classmethod
    def train(cls, text: str, *, specials: Sequence[str] = DEFAULT_SPECIALS,
              unk: bool = False) -> CharTokenizer:
        """The tokenizer whose vocabulary is every character of ``text``.

        Raises:
            TypeError: if ``text`` is not a str.
            ValueError: if ``text`` is empty.
        """
        if not _check_text(text):
            raise ValueError("text must contain at least one character to build a vocabulary")
        return cls(text, specials=specials, unk=unk)

    @property
    def vocab_size(self) -> int:
        """Number of ids: specials plus characters."""
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """One id per character of ``text``.

        Raises:
            TypeError: if ``text`` is not a str.
            ValueError: naming the characters and their positions, if a character is outside
                the vocabulary and the tokenizer has no unknown token.
        """
        stoi, unk_id = self.stoi, self.unk_id
        _check_text(text)
        # --8<-- [start:char_encode]
        if unk_id is not None:
            return [stoi.get(c, unk_id) for c in text]  # an unknown character → <unk>
        try:
            return [stoi[c] for c in text]  # one id per character
        except KeyError:
            raise ValueError(self._unknown_message(text)) from None
        # --8<-- [end:char_encode]

    def _unknown_message(self, text: str) -> str:
        unknown = [(i, c) for i, c in enumerate(text) if c not in self.stoi]
        named = ", ".join(f"{c!r} (U+{ord(c):04X}) at position {i}"
                          for i, c in unknown[:_MAX_REPORTED])
        more = f" and {len(unknown) - _MAX_REPORTED} more" if len(unknown) > _MAX_REPORTED else ""
        return (f"CharTokenizer has no unknown token, and {len(unknown)} character(s) of the "
                f"text are not in its vocabulary of {len(self.stoi)} characters: {named}{more}. "
                f"Train it on text that contains them, or with unk=True to map them to {UNK!r}.")

    def _decode_ids(self, ids: list[int], skip_specials: bool) -> str:
        first = len(self.specials) if skip_specials else 0
        return "".join(self.itos[i] for i in ids if i >= first)

    def _state(self) -> dict[str, Any]:
        return {"specials": list(self.specials), "chars": self.itos[len(self.specials):]}

    @classmethod
    def _from_state(cls, state: dict[str, Any], path: Path) -> CharTokenizer:
        specials, chars = state.get("specials"), state.get("chars")
        if not _is_list_of_str(specials) or not _is_list_of_str(chars):
            raise ValueError(f"{path}: a 'char' tokenizer needs lists of strings 'specials' and "
                             f"'chars'")
        if len(set(chars)) != len(chars):
            raise ValueError(f"{path}: 'chars' repeats a character")
        try:
            return cls(chars, specials=specials)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None

    def __repr__(self) -> str:
        return (f"CharTokenizer(vocab_size={self.vocab_size}, specials={self.specials}, "
                f"chars={len(self.stoi)})")


# --------------------------------------------------------------------------------------------
# Byte-level BPE
# --------------------------------------------------------------------------------------------


class BPETokenizer(Tokenizer):
    """Byte-level byte-pair encoding (Sennrich et al. 2016; GPT-2's byte-level form), through
    Hugging Face ``tokenizers``.

    The text's UTF-8 bytes are the starting alphabet (all 256 of them, whatever the training
    text holds), and training merges the most frequent adjacent pairs until ``vocab_size``.
    With no normalizer, no prefix space and a byte-level decoder, ``decode(encode(text)) ==
    text`` for every Unicode text, spaces and newlines included. ``unk_id`` is ``None``: no
    input is unknown.

    Decoding a prefix of a text's ids may end inside a multi-byte character, which then
    decodes as U+FFFD (the replacement character) until its last byte arrives.

    Build one with :meth:`train` or :meth:`load`; the constructor wraps a trained
    ``tokenizers.Tokenizer`` whose first ids are ``specials``.
    """

    kind = "bpe"

    def __init__(self, hf_tokenizer: HFTokenizer, specials: Sequence[str]) -> None:
        specials = _check_specials(specials)
        ids = [hf_tokenizer.token_to_id(s) for s in specials]
        if ids != list(range(len(specials))):
            raise ValueError(f"the special tokens {specials!r} must hold the first ids of the "
                             f"Hugging Face tokenizer, found ids {ids}")
        hf_tokenizer.encode_special_tokens = True  # "<eos>" in the text is text (not saved)
        self._hf = hf_tokenizer
        self.specials = specials

    @classmethod
    def train(cls, texts: str | Iterable[str], *, vocab_size: int,
              specials: Sequence[str] = DEFAULT_SPECIALS) -> BPETokenizer:
        """Learn merges from a text or an iterator of texts, up to ``vocab_size`` ids.

        The vocabulary holds ``specials``, the 256 byte tokens and the merges; it is smaller
        than ``vocab_size`` when the texts run out of pairs to merge.

        Raises:
            ValueError: if ``vocab_size`` is below ``256 + len(specials)``.
            TypeError: if a text is not a str.
        """
        specials = _check_specials(specials)
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        alphabet = pre_tokenizers.ByteLevel.alphabet()  # one printable stand-in per byte
        smallest = len(alphabet) + len(specials)
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) \
                or vocab_size < smallest:
            raise ValueError(f"vocab_size must be an integer >= {smallest} (256 bytes + "
                             f"{len(specials)} specials), got {vocab_size!r}")
        # --8<-- [start:bpe_train]
        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(specials),
                                      initial_alphabet=alphabet, show_progress=False)
        hf.train_from_iterator(_checked_texts(texts), trainer=trainer)
        # --8<-- [end:bpe_train]
        return cls(hf, specials)

    @property
    def vocab_size(self) -> int:
        """Number of ids: specials, the 256 bytes and the learned merges."""
        return self._hf.get_vocab_size(with_added_tokens=True)

    @property
    def unk_id(self) -> None:
        """Always ``None``: every byte is a token, so nothing is unknown."""
        return None

    def encode(self, text: str) -> list[int]:
        """The BPE ids of ``text``'s UTF-8 bytes (never a special id).

        Raises:
            TypeError: if ``text`` is not a str.
        """
        return self._hf.encode(_check_text(text), add_special_tokens=False).ids

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """The ids of :meth:`encode` and, for each, the characters ``(start, end)`` of ``text``
        it stands for, leading white space left out (GPT-2's tokens carry the space before a
        word: ``" Denver"`` covers ``"Denver"``). A token of white space only keeps its span.

        This maps a span of tokens back to the text it came from (an extractive answer):
        ``text[offsets[i][0]:offsets[j][1]]``. A character split over several byte tokens
        gives each of them its whole span.

        Raises:
            TypeError: if ``text`` is not a str.
        """
        encoding = self._hf.encode(_check_text(text), add_special_tokens=False)
        offsets = []
        for start, end in encoding.offsets:
            first = start
            while first < end and text[first].isspace():
                first += 1
            offsets.append((first, end) if first < end else (start, end))
        return encoding.ids, offsets

    def _decode_ids(self, ids: list[int], skip_specials: bool) -> str:
        # Special symbols are written as they are; only runs of ordinary ids go through the
        # byte-level decoder (which would garble a special symbol outside its alphabet).
        n_specials, pieces, run = len(self.specials), [], []
        for i in ids:
            if i >= n_specials:
                run.append(i)
                continue
            if run:
                pieces.append(self._hf.decode(run, skip_special_tokens=False))
                run = []
            if not skip_specials:
                pieces.append(self.specials[i])
        if run:
            pieces.append(self._hf.decode(run, skip_special_tokens=False))
        return "".join(pieces)

    def _state(self) -> dict[str, Any]:
        return {"specials": list(self.specials), "hf_tokenizer": json.loads(self._hf.to_str())}

    @classmethod
    def _from_state(cls, state: dict[str, Any], path: Path) -> BPETokenizer:
        specials, hf_state = state.get("specials"), state.get("hf_tokenizer")
        if not _is_list_of_str(specials) or not isinstance(hf_state, dict):
            raise ValueError(f"{path}: a 'bpe' tokenizer needs a list of strings 'specials' and "
                             f"an object 'hf_tokenizer'")
        for part in ("pre_tokenizer", "decoder"):
            kind = (hf_state.get(part) or {}).get("type")
            if kind != "ByteLevel":
                raise ValueError(f"{path}: hf_tokenizer.{part} must be ByteLevel, got {kind!r}")
        try:
            from tokenizers import Tokenizer as HFTokenizer

            hf = HFTokenizer.from_str(json.dumps(hf_state))
        except Exception as err:  # the Rust library raises a bare Exception
            raise ValueError(f"{path}: hf_tokenizer is not a valid Hugging Face tokenizer: "
                             f"{err}") from None
        try:
            return cls(hf, specials)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size}, specials={self.specials})"


def _checked_texts(texts: str | Iterable[str]) -> Iterator[str]:
    if isinstance(texts, str):
        yield texts
        return
    for i, text in enumerate(texts):
        yield _check_text(text, f"texts[{i}]")


# --------------------------------------------------------------------------------------------
# tokenizer.json
# --------------------------------------------------------------------------------------------

_KINDS: dict[str, type[Tokenizer]] = {"char": CharTokenizer, "bpe": BPETokenizer}


def _is_list_of_str(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _read_tokenizer_file(directory: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    path = Path(directory) / TOKENIZER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no tokenizer at {path} (tokenizer.save(directory) writes one)")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a valid tokenizer file: {err}") from None
    if not isinstance(state, dict) or "kind" not in state:
        raise ValueError(f"{path} is not a valid tokenizer file: expected a JSON object with a "
                         f"'kind' field")
    if state.get("version") != _FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported tokenizer file version {state.get('version')!r} "
                         f"(this package reads version {_FORMAT_VERSION})")
    return path, state


def _kind_class(state: dict[str, Any], path: Path) -> type[Tokenizer]:
    kind = state["kind"]
    if kind not in _KINDS:
        raise ValueError(f"{path}: unknown tokenizer kind {kind!r}, expected one of "
                         f"{sorted(_KINDS)}")
    return _KINDS[kind]


def load_tokenizer(directory: str | os.PathLike[str]) -> Tokenizer:
    """Load ``directory/tokenizer.json`` as the class it was saved from.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: naming the file, if it is not valid JSON, names an unknown kind, or its
            content is malformed.
    """
    return Tokenizer.load(directory)

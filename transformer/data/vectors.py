"""Pretrained word vectors (GloVe, word2vec, fastText ``.vec``) read from their text format and
copied into an embedding matrix.

Two text formats exist, and :func:`read_word_vectors` tells them apart by the first line:

* word2vec (and fastText ``.vec``): a header ``"<count> <dim>"``, then one vector per line;
* GloVe: no header, every line is ``"<word> <v_1> ... <v_dim>"``.

Files ending in ``.gz`` are decompressed on the fly. Binary word2vec files (``.bin``) are not
read. This file imports nothing of ours: :func:`load_pretrained_embedding` works on any module
holding one ``nn.Embedding`` (``nn.Embedding`` itself, or ``TokenEmbedding``).
"""

from __future__ import annotations

import gzip
import math
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import torch
from torch import Tensor, nn

__all__ = ["VectorsReport", "load_pretrained_embedding", "read_word_vectors"]

_MISSING_SAMPLE = 20  # how many missing words a report lists


def _open(path: Path) -> BinaryIO:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of each non-blank line, numbered from 1."""
    with _open(path) as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}, line {number}: not UTF-8 text ({err}); only the text "
                                 f"format of GloVe / word2vec is read, not binary .bin files") \
                    from None
            fields = line.split()
            if fields:
                yield number, fields


def _is_header(fields: list[str]) -> bool:
    return len(fields) == 2 and all(f.isdigit() for f in fields)


def _parse_vector(path: Path, number: int, fields: list[str], dim: int) -> list[float]:
    if len(fields) != dim + 1:
        raise ValueError(f"{path}, line {number}: expected a word and {dim} values, got "
                         f"{len(fields) - 1} values (words cannot contain spaces)")
    try:
        values = [float(v) for v in fields[1:]]
    except ValueError:
        bad = next(v for v in fields[1:] if not _is_float(v))
        raise ValueError(f"{path}, line {number}: value {bad!r} of word {fields[0]!r} is not a "
                         f"number") from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{path}, line {number}: word {fields[0]!r} has a value that is not "
                         f"finite (nan or inf)")
    return values


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_word_vectors(path: str | os.PathLike[str], *, keep: Collection[str] | None = None
                      ) -> tuple[list[str], Tensor]:
    """Read a GloVe or word2vec text file into words and a ``(n_words, dim)`` float32 matrix.

    A first line of exactly two integers is the word2vec header ``"count dim"`` (its count is
    checked); otherwise the first line is a vector and gives ``dim``. Blank lines are skipped.

    Args:
        path: the file (``.gz`` is decompressed).
        keep: if given, only these words are returned; other lines are checked for their
            number of fields only (reading a 400k-word GloVe file for a small vocabulary is
            then several times faster).

    Returns:
        ``(words, matrix)``: ``matrix[i]`` is the vector of ``words[i]``, in file order.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: naming the file and the line number, for a line with the wrong number of
            values, a value that is not a finite number, a word given twice, or text that is
            not UTF-8; naming the file, for an empty file or a header whose count disagrees.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no word-vector file at {path}")
    lines = _lines(path)
    first = next(lines, None)
    if first is None:
        raise ValueError(f"{path} holds no word vectors (the file is empty)")
    number, fields = first
    header_count: int | None = None
    if _is_header(fields):
        header_count, dim = int(fields[0]), int(fields[1])
        if dim == 0:
            raise ValueError(f"{path}, line {number}: the header gives dimension 0")
    else:
        dim = len(fields) - 1
        if dim == 0:
            raise ValueError(f"{path}, line {number}: expected a word followed by its values, "
                             f"got the single field {fields[0]!r}")
        lines = _chain(first, lines)
    words: list[str] = []
    rows: list[list[float]] = []
    seen: dict[str, int] = {}
    n_lines = 0
    for number, fields in lines:
        n_lines += 1
        word = fields[0]
        if word in seen:
            raise ValueError(f"{path}, line {number}: word {word!r} already given on line "
                             f"{seen[word]}")
        seen[word] = number
        if keep is not None and word not in keep:
            if len(fields) != dim + 1:
                _parse_vector(path, number, fields, dim)  # raises the message
            continue
        rows.append(_parse_vector(path, number, fields, dim))
        words.append(word)
    if header_count is not None and header_count != n_lines:
        raise ValueError(f"{path}: the header announces {header_count} vectors, the file holds "
                         f"{n_lines}")
    matrix = torch.tensor(rows, dtype=torch.float32) if rows else torch.empty(0, dim)
    return words, matrix  # (n_words, dim)


def _chain(first: tuple[int, list[str]], rest: Iterator[tuple[int, list[str]]]
           ) -> Iterator[tuple[int, list[str]]]:
    yield first
    yield from rest


@dataclass(frozen=True)
class VectorsReport:
    """What :func:`load_pretrained_embedding` did.

    Attributes:
        found: vocabulary rows given a pretrained vector.
        missing: vocabulary rows without one (initialised by ``oov``).
        missing_words: the first missing words (at most 20), in vocabulary order.
        dim: the vectors' dimension (= the embedding's ``d_model``).
        path: the file read.
    """

    found: int
    missing: int
    missing_words: list[str] = field(default_factory=list)
    dim: int = 0
    path: str = ""

    @property
    def coverage(self) -> float:
        """Fraction of the vocabulary found in the file."""
        total = self.found + self.missing
        return self.found / total if total else 0.0


def _the_embedding(module: nn.Module) -> nn.Embedding:
    if isinstance(module, nn.Embedding):
        return module
    if not isinstance(module, nn.Module):
        raise TypeError(f"embedding must be an nn.Embedding or a module holding one, got "
                        f"{type(module).__name__}")
    found = [m for m in module.modules() if isinstance(m, nn.Embedding)]
    if len(found) != 1:
        raise ValueError(f"embedding must hold exactly one nn.Embedding, "
                         f"{type(module).__name__} holds {len(found)}; pass the token "
                         f"embedding itself (e.g. model.embed)")
    return found[0]


def _vocab_items(vocab: Sequence[str] | Mapping[str, int], n_rows: int) -> list[tuple[str, int]]:
    if isinstance(vocab, str):
        raise TypeError("vocab must be a list of words or a dict word -> id, got a str")
    items = list(vocab.items()) if isinstance(vocab, Mapping) else \
        [(word, i) for i, word in enumerate(vocab)]
    for word, i in items:
        if not isinstance(word, str):
            raise TypeError(f"vocab words must be strings, got {type(word).__name__} {word!r}")
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n_rows:
            raise ValueError(f"vocab ids must be rows of the embedding, in [0, {n_rows}), got "
                             f"{i!r} for {word!r}")
    return items


def load_pretrained_embedding(embedding: nn.Module, vocab: Sequence[str] | Mapping[str, int],
                              path: str | os.PathLike[str], *, freeze: bool = False,
                              oov: str = "normal", generator: torch.Generator | None = None
                              ) -> VectorsReport:
    r"""Copy pretrained word vectors into the rows of an embedding matrix.

    Row ``vocab[word]`` (a dict) or row ``i`` for ``vocab[i] == word`` (a list) receives the
    file's vector of ``word``. Rows of words not in the file (out-of-vocabulary) are drawn from
    ``N(0, s^2)``, ``s`` the standard deviation of all values of the vectors found, so they sit
    on the same scale (``oov="normal"``), or set to zero (``oov="zeros"``). The row of an
    ``nn.Embedding``'s ``padding_idx`` stays zero and counts as neither found nor missing;
    rows outside ``vocab`` are left as they are.

    The vectors go into the weight itself, i.e. *before* ``TokenEmbedding``'s
    :math:`\sqrt{d_{model}}` scale (§3.4): the model's input is :math:`\sqrt{d_{model}}\,v`,
    and with tied embeddings the pre-softmax matrix holds :math:`v` unscaled.

    Args:
        embedding: ``nn.Embedding``, or a module holding exactly one (e.g. ``TokenEmbedding``)
            whose weight is ``(vocab_size, d_model)``.
        vocab: the words of the rows: a list (word ``i`` is row ``i``) or a dict word -> row.
        path: a GloVe / word2vec text file (see :func:`read_word_vectors`).
        freeze: set ``requires_grad=False`` on the weight so training leaves it as loaded. With
            tied embeddings the output (pre-softmax) matrix is the same tensor and is frozen
            too; out-of-vocabulary rows then keep their initial values.
        oov: ``"normal"`` or ``"zeros"``, the initialisation of missing rows.
        generator: random source for ``oov="normal"`` (for reproducible runs).

    Returns:
        A :class:`VectorsReport` with the counts of found and missing words.

    Raises:
        ValueError: if the file's dimension is not the embedding's ``d_model`` (naming the
            file and both numbers), no word of ``vocab`` is in the file, ``oov`` is unknown,
            an id is outside the embedding, or the file is malformed (see
            :func:`read_word_vectors`).
        TypeError: if ``embedding`` holds no ``nn.Embedding``.
    """
    if oov not in ("normal", "zeros"):
        raise ValueError(f"oov must be 'normal' or 'zeros', got {oov!r}")
    table = _the_embedding(embedding)
    weight = table.weight  # (vocab_size, d_model)
    n_rows, d_model = weight.shape
    items = _vocab_items(vocab, n_rows)
    words, matrix = read_word_vectors(path, keep={w for w, _ in items})
    if matrix.shape[1] != d_model:
        raise ValueError(f"{path}: the vectors have dimension {matrix.shape[1]}, but the "
                         f"embedding expects d_model={d_model}")
    index = {w: k for k, w in enumerate(words)}
    pad = table.padding_idx
    found_rows, found_vectors, missing_rows, missing_words = [], [], [], []
    for word, row in items:
        if row == pad:
            continue
        if word in index:
            found_rows.append(row)
            found_vectors.append(index[word])
        else:
            missing_rows.append(row)
            missing_words.append(word)
    if not found_rows:
        raise ValueError(f"{path}: none of the {len(items)} vocabulary words has a vector "
                         f"(first words: {[w for w, _ in items[:5]]}); check case and "
                         f"tokenization")
    vectors = matrix[found_vectors]  # (found, d_model)
    with torch.no_grad():
        weight[found_rows] = vectors.to(weight.dtype).to(weight.device)
        if missing_rows:
            if oov == "zeros":
                fill = torch.zeros(len(missing_rows), d_model)
            else:
                std = float(vectors.std()) if vectors.numel() > 1 else 1.0
                fill = torch.randn(len(missing_rows), d_model, generator=generator) * std
            weight[missing_rows] = fill.to(weight.dtype).to(weight.device)
    if freeze:
        weight.requires_grad_(False)
    return VectorsReport(found=len(found_rows), missing=len(missing_rows),
                         missing_words=missing_words[:_MISSING_SAMPLE], dim=d_model,
                         path=str(path))

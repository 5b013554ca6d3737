"""Synthetic sequence tasks: copy, reverse and sort, and the five-word "seed" example.

A synthetic task has a known answer for every input, so a model that learns it can be checked
exactly: *every* output token must be right. The copy task (the target is the source) is the
first flight of a sequence-to-sequence model: to solve it the decoder must find, through
cross-attention, the source position it is copying, so a trained model's cross-attention is a
diagonal (``docs/10-copy-task.md``). This module holds data only: the recipes that train on
it and the exact-match metric live in :mod:`transformer.tasks`.

Token ids: ``PAD = 0``, ``BOS = 1`` (begin of sequence, the decoder's first input) and
``EOS = 2`` (end of sequence, the decoder's last output) are reserved; ordinary tokens are the
ids ``FIRST_TOKEN = 3`` to ``vocab_size - 1``. An encoder-decoder batch is a dict of long
tensors, batch first, the format of :class:`~transformer.training.Trainer`::

    src      (batch, src_len)      x1 x2 x3 PAD          the source, padded with PAD
    tgt_in   (batch, tgt_len)      BOS y1 y2 y3 EOS      the decoder input: BOS + target
    tgt_out  (batch, tgt_len)      y1 y2 y3 EOS PAD      what it must predict: target + EOS

``tgt_in`` is ``tgt_out`` shifted right by one ("the output embeddings are offset by one
position", §3.1). Rows are padded with ``PAD``, which the loss ignores; in a row shorter than
the batch, ``tgt_in`` also holds the ``EOS``, at a position whose target is padding. A decoder-only
batch is ``{"tokens", "targets"}`` (:func:`seed_example`, :func:`repeated_sequence_batch`).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

__all__ = [
    "BOS",
    "EOS",
    "FIRST_TOKEN",
    "PAD",
    "SEED_PAIRS",
    "SEED_VOCAB",
    "SYNTHETIC_TASKS",
    "RepeatedSequences",
    "SyntheticTask",
    "decode_seed_tokens",
    "encode_seed_text",
    "repeated_sequence_batch",
    "seed_example",
    "synthetic_batch",
]

# --8<-- [start:special_tokens]
PAD = 0  # padding: hidden from attention (padding_mask) and from the loss (ignore_index)
BOS = 1  # begin of sequence: the decoder's first input
EOS = 2  # end of sequence: the decoder's last output
FIRST_TOKEN = 3  # ordinary tokens are FIRST_TOKEN .. vocab_size - 1
# --8<-- [end:special_tokens]

SYNTHETIC_TASKS = ("copy", "reverse", "sort")  # the target is the source copied, reversed, sorted


def _check_int(name: str, value: object, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_task(task: object) -> None:
    if task not in SYNTHETIC_TASKS:
        raise ValueError(f"task must be one of {list(SYNTHETIC_TASKS)}, got {task!r}")


# --8<-- [start:synthetic_batch]
def synthetic_batch(
    task: str,
    batch_size: int,
    seq_len: int,
    vocab_size: int,
    *,
    min_len: int | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """One batch of a synthetic task: random sources and their exact targets.

    Args:
        task: ``"copy"`` (target = source), ``"reverse"`` or ``"sort"`` (ascending ids).
        batch_size: rows in the batch.
        seq_len: source length (the longest, when ``min_len`` is given).
        vocab_size: size of the whole vocabulary, the 3 special ids included; source tokens are
            drawn uniformly from ``FIRST_TOKEN .. vocab_size - 1``.
        min_len: if given, each row's length is drawn uniformly from ``min_len .. seq_len``
            and shorter rows are padded with ``PAD``; if None every row has ``seq_len`` tokens.
        generator: a seeded ``torch.Generator`` makes the batch reproducible.

    Returns:
        ``{"src": (batch, seq_len), "tgt_in": (batch, seq_len + 1),
        "tgt_out": (batch, seq_len + 1)}``, long tensors cut from one sequence
        ``BOS target EOS PAD ..``: ``tgt_in`` is all of it but the last token, ``tgt_out`` all
        but the first, so ``tgt_in`` starts with ``BOS`` and ``tgt_out`` ends the target with
        ``EOS``.

    Raises:
        ValueError: an unknown ``task``; ``batch_size`` or ``seq_len`` < 1; ``vocab_size`` < 4
            (no room for one ordinary token); ``min_len`` outside ``1 .. seq_len``.
    """
    _check_task(task)
    _check_int("batch_size", batch_size, 1)
    _check_int("seq_len", seq_len, 1)
    _check_int("vocab_size", vocab_size, FIRST_TOKEN + 1)
    if min_len is not None and (not isinstance(min_len, int) or not 1 <= min_len <= seq_len):
        raise ValueError(f"min_len must be an integer in [1, seq_len={seq_len}], got {min_len!r}")

    shape = (batch_size, seq_len)
    src = torch.randint(FIRST_TOKEN, vocab_size, shape, generator=generator)  # (B, L)
    if min_len is None:
        lengths = torch.full((batch_size,), seq_len)                            # (B,)
    else:
        lengths = torch.randint(min_len, seq_len + 1, (batch_size,), generator=generator)
    real = torch.arange(seq_len) < lengths[:, None]                             # (B, L)
    src = src.masked_fill(~real, PAD)

    if task == "copy":
        target = src
    elif task == "reverse":  # row i: src[i, n_i - 1], ..., src[i, 0], then padding
        index = (lengths[:, None] - 1 - torch.arange(seq_len)).clamp(min=0)    # (B, L)
        target = src.gather(1, index).masked_fill(~real, PAD)
    else:  # sort: padding sorts last when it counts as the largest id
        target = src.masked_fill(~real, vocab_size).sort(dim=1).values.masked_fill(~real, PAD)

    sequence = torch.cat([torch.full((batch_size, 1), BOS), target,
                          torch.full((batch_size, 1), PAD)], dim=1)           # (B, L + 2)
    sequence[torch.arange(batch_size), lengths + 1] = EOS  # BOS y1 .. yn EOS PAD ..
    return {"src": src, "tgt_in": sequence[:, :-1], "tgt_out": sequence[:, 1:]}
# --8<-- [end:synthetic_batch]


class SyntheticTask:
    """An endless, reproducible stream of :func:`synthetic_batch` batches (``for b in task``).

    Every ``iter(task)`` starts the same stream again (a ``torch.Generator`` seeded with
    ``seed``), so the :class:`~transformer.training.Trainer` can resume it; :meth:`held_out`
    draws test examples from another seed. Arguments are those of :func:`synthetic_batch`.

    Raises:
        ValueError: as :func:`synthetic_batch`, at construction.
    """

    def __init__(
        self,
        task: str = "copy",
        *,
        vocab_size: int,
        seq_len: int,
        batch_size: int,
        min_len: int | None = None,
        seed: int = 0,
    ) -> None:
        synthetic_batch(task, batch_size, seq_len, vocab_size, min_len=min_len)  # validate
        self.task, self.vocab_size, self.seq_len = task, vocab_size, seq_len
        self.batch_size, self.min_len, self.seed = batch_size, min_len, seed

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        generator = torch.Generator().manual_seed(self.seed)
        while True:
            yield synthetic_batch(self.task, self.batch_size, self.seq_len, self.vocab_size,
                                  min_len=self.min_len, generator=generator)

    def held_out(self, n: int, seed: int | None = None) -> dict[str, Tensor]:
        """``n`` test examples in one batch, drawn with ``seed`` (default ``self.seed + 1``,
        a stream the training batches never use)."""
        _check_int("n", n, 1)
        generator = torch.Generator().manual_seed(self.seed + 1 if seed is None else seed)
        return synthetic_batch(self.task, n, self.seq_len, self.vocab_size,
                               min_len=self.min_len, generator=generator)


# --8<-- [start:seed_example]
SEED_VOCAB = ("what", "is", "CNN", "Great", "news")  # ids 3, 4, 5, 6, 7
SEED_PAIRS = (("what is CNN", "Great"), ("CNN is what", "news"))  # prompt → answer


def encode_seed_text(text: str) -> list[int]:
    """Words of :data:`SEED_VOCAB` → ids: ``"what is CNN"`` → ``[3, 4, 5]``.

    Raises ``ValueError`` naming a word that is not in the vocabulary.
    """
    ids = []
    for word in text.split():
        if word not in SEED_VOCAB:
            raise ValueError(f"word {word!r} is not in the seed vocabulary {SEED_VOCAB}")
        ids.append(FIRST_TOKEN + SEED_VOCAB.index(word))
    return ids


def decode_seed_tokens(ids: list[int] | Tensor) -> str:
    """Ids → words; special ids read ``<pad>``, ``<bos>``, ``<eos>``.

    Raises ``ValueError`` for an id outside ``0 .. 7``.
    """
    names = ("<pad>", "<bos>", "<eos>", *SEED_VOCAB)
    ids = ids.tolist() if isinstance(ids, Tensor) else list(ids)
    for i in ids:
        if not 0 <= i < len(names):
            raise ValueError(f"ids must be in [0, {len(names)}), got {i}")
    return " ".join(names[i] for i in ids)


def seed_example() -> dict[str, Tensor]:
    """The smallest language-model data set: two sentences over a five-word vocabulary.

    Each sentence is ``<bos> prompt <eos> answer <eos>``, e.g.
    ``<bos> what is CNN <eos> Great <eos>``. Both prompts hold the same three words in another
    order, so only their positions tell the answers apart. A decoder-only model learns to
    predict, at every position, the next token.

    Returns:
        ``{"tokens": (2, 6), "targets": (2, 6)}`` long tensors: ``targets[:, t]`` is
        ``tokens[:, t + 1]``, the sentence shifted left by one. The vocabulary size is
        ``FIRST_TOKEN + len(SEED_VOCAB)`` = 8.
    """
    rows = [[BOS, *encode_seed_text(q), EOS, *encode_seed_text(a), EOS] for q, a in SEED_PAIRS]
    sentences = torch.tensor(rows)                                  # (2, 7)
    return {"tokens": sentences[:, :-1], "targets": sentences[:, 1:]}  # (2, 6) each
# --8<-- [end:seed_example]


# --8<-- [start:repeated_sequence_batch]
def repeated_sequence_batch(
    batch_size: int,
    max_half: int,
    vocab_size: int,
    *,
    min_half: int | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Random sequences whose second half repeats the first, ``x_1 .. x_T x_1 .. x_T``, for a
    decoder-only model (the induction-head experiment of ``docs/14-looking-inside.md``).

    The first half is unpredictable; the second half can be predicted exactly by a model that
    copies from its context: the next token is the one after the previous occurrence of the
    current token. The ``T`` tokens of a row are distinct (drawn without replacement), so that
    previous occurrence is unique, and ``T`` varies between rows when ``min_half`` is given, so
    no fixed offset finds it: only the content does.

    Args:
        batch_size: rows in the batch.
        max_half: the longest half ``T``; rows are padded with ``PAD`` to ``2 * max_half``.
        vocab_size: size of the whole vocabulary, the 3 special ids included; tokens are drawn
            from ``FIRST_TOKEN .. vocab_size - 1``, which must hold ``max_half`` distinct ids.
        min_half: if given, each row's ``T`` is drawn uniformly from ``min_half .. max_half``;
            if None every row has ``T = max_half``.
        generator: a seeded ``torch.Generator`` makes the batch reproducible.

    Returns:
        ``{"tokens": (batch, 2 * max_half - 1), "targets": (batch, 2 * max_half - 1),
        "half": (batch,)}``, long tensors: ``tokens`` is the sequence but its last position,
        ``targets`` the sequence shifted left by one (the next token, ``PAD`` past a row's
        end), ``half`` each row's ``T``. Position ``i`` is in the second half when
        ``i >= half``; there the target is the token at position ``i - T + 1``.

    Raises:
        ValueError: ``batch_size`` or ``max_half`` < 1; fewer than ``max_half`` ordinary ids in
            ``vocab_size``; ``min_half`` outside ``1 .. max_half``.
    """
    _check_int("batch_size", batch_size, 1)
    _check_int("max_half", max_half, 1)
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or \
            vocab_size < FIRST_TOKEN + max_half:
        raise ValueError(f"vocab_size must be an integer >= {FIRST_TOKEN + max_half} (the 3 "
                         f"special ids and max_half={max_half} distinct tokens), got "
                         f"{vocab_size!r}")
    if min_half is not None and (not isinstance(min_half, int) or isinstance(min_half, bool)
                                 or not 1 <= min_half <= max_half):
        raise ValueError(f"min_half must be an integer in [1, max_half={max_half}], got "
                         f"{min_half!r}")

    symbols = vocab_size - FIRST_TOKEN
    draws = torch.rand(batch_size, symbols, generator=generator)                # (B, V - 3)
    first = draws.argsort(dim=1)[:, :max_half] + FIRST_TOKEN  # (B, max_half) distinct ids
    if min_half is None:
        half = torch.full((batch_size,), max_half)                              # (B,)
    else:
        half = torch.randint(min_half, max_half + 1, (batch_size,), generator=generator)
    pos = torch.arange(2 * max_half)                                            # (2 max_half,)
    source = torch.where(pos < half[:, None], pos, pos - half[:, None])  # position to copy
    sequence = first.gather(1, source.clamp(max=max_half - 1))                  # (B, 2 max_half)
    sequence = sequence.masked_fill(pos >= 2 * half[:, None], PAD)
    return {"tokens": sequence[:, :-1], "targets": sequence[:, 1:], "half": half}
# --8<-- [end:repeated_sequence_batch]


class RepeatedSequences:
    """An endless, reproducible stream of :func:`repeated_sequence_batch` batches, as
    :class:`SyntheticTask` is for the sequence-to-sequence tasks (``held_out`` likewise).

    Raises:
        ValueError: as :func:`repeated_sequence_batch`, at construction.
    """

    def __init__(self, *, max_half: int, vocab_size: int, batch_size: int,
                 min_half: int | None = None, seed: int = 0) -> None:
        repeated_sequence_batch(batch_size, max_half, vocab_size, min_half=min_half)  # validate
        self.max_half, self.vocab_size, self.batch_size = max_half, vocab_size, batch_size
        self.min_half, self.seed = min_half, seed

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        generator = torch.Generator().manual_seed(self.seed)
        while True:
            yield repeated_sequence_batch(self.batch_size, self.max_half, self.vocab_size,
                                          min_half=self.min_half, generator=generator)

    def held_out(self, n: int, seed: int | None = None) -> dict[str, Tensor]:
        """``n`` test sequences in one batch, drawn with ``seed`` (default ``self.seed + 1``)."""
        _check_int("n", n, 1)
        generator = torch.Generator().manual_seed(self.seed + 1 if seed is None else seed)
        return repeated_sequence_batch(n, self.max_half, self.vocab_size,
                                       min_half=self.min_half, generator=generator)

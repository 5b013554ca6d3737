"""Batching by approximate length under a token budget (§5.1, "Training Data and Batching").

"Sentence pairs were batched together by approximate sequence length. Each training batch
contained a set of sentence pairs containing approximately 25000 source tokens and 25000 target
tokens." A batch is padded to its longest example, so mixing a 5-token and a 50-token sentence
wastes 45 slots; grouping sentences of similar length wastes little. The budget counts the
*padded* tensor, ``batch_size × longest``, on each side, so it bounds memory exactly.
"""

from __future__ import annotations

import operator
import random
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

Lengths = Sequence[int] | Sequence[tuple[int, int]]


def _as_pairs(lengths: Lengths) -> list[tuple[int, int]]:
    """Lengths as ``(src_len, tgt_len)`` pairs; a single length is used for both sides."""
    pairs = []
    for i, item in enumerate(lengths):
        try:
            pair = tuple(map(operator.index, item)) if isinstance(item, Sequence) \
                else (operator.index(item),) * 2
        except TypeError:
            pair = ()
        if len(pair) != 2 or min(pair) < 1:
            raise ValueError(
                f"lengths[{i}] must be a positive int or a (src_len, tgt_len) pair of them, "
                f"got {item!r}"
            )
        pairs.append(pair)
    return pairs


class TokenBatchSampler:
    """Yields lists of example indices; each batch pads to at most ``max_tokens`` per side.

    Args:
        lengths: per example, a token count or a ``(src_len, tgt_len)`` pair, counted as the
            model sees them (with any BOS/EOS tokens).
        max_tokens: budget per side: ``len(batch) × max(length in batch) <= max_tokens``
            (the paper's ≈25000).
        shuffle: shuffle examples before bucketing and shuffle the batch order (training);
            ``False`` sorts the whole corpus by length (evaluation).
        seed: with ``set_epoch(e)``, the order is a function of ``(seed, e)`` only.
        sort_window: examples are shuffled, cut into windows of this many, and each window
            is sorted by length (longer side first); ``None`` sorts the whole corpus (least
            padding; ties keep their shuffled order, so batches still change every epoch),
            ``1`` gives random batching with the same budget.

    Usable as ``DataLoader(dataset, batch_sampler=sampler, collate_fn=...)``.

    Raises:
        ValueError: ``max_tokens`` or ``sort_window`` < 1, a bad length, or an example that alone
            exceeds ``max_tokens`` (its index and length are named).
    """

    def __init__(
        self,
        lengths: Lengths,
        max_tokens: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        sort_window: int | None = None,
    ) -> None:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        if sort_window is not None and sort_window < 1:
            raise ValueError(f"sort_window must be >= 1, got {sort_window}")
        self.lengths = _as_pairs(lengths)
        for i, (src, tgt) in enumerate(self.lengths):
            if max(src, tgt) > max_tokens:
                raise ValueError(
                    f"example {i} has (src_len, tgt_len) = ({src}, {tgt}), longer than "
                    f"max_tokens={max_tokens}: raise max_tokens or filter long examples out"
                )
        self.max_tokens, self.shuffle, self.seed = max_tokens, shuffle, seed
        self.sort_window = sort_window
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose (deterministic) order ``__iter__`` yields."""
        self.epoch = epoch

    def _sort_key(self, i: int) -> tuple[int, int, int]:
        src, tgt = self.lengths[i]
        return max(src, tgt), src, tgt

    # --8<-- [start:token_batching]
    def batches(self) -> list[list[int]]:
        """This epoch's batches: shuffle, sort within windows, pack greedily, shuffle batches."""
        rng = random.Random(f"{self.seed}/{self.epoch}")  # str seeds are stable across runs
        order = list(range(len(self.lengths)))
        window = (self.sort_window if self.shuffle else None) or max(len(order), 1)
        if self.shuffle:
            rng.shuffle(order)
        order = [  # sort each window by (longer side, src_len, tgt_len)
            i
            for start in range(0, len(order), window)
            for i in sorted(order[start : start + window], key=self._sort_key)
        ]
        batches: list[list[int]] = []
        batch: list[int] = []
        longest_src = longest_tgt = 0
        for i in order:
            src, tgt = self.lengths[i]
            size = len(batch) + 1  # padded cost if i joins: size × longest, on each side
            if size * max(longest_src, src) > self.max_tokens or \
                    size * max(longest_tgt, tgt) > self.max_tokens:
                batches.append(batch)
                batch, longest_src, longest_tgt = [], 0, 0
            batch.append(i)
            longest_src, longest_tgt = max(longest_src, src), max(longest_tgt, tgt)
        if batch:
            batches.append(batch)
        if self.shuffle:
            rng.shuffle(batches)  # long and short batches alternate through the epoch
        return batches
    # --8<-- [end:token_batching]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Lengths) -> float:
    """Share of the padded tensors' slots that hold padding, over both sides of all batches.

    ``1 - Σ real tokens / Σ (batch_size × longest)``; ``0.0`` when there are no tokens.
    """
    pairs = _as_pairs(lengths)
    real = padded = 0
    for batch in batches:
        for side in (0, 1):
            side_lengths = [pairs[i][side] for i in batch]
            real += sum(side_lengths)
            padded += len(side_lengths) * max(side_lengths, default=0)
    return 1.0 - real / padded if padded else 0.0


def pad_batch(sequences: Sequence[Tensor], pad_id: int = 0) -> Tensor:
    """Stack 1-D long tensors of different lengths into ``(batch, max_len)``, filled with pad_id.

    Raises ``ValueError`` for an empty list or a tensor that is not 1-D.
    """
    if len(sequences) == 0:
        raise ValueError("sequences must hold at least one tensor, got an empty sequence")
    for i, seq in enumerate(sequences):
        if seq.dim() != 1:
            raise ValueError(f"sequences[{i}] must be 1-D (seq_len,), got {tuple(seq.shape)}")
    max_len = max(len(seq) for seq in sequences)
    out = torch.full((len(sequences), max_len), pad_id, dtype=sequences[0].dtype)
    for row, seq in zip(out, sequences, strict=True):
        row[: len(seq)] = seq                                   # (batch, max_len)
    return out


# --8<-- [start:random_windows]
class RandomWindows:
    """Language-model batches: windows of ``context + 1`` consecutive ids at random offsets of
    one long sequence (a tokenized corpus), as GPT-2 and nanoGPT train.

    Calling it with an epoch number gives that epoch's ``batches_per_epoch`` batches
    ``{"tokens": (batch_size, context), "targets": (batch_size, context), "unpadded": True}``,
    the targets being the tokens shifted by one. The offsets depend only on ``(seed, epoch)``,
    as the trainer's resuming needs; each batch is one gather from a strided view of ``ids``.

    Raises:
        ValueError: ``ids`` not 1-D or not longer than ``context + 1``; ``context``,
            ``batch_size`` or ``batches_per_epoch`` not an integer >= 1.
    """

    def __init__(self, ids: Tensor, context: int, batch_size: int, *, seed: int = 0,
                 batches_per_epoch: int = 1000) -> None:
        for name, value in (("context", context), ("batch_size", batch_size),
                            ("batches_per_epoch", batches_per_epoch)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(ids, Tensor) or ids.dim() != 1 or len(ids) <= context + 1:
            shape = tuple(ids.shape) if isinstance(ids, Tensor) else type(ids).__name__
            raise ValueError(f"ids must be a 1-D tensor longer than context + 1 = "
                             f"{context + 1}, got {shape}")
        self.windows = ids.long().unfold(0, context + 1, 1)  # (n - context, context + 1), a view
        self.context, self.batch_size, self.seed = context, batch_size, seed
        self.batches_per_epoch = batches_per_epoch

    def __call__(self, epoch: int) -> Iterator[dict[str, Any]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        starts = torch.randint(len(self.windows), (self.batches_per_epoch, self.batch_size),
                               generator=generator)  # every offset of the epoch, drawn at once
        for row in starts:
            window = self.windows[row]  # (batch_size, context + 1)
            yield {"tokens": window[:, :-1], "targets": window[:, 1:], "unpadded": True}
# --8<-- [end:random_windows]

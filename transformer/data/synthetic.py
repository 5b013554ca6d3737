"""Synthetic sequence tasks: copy, reverse and sort, and the five-word "seed" example.

A synthetic task has a known answer for every input, so a model that learns it can be checked
exactly: *every* output token must be right. The copy task (the target is the source) is the
first flight of a sequence-to-sequence model: to solve it the decoder must find, through
cross-attention, the source position it is copying, so a trained model's cross-attention is a
diagonal (``docs/10-copy-task.md``).

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
batch is ``{"tokens", "targets"}`` (:func:`seed_example`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from transformer.generation import beam_search, greedy_decode
from transformer.model import Transformer, TransformerConfig
from transformer.training.trainer import TrainConfig, Trainer

__all__ = [
    "BOS",
    "EOS",
    "FIRST_TOKEN",
    "PAD",
    "SEED_PAIRS",
    "SEED_VOCAB",
    "TASKS",
    "SyntheticTask",
    "TaskRecipe",
    "decode_seed_tokens",
    "encode_seed_text",
    "exact_match",
    "exact_match_rate",
    "seed_example",
    "synthetic_batch",
    "train_until_exact_match",
]

# --8<-- [start:special_tokens]
PAD = 0  # padding: hidden from attention (padding_mask) and from the loss (ignore_index)
BOS = 1  # begin of sequence: the decoder's first input
EOS = 2  # end of sequence: the decoder's last output
FIRST_TOKEN = 3  # ordinary tokens are FIRST_TOKEN .. vocab_size - 1
# --8<-- [end:special_tokens]

TASKS = ("copy", "reverse", "sort")


def _check_int(name: str, value: object, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_task(task: object) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")


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


# --8<-- [start:exact_match]
def exact_match(predicted: Tensor, tgt_out: Tensor) -> Tensor:
    """Which rows of decoded ids equal the reference, every token and the ``EOS``.

    Args:
        predicted: ``(batch, any_len)`` decoded ids, without the leading ``BOS`` (what
            :func:`~transformer.generation.greedy_decode` returns); anything after the
            reference's ``EOS`` is ignored, and a row too short to hold it is wrong.
        tgt_out: ``(batch, tgt_len)`` the reference: target + ``EOS``, padded with ``PAD``.

    Returns:
        ``(batch,)`` bool.

    Raises:
        ValueError: either tensor is not 2-D, or their batch sizes differ.
    """
    if predicted.dim() != 2 or tgt_out.dim() != 2 or predicted.shape[0] != tgt_out.shape[0]:
        raise ValueError("predicted and tgt_out must be (batch, len) with the same batch, got "
                         f"{tuple(predicted.shape)} and {tuple(tgt_out.shape)}")
    width = tgt_out.shape[1]
    missing = max(width - predicted.shape[1], 0)  # a short row is padded, so it cannot match
    predicted = torch.nn.functional.pad(predicted, (0, missing), value=PAD)[:, :width]
    counts = tgt_out != PAD                                           # (batch, tgt_len)
    return ((predicted == tgt_out) | ~counts).all(dim=1)
# --8<-- [end:exact_match]


def exact_match_rate(model: Transformer, batch: dict[str, Tensor], *, beam_size: int = 1) -> float:
    """Share of ``batch``'s sources that ``model`` turns into exactly ``tgt_out``.

    Decodes greedily (``beam_size=1``) or with beam search (§6.1), at most ``tgt_len`` tokens,
    stopping at ``EOS``; dropout is off while decoding.

    Args:
        model: a trained :class:`~transformer.model.Transformer`.
        batch: ``{"src": (batch, src_len), "tgt_out": (batch, tgt_len), ...}``.
        beam_size: ``1`` for greedy decoding, more for beam search.

    Raises:
        ValueError: as :func:`~transformer.generation.greedy_decode` and :func:`exact_match`.
    """
    device = next(model.parameters()).device
    src, tgt_out = batch["src"].to(device), batch["tgt_out"].to(device)
    steps = tgt_out.shape[1]
    if beam_size == 1:
        out = greedy_decode(model, src, max_new_tokens=steps, bos_id=BOS, eos_id=EOS)
    else:
        out = beam_search(model, src, beam_size=beam_size, max_new_tokens=steps, bos_id=BOS,
                          eos_id=EOS).sequences
    return exact_match(out, tgt_out).float().mean().item()


# --8<-- [start:train_until]
def train_until_exact_match(
    trainer: Trainer,
    held_out: dict[str, Tensor],
    *,
    eval_every: int = 50,
    target: float | None = 1.0,
    on_eval: Callable[[list[dict[str, float]]], None] | None = None,
) -> list[dict[str, float]]:
    """Train ``trainer.model`` in rounds of ``eval_every`` steps until it decodes ``target``
    of ``held_out`` exactly (greedy), or until ``trainer.config.max_steps``.

    Args:
        trainer: a :class:`~transformer.training.Trainer` of a
            :class:`~transformer.model.Transformer`.
        held_out: ``{"src", "tgt_out", ...}`` examples the decoding is checked on.
        eval_every: optimizer steps between two checks.
        target: the exact match that ends training (1.0: every sequence); ``None`` trains
            until ``max_steps``.
        on_eval: called with the metrics of each round, e.g. to show progress.

    Returns:
        The trainer's metrics of every step; the last step of each round also holds its
        ``"exact_match"``.

    Raises:
        ValueError: ``eval_every`` < 1 or ``target`` outside ``(0, 1]``.
    """
    _check_int("eval_every", eval_every, 1)
    if target is not None and not 0 < target <= 1:
        raise ValueError(f"target must be in (0, 1], got {target!r}")
    history: list[dict[str, float]] = []
    while trainer.step < trainer.config.max_steps:
        until = min(trainer.step + eval_every, trainer.config.max_steps)
        metrics = trainer.train(until_step=until)
        metrics[-1]["exact_match"] = exact_match_rate(trainer.model, held_out)
        history += metrics
        if on_eval is not None:
            on_eval(metrics)
        if target is not None and metrics[-1]["exact_match"] >= target:
            break
    return history
# --8<-- [end:train_until]


# --8<-- [start:recipe]
@dataclass(frozen=True)
class TaskRecipe:
    """Settings that learn a synthetic task quickly on a CPU (``benchmarks/copy_task.py``).

    The sizes of :meth:`TransformerConfig.tiny` with one layer instead of two (the copy task
    needs a single cross-attention hop), trained with the paper's Adam, eq. 3 schedule and
    label smoothing ε_ls = 0.1 (§5.3–5.4), but warmed up for 100 steps instead of 4000.
    """

    task: str = "copy"
    vocab_size: int = 13  # 10 ordinary tokens + PAD, BOS, EOS
    seq_len: int = 10
    min_len: int | None = 1  # lengths 1..seq_len, so the model must also learn where to stop
    batch_size: int = 64
    d_model: int = 32
    n_heads: int = 4
    d_ff: int = 64
    n_layers: int = 1
    warmup_steps: int = 100
    lr_factor: float = 1.0
    label_smoothing: float = 0.1
    max_steps: int = 1000
    seed: int = 0

    def data(self) -> SyntheticTask:
        """The endless stream of training batches."""
        return SyntheticTask(self.task, vocab_size=self.vocab_size, seq_len=self.seq_len,
                             batch_size=self.batch_size, min_len=self.min_len, seed=self.seed)

    def model_config(self) -> TransformerConfig:
        """A :meth:`TransformerConfig.tiny` (no dropout) with this recipe's sizes."""
        return TransformerConfig.tiny(vocab_size=self.vocab_size, d_model=self.d_model,
                                      n_heads=self.n_heads, d_ff=self.d_ff,
                                      n_layers=self.n_layers, pad_id=PAD)

    def train_config(self, **changes: Any) -> TrainConfig:
        """The :class:`~transformer.training.TrainConfig`; ``changes`` override fields."""
        settings: dict[str, Any] = dict(
            max_steps=self.max_steps, warmup_steps=self.warmup_steps, lr_factor=self.lr_factor,
            label_smoothing=self.label_smoothing, seed=self.seed)
        return TrainConfig(**(settings | changes))
# --8<-- [end:recipe]

    def __post_init__(self) -> None:
        self.data()  # validates the data settings
        _check_int("max_steps", self.max_steps, 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary (JSON-ready)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


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

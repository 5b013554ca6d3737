"""The synthetic tasks of the table: copy, reverse and sort, scored by exact match.

Their data are :mod:`transformer.data.synthetic`'s token ids (no tokenizer); their model is a
small encoder-decoder; a trained model must decode *every* token of a held-out sequence right
(``docs/10-copy-task.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor

from transformer.data.synthetic import BOS, EOS, FIRST_TOKEN, PAD, SyntheticTask
from transformer.model import Transformer, TransformerConfig
from transformer.tasks.base import Metric, Recipe, Task, _decode, retune, setting

__all__ = [
    "COPY",
    "EXACT_MATCH",
    "REVERSE",
    "SORT",
    "SyntheticRecipe",
    "exact_match",
    "exact_match_rate",
    "synthetic_data",
    "synthetic_model_config",
]


# --8<-- [start:synthetic_recipe]
@dataclass(frozen=True)
class SyntheticRecipe(Recipe):
    """Settings that learn a synthetic task quickly on a CPU (``benchmarks/copy_task.py``).

    The sizes of :meth:`TransformerConfig.tiny` with one layer instead of two (the copy task
    needs a single cross-attention hop), trained with the paper's Adam, eq. 3 schedule and
    label smoothing ε_ls = 0.1 (§5.3–5.4), but warmed up for 100 steps instead of 4000.

    Raises:
        ValueError: a setting outside its range, or ``min_len`` > ``seq_len``.
    """

    vocab_size: int = setting(13, "vocabulary size, PAD=0, BOS=1 and EOS=2 included",
                              at_least=FIRST_TOKEN + 1)  # 10 ordinary tokens + PAD, BOS, EOS
    seq_len: int = setting(10, "source length (the longest, with min_len)", at_least=1)
    min_len: int | None = setting(1, "each source length is drawn from min_len..seq_len "
                                  "(none: always seq_len)", at_least=1)
    batch_size: int = setting(64, "sequences per step", at_least=1)
    eval_size: int = setting(1000, "held-out sequences for the metric: as many for validation "
                             "(early stopping) as for the final test", at_least=1)
    d_model: int = setting(32, "model width", at_least=1)
    n_heads: int = setting(4, "attention heads h", at_least=1)
    d_ff: int = setting(64, "feed-forward inner width", at_least=1)
    n_layers: int = setting(1, "layers N in the encoder and in the decoder", at_least=1)
    max_steps: int = retune(Recipe, "max_steps", 1000)
    warmup_steps: int = retune(Recipe, "warmup_steps", 100)  # the paper's 4000 is for 100k steps
# --8<-- [end:synthetic_recipe]

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min_len is not None and self.min_len > self.seq_len:
            raise ValueError(f"min_len must be an integer in [1, seq_len={self.seq_len}], got "
                             f"{self.min_len!r}")


def synthetic_model_config(recipe: SyntheticRecipe) -> TransformerConfig:
    """A :meth:`TransformerConfig.tiny` (no dropout) with ``recipe``'s sizes.

    Raises:
        ValueError: sizes that do not fit, e.g. ``d_model`` not divisible by ``n_heads``.
    """
    return TransformerConfig.tiny(vocab_size=recipe.vocab_size, d_model=recipe.d_model,
                                  n_heads=recipe.n_heads, d_ff=recipe.d_ff,
                                  n_layers=recipe.n_layers, pad_id=PAD)


def synthetic_data(kind: str, recipe: SyntheticRecipe, split: str) -> Any:
    """The data of the ``kind`` task (``"copy"``, ``"reverse"`` or ``"sort"``).

    Returns:
        ``split="train"``: the endless :class:`~transformer.data.synthetic.SyntheticTask`
        stream; ``"valid"`` and ``"test"``: one batch of ``recipe.eval_size`` held-out examples
        each, from two seeds the training stream never uses.

    Raises:
        ValueError: an unknown ``kind`` or ``split``.
    """
    stream = SyntheticTask(kind, vocab_size=recipe.vocab_size, seq_len=recipe.seq_len,
                           batch_size=recipe.batch_size, min_len=recipe.min_len,
                           seed=recipe.seed)
    if split == "train":
        return stream
    if split == "valid":
        return stream.held_out(recipe.eval_size, seed=recipe.seed + 2)
    if split == "test":
        return stream.held_out(recipe.eval_size)  # seed + 1
    raise ValueError(f"split must be 'train', 'valid' or 'test', got {split!r}")


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
    out = _decode(model, src, bos_id=BOS, eos_id=EOS, beam_size=beam_size,
                  max_new_tokens=tgt_out.shape[1])
    return exact_match(out, tgt_out).float().mean().item()


EXACT_MATCH = Metric("exact_match", exact_match_rate, target=1.0, fmt="{:.1%}")

# --8<-- [start:entries]
COPY = Task("copy", "the target is the source, copied", SyntheticRecipe,
            data=partial(synthetic_data, "copy"), model_config=synthetic_model_config,
            metric=EXACT_MATCH)
REVERSE = Task("reverse", "the target is the source, reversed", SyntheticRecipe,
               data=partial(synthetic_data, "reverse"), model_config=synthetic_model_config,
               metric=EXACT_MATCH)
SORT = Task("sort", "the target is the source, sorted (ascending ids)", SyntheticRecipe,
            data=partial(synthetic_data, "sort"), model_config=synthetic_model_config,
            metric=EXACT_MATCH)
# --8<-- [end:entries]

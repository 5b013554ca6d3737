"""In-context copying: a 2-layer decoder-only model on sequences whose second half repeats the
first (:func:`~transformer.data.synthetic.repeated_sequence_batch`), the smallest setting in
which induction heads appear (Olsson et al., 2022, "In-context Learning and Induction Heads").

The first half of every sequence is random, so no model predicts it better than chance; the
second half is predictable only by looking back: find the previous occurrence of the current
token and read the token after it. :func:`loss_by_half` measures the two halves apart, and
:func:`transformer.viz.induction_scores` finds the head that does the looking back
(``docs/14-looking-inside.md``).

The entry :data:`INDUCTION` has the shape of a row of :data:`transformer.tasks.TASKS` (recipe,
data, model configuration, metric) but is not in that table: the command line's ``generate``
continues prompts of its tasks, which this task has no use for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from transformer.data.synthetic import FIRST_TOKEN, PAD, RepeatedSequences
from transformer.model import DecoderOnlyTransformer, TransformerConfig
from transformer.tasks.base import Metric, Recipe, Task, retune, setting

__all__ = [
    "INDUCTION",
    "IN_CONTEXT_ACCURACY",
    "InductionRecipe",
    "in_context_accuracy",
    "induction_data",
    "induction_model_config",
    "loss_by_half",
]


# --8<-- [start:induction_recipe]
@dataclass(frozen=True)
class InductionRecipe(Recipe):
    """Settings that grow induction heads in a few hundred steps on a CPU.

    A 2-layer, 4-head decoder-only model with ``d_model = 64``, pre-LN (chapter 6) and no
    dropout; Adam with the eq. 3 schedule (§5.3), no label smoothing (the loss is then the
    plain negative log-likelihood the experiment measures).

    Raises:
        ValueError: a setting outside its range, ``min_half`` > ``max_half``, or too few
            ordinary tokens for ``max_half`` distinct ones.
    """

    vocab_size: int = setting(23, "vocabulary size, PAD=0, BOS=1 and EOS=2 included (unused)",
                              at_least=FIRST_TOKEN + 1)  # 20 ordinary tokens
    max_half: int = setting(10, "longest half T of a sequence", at_least=1)
    min_half: int = setting(4, "shortest half T: T varies, so only content finds the copy",
                            at_least=1)
    batch_size: int = setting(32, "sequences per step", at_least=1)
    eval_size: int = setting(500, "held-out sequences for the metric", at_least=1)
    d_model: int = setting(64, "model width", at_least=1)
    n_heads: int = setting(4, "attention heads h per layer", at_least=1)
    d_ff: int = setting(128, "feed-forward inner width", at_least=1)
    n_layers: int = setting(2, "layers: an induction head needs two", at_least=1)
    norm_first: bool = setting(True, "pre-LN (the paper's post-LN learns the heads later)")
    max_steps: int = retune(Recipe, "max_steps", 600)
    warmup_steps: int = retune(Recipe, "warmup_steps", 100)
    lr_factor: float = retune(Recipe, "lr_factor", 0.5)
    label_smoothing: float = retune(Recipe, "label_smoothing", 0.0)
# --8<-- [end:induction_recipe]

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min_half > self.max_half:
            raise ValueError(f"min_half must be an integer in [1, max_half={self.max_half}], "
                             f"got {self.min_half!r}")
        if self.vocab_size < FIRST_TOKEN + self.max_half:
            raise ValueError(f"vocab_size must be >= {FIRST_TOKEN + self.max_half} (max_half="
                             f"{self.max_half} distinct tokens), got {self.vocab_size!r}")


def induction_model_config(recipe: InductionRecipe) -> TransformerConfig:
    """A :meth:`TransformerConfig.tiny` (no dropout) with ``recipe``'s sizes, positions for
    ``2 * max_half`` tokens.

    Raises:
        ValueError: sizes that do not fit, e.g. ``d_model`` not divisible by ``n_heads``.
    """
    return TransformerConfig.tiny(vocab_size=recipe.vocab_size, d_model=recipe.d_model,
                                  n_heads=recipe.n_heads, d_ff=recipe.d_ff,
                                  n_layers=recipe.n_layers, norm_first=recipe.norm_first,
                                  max_len=2 * recipe.max_half, pad_id=PAD)


def induction_data(recipe: InductionRecipe, split: str) -> Any:
    """``"train"``: the endless :class:`~transformer.data.synthetic.RepeatedSequences`
    stream; ``"valid"`` and ``"test"``: one batch of ``recipe.eval_size`` held-out sequences
    each, from seeds the training stream never uses.

    Raises:
        ValueError: an unknown ``split``.
    """
    stream = RepeatedSequences(max_half=recipe.max_half, vocab_size=recipe.vocab_size,
                               batch_size=recipe.batch_size, min_half=recipe.min_half,
                               seed=recipe.seed)
    if split == "train":
        return stream
    if split == "valid":
        return stream.held_out(recipe.eval_size, seed=recipe.seed + 2)
    if split == "test":
        return stream.held_out(recipe.eval_size)  # seed + 1
    raise ValueError(f"split must be 'train', 'valid' or 'test', got {split!r}")


def _check_batch(batch: dict[str, Tensor]) -> None:
    if not {"tokens", "targets", "half"} <= batch.keys():
        raise ValueError("batch must be a repeated_sequence_batch, with keys 'tokens', "
                         f"'targets' and 'half', got {sorted(batch)}")


def _halves(batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Boolean ``(batch, seq)`` masks of the predictions in the first and in the second half."""
    pos = torch.arange(batch["tokens"].shape[1], device=batch["tokens"].device)
    first = pos < batch["half"][:, None]  # (B, seq): includes the first repeated token
    second = ~first & (batch["targets"] != PAD)  # (B, seq): the predictable tokens
    return first, second


@torch.no_grad()
def _nll(model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Per-token NLL ``(B, seq)`` and logits, in eval mode, on the model's device."""
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    was_training = model.training
    model.eval()
    try:
        logits = model(batch["tokens"])  # (B, seq, vocab)
    finally:
        model.train(was_training)
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch["targets"],
                                            reduction="none")  # (B, seq)
    return nll, logits


# --8<-- [start:loss_by_half]
def loss_by_half(model: nn.Module, batch: dict[str, Tensor]) -> tuple[float, float]:
    """Mean negative log-likelihood (nats per token) of the first and of the second half.

    The first half holds the ``T`` predictions made before the repeat (the last of them is
    the first repeated token, which nothing announces); the second half the ``T - 1`` tokens
    that can be copied from the context. Dropout is off while measuring.

    Args:
        model: a decoder-only model, ``model(tokens) -> (batch, seq, vocab)`` logits.
        batch: a :func:`~transformer.data.synthetic.repeated_sequence_batch`.

    Raises:
        ValueError: ``batch`` lacks ``tokens``, ``targets`` or ``half``.
    """
    _check_batch(batch)
    nll, _ = _nll(model, batch)
    first, second = (m.to(nll.device) for m in _halves(batch))
    return nll[first].mean().item(), nll[second].mean().item()
# --8<-- [end:loss_by_half]


def in_context_accuracy(model: nn.Module, batch: dict[str, Tensor]) -> float:
    """Share of the second-half tokens that the model's most likely next token gets right.

    Raises:
        ValueError: ``batch`` lacks ``tokens``, ``targets`` or ``half``.
    """
    _check_batch(batch)
    _, logits = _nll(model, batch)
    _, second = _halves(batch)
    right = logits.argmax(dim=-1).cpu() == batch["targets"].cpu()  # (B, seq)
    return right[second.cpu()].float().mean().item()


IN_CONTEXT_ACCURACY = Metric("in_context_accuracy", in_context_accuracy, target=0.99,
                             fmt="{:.1%}")

INDUCTION = Task("induction", "predict the second half of a sequence that repeats its first",
                 InductionRecipe, data=induction_data, model_config=induction_model_config,
                 metric=IN_CONTEXT_ACCURACY, model=DecoderOnlyTransformer)

"""A translation task that trains in seconds on a CPU: digits to English words.

``"4 0 7"`` → ``"four hundred seven"``. The numbers 0 … ``max_number`` are shuffled once and
split into validation, test and training numbers, so the test numbers are never seen in
training: the model must learn how the words compose, not memorize them. Everything else is
the Multi30k task's machinery (:mod:`transformer.tasks.translation`): a shared byte-level BPE
vocabulary, tied embeddings, token batches, beam search, sacreBLEU.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import Any

from transformer.model import TransformerConfig
from transformer.tasks.base import Metric, Recipe, Task, retune, setting
from transformer.tasks.translation import (
    bleu_metric,
    encode_pairs,
    held_out_set,
    text_model_config,
    token_batches,
)

__all__ = ["NUMBERS", "NumbersRecipe", "number_pairs", "number_to_words"]

_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
         "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


# --8<-- [start:words]
def number_to_words(n: int) -> str:
    """English words for ``0 <= n < 1,000,000``: 407 → ``"four hundred seven"``, 1012 →
    ``"one thousand twelve"`` (no "and", no hyphens).

    Raises:
        ValueError: ``n`` not an integer in ``[0, 1_000_000)``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < 1_000_000:
        raise ValueError(f"n must be an integer in [0, 1000000), got {n!r}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = "" if n % 100 == 0 else " " + number_to_words(n % 100)
        return f"{_ONES[n // 100]} hundred{rest}"
    rest = "" if n % 1000 == 0 else " " + number_to_words(n % 1000)
    return f"{number_to_words(n // 1000)} thousand{rest}"
# --8<-- [end:words]


@dataclass(frozen=True)
class NumbersRecipe(Recipe):
    """Settings that learn digits → words in seconds on a CPU: a 2 + 2-layer model of width
    64, a BPE vocabulary of 400, the eq. 3 schedule warmed up for 100 steps.

    Raises:
        ValueError: a setting outside its range, or ``2 * eval_size`` leaving no training
            numbers.
    """

    max_number: int = setting(999, "numbers 0..max_number are translated", at_least=10)
    eval_size: int = setting(100, "numbers held out for validation, as many for the test",
                             at_least=1)
    vocab_size: int = setting(400, "shared BPE vocabulary", at_least=259)
    max_tokens: int = setting(600, "tokens per padded batch side (§5.1)", at_least=16)
    d_model: int = setting(64, "model width", at_least=1)
    n_heads: int = setting(4, "attention heads h", at_least=1)
    d_ff: int = setting(128, "feed-forward inner width", at_least=1)
    n_layers: int = setting(2, "layers N in the encoder and in the decoder", at_least=1)
    dropout: float = setting(0.0, "P_drop (§5.4)", at_least=0, below=1)
    max_sentence_tokens: int = setting(16, "longest sentence in ids", at_least=1)
    max_steps: int = retune(Recipe, "max_steps", 1500)
    warmup_steps: int = retune(Recipe, "warmup_steps", 100)
    lr_factor: float = retune(Recipe, "lr_factor", 0.5)
    eval_every: int = retune(Recipe, "eval_every", 100)

    def __post_init__(self) -> None:
        super().__post_init__()
        if 2 * self.eval_size >= self.max_number + 1:
            raise ValueError(f"eval_size must leave numbers to train on: 2 * eval_size < "
                             f"max_number + 1 = {self.max_number + 1}, got {self.eval_size}")


def number_pairs(recipe: NumbersRecipe, split: str) -> list[tuple[str, str]]:
    """``("4 0 7", "four hundred seven")`` pairs of ``split``: the numbers 0..max_number,
    shuffled with ``recipe.seed``; the first ``eval_size`` are validation, the next
    ``eval_size`` the test, the rest training.

    Raises:
        ValueError: an unknown split.
    """
    numbers = list(range(recipe.max_number + 1))
    random.Random(f"numbers/{recipe.seed}").shuffle(numbers)
    k = recipe.eval_size
    parts = {"valid": numbers[:k], "test": numbers[k:2 * k], "train": numbers[2 * k:]}
    if split not in parts:
        raise ValueError(f"split must be 'train', 'valid' or 'test', got {split!r}")
    return [(" ".join(str(n)), number_to_words(n)) for n in parts[split]]


@functools.lru_cache(maxsize=8)
def _tokenizer(max_number: int, eval_size: int, seed: int, vocab_size: int) -> Any:
    from transformer.data.tokenizers import BPETokenizer

    recipe = NumbersRecipe(max_number=max_number, eval_size=eval_size, seed=seed,
                           vocab_size=vocab_size)
    pairs = number_pairs(recipe, "train")
    return BPETokenizer.train((text for pair in pairs for text in pair), vocab_size=vocab_size)


def numbers_tokenizer(recipe: NumbersRecipe) -> Any:
    """The BPE vocabulary shared by digits and words, learned from the training pairs."""
    return _tokenizer(recipe.max_number, recipe.eval_size, recipe.seed, recipe.vocab_size)


def numbers_data(recipe: NumbersRecipe, split: str) -> Any:
    """``"train"``: token batches (``epoch -> batches``); ``"valid"``/``"test"``: a
    :class:`~transformer.tasks.translation.ParallelSet` of held-out numbers.

    Raises:
        ValueError: an unknown split.
    """
    tokenizer = numbers_tokenizer(recipe)
    pairs = number_pairs(recipe, split)
    if split == "train":
        encoded, _, report = encode_pairs(pairs, tokenizer, max_tokens=recipe.max_sentence_tokens,
                                          name="numbers train")
        batches = token_batches(encoded, max_tokens=recipe.max_tokens, bos_id=tokenizer.bos_id,
                                eos_id=tokenizer.eos_id, pad_id=tokenizer.pad_id,
                                seed=recipe.seed)
        batches.report = report  # type: ignore[attr-defined]
        return batches
    return held_out_set(pairs, tokenizer, max_tokens=recipe.max_sentence_tokens,
                        name=f"numbers {split}")


def numbers_model_config(recipe: NumbersRecipe) -> TransformerConfig:
    """A small tied encoder-decoder over the shared vocabulary.

    Raises:
        ValueError: sizes that do not fit, e.g. ``d_model`` not divisible by ``n_heads``.
    """
    return text_model_config(recipe, numbers_tokenizer(recipe))


NUMBERS = Task("numbers", "digits to English words (sacreBLEU)", NumbersRecipe, data=numbers_data,
               model_config=numbers_model_config,
               metric=Metric("bleu", bleu_metric, target=99.0, fmt="{:.2f}"),
               tokenizer=numbers_tokenizer)

"""Data for training and testing the model: synthetic tasks with exact answers (copy, reverse,
sort) and the five-word seed example. Builds on the model, the trainer and decoding; they never
import it."""

from transformer.data.synthetic import (
    BOS,
    EOS,
    FIRST_TOKEN,
    PAD,
    SyntheticTask,
    TaskRecipe,
    exact_match,
    exact_match_rate,
    seed_example,
    synthetic_batch,
    train_until_exact_match,
)

__all__ = [
    "BOS",
    "EOS",
    "FIRST_TOKEN",
    "PAD",
    "SyntheticTask",
    "TaskRecipe",
    "exact_match",
    "exact_match_rate",
    "seed_example",
    "synthetic_batch",
    "train_until_exact_match",
]

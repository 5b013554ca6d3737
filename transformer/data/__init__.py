"""Data only: synthetic tasks with exact answers (copy, reverse, sort) and the five-word seed
example. Builds on nothing of ours but torch; the recipes that train on it and their metrics live
in :mod:`transformer.tasks`."""

from transformer.data.synthetic import (
    BOS,
    EOS,
    FIRST_TOKEN,
    PAD,
    SYNTHETIC_TASKS,
    SyntheticTask,
    seed_example,
    synthetic_batch,
)

__all__ = [
    "BOS",
    "EOS",
    "FIRST_TOKEN",
    "PAD",
    "SYNTHETIC_TASKS",
    "SyntheticTask",
    "seed_example",
    "synthetic_batch",
]

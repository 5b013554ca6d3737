"""Data for training and testing the model: the dataset registry and its download cache
(Multi30k, Tiny Shakespeare, WikiText-2, SQuAD; ``datasets``), and synthetic tasks with exact
answers (copy, reverse, sort) with the five-word seed example (``synthetic``). ``datasets``
builds on nothing of ours; ``synthetic`` builds on the model, the trainer and decoding, which
never import it."""

from transformer.data.datasets import (
    DATASETS,
    Archive,
    Dataset,
    DatasetError,
    RemoteFile,
    cache_dir,
    fetch,
    fetch_all,
    multi30k,
    read_parallel,
    status,
    tiny_shakespeare,
    wikitext2,
)
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
    "DATASETS",
    "EOS",
    "FIRST_TOKEN",
    "PAD",
    "Archive",
    "Dataset",
    "DatasetError",
    "RemoteFile",
    "SyntheticTask",
    "TaskRecipe",
    "cache_dir",
    "exact_match",
    "exact_match_rate",
    "fetch",
    "fetch_all",
    "multi30k",
    "read_parallel",
    "seed_example",
    "status",
    "synthetic_batch",
    "tiny_shakespeare",
    "train_until_exact_match",
    "wikitext2",
]

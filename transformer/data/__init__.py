"""Data only, building on nothing of ours but torch and its libraries: the dataset registry and
its download cache (Multi30k, Tiny Shakespeare, WikiText-2, SQuAD; ``datasets``), tokenizers
(characters, byte-level BPE; ``tokenizers``), pretrained word vectors (``vectors``), the SQuAD
reader (``squad``), and synthetic tasks with exact answers (copy, reverse, sort) with the
five-word seed example (``synthetic``). The recipes that train on them and their metrics live in
:mod:`transformer.tasks`."""

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
    SYNTHETIC_TASKS,
    SyntheticTask,
    seed_example,
    synthetic_batch,
)
from transformer.data.tokenizers import BPETokenizer, CharTokenizer, Tokenizer, load_tokenizer
from transformer.data.vectors import VectorsReport, load_pretrained_embedding, read_word_vectors

__all__ = [
    "BOS",
    "DATASETS",
    "EOS",
    "FIRST_TOKEN",
    "PAD",
    "SYNTHETIC_TASKS",
    "Archive",
    "BPETokenizer",
    "CharTokenizer",
    "Dataset",
    "DatasetError",
    "RemoteFile",
    "SyntheticTask",
    "Tokenizer",
    "VectorsReport",
    "cache_dir",
    "fetch",
    "fetch_all",
    "load_pretrained_embedding",
    "load_tokenizer",
    "multi30k",
    "read_parallel",
    "read_word_vectors",
    "seed_example",
    "status",
    "synthetic_batch",
    "tiny_shakespeare",
    "wikitext2",
]

"""Synthetic data: every batch holds the exact answer, in the trainer's format, reproducibly;
and the data module stands alone (the recipes and metrics are in ``tests/test_tasks.py``)."""

import ast
from pathlib import Path

import pytest
import torch

import transformer.data
from transformer.data.synthetic import (
    BOS,
    EOS,
    FIRST_TOKEN,
    PAD,
    SEED_PAIRS,
    SEED_VOCAB,
    SYNTHETIC_TASKS,
    RepeatedSequences,
    SyntheticTask,
    decode_seed_tokens,
    encode_seed_text,
    repeated_sequence_batch,
    seed_example,
    synthetic_batch,
)
from transformer.training.trainer import TokenLoss


def _rows(batch):
    """(source, target) lists of each row, padding stripped, target read from tgt_out."""
    for src, tgt_in, tgt_out in zip(batch["src"], batch["tgt_in"], batch["tgt_out"], strict=True):
        n = int((src != PAD).sum())
        yield src[:n].tolist(), tgt_in.tolist(), tgt_out.tolist(), n


def test_special_ids_are_pad_0_bos_1_eos_2_and_tokens_start_at_3():
    assert (PAD, BOS, EOS, FIRST_TOKEN) == (0, 1, 2, 3)


@pytest.mark.parametrize("task", SYNTHETIC_TASKS)
@pytest.mark.parametrize("min_len", [None, 1, 4])
def test_targets_are_the_source_copied_reversed_or_sorted(task, min_len):
    g = torch.Generator().manual_seed(0)
    batch = synthetic_batch(task, 50, 8, 12, min_len=min_len, generator=g)
    answer = {"copy": list, "reverse": lambda s: s[::-1], "sort": sorted}[task]
    for src, tgt_in, tgt_out, n in _rows(batch):
        target = answer(src)
        assert tgt_out == target + [EOS] + [PAD] * (8 - n)
        assert tgt_in == ([BOS, *target, EOS] + [PAD] * 8)[:9]  # EOS only in a short row


@pytest.mark.parametrize("task", SYNTHETIC_TASKS)
def test_batches_have_the_trainers_keys_shapes_and_dtype(task):
    batch = synthetic_batch(task, 3, 5, 10, min_len=1)
    assert set(batch) == {"src", "tgt_in", "tgt_out"} <= set(batch)
    assert batch["src"].shape == (3, 5)
    assert batch["tgt_in"].shape == batch["tgt_out"].shape == (3, 6)
    assert all(t.dtype == torch.long for t in batch.values())
    # tgt_in is tgt_out shifted right by one, after BOS (§3.1: outputs offset by one position)
    assert torch.equal(batch["tgt_in"][:, 1:], batch["tgt_out"][:, :-1])


def test_source_tokens_are_ordinary_ids_and_every_one_is_drawn():
    src = synthetic_batch("copy", 200, 10, 13, generator=torch.Generator().manual_seed(1))["src"]
    assert src.min() >= FIRST_TOKEN and src.max() <= 12
    assert set(src.unique().tolist()) == set(range(FIRST_TOKEN, 13))


def test_variable_lengths_cover_min_len_to_seq_len_and_padding_is_only_at_the_end():
    src = synthetic_batch("copy", 500, 6, 9, min_len=2,
                          generator=torch.Generator().manual_seed(0))["src"]
    lengths = (src != PAD).sum(dim=1)
    assert set(lengths.tolist()) == {2, 3, 4, 5, 6}
    assert torch.equal(src != PAD, torch.arange(6) < lengths[:, None])


def test_same_seed_gives_the_same_batches_and_another_seed_different_ones():
    def first_two(seed):
        stream = iter(SyntheticTask("reverse", vocab_size=13, seq_len=10, batch_size=4,
                                    min_len=1, seed=seed))
        return [next(stream) for _ in range(2)]

    a, b, c = first_two(0), first_two(0), first_two(1)
    assert all(torch.equal(x[k], y[k]) for x, y in zip(a, b, strict=True) for k in x)
    assert not torch.equal(a[0]["src"], c[0]["src"])
    assert not torch.equal(a[0]["src"], a[1]["src"])  # the stream moves on


def test_held_out_examples_come_from_another_stream_than_training():
    task = SyntheticTask("copy", vocab_size=13, seq_len=10, batch_size=64, seed=0)
    test = task.held_out(1000)
    assert test["src"].shape == (1000, 10)
    train = torch.cat([b["src"] for b, _ in zip(task, range(20), strict=False)])  # 1,280 rows
    seen = {tuple(r) for r in train.tolist()}
    assert sum(tuple(r) in seen for r in test["src"].tolist()) < 5  # 10^10 possible sources
    assert torch.equal(task.held_out(1000)["src"], test["src"])  # reproducible too


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(task="shuffle"), r"task must be one of \['copy', 'reverse', 'sort'\], got 'shuffle'"),
    (dict(batch_size=0), r"batch_size must be an integer >= 1, got 0"),
    (dict(seq_len=-1), r"seq_len must be an integer >= 1, got -1"),
    (dict(vocab_size=3), r"vocab_size must be an integer >= 4, got 3"),
    (dict(min_len=9), r"min_len must be an integer in \[1, seq_len=5\], got 9"),
    (dict(min_len=0), r"min_len must be an integer in \[1, seq_len=5\], got 0"),
])
def test_bad_arguments_raise_value_errors_naming_them(kwargs, message):
    args = dict(task="copy", batch_size=2, seq_len=5, vocab_size=10) | kwargs
    with pytest.raises(ValueError, match=message):
        synthetic_batch(args.pop("task"), **args)
    with pytest.raises(ValueError, match=message):
        SyntheticTask(**(dict(args, task=kwargs.get("task", "copy"))))


def test_seed_example_is_two_sentences_and_targets_are_tokens_shifted_by_one():
    data = seed_example()
    tokens, targets = data["tokens"], data["targets"]
    assert tokens.shape == targets.shape == (2, 6)
    assert torch.equal(tokens[:, 1:], targets[:, :-1])  # the next token at every position
    assert decode_seed_tokens(torch.cat([tokens[0], targets[0, -1:]])) == \
        "<bos> what is CNN <eos> Great <eos>"
    assert len(SEED_VOCAB) == 5 and int(tokens.max()) < FIRST_TOKEN + len(SEED_VOCAB)
    assert [q for q, _ in SEED_PAIRS] == ["what is CNN", "CNN is what"]
    # the trainer's loss accepts the decoder-only format
    logits = torch.zeros(2, 6, FIRST_TOKEN + len(SEED_VOCAB))

    def uniform(tokens):
        return logits

    loss, n = TokenLoss(0.0, PAD)(uniform, data)
    assert n == 12 and abs(loss.item() / n - torch.log(torch.tensor(8.0)).item()) < 1e-6


def test_seed_words_round_trip_and_unknown_words_are_named():
    assert encode_seed_text("what is CNN") == [3, 4, 5]
    assert decode_seed_tokens(encode_seed_text("CNN is Great news")) == "CNN is Great news"
    with pytest.raises(ValueError, match="word 'BBC' is not in the seed vocabulary"):
        encode_seed_text("what is BBC")
    with pytest.raises(ValueError, match=r"ids must be in \[0, 8\), got 8"):
        decode_seed_tokens([8])


def test_repeated_sequences_repeat_a_first_half_of_distinct_tokens_then_pad():
    batch = repeated_sequence_batch(300, 6, 12, min_half=2,
                                    generator=torch.Generator().manual_seed(0))
    tokens, targets, half = batch["tokens"], batch["targets"], batch["half"]
    assert tokens.shape == targets.shape == (300, 11) and half.shape == (300,)
    assert set(half.tolist()) == {2, 3, 4, 5, 6}
    assert torch.equal(tokens[:, 1:], targets[:, :-1])  # targets: the next token
    for row, target, t in zip(tokens.tolist(), targets.tolist(), half.tolist(), strict=True):
        sequence = row + target[-1:]  # (12,) the whole row
        first = sequence[:t]
        assert sequence == first + first + [PAD] * (12 - 2 * t)
        assert len(set(first)) == t and min(first) >= FIRST_TOKEN and max(first) < 12
        for i in range(t, 2 * t - 1):  # the second half: the token after the previous occurrence
            assert target[i] == row[i - t + 1] and row[i - t] == row[i]


def test_repeated_sequences_without_min_half_all_have_max_half_and_streams_are_reproducible():
    assert repeated_sequence_batch(4, 5, 10)["half"].tolist() == [5, 5, 5, 5]
    stream = RepeatedSequences(max_half=5, vocab_size=10, batch_size=4, min_half=2, seed=3)
    a, b = (next(iter(stream)) for _ in range(2))
    assert all(torch.equal(a[k], b[k]) for k in a)  # every iter() starts the same stream
    test = stream.held_out(50)
    assert torch.equal(test["tokens"], stream.held_out(50)["tokens"])
    assert not torch.equal(test["tokens"][:4], a["tokens"])  # another seed than training


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(batch_size=0), r"batch_size must be an integer >= 1, got 0"),
    (dict(max_half=0), r"max_half must be an integer >= 1, got 0"),
    (dict(vocab_size=8), r"vocab_size must be an integer >= 9 \(the 3 special ids and "
                         r"max_half=6 distinct tokens\), got 8"),
    (dict(min_half=7), r"min_half must be an integer in \[1, max_half=6\], got 7"),
])
def test_repeated_sequences_refuse_bad_arguments_naming_them(kwargs, message):
    args = dict(batch_size=2, max_half=6, vocab_size=12) | kwargs
    with pytest.raises(ValueError, match=message):
        repeated_sequence_batch(**args)
    with pytest.raises(ValueError, match=message):
        RepeatedSequences(**args)


def test_the_data_package_imports_nothing_of_ours_outside_it():
    """data builds on nothing of ours: no model, training, generation or tasks (DESIGN.md)."""
    data_dir = Path(transformer.data.__file__).parent
    imported = set()
    for path in data_dir.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    ours = {name for name in imported if name.split(".")[0] == "transformer"}
    assert ours and all(name.startswith("transformer.data") for name in ours), ours

"""The run format: the model rebuilds from its checkpoint alone, and a broken checkpoint is a
CheckpointError naming the file, never a raw library error or a huge allocation."""

import os
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from transformer.model import DecoderOnlyTransformer, Transformer, TransformerConfig
from transformer.training import (
    CheckpointError,
    Run,
    TrainConfig,
    Trainer,
    load_checkpoint,
    load_run,
    save_checkpoint,
)
from transformer.training.checkpoint import MODEL_FILE, STATE_FILE

V = 12


def _batches(epoch: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(epoch)
    src = torch.randint(3, V, (2, 4, 6), generator=g)  # (batches, B, S)
    return [{"src": s, "tgt_in": s, "tgt_out": s} for s in src]


def _trained(tmp_path: Path, model: nn.Module | None = None) -> tuple[Trainer, Path]:
    """Two steps of a tiny model, saved the way `transformer train` lays out a run."""
    torch.manual_seed(0)
    model = model or Transformer(TransformerConfig.tiny(vocab_size=V))
    trainer = Trainer(model, TrainConfig(max_steps=2, warmup_steps=2, device="cpu",
                                         progress=False), _batches)
    trainer.train()
    run = tmp_path / "run"
    run.mkdir()
    trainer.save(run / "checkpoint", extra={"task": "copy", "recipe": {"seq_len": 6}})
    return trainer, run


def _state(ckpt: Path) -> dict:
    return torch.load(ckpt / STATE_FILE, weights_only=True)


def _rewrite_config(ckpt: Path, **changes) -> None:
    state = _state(ckpt)
    state["model"]["config"] |= changes
    torch.save(state, ckpt / STATE_FILE)


@pytest.fixture
def saved(tmp_path) -> Path:
    """A checkpoint directory of a trained encoder-decoder."""
    _, run = _trained(tmp_path)
    return run / "checkpoint"


# ------------------------------------------------------------------------- one run format


def test_the_checkpoint_alone_rebuilds_the_trained_model(tmp_path):
    trainer, run = _trained(tmp_path)
    assert sorted(p.name for p in (run / "checkpoint").iterdir()) == [MODEL_FILE, STATE_FILE]
    state = _state(run / "checkpoint")
    assert state["model"] == {"class": "Transformer", "config": trainer.model.config.to_dict()}

    loaded = load_run(run / "checkpoint")
    assert isinstance(loaded, Run)
    assert type(loaded.model) is Transformer and not loaded.model.training
    assert loaded.config == trainer.model.config
    assert loaded.path == run / "checkpoint"
    assert loaded.extra["task"] == "copy" and loaded.extra["recipe"] == {"seq_len": 6}
    assert loaded.extra["step"] == 2 and loaded.extra["train_config"]["max_steps"] == 2
    assert loaded.model.generator.weight is loaded.model.src_embed.embedding.weight  # tied
    src = torch.randint(3, V, (3, 6))
    trainer.model.eval()
    with torch.no_grad():
        assert torch.equal(loaded.model(src, src), trainer.model(src, src))


def test_a_run_directory_and_its_checkpoint_directory_load_the_same_run(tmp_path):
    _, run = _trained(tmp_path)
    (run / "metrics.jsonl").write_text("{}\n")
    from_run, from_ckpt = load_run(run), load_run(run / "checkpoint")
    assert from_run.path == from_ckpt.path == run / "checkpoint"
    for a, b in zip(from_run.model.state_dict().values(), from_ckpt.model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)


def test_a_decoder_only_model_without_tied_embeddings_round_trips(tmp_path):
    torch.manual_seed(0)
    model = DecoderOnlyTransformer(TransformerConfig.tiny(vocab_size=V, tie_embeddings=False,
                                                          positional="learned"))
    save_checkpoint(tmp_path / "ck", model, extra={"note": "lm"})
    loaded = load_run(tmp_path / "ck")
    assert type(loaded.model) is DecoderOnlyTransformer and loaded.config == model.config
    tokens = torch.randint(1, V, (2, 7))
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded.model(tokens), model(tokens))


def test_load_run_falls_back_to_an_interrupted_save_in_a_run_directory(tmp_path):
    _, run = _trained(tmp_path)
    os.replace(run / "checkpoint", run / "checkpoint.old")  # a crash between the two renames
    assert load_run(run).path == run / "checkpoint.old"


def test_load_run_leaves_the_global_random_state_alone(saved):
    torch.manual_seed(7)
    random.seed(7)
    expected = (torch.rand(3), random.random())
    torch.manual_seed(7)
    random.seed(7)
    load_run(saved)
    assert torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1]


def test_load_run_puts_the_model_on_map_location_and_rejects_a_bad_device(saved):
    assert next(load_run(saved, map_location=torch.device("cpu")).model.parameters()).device \
        == torch.device("cpu")
    with pytest.raises(ValueError, match="map_location"):
        load_run(saved, map_location="not-a-device")


def test_a_checkpoint_of_a_model_without_config_cannot_be_loaded_as_a_run(tmp_path):
    save_checkpoint(tmp_path / "ck", nn.Linear(3, 3))
    assert _state(tmp_path / "ck")["model"] is None
    with pytest.raises(CheckpointError, match=r"holds no model config.*load_checkpoint"):
        load_run(tmp_path / "ck")


def test_no_checkpoint_at_all_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_run(tmp_path / "nothing")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_run(tmp_path / "empty_run")


# ---------------------------------------------------------------- broken weights files


def _weights_bytes(saved: Path) -> bytes:
    return (saved / MODEL_FILE).read_bytes()


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda data: b"", "empty"),
        (lambda data: data[: len(data) - 100], "truncated"),  # header whole, data cut short
        (lambda data: data[:5], "truncated"),  # not even the header's length
        (lambda data: random.Random(0).randbytes(len(data)), "random bytes"),
    ],
    ids=["empty", "truncated-data", "truncated-header", "random-bytes"],
)
def test_a_damaged_weights_file_is_a_checkpoint_error_naming_it(saved, damage, why):
    (saved / MODEL_FILE).write_bytes(damage(_weights_bytes(saved)))
    model = Transformer(TransformerConfig.tiny(vocab_size=V))
    for load in (lambda: load_run(saved), lambda: load_checkpoint(saved, model)):
        with pytest.raises(CheckpointError, match=rf"{MODEL_FILE}.*(empty|truncated|not a)"):
            load()


def test_a_missing_weights_file_is_a_checkpoint_error_naming_it(saved):
    (saved / MODEL_FILE).unlink()
    with pytest.raises(CheckpointError, match=rf"{MODEL_FILE} is missing"):
        load_run(saved)
    with pytest.raises(CheckpointError, match=rf"{MODEL_FILE} is missing"):
        load_checkpoint(saved, Transformer(TransformerConfig.tiny(vocab_size=V)))


def test_weights_of_another_dtype_are_refused_by_load_run(tmp_path):
    model = Transformer(TransformerConfig.tiny(vocab_size=V)).double()
    save_checkpoint(tmp_path / "ck", model)
    with pytest.raises(CheckpointError, match=r"F64.*needs F32"):
        load_run(tmp_path / "ck")


def test_a_weights_file_with_an_extra_or_a_missing_tensor_is_refused(saved):
    from safetensors.torch import load_file

    tensors = load_file(saved / MODEL_FILE)
    save_file(tensors | {"stowaway": torch.zeros(2)}, saved / MODEL_FILE)
    with pytest.raises(CheckpointError, match="unexpected tensor 'stowaway'"):
        load_run(saved)
    name = "encoder.layers.0.feed_forward.w_1.weight"
    if name not in tensors:
        name = sorted(k for k in tensors if k.startswith("encoder."))[0]
    save_file({k: v for k, v in tensors.items() if k != name}, saved / MODEL_FILE)
    with pytest.raises(CheckpointError, match=f"missing tensor '{name}'"):
        load_run(saved)


def test_load_checkpoint_refuses_misfit_weights_before_touching_the_model(saved):
    wider = Transformer(TransformerConfig.tiny(vocab_size=V + 1))
    before = [p.detach().clone() for p in wider.state_dict().values()]
    with pytest.raises(CheckpointError, match=r"does not fit.*\[12, 32\].*\[13, 32\]"):
        load_checkpoint(saved, wider)
    assert all(torch.equal(a, b) for a, b in zip(before, wider.state_dict().values(),
                                                 strict=True))


# ------------------------------------------------------------------ broken state files


@pytest.mark.parametrize(
    "damage",
    [lambda data: b"", lambda data: data[: len(data) // 2], lambda data: data[:10],
     lambda data: random.Random(1).randbytes(len(data))],
    ids=["empty", "truncated-half", "truncated-10-bytes", "random-bytes"],
)
def test_a_damaged_state_file_is_a_checkpoint_error_naming_it(saved, damage):
    state = saved / STATE_FILE
    state.write_bytes(damage(state.read_bytes()))
    model = Transformer(TransformerConfig.tiny(vocab_size=V))
    for load in (lambda: load_run(saved), lambda: load_checkpoint(saved, model)):
        with pytest.raises(CheckpointError, match=rf"{STATE_FILE}.*(empty|truncated|corrupt)"):
            load()


def test_a_state_file_with_entries_of_the_wrong_kind_is_refused(saved):
    state = _state(saved)
    state["extra"] = [1, 2]
    torch.save(state, saved / STATE_FILE)
    with pytest.raises(CheckpointError, match=r"'extra' must be a dict, got list"):
        load_run(saved)


# ------------------------------------------------------------------ broken stored configs


@pytest.mark.parametrize("config", [[1, 2], "vocab_size=12", None, 12])
def test_a_stored_config_that_is_not_a_dict_is_refused(saved, config):
    state = _state(saved)
    state["model"]["config"] = config
    torch.save(state, saved / STATE_FILE)
    with pytest.raises(CheckpointError, match=r"must be a dict of TransformerConfig fields"):
        load_run(saved)


@pytest.mark.parametrize(
    ("field", "value"),
    [("vocab_size", "12"), ("vocab_size", 12.0), ("n_layers", True), ("dropout", "0.1"),
     ("norm_first", "yes"), ("tie_embeddings", 1), ("tgt_vocab_size", [12]),
     ("activation", 3)],
)
def test_a_stored_config_field_of_the_wrong_type_is_refused_by_name(saved, field, value):
    _rewrite_config(saved, **{field: value})
    with pytest.raises(CheckpointError, match=f"field '{field}' must be"):
        load_run(saved)


def test_an_unknown_or_invalid_stored_config_field_is_refused_by_name(saved):
    _rewrite_config(saved, colour="blue")
    with pytest.raises(CheckpointError, match="colour"):
        load_run(saved)
    _rewrite_config(saved, colour=None)
    state = _state(saved)
    del state["model"]["config"]["colour"]
    state["model"]["config"]["n_heads"] = 5  # 32 is not divisible by 5
    torch.save(state, saved / STATE_FILE)
    with pytest.raises(CheckpointError, match="n_heads"):
        load_run(saved)


def test_an_unknown_model_class_is_refused(saved):
    state = _state(saved)
    state["model"]["class"] = "os.system"
    torch.save(state, saved / STATE_FILE)
    with pytest.raises(CheckpointError, match=r"model class 'os.system' is not one of"):
        load_run(saved)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"vocab_size": 10**13}, r"does not fit.*10000000000000"),  # 1.3 PB of embeddings
        ({"d_model": 2**20, "n_heads": 4}, "does not fit"),
        ({"d_ff": 10**12}, "does not fit"),
        ({"n_layers": 10**9}, "n_layers=1000000000"),  # a billion modules, before building any
        ({"max_len": 10**12}, "max_len=1000000000000"),  # a sinusoidal table not in the file
    ],
    ids=["vocab", "d_model", "d_ff", "n_layers", "max_len"],
)
def test_a_stored_config_with_huge_sizes_is_refused_without_allocating(saved, changes, match):
    _rewrite_config(saved, **changes)
    # Allocating any of these would fail with a RuntimeError (or exhaust memory), not this:
    with pytest.raises(CheckpointError, match=match):
        load_run(saved)


def test_a_stored_config_that_disagrees_with_the_weights_is_refused(saved):
    _rewrite_config(saved, d_ff=128)  # plausible, but the file holds d_ff = 64
    with pytest.raises(CheckpointError, match=r"does not fit.*\[64, 32\].*needs F32 \[128, 32\]"):
        load_run(saved)

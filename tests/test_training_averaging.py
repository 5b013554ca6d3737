"""Checkpoint averaging (§6.1) and the trainer's last-k step checkpoints."""

from __future__ import annotations

import pytest
import torch

from transformer.model import Transformer, TransformerConfig
from transformer.training import (
    CheckpointError,
    TrainConfig,
    Trainer,
    average_checkpoints,
    average_state_dicts,
    save_checkpoint,
    step_checkpoints,
)


def _model(seed: int, **changes) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(TransformerConfig.tiny(vocab_size=11, **changes))


def test_average_of_identical_checkpoints_is_that_checkpoint(tmp_path) -> None:
    model = _model(0)
    paths = [save_checkpoint(tmp_path / f"c{i}", model) for i in range(3)]
    run = average_checkpoints(paths)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(run.model.state_dict()[name], tensor, rtol=0, atol=0)


def test_average_of_two_checkpoints_is_the_hand_computed_mean(tmp_path) -> None:
    a, b = _model(0), _model(1)
    run = average_checkpoints([save_checkpoint(tmp_path / "a", a),
                               save_checkpoint(tmp_path / "b", b)])
    sa, sb = a.state_dict(), b.state_dict()
    averaged = run.model.state_dict()
    for name in sa:
        torch.testing.assert_close(averaged[name], (sa[name] + sb[name]) / 2)
    assert not torch.equal(averaged["generator.weight"], sa["generator.weight"])
    assert run.extra["averaged_from"] == [str(tmp_path / "a"), str(tmp_path / "b")]


def test_tied_weights_stay_tied_after_averaging(tmp_path) -> None:
    run = average_checkpoints([save_checkpoint(tmp_path / "a", _model(0)),
                               save_checkpoint(tmp_path / "b", _model(1))])
    model = run.model
    assert model.config.tie_embeddings
    assert model.generator.weight is model.src_embed.weight  # one tensor, not two equal copies
    assert model.tgt_embed.weight is model.src_embed.weight


def test_integer_buffers_are_copied_from_the_last_state_dict() -> None:
    first = {"w": torch.tensor([0.0, 2.0]), "count": torch.tensor([1, 2])}
    last = {"w": torch.tensor([2.0, 4.0]), "count": torch.tensor([7, 9])}
    average = average_state_dicts([first, last])
    assert torch.equal(average["w"], torch.tensor([1.0, 3.0]))
    assert torch.equal(average["count"], last["count"]) and average["count"].dtype == torch.int64


def test_mismatched_state_dicts_are_refused_naming_the_key() -> None:
    with pytest.raises(ValueError, match=r"state_dicts\[1\]\['w'\] has shape \[3\]"):
        average_state_dicts([{"w": torch.zeros(2)}, {"w": torch.zeros(3)}])
    with pytest.raises(ValueError, match="missing \\['w'\\]"):
        average_state_dicts([{"w": torch.zeros(2)}, {"v": torch.zeros(2)}])
    with pytest.raises(ValueError, match="at least one"):
        average_state_dicts([])


def test_checkpoints_of_different_models_are_refused_naming_both(tmp_path) -> None:
    a = save_checkpoint(tmp_path / "a", _model(0))
    b = save_checkpoint(tmp_path / "b", _model(0, d_ff=48))
    with pytest.raises(CheckpointError, match=rf"cannot average {a} and {b}: different models"):
        average_checkpoints([a, b])
    with pytest.raises(ValueError, match="non-empty list"):
        average_checkpoints([])


def _batches(epoch: int):
    g = torch.Generator().manual_seed(epoch)
    for _ in range(4):
        src = torch.randint(3, 11, (4, 5), generator=g)
        bos = torch.ones(4, 1, dtype=torch.long)
        yield {"src": src, "tgt_in": torch.cat([bos, src], 1),
               "tgt_out": torch.cat([src, torch.full((4, 1), 2)], 1)}


def test_trainer_keeps_the_last_k_step_checkpoints(tmp_path) -> None:
    config = TrainConfig(max_steps=10, warmup_steps=4, device="cpu", progress=False,
                         checkpoint_every=2, checkpoint_dir=str(tmp_path),
                         keep_checkpoints=3)
    trainer = Trainer(_model(0), config, _batches)
    trainer.train()
    kept = step_checkpoints(tmp_path)
    assert [p.name for p in kept] == ["step-6", "step-8", "step-10"]
    assert (tmp_path / "latest").is_dir()
    run = average_checkpoints(kept)
    assert run.extra["step"] == 10


def test_keep_checkpoints_needs_checkpoint_every() -> None:
    with pytest.raises(ValueError, match="keep_checkpoints needs checkpoint_every"):
        TrainConfig(keep_checkpoints=5)
    with pytest.raises(ValueError, match="keep_checkpoints must be None or >= 1"):
        TrainConfig(keep_checkpoints=0, checkpoint_every=1, checkpoint_dir="x")

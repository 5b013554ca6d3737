"""The trainer: learns, resumes bit-identically, accumulates, clips, logs (§5.3–5.4)."""

import copy
import json
import math
import random
import re

import pytest
import torch
from matplotlib.figure import Figure

from transformer.model import DecoderOnlyTransformer, Transformer, TransformerConfig
from transformer.training import checkpoint
from transformer.training.schedule import noam_lr
from transformer.training.trainer import (
    TrainConfig,
    Trainer,
    TrainingDiverged,
    plot_metrics,
    read_metrics,
)

V = 12


def counting_batches(epoch: int, n: int = 4, batch: int = 16, length: int = 10) -> list[dict]:
    """Decoder-only batches whose next token is always the current one plus one (mod V-1)."""
    g = torch.Generator().manual_seed(epoch)
    out = []
    for _ in range(n):
        start = torch.randint(0, V - 1, (batch, 1), generator=g)
        seq = (start + torch.arange(length + 1)) % (V - 1) + 1  # ids 1..V-1, 0 is padding
        out.append({"tokens": seq[:, :-1], "targets": seq[:, 1:]})
    return out


def copy_batches(epoch: int, n: int = 5) -> list[dict]:
    """Encoder-decoder batches of a copy task, with padding, shuffled differently per epoch."""
    g = torch.Generator().manual_seed(1000)
    batches = []
    for _ in range(n):
        src = torch.randint(3, V, (4, 6), generator=g)
        src[0, 4:] = 0  # a padded sentence
        tgt = torch.cat([src, torch.zeros(4, 1, dtype=torch.long)], 1)
        tgt[torch.arange(4), (src != 0).sum(1)] = 2  # EOS after the last real token
        tgt_in = torch.cat([torch.ones(4, 1, dtype=torch.long), tgt[:, :-1]], 1)  # BOS + shift
        tgt_in[tgt_in == 2] = 0
        batches.append({"src": src, "tgt_in": tgt_in, "tgt_out": tgt})
    random.Random(epoch).shuffle(batches)
    return batches


def _config(**changes) -> TrainConfig:
    return TrainConfig(**({"max_steps": 6, "warmup_steps": 4, "device": "cpu",
                           "progress": False} | changes))


def _lm(seed: int = 0, **changes) -> DecoderOnlyTransformer:
    torch.manual_seed(seed)
    return DecoderOnlyTransformer(TransformerConfig.tiny(vocab_size=V, **changes))


def _seq2seq(seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(TransformerConfig.tiny(vocab_size=V, dropout=0.1))


def test_loss_decreases_on_a_counting_task():
    trainer = Trainer(_lm(dropout=0.1),
                      _config(max_steps=40, warmup_steps=10, label_smoothing=0.0),
                      counting_batches)
    history = trainer.train()
    assert history[0]["loss"] > math.log(V)  # starts no better than uniform guessing
    assert history[-1]["loss"] < 0.3


def test_train_stops_after_k_steps_with_the_schedule_from_step_one():
    trainer = Trainer(_lm(), _config(max_steps=100), counting_batches)
    history = trainer.train(until_step=3)
    assert trainer.step == 3
    assert [m["step"] for m in history] == [1, 2, 3]
    assert [m["lr"] for m in history] == [noam_lr(s, 32, 4) for s in (1, 2, 3)]
    assert all(m["tokens"] == 16 * 10 and m["tokens_per_s"] > 0 for m in history)
    assert len(trainer.train(until_step=5)) == 2  # continues from where it stopped


def _weights(model):
    return [p.detach().clone() for p in model.state_dict().values()]


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    config = _config(grad_accum_steps=2)  # 6 steps × 2 micro-batches cross 5-batch epochs
    straight = Trainer(_seq2seq(0), config, copy_batches)
    expected = [m["loss"] for m in straight.train()]

    first = Trainer(_seq2seq(0), config, copy_batches)
    first.train(until_step=3)
    first.save(tmp_path / "ck")
    second = Trainer(_seq2seq(1), config, copy_batches)  # other weights, fresh RNG
    second.resume(tmp_path / "ck")
    assert (second.step, second.epoch, second.batch_in_epoch) == (3, 1, 1)
    resumed = [m["loss"] for m in second.train()]

    assert resumed == expected[3:]
    for a, b in zip(_weights(straight.model), _weights(second.model), strict=True):
        assert torch.equal(a, b)

    # Control: dropout draws from the restored RNG; with another RNG state the run differs.
    third = Trainer(_seq2seq(1), config, copy_batches)
    third.resume(tmp_path / "ck")
    torch.manual_seed(12345)
    assert [m["loss"] for m in third.train()] != expected[3:]


class _EpochSource:
    """A re-iterable with set_epoch, like TokenBatchSampler behind a loader."""

    def __init__(self):
        self.epochs = []
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epochs.append(epoch)
        self.epoch = epoch

    def __iter__(self):
        return iter(counting_batches(self.epoch, n=3))


def test_a_source_with_set_epoch_is_told_each_epoch():
    source = _EpochSource()
    Trainer(_lm(), _config(max_steps=7), source).train()
    assert source.epochs == [0, 1, 2]  # 7 batches of 3 per epoch: epochs 0, 1 and part of 2


def test_an_empty_epoch_is_a_clear_error():
    with pytest.raises(ValueError, match="no batches for epoch 0"):
        Trainer(_lm(), _config(), lambda epoch: []).train()


def test_grad_accumulation_equals_one_big_batch():
    torch.manual_seed(0)
    model = _lm().double()
    micro = counting_batches(0, n=2, batch=8)
    big = [{key: torch.cat([b[key] for b in micro]) for key in micro[0]}]
    accumulated = Trainer(copy.deepcopy(model), _config(grad_accum_steps=2), micro)
    single = Trainer(copy.deepcopy(model), _config(), big)
    m_acc, m_big = accumulated.train_step(), single.train_step()
    assert m_acc["tokens"] == m_big["tokens"] == 160
    assert math.isclose(m_acc["loss"], m_big["loss"], rel_tol=1e-12)
    for p, q in zip(accumulated.model.parameters(), single.model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-13)


def test_grad_clipping_caps_the_global_norm():
    trainer = Trainer(_lm(), _config(grad_clip=0.05), counting_batches)
    metrics = trainer.train_step()
    norm = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(p.grad) for p in trainer.model.parameters()]))
    assert metrics["grad_norm"] > 0.05  # the raw gradient was larger ...
    assert norm <= 0.05 * (1 + 1e-5)  # ... and the step used the clipped one


def test_bf16_autocast_runs_on_cpu():
    seen = []

    def loss_fn(model, batch):
        logits = model(batch["tokens"])
        seen.append(logits.dtype)
        loss = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2),
                                                 batch["targets"], reduction="sum")
        return loss, batch["targets"].numel()

    trainer = Trainer(_lm(), _config(precision="bf16"), counting_batches, loss_fn=loss_fn)
    metrics = trainer.train_step()
    assert seen == [torch.bfloat16]
    assert math.isfinite(metrics["loss"])
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())


def test_fp16_on_cpu_is_a_clear_error():
    with pytest.raises(ValueError, match=r"fp16.*CUDA.*bf16"):
        Trainer(_lm(), _config(precision="fp16"), counting_batches)


def test_metrics_are_json_lines_with_eval_and_plot(tmp_path):
    log = tmp_path / "metrics.jsonl"
    trainer = Trainer(_lm(), _config(max_steps=4, eval_every=2, log_path=str(log)),
                      counting_batches, eval_batches=counting_batches(99, n=2))
    trainer.train()
    lines = log.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert {"step", "epoch", "loss", "lr", "tokens", "tokens_per_s", "grad_norm"} <= set(
        records[0])
    assert ["eval_loss" in r for r in records] == [False, True, False, True]
    assert read_metrics(log) == records
    ax = plot_metrics(log, ax=Figure().subplots())
    assert [len(line.get_xdata()) for line in ax.get_lines()] == [4, 2]


def test_checkpoint_every_writes_a_resumable_latest(tmp_path):
    trainer = Trainer(_lm(), _config(max_steps=4, checkpoint_every=2,
                                     checkpoint_dir=str(tmp_path)), counting_batches)
    trainer.train()
    extra = checkpoint.load_checkpoint(tmp_path / "latest", _lm(1))
    assert extra["step"] == 4
    assert extra["train_config"]["checkpoint_every"] == 2


def test_compile_flag_wraps_the_model_with_torch_compile(monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda model: compiled.append(model) or model)
    model = _lm()
    Trainer(model, _config(compile=True), counting_batches).train_step()
    assert compiled == [model]


@pytest.mark.slow
def test_compiled_training_matches_eager_training_on_cpu(tmp_path):
    """A real torch.compile (Inductor, C++ on CPU): same losses as eager, plain checkpoint keys."""
    eager = Trainer(_lm(), _config(max_steps=3), counting_batches)
    compiled = Trainer(_lm(), _config(max_steps=3, compile=True), counting_batches)
    assert compiled.forward_model is not compiled.model  # really wrapped, not monkeypatched
    expected = [m["loss"] for m in eager.train()]
    assert [m["loss"] for m in compiled.train()] == pytest.approx(expected, rel=1e-4)
    compiled.save(tmp_path / "ck")  # the checkpoint holds the original module's names
    restored = _lm(1)
    checkpoint.load_checkpoint(tmp_path / "ck", restored)
    for a, b in zip(restored.parameters(), compiled.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_batches_with_unknown_keys_and_models_without_config_are_rejected():
    with pytest.raises(ValueError, match="keys"):
        Trainer(_lm(), _config(), [{"x": torch.ones(2, 3, dtype=torch.long)}]).train_step()
    with pytest.raises(ValueError, match=r"model\.config"):
        Trainer(torch.nn.Linear(2, 2), _config(), counting_batches)
    with pytest.raises(ValueError, match="eval_batches"):
        Trainer(_lm(), _config(), counting_batches).evaluate()


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"max_steps": 0}, "max_steps"),
        ({"warmup_steps": 0}, "warmup_steps"),
        ({"grad_accum_steps": 0}, "grad_accum_steps"),
        ({"eval_every": 0}, "eval_every"),
        ({"checkpoint_every": 5}, "checkpoint_dir"),
        ({"betas": (0.9, 1.0)}, "betas"),
        ({"lr_factor": 0.0}, "lr_factor"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"grad_clip": 0.0}, "grad_clip"),
        ({"precision": "fp8"}, "precision"),
    ],
)
def test_bad_config_values_are_rejected_by_name(changes, name):
    with pytest.raises(ValueError, match=name):
        _config(**changes)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_mixed_precision_trains_and_resumes_on_cuda(tmp_path, precision):
    config = _config(precision=precision, device="cuda", max_steps=4)
    trainer = Trainer(_lm(), config, counting_batches)
    history = trainer.train(until_step=2)
    assert all(math.isfinite(m["loss"]) for m in history)
    assert next(trainer.model.parameters()).device.type == "cuda"
    trainer.save(tmp_path / "ck")
    resumed = Trainer(_lm(1), config, counting_batches)
    resumed.resume(tmp_path / "ck")
    assert resumed.scaler.state_dict() == trainer.scaler.state_dict()
    # CUDA kernels need not be deterministic (atomic adds), so compare closely, not exactly.
    expected = [m["loss"] for m in trainer.train()]
    assert [m["loss"] for m in resumed.train()] == pytest.approx(expected, rel=1e-3)



@pytest.mark.parametrize(
    ("changes", "name", "error"),
    [
        ({"max_steps": 2.5}, "max_steps", TypeError),
        ({"max_steps": True}, "max_steps", TypeError),
        ({"max_steps": "10"}, "max_steps", TypeError),
        ({"warmup_steps": "10"}, "warmup_steps", TypeError),
        ({"grad_accum_steps": 2.0}, "grad_accum_steps", TypeError),
        ({"eval_every": 1.5}, "eval_every", TypeError),
        ({"seed": 2**64}, "seed", ValueError),
        ({"seed": 0.5}, "seed", TypeError),
        ({"lr_factor": float("inf")}, "lr_factor", ValueError),
        ({"lr_factor": float("nan")}, "lr_factor", ValueError),
        ({"lr_factor": "1"}, "lr_factor", TypeError),
        ({"lr_factor": True}, "lr_factor", TypeError),
        ({"eps": float("nan")}, "eps", ValueError),
        ({"label_smoothing": float("nan")}, "label_smoothing", ValueError),
        ({"grad_clip": float("inf")}, "grad_clip", ValueError),
        ({"betas": (0.9, float("nan"))}, r"betas\[1\]", ValueError),
        ({"betas": (0.9,)}, "betas", TypeError),
        ({"betas": 0.9}, "betas", TypeError),
        ({"compile": "no"}, "compile", TypeError),
        ({"progress": 0}, "progress", TypeError),
        ({"device": "gpu0"}, "device", ValueError),
        ({"device": 0}, "device", TypeError),
        ({"log_path": 3}, "log_path", TypeError),
    ],
)
def test_config_fields_of_the_wrong_type_or_not_finite_are_rejected_by_name(changes, name, error):
    with pytest.raises(error, match=name):
        _config(**changes)


def test_config_normalises_paths_devices_and_betas_to_plain_values(tmp_path):
    config = _config(log_path=tmp_path / "m.jsonl", checkpoint_dir=tmp_path,
                     checkpoint_every=1, betas=[0.9, 0.98], device=torch.device("cpu"))
    assert config.log_path == str(tmp_path / "m.jsonl") and config.checkpoint_dir == str(tmp_path)
    assert config.betas == (0.9, 0.98) and config.device == "cpu"


def _strict_json(line: str) -> dict:
    def refuse(constant: str):
        raise AssertionError(f"metrics line holds {constant}, which is not JSON: {line}")

    return json.loads(line, parse_constant=refuse)


def _nan_at_step(k: int):
    """The default loss, except that the k-th optimizer step's loss is NaN."""
    calls = []

    def loss_fn(model, batch):
        calls.append(1)
        logits = model(batch["tokens"])
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch["targets"],
                                                 reduction="sum")
        return (loss * math.nan if len(calls) == k else loss), batch["targets"].numel()

    return loss_fn


def test_a_nan_loss_stops_training_before_the_step_and_loses_nothing(tmp_path):
    log = tmp_path / "metrics.jsonl"
    trainer = Trainer(_lm(), _config(max_steps=10, checkpoint_every=1,
                                     checkpoint_dir=str(tmp_path), log_path=str(log)),
                      counting_batches, loss_fn=_nan_at_step(5))
    trainer.train(until_step=4)
    after_4 = _weights(trainer.model)
    with pytest.raises(TrainingDiverged, match=r"diverged at step 5: the loss is nan") as info:
        trainer.train()
    assert (info.value.step, info.value.quantity) == (5, "loss")
    assert math.isnan(info.value.value)
    assert trainer.step == 4  # the step was not applied ...
    for a, b in zip(after_4, _weights(trainer.model), strict=True):
        assert torch.equal(a, b)  # ... nor did the NaN reach the weights
    restored = _lm(1)
    assert checkpoint.load_checkpoint(tmp_path / "latest", restored)["step"] == 4
    assert all(torch.isfinite(p).all() for p in restored.parameters())
    records = [_strict_json(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]  # no record for the diverged step


def test_an_absurd_learning_rate_diverges_with_the_last_checkpoint_intact(tmp_path):
    log = tmp_path / "metrics.jsonl"
    trainer = Trainer(_lm(), _config(max_steps=50, lr_factor=1e6, checkpoint_every=1,
                                     checkpoint_dir=str(tmp_path), log_path=str(log)),
                      counting_batches)
    with pytest.raises(TrainingDiverged, match=r"diverged at step \d+: the (loss|gradient norm)"
                       ) as info:
        trainer.train()
    k = info.value.step
    assert k == trainer.step + 1 and not math.isfinite(info.value.value)
    restored = _lm(1)
    extra = checkpoint.load_checkpoint(tmp_path / "latest", restored)
    assert extra["step"] == k - 1
    assert all(torch.isfinite(p).all() for p in restored.parameters())
    records = [_strict_json(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, k))


def test_a_nan_gradient_with_a_finite_loss_stops_training_before_the_step():
    def loss_fn(model, batch):
        logits = model(batch["tokens"])
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch["targets"],
                                                 reduction="sum")
        w = model.generator.weight[0, 0]
        return loss + 0.0 * torch.sqrt(w * 0), batch["targets"].numel()  # value +0, grad NaN

    trainer = Trainer(_lm(), _config(), counting_batches, loss_fn=loss_fn)
    before = _weights(trainer.model)
    with pytest.raises(TrainingDiverged, match="diverged at step 1: the gradient norm is nan"):
        trainer.train_step()
    assert trainer.step == 0
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(trainer.model), strict=True))


def test_a_non_finite_eval_loss_stops_training_without_writing_the_step(tmp_path):
    def loss_fn(model, batch):
        logits = model(batch["tokens"])
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch["targets"],
                                                 reduction="sum")
        return (loss * math.inf if not model.training else loss), batch["targets"].numel()

    log = tmp_path / "metrics.jsonl"
    trainer = Trainer(_lm(), _config(eval_every=2, log_path=str(log)), counting_batches,
                      eval_batches=counting_batches(9, n=1), loss_fn=loss_fn)
    with pytest.raises(TrainingDiverged, match="step 2: the eval_loss is inf"):
        trainer.train()
    assert [_strict_json(line)["step"] for line in log.read_text().splitlines()] == [1]


def test_a_model_with_non_finite_weights_never_replaces_a_checkpoint(tmp_path):
    trainer = Trainer(_lm(), _config(), counting_batches)
    trainer.train(until_step=1)
    trainer.save(tmp_path / "ck")
    name, param = list(trainer.model.named_parameters())[-1]
    with torch.no_grad():
        param.view(-1)[1] = math.inf
    with pytest.raises(checkpoint.CheckpointError,
                       match=rf"refusing to save.*{re.escape(name)} holds 1 non-finite"):
        trainer.save(tmp_path / "ck")
    restored = _lm(1)
    assert checkpoint.load_checkpoint(tmp_path / "ck", restored)["step"] == 1
    assert all(torch.isfinite(p).all() for p in restored.parameters())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no debris


def test_save_merges_the_callers_extra_and_resume_returns_it(tmp_path):
    trainer = Trainer(_lm(), _config(), counting_batches)
    trainer.train(until_step=2)
    trainer.save(tmp_path / "ck", extra={"task": "count", "recipe": {"vocab": V}})
    extra = Trainer(_lm(1), _config(), counting_batches).resume(tmp_path / "ck")
    assert extra["task"] == "count" and extra["recipe"] == {"vocab": V} and extra["step"] == 2
    with pytest.raises(ValueError, match=r"trainer's own keys.*\['step'\]"):
        trainer.save(tmp_path / "ck", extra={"step": 99})

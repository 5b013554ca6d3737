"""Checkpoints: exact round trip, atomic under crashes, and safe against code in pickles."""

import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from transformer.model import Transformer, TransformerConfig
from transformer.training import checkpoint as ckpt
from transformer.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from transformer.training.schedule import NoamSchedule

REPO = Path(__file__).resolve().parents[1]


def _filled(k: float) -> nn.Module:
    model = nn.Linear(8, 8)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(k)
    return model


def _saved_k(path: Path) -> int:
    """Load the checkpoint and check that its weights and its extra agree on one k."""
    model = nn.Linear(8, 8)
    k = load_checkpoint(path, model)["k"]
    assert all(torch.equal(p, torch.full_like(p, k)) for p in model.parameters())
    return k


def _trained_setup(seed: int):
    torch.manual_seed(seed)
    model = Transformer(TransformerConfig.tiny(vocab_size=13))
    opt = torch.optim.Adam(model.parameters(), lr=1.0, betas=(0.9, 0.98), eps=1e-9)
    sched = NoamSchedule(opt, d_model=model.config.d_model, warmup_steps=5)
    return model, opt, sched


def test_round_trip_restores_weights_ties_optimizer_and_schedule(tmp_path):
    model, opt, sched = _trained_setup(0)
    src, tgt = torch.randint(1, 13, (2, 5)), torch.randint(1, 13, (2, 4))
    for _ in range(3):
        model(src, tgt).logsumexp(-1).mean().backward()
        opt.step()
        sched.step()
        opt.zero_grad()
    save_checkpoint(tmp_path / "ck", model, opt, sched, extra={"step": 3, "note": ("a", 1.5)})
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["model.safetensors",
                                                                   "state.pt"]

    model2, opt2, sched2 = _trained_setup(1)
    extra = load_checkpoint(tmp_path / "ck", model2, opt2, sched2)
    assert extra == {"step": 3, "note": ("a", 1.5)}
    for (name, a), b in zip(model.state_dict().items(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert model2.generator.weight is model2.src_embed.embedding.weight  # still tied
    assert sched2.last_epoch == 3
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    for sa, sb in zip(opt.state.values(), opt2.state.values(), strict=True):
        assert all(torch.equal(sa[key], sb[key]) for key in ("step", "exp_avg", "exp_avg_sq"))


def test_rng_states_are_restored_only_when_asked(tmp_path):
    torch.manual_seed(123)
    random.seed(123)
    save_checkpoint(tmp_path / "ck", _filled(0))
    expected = (torch.rand(3), random.random())
    load_checkpoint(tmp_path / "ck", nn.Linear(8, 8))  # default: RNG untouched
    assert not torch.equal(torch.rand(3), expected[0])
    load_checkpoint(tmp_path / "ck", nn.Linear(8, 8), restore_rng=True)
    assert torch.equal(torch.rand(3), expected[0])
    assert random.random() == expected[1]


def test_code_in_a_tampered_state_file_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').close()",))

    # The payload is live: a plain pickle load runs it.
    pickle.loads(pickle.dumps(Payload()))
    assert marker.exists()
    marker.unlink()

    save_checkpoint(tmp_path / "ck", _filled(1), extra={"k": 1})
    torch.save({"format": 1, "extra": Payload()}, tmp_path / "ck" / "state.pt")
    with pytest.raises(CheckpointError, match=r"weights_only=True.*untrusted"):
        load_checkpoint(tmp_path / "ck", nn.Linear(8, 8))
    assert not marker.exists()


def test_missing_and_mismatched_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nothing", nn.Linear(8, 8))
    save_checkpoint(tmp_path / "ck", _filled(1))
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(tmp_path / "ck", nn.Linear(8, 9))
    opt = torch.optim.SGD(nn.Linear(8, 8).parameters(), lr=0.1)
    with pytest.raises(CheckpointError, match="without a optimizer"):
        load_checkpoint(tmp_path / "ck", nn.Linear(8, 8), opt)


def test_extra_that_cannot_be_loaded_safely_is_rejected_at_save(tmp_path):
    with pytest.raises(TypeError, match=r"extra\['fn'\]"):
        save_checkpoint(tmp_path / "ck", _filled(1), extra={"fn": print})
    assert not (tmp_path / "ck").exists()


def test_refuses_to_replace_a_directory_that_is_not_a_checkpoint(tmp_path):
    precious = tmp_path / "runs"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        save_checkpoint(precious, _filled(1))
    assert (precious / "notes.txt").read_text() == "keep me"


class _Crash(Exception):
    pass


def _crash_on_call(monkeypatch, module, name: str, n: int) -> None:
    """Make ``module.name`` raise on its n-th call (1-based), as a kill at that point would."""
    real, calls = getattr(module, name), []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise _Crash(name)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


@pytest.mark.parametrize(
    ("where", "survivor"),
    [
        ("writing the state", 1),  # before any rename: <path> untouched
        ("first rename", 1),  # <path> → <path>.old failed: <path> untouched
        ("second rename", 1),  # only <path>.old exists: loaded from there
        ("cleanup", 2),  # new checkpoint in place, <path>.old not yet deleted
    ],
)
def test_a_crash_at_any_point_of_a_save_leaves_a_loadable_checkpoint(
    tmp_path, monkeypatch, where, survivor
):
    path = tmp_path / "ck"
    save_checkpoint(path, _filled(1), extra={"k": 1})
    with monkeypatch.context() as m:
        if where == "writing the state":
            _crash_on_call(m, ckpt.torch, "save", 1)
        elif where in ("first rename", "second rename"):
            _crash_on_call(m, ckpt.os, "replace", 1 if where == "first rename" else 2)
        else:
            _crash_on_call(m, ckpt.shutil, "rmtree", 3)  # tmp debris, old before rename, old
        with pytest.raises(_Crash):
            save_checkpoint(path, _filled(2), extra={"k": 2})
    assert path.exists() == (where != "second rename")
    assert _saved_k(path) == survivor
    # The next save recovers from whatever debris the crash left.
    save_checkpoint(path, _filled(3), extra={"k": 3})
    assert _saved_k(path) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


_SAVER = textwrap.dedent(
    """
    import sys, torch
    from transformer.training.checkpoint import save_checkpoint
    path, k = sys.argv[1], int(sys.argv[2])
    model = torch.nn.Linear(512, 1024)  # 2 MB of weights per save
    print("ready", flush=True)
    while True:
        k += 1
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(k)
        save_checkpoint(path, model, extra={"k": k})
    """
)


@pytest.mark.slow  # two Python processes start torch: a few seconds
def test_sigkill_during_saves_never_corrupts_the_checkpoint(tmp_path):
    """Several processes save in a loop and are SIGKILLed at random moments."""
    rng = random.Random(0)
    paths = [tmp_path / f"ck{i}" for i in range(2)]
    procs = []
    for path in paths:
        big = nn.Linear(512, 1024)
        with torch.no_grad():
            for p in big.parameters():
                p.zero_()
        save_checkpoint(path, big, extra={"k": 0})
        procs.append(subprocess.Popen(
            [sys.executable, "-c", _SAVER, str(path), "0"], stdout=subprocess.PIPE,
            cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)},
        ))
    for proc in procs:
        assert proc.stdout.readline().strip() == b"ready"
    start = time.monotonic()
    kill_times = [rng.uniform(0.1, 0.5) for _ in procs]
    for kill_at, proc in sorted(zip(kill_times, procs, strict=True), key=lambda pair: pair[0]):
        time.sleep(max(0.0, start + kill_at - time.monotonic()))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    ks = []
    for path in paths:
        model = nn.Linear(512, 1024)
        k = load_checkpoint(path, model)["k"]
        assert all(torch.equal(p, torch.full_like(p, k)) for p in model.parameters())
        ks.append(k)
    assert max(ks) > 0  # the savers did get to replace the first checkpoint

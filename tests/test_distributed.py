"""The Trainer under torchrun with DistributedDataParallel (CPU, gloo) takes the steps of one
process training on the global batch, and the sharded batches split and resume as they should.

Two processes, started by ``python -m torch.distributed.run --nproc_per_node 2`` on a small
script this test writes, each train 3 steps of a decoder-only model on their shard of every
epoch (float64, so that the sums in another order agree to ~1e-12). The reference is the same
Trainer in this process with ``grad_accum_steps=2`` over the unsharded batches: each of its steps
sums the loss over the same two micro-batches and divides by their tokens, which is the
definition of the global batch's mean loss.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from transformer import DecoderOnlyTransformer, TransformerConfig
from transformer.training import TrainConfig, Trainer, read_metrics
from transformer.training.distributed import ShardedBatches, init_distributed

ROOT = Path(__file__).resolve().parent.parent
STEPS, WORLD = 3, 2


def batches(epoch: int) -> list[dict[str, torch.Tensor]]:
    """Each epoch's batches depend only on (seed, epoch); lengths differ between batches."""
    g = torch.Generator().manual_seed(1000 + epoch)
    out = []
    for i in range(5):  # 5 batches: with 2 ranks the last one is dropped
        seq = torch.randint(1, 12, (4, 6 + i), generator=g)
        seq[0, -2:] = 0  # some padding: the ranks' token counts differ
        out.append({"tokens": seq[:, :-1], "targets": seq[:, 1:]})
    return out


def make_model() -> DecoderOnlyTransformer:
    torch.manual_seed(0)
    return DecoderOnlyTransformer(TransformerConfig.tiny(vocab_size=12)).double()


CONFIG = dict(warmup_steps=4, lr_factor=2.0, progress=False, device="cpu", seed=0)

WORKER = """
import json, sys
import torch
sys.path.insert(0, {root!r})
from tests.test_distributed import CONFIG, STEPS, batches, make_model
from transformer.training import TrainConfig, Trainer
from transformer.training.distributed import ShardedBatches, init_distributed, wrap_model

out = sys.argv[1]
info = init_distributed()
model = wrap_model(make_model(), info)
config = TrainConfig(**CONFIG, log_path=out + "/metrics.jsonl", checkpoint_every=STEPS,
                     checkpoint_dir=out + "/run")
trainer = Trainer(model, config, ShardedBatches(batches, info.rank, info.world_size))
history = trainer.train(until_step=STEPS)
torch.save(trainer.model.state_dict(), f"{{out}}/rank{{info.rank}}.pt")
with open(f"{{out}}/rank{{info.rank}}.json", "w") as f:
    json.dump({{"world_size": info.world_size, "loss": [m["loss"] for m in history],
               "tokens": [m["tokens"] for m in history]}}, f)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    script = out / "worker.py"
    script.write_text(WORKER.format(root=str(ROOT)), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(WORLD),
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(script),
           str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def test_both_ranks_hold_identical_parameters_after_the_steps(ddp_run: Path) -> None:
    rank0, rank1 = (torch.load(ddp_run / f"rank{r}.pt") for r in range(WORLD))
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    start = make_model().state_dict()
    assert not torch.equal(rank0["layers.0.self_attn.w_q.weight"],
                           start["layers.0.self_attn.w_q.weight"])  # they did train


def test_ddp_equals_one_process_on_the_global_batch(ddp_run: Path) -> None:
    kept = lambda epoch: batches(epoch)[:4]  # noqa: E731  (the sharding drops the 5th)
    reference = Trainer(make_model(), TrainConfig(**CONFIG, grad_accum_steps=WORLD), kept)
    history = reference.train(until_step=STEPS)
    ranks = [json.loads((ddp_run / f"rank{r}.json").read_text()) for r in range(WORLD)]
    assert ranks[0]["world_size"] == WORLD
    for rank in ranks:  # every rank reports the loss of the global batch
        assert rank["tokens"] == [m["tokens"] for m in history]
        torch.testing.assert_close(torch.tensor(rank["loss"]),
                                   torch.tensor([m["loss"] for m in history]),
                                   rtol=1e-12, atol=1e-12)
    params = torch.load(ddp_run / "rank0.pt")
    for key, value in reference.model.state_dict().items():
        torch.testing.assert_close(params[key], value, rtol=1e-9, atol=1e-10, msg=key)


def test_only_rank_0_writes_the_metrics_and_the_checkpoint(ddp_run: Path) -> None:
    records = read_metrics(ddp_run / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))  # once, not once per rank
    assert (ddp_run / "run" / "latest").exists()


def test_sharded_batches_split_each_epoch_by_rank_and_drop_the_remainder() -> None:
    everything = list(range(7))
    shards = [ShardedBatches(everything, rank, 3)(0) for rank in range(3)]
    assert shards == [[0, 3], [1, 4], [2, 5]]  # 6 is dropped: every rank gets 2
    assert sorted(b for shard in shards for b in shard) == everything[:6]


def test_sharded_batches_depend_only_on_the_epoch_so_a_resume_finds_the_same_shard() -> None:
    shard = ShardedBatches(batches, 1, WORLD)
    again = ShardedBatches(batches, 1, WORLD)  # a new process, after a restart
    for epoch in (0, 3):
        first, second = shard(epoch), again(epoch)
        assert len(first) == 2
        for a, b in zip(first, second, strict=True):
            assert torch.equal(a["tokens"], b["tokens"])
    assert not torch.equal(shard(0)[0]["tokens"], shard(1)[0]["tokens"][:, :5])


def test_a_resumed_sharded_run_continues_as_an_uninterrupted_one(tmp_path: Path) -> None:
    shard = ShardedBatches(batches, 1, WORLD)
    config = TrainConfig(**CONFIG)
    straight = Trainer(make_model(), config, shard)
    straight.train(until_step=5)  # 2 batches per epoch: crosses two epoch boundaries
    first = Trainer(make_model(), config, shard)
    first.train(until_step=3)
    first.save(tmp_path / "ckpt")
    resumed = Trainer(make_model(), config, ShardedBatches(batches, 1, WORLD))
    resumed.resume(tmp_path / "ckpt")
    resumed.train(until_step=5)
    for key, value in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key


@pytest.mark.parametrize(("args", "match"), [
    ((list(range(4)), 2, 2), r"rank must be an integer in \[0, world_size=2\), got 2"),
    ((list(range(4)), 0, 0), r"world_size must be an integer >= 1, got 0"),
])
def test_bad_ranks_are_refused(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ShardedBatches(*args)


def test_an_epoch_smaller_than_the_world_is_refused() -> None:
    with pytest.raises(ValueError, match=r"epoch 0 has 1 batches, fewer than world_size=2"):
        ShardedBatches([0], 0, 2)(0)


def test_without_torchrun_the_process_is_rank_0_of_1(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    info = init_distributed()
    assert (info.rank, info.world_size) == (0, 1)


def test_a_partial_torchrun_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match=r"WORLD_SIZE is set but \['RANK', 'LOCAL_RANK'"):
        init_distributed()

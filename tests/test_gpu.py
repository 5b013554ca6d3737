"""CUDA-only paths of chapter 18: fp16 with loss scaling, FSDP, the compiled decoder on a GPU.

Every test carries the ``gpu`` marker and is skipped without a CUDA device (the CPU tests of
the same code are in tests/test_training_trainer.py, tests/test_distributed.py and
tests/test_static_cache.py).
"""

from __future__ import annotations

import math
import os
import socket

import pytest
import torch

from transformer import DecoderOnlyTransformer, TransformerConfig
from transformer.generation import greedy_decode
from transformer.static_cache import CompiledDecoder
from transformer.training import TrainConfig, Trainer

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def lm_batches(epoch: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(epoch)
    seqs = [torch.randint(1, 16, (8, 12), generator=g) for _ in range(4)]
    return [{"tokens": s[:, :-1], "targets": s[:, 1:]} for s in seqs]


def make() -> DecoderOnlyTransformer:
    torch.manual_seed(0)
    return DecoderOnlyTransformer(TransformerConfig.tiny(vocab_size=16))


def test_fp16_training_steps_are_finite_and_lower_the_loss() -> None:
    trainer = Trainer(make(), TrainConfig(precision="fp16", warmup_steps=5, lr_factor=2.0,
                                          device="cuda", progress=False), lm_batches)
    history = trainer.train(until_step=20)
    applied = [m for m in history if not m.get("skipped")]  # the scaler may skip a step
    assert applied and all(math.isfinite(m["loss"]) and math.isfinite(m["grad_norm"])
                           for m in applied)
    assert history[-1]["loss"] < history[0]["loss"]
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert trainer.scaler.is_enabled()


def test_bf16_training_on_cuda_matches_fp32_within_noise() -> None:
    losses = {}
    for precision in ("fp32", "bf16"):
        trainer = Trainer(make(), TrainConfig(precision=precision, warmup_steps=5,
                                              device="cuda", progress=False), lm_batches)
        losses[precision] = trainer.train(until_step=10)[-1]["loss"]
    assert abs(losses["bf16"] - losses["fp32"]) < 0.05 * losses["fp32"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fsdp_wraps_and_trains_a_small_model_in_a_one_process_group(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.distributed as dist
    from torch.distributed.fsdp import FullyShardedDataParallel

    for name, value in (("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", str(_free_port()))):
        monkeypatch.setenv(name, value)
    dist.init_process_group("nccl", rank=0, world_size=1)
    try:
        torch.cuda.set_device(0)
        model = FullyShardedDataParallel(make().cuda())
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        batch = {k: v.cuda() for k, v in lm_batches(0)[0].items()}
        losses = []
        for _ in range(5):
            logits = model(batch["tokens"])
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1),
                                                     batch["targets"].flatten())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    finally:
        dist.destroy_process_group()
        os.environ.pop("MASTER_PORT", None)


def test_the_compiled_decoder_on_cuda_gives_greedy_decodes_tokens() -> None:
    model = make().cuda().eval()
    prompts = torch.randint(1, 16, (2, 5), generator=torch.Generator().manual_seed(1)).cuda()
    expected = greedy_decode(model, prompts, max_new_tokens=30)
    got = CompiledDecoder(model, batch=2, max_len=64).generate(prompts, 30)
    assert torch.equal(got, expected)

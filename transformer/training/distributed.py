"""Data-parallel training with ``torchrun`` and ``DistributedDataParallel`` (chapter 18).

The paper trained on 8 GPUs (§5.2), each with its share of every batch. This is the same with
PyTorch's data parallelism: every process (one per GPU, or several on a CPU, with the ``gloo``
backend) holds a copy of the model, computes gradients on its own shard of the global batch,
and ``DistributedDataParallel`` (DDP) averages the gradients across processes during
``backward``, so that every copy takes the same optimizer step.

Three pieces, used together by a script started with ``torchrun --nproc_per_node=N
script.py``::

    info = init_distributed()                       # reads RANK, WORLD_SIZE, ... from torchrun
    model = wrap_model(model, info)                 # DistributedDataParallel
    batches = ShardedBatches(all_batches, info.rank, info.world_size)
    Trainer(model, TrainConfig(...), batches).train()

- :func:`init_distributed` joins the process group ``torchrun`` describes in the environment;
- :func:`wrap_model` moves the model to this process's device and wraps it in DDP;
- :class:`ShardedBatches` gives rank ``r`` every ``world_size``-th batch of each epoch's list,
  a list that depends only on the epoch (and the caller's seed), so a resumed run on any rank
  continues where it stopped.

:class:`~transformer.training.Trainer` accepts the wrapped model: it averages the loss over the
tokens of the *global* batch (all ranks' shards), and only rank 0 writes checkpoints and the
metrics file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["DistributedInfo", "ShardedBatches", "init_distributed", "is_main_process",
           "wrap_model"]

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistributedInfo:
    """Where this process stands: ``rank`` in ``[0, world_size)``, ``local_rank`` on its node,
    and the ``device`` it trains on (``cuda:<local_rank>`` with CUDA, else ``cpu``)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device


def _env_int(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") \
            from None


def init_distributed(backend: str | None = None) -> DistributedInfo:
    """Join the process group that ``torchrun`` describes in the environment (``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``).

    Without ``WORLD_SIZE`` (a plain ``python script.py``) nothing is initialised and the
    process is rank 0 of 1, so the same script runs with and without ``torchrun``.

    Args:
        backend: ``"nccl"`` (CUDA) or ``"gloo"`` (CPU); default ``nccl`` when CUDA is
            available, else ``gloo``.

    Raises:
        ValueError: a torchrun variable is missing or not an integer, or ``RANK`` is not in
            ``[0, WORLD_SIZE)``.
    """
    if "WORLD_SIZE" not in os.environ:
        return DistributedInfo(0, 1, 0, torch.device("cuda" if torch.cuda.is_available()
                                                     else "cpu"))
    missing = [name for name in _ENV if name not in os.environ]
    if missing:
        raise ValueError(f"WORLD_SIZE is set but {missing} are not: start the script with "
                         "torchrun (or set all of RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, "
                         "MASTER_PORT)")
    rank, world_size, local_rank = (_env_int(n) for n in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK must be in [0, WORLD_SIZE={world_size}), got {rank}")
    cuda = torch.cuda.is_available() and backend != "gloo"
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if cuda else "gloo"))
    return DistributedInfo(rank, world_size, local_rank, device)


def wrap_model(model: nn.Module, info: DistributedInfo) -> nn.Module:
    """Move ``model`` to ``info.device`` and, when ``world_size > 1``, wrap it in
    ``DistributedDataParallel`` (which copies rank 0's weights to every rank). The original
    model stays reachable as ``wrapped.module``; ``Trainer`` checkpoints that one."""
    model = model.to(info.device)
    if info.world_size == 1:
        return model
    return DistributedDataParallel(model, device_ids=[info.device.index]
                                   if info.device.type == "cuda" else None)


def is_main_process() -> bool:
    """True on rank 0 (and in a process with no process group): the one that writes files."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


# --8<-- [start:sharded_batches]
class ShardedBatches:
    """Rank ``rank``'s share of every epoch: batches ``rank, rank + world_size, ...`` of the
    epoch's list, which is ``batches(epoch)`` (a callable) or ``batches`` itself (a sequence).

    Every rank gets the same number of batches (the last ``len % world_size`` are dropped), so
    that no rank waits for a gradient that never comes. Each epoch's list must depend only on
    the epoch (and a seed you fix), e.g. ``TokenBatchSampler(..., seed=s)`` with
    ``set_epoch``: then every rank sees one list, and ``Trainer.resume`` rebuilds the shard.

    Args:
        batches: ``epoch -> iterable of batches``, or a sequence used for every epoch.
        rank: this process's rank, in ``[0, world_size)``.
        world_size: number of processes.

    Raises:
        ValueError: ``rank``/``world_size`` out of range, or (when called) an epoch with fewer
            batches than ``world_size``.
    """

    def __init__(self, batches: Callable[[int], Iterable[Any]] | Sequence[Any], rank: int,
                 world_size: int) -> None:
        if not isinstance(world_size, int) or world_size < 1:
            raise ValueError(f"world_size must be an integer >= 1, got {world_size!r}")
        if not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"rank must be an integer in [0, world_size={world_size}), got "
                             f"{rank!r}")
        self.batches, self.rank, self.world_size = batches, rank, world_size

    def __call__(self, epoch: int) -> list[Any]:
        """This rank's batches of ``epoch``."""
        if callable(self.batches):
            every = list(self.batches(epoch))
        else:
            if hasattr(self.batches, "set_epoch"):
                self.batches.set_epoch(epoch)
            every = list(self.batches)
        usable = len(every) - len(every) % self.world_size  # the same count on every rank
        if usable == 0:
            raise ValueError(f"epoch {epoch} has {len(every)} batches, fewer than world_size="
                             f"{self.world_size}: every rank needs at least one")
        return every[self.rank : usable : self.world_size]
# --8<-- [end:sharded_batches]

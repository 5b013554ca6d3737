"""Checkpoint averaging (§6.1): "For the base models, we used a single model obtained by
averaging the last 5 checkpoints, which were written at 10-minute intervals."

The average of k checkpoints is the model whose every floating-point parameter (and buffer) is
the mean of the k stored values. Integer buffers (counters, ids) are not averaged: they are
copied from the last checkpoint. Tied weights (the shared embedding and pre-softmax matrix of
§3.4) stay tied, since the average is loaded into one model whose tied parameters are one
tensor. :class:`~transformer.training.TrainConfig`'s ``keep_checkpoints`` writes the
``<checkpoint_dir>/step-N`` directories that :func:`step_checkpoints` lists.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from transformer.training.checkpoint import CheckpointError
from transformer.training.run import Run, load_run

__all__ = ["STEP_PREFIX", "average_checkpoints", "average_state_dicts", "step_checkpoints"]

STEP_PREFIX = "step-"  # <checkpoint_dir>/step-N: the checkpoint written after step N
_STEP_DIR = re.compile(rf"^{STEP_PREFIX}(\d+)$")


def _check_compatible(reference: Mapping[str, Tensor], other: Mapping[str, Tensor],
                      index: int) -> None:
    missing = sorted(reference.keys() - other.keys())
    unexpected = sorted(other.keys() - reference.keys())
    if missing or unexpected:
        raise ValueError(f"state_dicts[{index}] does not match state_dicts[0]: missing "
                         f"{missing[:3]}, unexpected {unexpected[:3]}")
    for name, tensor in reference.items():
        if tuple(other[name].shape) != tuple(tensor.shape):
            raise ValueError(f"state_dicts[{index}][{name!r}] has shape "
                             f"{list(other[name].shape)}, state_dicts[0] has "
                             f"{list(tensor.shape)}")


# --8<-- [start:average]
def average_state_dicts(state_dicts: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """The element-wise mean of ``state_dicts`` (§6.1's checkpoint averaging).

    Floating-point tensors are summed in float64 and cast back to their dtype; other tensors
    (integer buffers) are copied from the last state dict.

    Args:
        state_dicts: one or more ``model.state_dict()`` with the same keys and shapes.

    Returns:
        A new state dict, on the device of the last one.

    Raises:
        ValueError: no state dicts, or two that differ in keys or shapes (the first differing
            key named).
    """
    if len(state_dicts) == 0:
        raise ValueError("state_dicts must hold at least one state dict, got none")
    for i, other in enumerate(state_dicts[1:], start=1):
        _check_compatible(state_dicts[0], other, i)
    last, k = state_dicts[-1], len(state_dicts)
    average: dict[str, Tensor] = {}
    for name, tensor in last.items():
        if not tensor.is_floating_point():
            average[name] = tensor.detach().clone()  # a counter or ids: the last value
            continue
        total = sum(sd[name].detach().to(tensor.device, torch.float64) for sd in state_dicts)
        average[name] = (total / k).to(tensor.dtype)
    return average
# --8<-- [end:average]


def average_checkpoints(paths: Sequence[str | os.PathLike[str]], *,
                        map_location: str | torch.device = "cpu") -> Run:
    """The model whose weights are the mean of the checkpoints at ``paths`` (§6.1).

    Each path is what :func:`~transformer.training.load_run` reads (a checkpoint directory or
    a run directory). The model is rebuilt from the last checkpoint, so its tied weights stay
    one tensor; its ``extra`` is the last checkpoint's plus ``"averaged_from"``, the paths.

    Args:
        paths: one or more checkpoints of the same model class and configuration, e.g. the
            last 5 of :func:`step_checkpoints`.
        map_location: where the averaged model lives.

    Returns:
        A :class:`~transformer.training.Run` in eval mode.

    Raises:
        ValueError: ``paths`` is empty.
        CheckpointError: a checkpoint cannot be loaded, or two checkpoints hold different model
            classes or configurations (both paths named).
    """
    if isinstance(paths, str | os.PathLike) or len(paths) == 0:
        raise ValueError(f"paths must be a non-empty list of checkpoint paths, got {paths!r}")
    runs = []
    for path in paths:
        run = load_run(path, map_location=map_location)
        if runs:
            first = runs[0]
            if type(run.model) is not type(first.model) or run.config != first.config:
                raise CheckpointError(
                    f"cannot average {first.path} and {run.path}: different models "
                    f"({type(first.model).__name__} {first.config.to_dict()} vs "
                    f"{type(run.model).__name__} {run.config.to_dict()})")
        runs.append(run)
    last = runs[-1]
    last.model.load_state_dict(average_state_dicts([r.model.state_dict() for r in runs]))
    extra = {**last.extra, "averaged_from": [str(r.path) for r in runs]}
    return Run(last.model.eval(), last.config, extra, last.path)


def step_checkpoints(checkpoint_dir: str | os.PathLike[str]) -> list[Path]:
    """The ``<checkpoint_dir>/step-N`` checkpoints that ``TrainConfig(keep_checkpoints=k)``
    keeps, oldest first (by N); an absent directory gives ``[]``."""
    root = Path(checkpoint_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if p.is_dir() and (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found)]

"""Checkpoints that survive a crash mid-save and cannot run code when loaded.

A checkpoint is a directory with two files:

* ``model.safetensors``: the weights, written by ``safetensors.torch.save_model`` (which stores a
  tied tensor once, e.g. the shared embedding/output matrix of §3.4, and re-ties it on load);
* ``state.pt``: everything else (optimizer, scheduler, RNG states, ``extra``) as tensors and plain
  Python values, read back with ``torch.load(..., weights_only=True)``, which refuses any pickle
  that would construct other objects, so a tampered file cannot execute code.

Saving never leaves ``path`` half-written. The new checkpoint is written to ``<path>.tmp`` and
flushed to disk; then the previous one is renamed to ``<path>.old``, ``<path>.tmp`` is renamed to
``<path>``, and ``<path>.old`` is deleted. Each rename is atomic, so after a crash at any moment
either ``<path>`` is a complete checkpoint (old or new), or the crash fell between the two renames
and ``<path>.old`` is the complete previous one, which :func:`load_checkpoint` then loads.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

MODEL_FILE, STATE_FILE, FORMAT = "model.safetensors", "state.pt", 1


class CheckpointError(ValueError):
    """A checkpoint that is missing, malformed, untrusted, or does not fit the model."""


def _siblings(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + ".tmp"), path.with_name(path.name + ".old")


def _fsync(path: Path) -> None:
    """Flush a file, or a directory's entries, to disk (directories: POSIX only)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # Windows cannot open a directory; its renames are durable enough
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _check_plain(value: Any, where: str) -> None:
    """Raise TypeError unless ``value`` is what ``torch.load(weights_only=True)`` reads back."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain(key, f"{where} key")
            _check_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif not isinstance(value, torch.Tensor | int | float | str | bool | type(None)):
        raise TypeError(
            f"{where} must hold only tensors, numbers, strings, None, lists, tuples and dicts, "
            f"got {type(value).__name__}"
        )


def _rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


# --8<-- [start:atomic_save]
def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    optimizer: Optimizer | None = None,
    scheduler: LRScheduler | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (+ optimizer, scheduler, RNG states, ``extra``) atomically to ``path``.

    ``extra`` holds tensors and plain Python values (numbers, strings, None, lists, tuples,
    dicts), e.g. the training step. Raises ``TypeError`` naming the offending ``extra`` entry,
    and ``CheckpointError`` if ``path`` is a file or a non-empty directory that is not a
    checkpoint (it would be replaced). Returns ``path``.
    """
    path = Path(path)
    tmp, old = _siblings(path)
    _check_plain(extra or {}, "extra")
    if path.exists() and not (path / STATE_FILE).exists() and \
            (not path.is_dir() or any(path.iterdir())):
        raise CheckpointError(f"path {path} exists and is not a checkpoint; refusing to replace it")
    state = {
        "format": FORMAT,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": _rng_states(),
        "extra": extra or {},
    }
    shutil.rmtree(tmp, ignore_errors=True)  # debris of an earlier, interrupted save
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / MODEL_FILE))  # stores tied weights once
    _fsync(tmp / MODEL_FILE)
    with open(tmp / STATE_FILE, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    _fsync(tmp)
    if path.exists():  # keep the previous checkpoint until the new one is in place
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)  # a crash from here ...
    os.replace(tmp, path)  # ... to here leaves only <path>.old: load_checkpoint falls back to it
    _fsync(path.parent)
    shutil.rmtree(old, ignore_errors=True)
    return path
# --8<-- [end:atomic_save]


def _locate(path: Path) -> Path:
    """``path``, or ``<path>.old`` when a save was interrupted between its two renames."""
    _, old = _siblings(path)
    for candidate in (path, old):
        if (candidate / STATE_FILE).exists():
            return candidate
    raise CheckpointError(f"no checkpoint at {path} (nor an interrupted save at {old})")


def load_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    optimizer: Optimizer | None = None,
    scheduler: LRScheduler | None = None,
    *,
    map_location: str | torch.device = "cpu",
    restore_rng: bool = False,
) -> dict[str, Any]:
    """Load a :func:`save_checkpoint` directory into ``model`` (and optimizer/scheduler).

    ``restore_rng=True`` also restores the Python and torch (and CUDA) random states, so that a
    resumed run draws the same dropout masks as an uninterrupted one. Returns ``extra``.

    Raises:
        CheckpointError: no checkpoint at ``path``; ``state.pt`` holds anything but tensors and
            plain values (refused by ``weights_only=True``: never load an untrusted file with
            ``weights_only=False``); or the weights do not fit ``model``.
    """
    path = _locate(Path(path))
    try:
        state = torch.load(path / STATE_FILE, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"refusing to load {path / STATE_FILE}: it holds objects that torch.load("
            f"weights_only=True) does not allow, so it may be untrusted or tampered with ({err})"
        ) from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path / STATE_FILE} is not a format-{FORMAT} checkpoint state")
    try:
        load_model(model, path / MODEL_FILE, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path / MODEL_FILE} does not fit the model: {err}") from err
    for name, target in (("optimizer", optimizer), ("scheduler", scheduler)):
        if target is not None:
            if state[name] is None:
                raise CheckpointError(f"{path} was saved without a {name} state")
            target.load_state_dict(state[name])
    if restore_rng:
        _restore_rng(state["rng"])
    return state["extra"]

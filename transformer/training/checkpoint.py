"""Checkpoints that survive a crash mid-save, cannot run code when loaded, and rebuild their model.

A checkpoint is a directory with two files:

* ``model.safetensors``: the weights, written by ``safetensors.torch.save_model`` (which stores a
  tied tensor once, e.g. the shared embedding/output matrix of §3.4, and re-ties it on load);
* ``state.pt``: everything else as tensors and plain Python values, read back with
  ``torch.load(..., weights_only=True)``, which refuses any pickle that would construct other
  objects, so a tampered file cannot execute code. It holds ``"format"`` (1), ``"model"``
  (``{"class": "Transformer", "config": {...}}`` when the model has a ``config.to_dict()``,
  else ``None``), ``"optimizer"``, ``"scheduler"``, ``"rng"`` and the caller's ``"extra"``.

Because the model's class and configuration are inside the checkpoint, no other file is needed to
rebuild it: :func:`transformer.training.run.load_run`.

Saving never leaves ``path`` half-written. The new checkpoint is written to ``<path>.tmp`` and
flushed to disk; then the previous one is renamed to ``<path>.old``, ``<path>.tmp`` is renamed to
``<path>``, and ``<path>.old`` is deleted. Each rename is atomic, so after a crash at any moment
either ``<path>`` is a complete checkpoint (old or new), or the crash fell between the two renames
and ``<path>.old`` is the complete previous one, which :func:`load_checkpoint` then loads.
A model holding NaN or infinite weights is refused before anything is written, so a diverged run
can never replace a good checkpoint.

Loading raises only :class:`CheckpointError`, naming the file: a missing, empty, truncated or
corrupt file, a state that is not the expected plain values, or weights that do not fit the model
(checked against the safetensors header before any weight is copied).
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

MODEL_FILE, STATE_FILE, FORMAT = "model.safetensors", "state.pt", 1

# torch dtype → the name a safetensors header gives it
_SAFETENSORS_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}

Header = dict[str, tuple[tuple[int, ...], str]]  # tensor name → (shape, safetensors dtype)


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


def _model_entry(model: nn.Module) -> dict[str, Any] | None:
    """``{"class": ..., "config": ...}`` when ``model.config`` has ``to_dict()``, else None."""
    to_dict = getattr(getattr(model, "config", None), "to_dict", None)
    if not callable(to_dict):
        return None
    config = to_dict()
    if not isinstance(config, dict):
        raise TypeError(f"model.config.to_dict() must return a dict, got "
                        f"{type(config).__name__}")
    _check_plain(config, "model.config.to_dict()")
    return {"class": type(model).__name__, "config": config}


def _check_finite(model: nn.Module, path: Path) -> None:
    """Refuse a model holding NaN or inf: it would replace a good checkpoint with a diverged one."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise CheckpointError(
                    f"refusing to save {path}: {name} holds {bad} non-finite value(s) (NaN or "
                    f"inf) out of {tensor.numel()}; the model has diverged, and the checkpoint "
                    f"already at {path} (if any) is kept")


def _rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng(states: dict[str, Any], where: Path) -> None:
    try:
        random.setstate(states["python"])
        torch.set_rng_state(states["torch"])
        if "cuda" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{where} holds no valid random-number states: "
                              f"{type(err).__name__}: {err}") from err


# --8<-- [start:atomic_save]
def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    optimizer: Optimizer | None = None,
    scheduler: LRScheduler | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (+ its class and config, optimizer, scheduler, RNG states, ``extra``)
    atomically to ``path``.

    When ``model.config`` has ``to_dict()`` (``TransformerConfig``), the model's class name and
    that dict are stored too, so :func:`~transformer.training.run.load_run` rebuilds the model
    from the checkpoint alone. ``extra`` holds tensors and plain Python values (numbers,
    strings, None, lists, tuples, dicts), e.g. the training step. Returns ``path``.

    Raises:
        TypeError: an ``extra`` entry (named) or the config dict holds anything else.
        CheckpointError: ``model`` holds NaN or inf (nothing is written: the checkpoint already
            at ``path`` stays), or ``path`` is a file or a non-empty directory that is not a
            checkpoint (it would be replaced).
    """
    path = Path(path)
    tmp, old = _siblings(path)
    _check_plain(extra or {}, "extra")
    if path.exists() and not (path / STATE_FILE).exists() and \
            (not path.is_dir() or any(path.iterdir())):
        raise CheckpointError(f"path {path} exists and is not a checkpoint; refusing to replace it")
    _check_finite(model, path)
    state = {
        "format": FORMAT,
        "model": _model_entry(model),  # class name + config: the model rebuilds from this alone
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


def locate_checkpoint(path: str | os.PathLike[str]) -> Path:
    """``path``, or ``<path>.old`` when a save was interrupted between its two renames.

    Raises:
        CheckpointError: neither holds a ``state.pt``.
    """
    path = Path(path)
    _, old = _siblings(path)
    for candidate in (path, old):
        if (candidate / STATE_FILE).is_file():
            return candidate
    raise CheckpointError(f"no checkpoint at {path} (no {STATE_FILE} in it, nor an interrupted "
                          f"save at {old})")


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else 'no message'}"


def read_state(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checked contents of ``path/state.pt`` (``path`` a checkpoint directory).

    Raises:
        CheckpointError: the file is missing, empty, truncated or corrupt, holds objects that
            ``torch.load(weights_only=True)`` refuses, or is not a format-1 state.
    """
    file = path / STATE_FILE
    try:
        state = torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)  # torch's reason follows "WeightsUnpickler error:", on its line or next
        _, marker, after = text.partition("WeightsUnpickler error:")
        reason = after.strip().splitlines()[0].split(". ")[0] if marker and after.strip() \
            else _first_line(err)
        raise CheckpointError(
            f"refusing to load {file}: torch.load(weights_only=True) cannot read it as tensors "
            f"and plain values, so it is corrupt, or untrusted or tampered with ({reason})"
        ) from err
    except Exception as err:  # EOFError, RuntimeError (zip), OSError, ...: a damaged file
        raise CheckpointError(f"cannot read {file}: it is empty, truncated or corrupt "
                              f"({_first_line(err)})") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{file} is not a format-{FORMAT} checkpoint state")
    kinds: dict[str, type | tuple[type, ...]] = {
        "model": (dict, type(None)), "optimizer": (dict, type(None)),
        "scheduler": (dict, type(None)), "rng": dict, "extra": dict}
    for key, kind in kinds.items():
        if key == "model" and key not in state:
            state["model"] = None  # a checkpoint written without a model config
        if key not in state or not isinstance(state[key], kind):
            got = type(state[key]).__name__ if key in state else "nothing"
            raise CheckpointError(f"{file}: entry {key!r} must be a "
                                  f"{'dict or None' if isinstance(kind, tuple) else 'dict'}, "
                                  f"got {got}")
    return state


def weights_header(path: Path) -> Header:
    """Each tensor's ``(shape, dtype name)`` in ``path/model.safetensors``, read from its header
    only (no weight is loaded). The safetensors reader checks that the file holds every byte the
    header announces, so the shapes are bounded by the file's size.

    Raises:
        CheckpointError: the file is missing, empty, truncated or not a safetensors file.
    """
    file = path / MODEL_FILE
    if not file.is_file():
        raise CheckpointError(f"{file} is missing: the checkpoint at {path} has no weights")
    try:
        with safe_open(str(file), framework="pt") as f:
            return {name: (tuple(f.get_slice(name).get_shape()), f.get_slice(name).get_dtype())
                    for name in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"cannot read {file}: it is empty, truncated or not a safetensors "
                              f"file ({_first_line(err)})") from err


def _shares_storage(tensor: torch.Tensor, tensors: dict[str, torch.Tensor],
                    header: Header) -> bool:
    """Whether ``tensor`` shares memory with a stored tensor (safetensors stores such a copy
    once, like a tie); never true on the meta device, where there is no memory."""
    if tensor.device.type == "meta":
        return False
    ptr = tensor.untyped_storage().data_ptr()
    return any(name in header and other.device == tensor.device
               and other.untyped_storage().data_ptr() == ptr for name, other in tensors.items())


def check_weights_fit(model: nn.Module, header: Header, file: Path, *,
                      dtypes: bool = True) -> None:
    """Refuse, before any weight is copied, a file whose tensors do not match ``model``'s.

    Every tensor of ``model.state_dict()`` must be in ``header`` with the same shape (and, with
    ``dtypes=True``, the same dtype), except the copies of a tied tensor, which safetensors
    stores once; ``header`` may hold nothing else. ``model`` may live on the ``meta`` device.

    Raises:
        CheckpointError: naming the first mismatches and ``file``.
    """
    expected = {name: tensor for name, tensor in model.state_dict(keep_vars=True).items()
                if isinstance(tensor, torch.Tensor)}  # the parameter objects: ties share identity
    tied: dict[int, list[str]] = {}
    for name, tensor in expected.items():
        tied.setdefault(id(tensor), []).append(name)
    problems = [f"unexpected tensor {name!r}" for name in header if name not in expected]
    for names in tied.values():
        stored = [name for name in names if name in header]
        if not stored and not _shares_storage(expected[names[0]], expected, header):
            problems.append(f"missing tensor {names[0]!r}")
        for name in stored:
            tensor, (shape, dtype) = expected[name], header[name]
            want = _SAFETENSORS_DTYPES.get(tensor.dtype, str(tensor.dtype))
            if tuple(tensor.shape) != shape or (dtypes and want != dtype):
                problems.append(f"{name!r} is {dtype} {list(shape)} in the file, the model "
                                f"needs {want} {list(tensor.shape)}")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise CheckpointError(f"{file} does not fit the model: {'; '.join(problems[:3])}{more}")


def _device(map_location: str | torch.device) -> torch.device:
    try:
        return torch.device(map_location)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"map_location must name a torch device, e.g. 'cpu' or 'cuda:0', got "
                         f"{map_location!r}") from err


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
        CheckpointError: no checkpoint at ``path``; ``state.pt`` or ``model.safetensors``
            missing, empty, truncated or corrupt; ``state.pt`` holds anything but tensors and
            plain values (refused by ``weights_only=True``: never load an untrusted file with
            ``weights_only=False``); the weights do not fit ``model`` (checked before ``model``
            is touched); or the optimizer/scheduler state does not fit.
        ValueError: ``map_location`` is not a torch device.
    """
    device = _device(map_location)
    path = locate_checkpoint(path)
    state = read_state(path, device)
    check_weights_fit(model, weights_header(path), path / MODEL_FILE, dtypes=False)
    try:
        load_model(model, path / MODEL_FILE, strict=True)
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise CheckpointError(f"cannot load {path / MODEL_FILE} into the model "
                              f"({_first_line(err)})") from err
    for name, target in (("optimizer", optimizer), ("scheduler", scheduler)):
        if target is not None:
            if state[name] is None:
                raise CheckpointError(f"{path} was saved without a {name} state")
            try:
                target.load_state_dict(state[name])
            except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as err:
                raise CheckpointError(f"the {name} state in {path / STATE_FILE} does not fit "
                                      f"this {name} ({_first_line(err)})") from err
    if restore_rng:
        _restore_rng(state["rng"], path / STATE_FILE)
    return state["extra"]


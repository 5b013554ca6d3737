"""The run format: a trained model rebuilt from its checkpoint alone, with no other file.

:func:`~transformer.training.checkpoint.save_checkpoint` (and so :meth:`Trainer.save`) stores
the model's class name and its :class:`~transformer.model.TransformerConfig` inside
``state.pt``, next to the optimizer state and the caller's ``extra`` entries (the step, a task
name, a recipe). :func:`load_run` reads them back and rebuilds the model. It accepts

* the checkpoint directory itself (``model.safetensors`` + ``state.pt``), or
* a run directory holding it as ``checkpoint/`` (what ``transformer train`` writes:
  ``<run>/checkpoint/`` beside ``<run>/metrics.jsonl``).

A checkpoint is data from elsewhere, so nothing is allocated on its word alone: the stored
config is type-checked, the model is first built on the ``meta`` device (shapes, no memory),
every tensor's shape and dtype is compared with the safetensors header (whose tensors the file
must really hold), and only then is the model built for real and its weights loaded.
"""

from __future__ import annotations

import os
import types
import typing
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model

from transformer.model import DecoderOnlyTransformer, Transformer, TransformerConfig
from transformer.qa import SpanExtractor
from transformer.training.checkpoint import (
    MODEL_FILE,
    STATE_FILE,
    CheckpointError,
    _device,
    _first_line,
    check_weights_fit,
    locate_checkpoint,
    read_state,
    weights_header,
)

RUN_CHECKPOINT = "checkpoint"  # a run directory's checkpoint: <run>/checkpoint/
MODEL_CLASSES: dict[str, type[Transformer] | type[DecoderOnlyTransformer]] = {
    "Transformer": Transformer, "DecoderOnlyTransformer": DecoderOnlyTransformer}
MODEL_CLASSES["SpanExtractor"] = SpanExtractor  # extractive question answering (transformer.qa)
# Buffers a model computes instead of storing (the sinusoidal table of §3.5) may take at most
# this many bytes more than the weights file: a tampered max_len cannot allocate terabytes.
DERIVED_BUFFER_BYTES = 256 * 2**20


class Run(NamedTuple):
    """A trained model rebuilt by :func:`load_run`.

    Attributes:
        model: the :class:`~transformer.model.Transformer` or
            :class:`~transformer.model.DecoderOnlyTransformer`, weights loaded, in eval mode.
        config: its :class:`~transformer.model.TransformerConfig`.
        extra: the checkpoint's ``extra`` dict (for :meth:`Trainer.save`: ``step``, ``epoch``,
            ``train_config``, ... and the caller's own entries).
        path: the checkpoint directory that was read (``<run>/checkpoint`` for a run
            directory; ``<...>.old`` if the last save was interrupted between its renames).
    """

    model: Transformer | DecoderOnlyTransformer
    config: TransformerConfig
    extra: dict[str, Any]
    path: Path


def run_checkpoint(path: str | os.PathLike[str]) -> Path:
    """The checkpoint directory of ``path``: ``path/checkpoint`` when ``path`` is a run
    directory holding one (or its interrupted save ``checkpoint.old``), else ``path`` itself."""
    path = Path(path)
    inner = path / RUN_CHECKPOINT
    if not (path / STATE_FILE).is_file() and \
            ((inner / STATE_FILE).is_file() or (path / f"{RUN_CHECKPOINT}.old").is_dir()):
        return inner
    return path


def _has_type(value: Any, hint: Any) -> bool:
    """Whether a stored (JSON-like) ``value`` is of the annotated type ``hint``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_has_type(value, arg) for arg in typing.get_args(hint))
    if typing.get_origin(hint) is typing.Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True  # a type this check does not know: left to the config itself


def config_from_dict(data: Any, where: str = "the stored config") -> TransformerConfig:
    """A :class:`~transformer.model.TransformerConfig` from a stored dict, checked field by field.

    Raises:
        CheckpointError: ``data`` is not a dict, a field has the wrong type (named, with the
            type it needs), is unknown, or has a value the config rejects.
    """
    if not isinstance(data, dict):
        raise CheckpointError(f"{where} must be a dict of TransformerConfig fields, got "
                              f"{type(data).__name__}")
    hints = typing.get_type_hints(TransformerConfig)
    for name, value in data.items():
        if name in hints and not _has_type(value, hints[name]):
            need = getattr(hints[name], "__name__", None) or str(hints[name])
            raise CheckpointError(f"{where}: field {name!r} must be {need}, got {value!r} "
                                  f"({type(value).__name__})")
    from_dict = getattr(TransformerConfig, "from_dict", None)
    try:
        return from_dict(data) if from_dict is not None else TransformerConfig(**data)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{where} is not a valid TransformerConfig: {err}") from err


def _skeleton(cls: type[torch.nn.Module], config: TransformerConfig, header: dict[str, Any],
              file: Path) -> None:
    """Build ``cls(config)`` on the meta device and check it against the header: no memory."""
    if config.n_layers > len(header):  # every layer stores at least one tensor
        raise CheckpointError(f"{file} does not fit the stored config: n_layers="
                              f"{config.n_layers}, but the file holds {len(header)} tensors")
    try:
        with torch.device("meta"):
            skeleton = cls(config)
    except (ValueError, TypeError, RuntimeError, OverflowError, MemoryError) as err:
        raise CheckpointError(f"cannot build {cls.__name__} from the config stored with {file} "
                              f"({_first_line(err)})") from err
    check_weights_fit(skeleton, header, file, dtypes=True)
    stored = skeleton.state_dict().keys()
    derived = sum(b.numel() * b.element_size() for name, b in skeleton.named_buffers()
                  if name not in stored)
    if derived > file.stat().st_size + DERIVED_BUFFER_BYTES:
        raise CheckpointError(
            f"the config stored with {file} would allocate {derived:,} bytes of buffers that "
            f"the file does not hold (e.g. a sinusoidal table of max_len={config.max_len}); "
            f"refusing more than the file's size + {DERIVED_BUFFER_BYTES:,} bytes")


# --8<-- [start:load_run]
def load_run(path: str | os.PathLike[str], *,
             map_location: str | torch.device = "cpu") -> Run:
    """Rebuild a trained model from its checkpoint alone: ``path`` is a checkpoint directory,
    or a run directory holding one as ``checkpoint/``.

    The stored class name and config give the model; it is checked on the ``meta`` device
    against the weights file before anything is allocated, then built, loaded onto
    ``map_location`` and put in eval mode. The global random state is left as it was.

    Raises:
        CheckpointError: no checkpoint at ``path``; a file missing, empty, truncated or
            corrupt; no model config stored, or one of the wrong kind or type (the field is
            named); or weights that do not fit the config (shapes, dtypes, sizes).
        ValueError: ``map_location`` is not a torch device.
    """
    device = _device(map_location)
    ckpt = locate_checkpoint(run_checkpoint(path))
    state = read_state(ckpt, device)
    entry, file = state["model"], ckpt / MODEL_FILE
    if entry is None:
        raise CheckpointError(f"{ckpt / STATE_FILE} holds no model config (it was saved from a "
                              "model without config.to_dict()); build the model yourself and "
                              "use load_checkpoint")
    name = entry.get("class")
    if not isinstance(name, str) or name not in MODEL_CLASSES:
        raise CheckpointError(f"{ckpt / STATE_FILE}: model class {name!r} is not one of "
                              f"{sorted(MODEL_CLASSES)}")
    cls, config = MODEL_CLASSES[name], config_from_dict(entry.get("config"),
                                                        f"the config in {ckpt / STATE_FILE}")
    _skeleton(cls, config, weights_header(ckpt), file)  # refuses before any allocation
    with torch.random.fork_rng(devices=[]):  # the initialisation draws do not leak out
        model = cls(config)
    try:
        load_model(model, file, strict=True)
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise CheckpointError(f"cannot load {file} ({_first_line(err)})") from err
    return Run(model.to(device).eval(), config, state["extra"], ckpt)
# --8<-- [end:load_run]

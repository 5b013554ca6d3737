"""What every task is made of: a recipe of settings, a metric, and one entry of the tasks table.

A task is one row of :data:`transformer.tasks.TASKS`, a frozen :class:`Task`: its data, its
tokenizer (``None`` when the data are token ids already), the model configuration its recipe
asks for, its recipe type (a frozen dataclass of settings, each with a default) and its metric.
``transformer train TASK`` reads the table and turns each field of the recipe into an option,
so every setting is written once: as a :func:`setting` of the recipe.

This layer sits above the model, training and generation, and below the command line.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Generic, TypeVar

from torch import Tensor, nn

from transformer.generation import generate
from transformer.model import Transformer, TransformerConfig
from transformer.training.trainer import TrainConfig, Trainer

__all__ = ["SPLITS", "Metric", "Recipe", "Task", "retune", "setting", "train_until"]

SPLITS = ("train", "valid", "test")  # what Task.data(recipe, split) gives


def setting(default: Any, help: str, *, at_least: float | None = None,
            above: float | None = None, below: float | None = None) -> Any:
    """A field of a :class:`Recipe`: its default, its help line and its allowed range.

    The recipe checks the range when it is built, and ``transformer train`` shows ``help`` for
    the option the field becomes.

    Args:
        default: the value of the default run.
        help: one line for ``--help``.
        at_least: smallest allowed value (inclusive).
        above: the value must be greater than this.
        below: the value must be smaller than this.
    """
    return field(default=default, metadata={"help": help, "at_least": at_least, "above": above,
                                            "below": below})


def retune(recipe: type[Recipe], name: str, default: Any) -> Any:
    """The :func:`setting` ``name`` of ``recipe`` with another default (same help and range),
    for a subclass whose task wants another value.

    Raises:
        ValueError: ``recipe`` has no field ``name``.
    """
    known = {f.name: f for f in fields(recipe)}
    if name not in known:
        raise ValueError(f"name must be a field of {recipe.__name__} ({sorted(known)}), "
                         f"got {name!r}")
    return field(default=default, metadata=known[name].metadata)


def _range(meta: typing.Mapping[str, Any]) -> str:
    low, above, below = meta.get("at_least"), meta.get("above"), meta.get("below")
    if below is not None and (low is not None or above is not None):
        return f" in [{low}, {below})" if low is not None else f" in ({above}, {below})"
    if low is not None:
        return f" >= {low}"
    if above is not None:
        return f" > {above}"
    return f" < {below}" if below is not None else ""


def _inside(meta: typing.Mapping[str, Any], value: float) -> bool:
    low, above, below = meta.get("at_least"), meta.get("above"), meta.get("below")
    return ((low is None or value >= low) and (above is None or value > above)
            and (below is None or value < below))


# --8<-- [start:recipe]
@dataclass(frozen=True)
class Recipe:
    """Settings of one training run, defaults from the paper (§5.3–5.4: 100,000 steps, 4000
    warm-up steps of eq. 3, label smoothing 0.1); a task's recipe adds its data and model sizes.

    Every field is a :func:`setting`, whose range is checked here, and ``transformer train
    TASK`` turns each into an option (``max_steps`` becomes ``--max-steps``).

    Raises:
        ValueError: a field of the wrong type or outside its range, naming it.
    """

    max_steps: int = setting(100_000, "optimizer steps at most", at_least=1)
    warmup_steps: int = setting(4000, "warm-up steps of the eq. 3 learning rate", at_least=1)
    lr_factor: float = setting(1.0, "factor on the eq. 3 learning rate", above=0)
    label_smoothing: float = setting(0.1, "epsilon_ls of the loss (§5.4)", at_least=0, below=1)
    eval_every: int = setting(50, "optimizer steps between two checks of the metric on the "
                              "validation data", at_least=1)
    seed: int = setting(0, "seed of the data, the initial weights and dropout")

    def train_config(self, **changes: Any) -> TrainConfig:
        """The :class:`~transformer.training.TrainConfig`; ``changes`` override fields."""
        settings: dict[str, Any] = dict(
            max_steps=self.max_steps, warmup_steps=self.warmup_steps, lr_factor=self.lr_factor,
            label_smoothing=self.label_smoothing, seed=self.seed)
        return TrainConfig(**(settings | changes))
# --8<-- [end:recipe]

    def __post_init__(self) -> None:
        for f in fields(self):
            problem = self.problem(f.name, getattr(self, f.name))
            if problem is not None:
                raise ValueError(f"{f.name} {problem}")

    @classmethod
    def problem(cls, name: str, value: Any) -> str | None:
        """What is wrong with ``value`` for the field ``name``, e.g. ``"must be an integer >= 1,
        got 0"``, or ``None`` if it is allowed (its type and range).

        Raises:
            ValueError: ``name`` is not a field of this recipe.
        """
        known = {f.name: f for f in fields(cls)}
        if name not in known:
            raise ValueError(f"name must be a field of {cls.__name__}, got {name!r}")
        kind, optional = cls.field_type(name)
        meta = known[name].metadata
        if value is None and optional:
            return None
        if kind is bool:
            return None if isinstance(value, bool) else f"must be True or False, got {value!r}"
        if kind is str:
            return None if isinstance(value, str) else f"must be a string, got {value!r}"
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is int:
            what, fits = "an integer", is_number and isinstance(value, int)
        else:
            what, fits = "a finite number", is_number and math.isfinite(value)
        if not fits or not _inside(meta, value):
            return f"must be {what}{_range(meta)}, got {value!r}"
        return None

    @classmethod
    def field_type(cls, name: str) -> tuple[type, bool]:
        """The type of the field ``name`` and whether it may be ``None``: ``int`` gives
        ``(int, False)``, ``int | None`` gives ``(int, True)``.

        Raises:
            TypeError: a type other than int, float, str or bool (or one of them | None).
        """
        annotation = typing.get_type_hints(cls)[name]
        args = typing.get_args(annotation)
        if type(None) in args and len(args) == 2:
            annotation = next(a for a in args if a is not type(None))
        if annotation not in (int, float, str, bool):
            raise TypeError(f"recipe fields must be int, float, str or bool (or X | None), "
                            f"got {name}: {typing.get_type_hints(cls)[name]!r}")
        return annotation, type(None) in args

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary (JSON-ready)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Metric:
    """How well a trained model does: ``compute(model, held_out) -> score``.

    Attributes:
        name: the key of the score in the training metrics, e.g. ``"exact_match"``.
        compute: ``compute(model, held_out)``, where ``held_out`` is what
            ``Task.data(recipe, "valid")`` or ``"test"`` gives.
        target: the score that ends training early (:func:`train_until`); ``None``: never.
        greater_is_better: ``False`` for a score such as perplexity.
        fmt: how the command line prints the score, a :meth:`str.format` pattern.
    """

    name: str
    compute: Callable[[nn.Module, Any], float]
    target: float | None = None
    greater_is_better: bool = True
    fmt: str = "{:.4g}"

    def reached(self, score: float) -> bool:
        """Whether ``score`` is as good as ``target`` (never, without a target)."""
        if self.target is None:
            return False
        return score >= self.target if self.greater_is_better else score <= self.target


R = TypeVar("R", bound=Recipe)


# --8<-- [start:task]
@dataclass(frozen=True)
class Task(Generic[R]):
    """One entry of the tasks table: everything ``transformer train NAME`` needs.

    Attributes:
        name: the key in :data:`~transformer.tasks.TASKS` and on the command line.
        description: one line for ``transformer train --help``.
        recipe: the frozen :class:`Recipe` dataclass of the task's settings; ``recipe()`` is
            the default run.
        data: ``data(recipe, split)``, ``split`` one of :data:`SPLITS`: ``"train"`` gives the
            :class:`~transformer.training.Trainer`'s batches, ``"valid"`` and ``"test"`` what
            ``metric.compute`` reads (examples the training batches never hold).
        model_config: ``model_config(recipe)``, the model's
            :class:`~transformer.model.TransformerConfig`.
        metric: how well a trained model does, on ``data(recipe, "valid")`` while training and
            on ``data(recipe, "test")`` at the end.
        tokenizer: ``tokenizer(recipe)`` between text and ids, or ``None`` for a task whose data
            are token ids already.
        model: the model class that ``model_config`` configures (an encoder-decoder
            :class:`~transformer.model.Transformer` or a decoder-only model).
        note: ``note(recipe)``, a line ``transformer train`` prints before training, e.g.
            which files of a corpus train and score the model; ``None``: nothing to say.
    """

    name: str
    description: str
    recipe: type[R]
    data: Callable[[R, str], Any]
    model_config: Callable[[R], TransformerConfig]
    metric: Metric
    tokenizer: Callable[[R], Any] | None = None
    model: Callable[[TransformerConfig], nn.Module] = Transformer
    note: Callable[[R], str] | None = None
# --8<-- [end:task]

    def __post_init__(self) -> None:
        if not (isinstance(self.recipe, type) and issubclass(self.recipe, Recipe)):
            raise TypeError(f"recipe must be a Recipe dataclass, got {self.recipe!r}")
        if not self.name or not self.description:
            raise ValueError(f"a task needs a name and a description, got {self.name!r} and "
                             f"{self.description!r}")


# --8<-- [start:train_until]
def train_until(
    trainer: Trainer,
    held_out: Any,
    metric: Metric,
    *,
    eval_every: int = 50,
    early_stop: bool = True,
    on_eval: Callable[[list[dict[str, float]]], None] | None = None,
) -> list[dict[str, float]]:
    """Train ``trainer.model`` in rounds of ``eval_every`` steps, scoring ``metric`` on
    ``held_out`` after each, until the score reaches ``metric.target`` (with ``early_stop``)
    or the trainer reaches ``trainer.config.max_steps``.

    Args:
        trainer: a :class:`~transformer.training.Trainer`.
        held_out: what ``metric.compute`` reads, e.g. ``Task.data(recipe, "valid")``.
        metric: the score to check.
        eval_every: optimizer steps between two checks.
        early_stop: stop at the first check that reaches ``metric.target``.
        on_eval: called with the metrics of each round, e.g. to show progress.

    Returns:
        The trainer's metrics of every step; the last step of each round also holds the score,
        under ``metric.name``.

    Raises:
        ValueError: ``eval_every`` < 1.
    """
    if not isinstance(eval_every, int) or isinstance(eval_every, bool) or eval_every < 1:
        raise ValueError(f"eval_every must be an integer >= 1, got {eval_every!r}")
    history: list[dict[str, float]] = []
    while trainer.step < trainer.config.max_steps:
        until = min(trainer.step + eval_every, trainer.config.max_steps)
        metrics = trainer.train(until_step=until)
        metrics[-1][metric.name] = metric.compute(trainer.model, held_out)
        history += metrics
        if on_eval is not None:
            on_eval(metrics)
        if early_stop and metric.reached(metrics[-1][metric.name]):
            break
    return history
# --8<-- [end:train_until]


def _decode(model: Transformer, inputs: Tensor, *, bos_id: int, eos_id: int,
            beam_size: int = 1, max_new_tokens: int | None = None) -> Tensor:
    """The one way the tasks layer and the command line decode: greedy for ``beam_size=1``,
    beam search (§6.1) otherwise. ``(batch, src_len)`` ids in, ``(batch, steps)`` ids out."""
    strategy = "greedy" if beam_size == 1 else "beam"
    return generate(model, inputs, strategy=strategy, beam_size=beam_size,
                    max_new_tokens=max_new_tokens, bos_id=bos_id, eos_id=eos_id).sequences

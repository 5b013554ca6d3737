"""The learning-rate schedule of §5.3, equation 3 ("Optimizer").

    lrate = d_model^-0.5 · min(step_num^-0.5, step_num · warmup_steps^-1.5)        (3)

"This corresponds to increasing the learning rate linearly for the first warmup_steps training
steps, and decreasing it thereafter proportionally to the inverse square root of the step
number. We used warmup_steps = 4000." The two branches meet at ``step_num = warmup_steps``,
where the rate peaks at ``(d_model · warmup_steps)^-0.5``.

Steps are numbered from 1: the rate used by the *first* optimizer step is ``lrate(1)``, never
``lrate(0) = 0`` (which would waste a step and make Adam's first update a no-op).
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


def _check_positive(name: str, value: float, *, integer: bool) -> None:
    kind = "a positive integer" if integer else "positive"
    if (integer and (not isinstance(value, int) or isinstance(value, bool))) or value <= 0:
        raise ValueError(f"{name} must be {kind}, got {value!r}")


# --8<-- [start:noam_schedule]
def noam_lr(step: int, d_model: int, warmup_steps: int = 4000, factor: float = 1.0) -> float:
    """Equation 3: the learning rate for optimizer step ``step`` (counted from 1).

    ``factor`` scales the whole curve (1.0 = the paper; The Annotated Transformer uses 1 or 2).
    Raises ``ValueError`` if ``step < 1``, or ``d_model``/``warmup_steps``/``factor`` are not
    positive.
    """
    _check_positive("step", step, integer=True)
    _check_positive("d_model", d_model, integer=True)
    _check_positive("warmup_steps", warmup_steps, integer=True)
    _check_positive("factor", factor, integer=False)
    return factor * d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)


class NoamSchedule(LRScheduler):
    """Sets every parameter group's ``lr`` to :func:`noam_lr` of the coming optimizer step.

    Use as any PyTorch scheduler: ``optimizer.step()`` then ``schedule.step()``. The optimizer's
    own ``lr`` is ignored (overwritten at construction with ``noam_lr(1, ...)``), so create it
    with any value, e.g. ``Adam(params, lr=1.0, betas=(0.9, 0.98), eps=1e-9)`` (§5.3).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        d_model: int,
        warmup_steps: int = 4000,
        factor: float = 1.0,
        last_epoch: int = -1,
    ) -> None:
        noam_lr(1, d_model, warmup_steps, factor)  # validate the arguments early
        self.d_model, self.warmup_steps, self.factor = d_model, warmup_steps, factor
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        # The base class counts scheduler steps from 0 (``last_epoch`` is 0 after construction);
        # the optimizer step that will use this rate is step ``last_epoch + 1`` of eq. 3.
        lr = noam_lr(self.last_epoch + 1, self.d_model, self.warmup_steps, self.factor)
        return [lr for _ in self.optimizer.param_groups]
# --8<-- [end:noam_schedule]


# --8<-- [start:cosine_schedule]
def cosine_lr(step: int, lr: float, warmup_steps: int, decay_steps: int,
              min_lr: float = 0.0) -> float:
    """Linear warm-up then cosine decay, the schedule of GPT-style training (nanoGPT's
    ``get_lr``): the learning rate for optimizer step ``step`` (counted from 1).

    Step ``s`` uses nanoGPT's iteration ``it = s - 1``: ``lr · (it + 1) / (warmup_steps + 1)``
    while ``it < warmup_steps``; then ``min_lr + ½ (1 + cos(π r)) (lr - min_lr)`` with
    ``r = (it - warmup_steps) / (decay_steps - warmup_steps)``; ``min_lr`` after
    ``decay_steps``.

    Raises:
        ValueError: ``step < 1``, ``lr <= 0``, ``min_lr`` outside ``[0, lr]``, or
            ``decay_steps <= warmup_steps``.
    """
    _check_cosine(step, lr, warmup_steps, decay_steps, min_lr)
    it = step - 1
    if it < warmup_steps:
        return lr * (it + 1) / (warmup_steps + 1)
    if it > decay_steps:
        return min_lr
    ratio = (it - warmup_steps) / (decay_steps - warmup_steps)  # 0 → 1
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)
# --8<-- [end:cosine_schedule]


def _check_cosine(step: int, lr: float, warmup_steps: int, decay_steps: int,
                  min_lr: float) -> None:
    _check_positive("step", step, integer=True)
    _check_positive("lr", lr, integer=False)
    if not (isinstance(warmup_steps, int) and not isinstance(warmup_steps, bool)
            and warmup_steps >= 0):
        raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}")
    _check_positive("decay_steps", decay_steps, integer=True)
    if decay_steps <= warmup_steps:
        raise ValueError(f"decay_steps must be greater than warmup_steps={warmup_steps}, got "
                         f"{decay_steps}")
    if not (isinstance(min_lr, int | float) and not isinstance(min_lr, bool)
            and math.isfinite(min_lr) and 0 <= min_lr <= lr):
        raise ValueError(f"min_lr must be a number in [0, lr={lr}], got {min_lr!r}")


class CosineSchedule(LRScheduler):
    """Sets every parameter group's ``lr`` to :func:`cosine_lr` of the coming optimizer step
    (used as any PyTorch scheduler; the optimizer's own ``lr`` is overwritten)."""

    def __init__(self, optimizer: Optimizer, lr: float, warmup_steps: int, decay_steps: int,
                 min_lr: float = 0.0, last_epoch: int = -1) -> None:
        _check_cosine(1, lr, warmup_steps, decay_steps, min_lr)
        self.peak, self.warmup_steps, self.decay_steps, self.min_lr = (lr, warmup_steps,
                                                                       decay_steps, min_lr)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        lr = cosine_lr(self.last_epoch + 1, self.peak, self.warmup_steps, self.decay_steps,
                       self.min_lr)
        return [lr for _ in self.optimizer.param_groups]

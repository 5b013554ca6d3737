"""The learning-rate schedule of equation 3 (§5.3)."""

import math

import pytest
import torch

from transformer.training.schedule import NoamSchedule, noam_lr


def _eq3(step: int, d_model: int, warmup: int) -> float:
    return d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.Adam([torch.nn.Parameter(torch.zeros(3))], lr=123.0, betas=(0.9, 0.98),
                            eps=1e-9)


@pytest.mark.parametrize(("d_model", "warmup"), [(512, 4000), (1024, 4000), (64, 10)])
def test_noam_lr_matches_equation_3(d_model, warmup):
    for step in [1, 2, 3, 10, 99, warmup - 1, warmup, warmup + 1, 10 * warmup, 100_000]:
        assert math.isclose(noam_lr(step, d_model, warmup), _eq3(step, d_model, warmup),
                            rel_tol=1e-15)
    assert math.isclose(noam_lr(50, d_model, warmup, factor=2.0), 2 * _eq3(50, d_model, warmup))


def test_paper_settings_peak_at_warmup_with_7e_minus_4():
    rates = [noam_lr(s, 512, 4000) for s in range(1, 20_001)]
    peak_step = max(range(len(rates)), key=rates.__getitem__) + 1
    assert peak_step == 4000
    assert math.isclose(rates[peak_step - 1], (512 * 4000) ** -0.5)
    assert f"{rates[peak_step - 1]:.2e}" == "6.99e-04"
    # linear warm-up, then inverse square-root decay
    assert math.isclose(rates[1999], rates[999] * 2)
    assert math.isclose(rates[15999], rates[3999] / 2)


def test_scheduler_drives_the_optimizer_from_step_one():
    opt = _optimizer()
    sched = NoamSchedule(opt, d_model=512, warmup_steps=4000)
    used = []
    for _ in range(5000):
        used.append(opt.param_groups[0]["lr"])  # the rate this optimizer step will use
        opt.step()
        sched.step()
    assert used[0] > 0
    for step in [1, 2, 4000, 5000]:
        assert math.isclose(used[step - 1], _eq3(step, 512, 4000), rel_tol=1e-15)
    assert sched.get_last_lr()[0] == opt.param_groups[0]["lr"]


def test_scheduler_state_dict_round_trip():
    opt_a = _optimizer()
    sched_a = NoamSchedule(opt_a, d_model=64, warmup_steps=10, factor=2.0)
    for _ in range(7):
        opt_a.step()
        sched_a.step()
    opt_b = _optimizer()
    sched_b = NoamSchedule(opt_b, d_model=64, warmup_steps=10, factor=2.0)
    sched_b.load_state_dict(sched_a.state_dict())
    opt_b.load_state_dict(opt_a.state_dict())
    for _ in range(5):
        assert opt_b.param_groups[0]["lr"] == opt_a.param_groups[0]["lr"]
        for opt, sched in [(opt_a, sched_a), (opt_b, sched_b)]:
            opt.step()
            sched.step()
    assert sched_b.last_epoch == 12
    assert opt_b.param_groups[0]["lr"] == _eq3(13, 64, 10) * 2.0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(step=0), "step"),
        (dict(step=-3), "step"),
        (dict(d_model=0), "d_model"),
        (dict(d_model=512.0), "d_model"),
        (dict(warmup_steps=0), "warmup_steps"),
        (dict(factor=0.0), "factor"),
    ],
)
def test_bad_arguments_are_rejected_by_name(kwargs, name):
    args = dict(step=1, d_model=512, warmup_steps=4000, factor=1.0) | kwargs
    with pytest.raises(ValueError, match=name):
        noam_lr(**args)
    if name != "step":
        args.pop("step")
        with pytest.raises(ValueError, match=name):
            NoamSchedule(_optimizer(), **args)

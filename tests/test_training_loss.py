"""Label-smoothed cross-entropy (§5.4): agrees with PyTorch, and never returns inf or NaN."""

import math

import pytest
import torch
import torch.nn.functional as F

from transformer.training.loss import LabelSmoothingLoss, label_smoothed_nll

PAD = 0


def _batch(seed: int, batch: int = 3, seq: int = 7, vocab: int = 11, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, seq, vocab, generator=g, dtype=dtype) * 3
    target = torch.randint(1, vocab, (batch, seq), generator=g)
    target[:, -2:] = PAD  # trailing padding
    target[0, 1] = PAD  # and some in the middle
    return logits, target


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_equals_pytorch_cross_entropy_with_label_smoothing(seed, eps, reduction):
    logits, target = _batch(seed)
    ours = label_smoothed_nll(logits, target, eps, PAD, reduction=reduction)
    theirs = F.cross_entropy(
        logits.transpose(1, 2), target, label_smoothing=eps, ignore_index=PAD, reduction=reduction
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def _brute_force_excluding_padding(logits, target, eps, pad):
    """The Annotated Transformer's target: 1-ε true, 0 padding, ε/(V-2) elsewhere."""
    vocab = logits.shape[-1]
    total, count = 0.0, 0
    for row_logits, row_target in zip(logits.reshape(-1, vocab), target.reshape(-1), strict=True):
        y = int(row_target)
        if y == pad:
            continue
        log_p = torch.log_softmax(row_logits, dim=-1)
        q = [eps / (vocab - 2)] * vocab
        q[y], q[pad] = 1 - eps, 0.0
        total += -sum(q_c * float(lp) for q_c, lp in zip(q, log_p, strict=True))
        count += 1
    return total / count


@pytest.mark.parametrize("seed", range(3))
def test_pad_excluding_variant_matches_per_token_loop(seed):
    logits, target = _batch(seed)
    ours = label_smoothed_nll(logits, target, 0.1, PAD, smooth_over_padding=False)
    expected = _brute_force_excluding_padding(logits, target, 0.1, PAD)
    assert math.isclose(float(ours), expected, rel_tol=1e-12)
    # ... and it is a different number from PyTorch's convention.
    assert not math.isclose(float(ours), float(label_smoothed_nll(logits, target, 0.1, PAD)))


def test_both_variants_agree_without_smoothing():
    logits, target = _batch(0)
    a = label_smoothed_nll(logits, target, 0.0, PAD, smooth_over_padding=True)
    b = label_smoothed_nll(logits, target, 0.0, PAD, smooth_over_padding=False)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("smooth_over_padding", [True, False])
def test_all_padding_batch_gives_zero_not_nan(smooth_over_padding):
    logits = torch.randn(2, 4, 6, requires_grad=True)
    target = torch.full((2, 4), PAD)
    loss = label_smoothed_nll(logits, target, 0.1, PAD, smooth_over_padding=smooth_over_padding)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))
    # PyTorch's own mean over zero tokens is NaN: that is the case we define differently.
    assert torch.isnan(F.cross_entropy(logits.detach().transpose(1, 2), target, ignore_index=PAD))


@pytest.mark.parametrize("smooth_over_padding", [True, False])
def test_huge_logits_give_finite_loss_and_gradient(smooth_over_padding):
    g = torch.Generator().manual_seed(0)
    logits = (torch.randint(0, 2, (4, 5, 9), generator=g).float() * 2 - 1) * 1e4
    logits.requires_grad_(True)
    target = torch.randint(0, 9, (4, 5), generator=g)
    loss = label_smoothed_nll(logits, target, 0.1, PAD, smooth_over_padding=smooth_over_padding)
    loss.backward()
    assert torch.isfinite(loss)
    assert loss.item() > 0
    assert torch.isfinite(logits.grad).all()


def test_smoothing_target_is_what_the_model_learns():
    """The loss is smallest when softmax(logits) equals the smoothed target q itself."""
    vocab, eps, y = 5, 0.1, 3
    q = torch.full((vocab,), eps / vocab, dtype=torch.float64)
    q[y] += 1 - eps
    best = label_smoothed_nll(q.log(), torch.tensor(y), eps, PAD)
    entropy = -(q * q.log()).sum()
    torch.testing.assert_close(best, entropy)  # H(q, q) = H(q)
    sharper = torch.zeros(vocab, dtype=torch.float64)
    sharper[y] = 20.0  # an over-confident prediction costs more
    assert label_smoothed_nll(sharper, torch.tensor(y), eps, PAD) > best


def test_module_wraps_the_function():
    logits, target = _batch(1)
    crit = LabelSmoothingLoss(0.1, ignore_index=PAD, reduction="sum")
    torch.testing.assert_close(crit(logits, target), label_smoothed_nll(logits, target, 0.1, PAD,
                                                                       reduction="sum"))
    assert "label_smoothing=0.1" in repr(crit)


def test_bf16_logits_are_summed_in_float32():
    logits, target = _batch(2, dtype=torch.float32)
    loss = label_smoothed_nll(logits.bfloat16(), target, 0.1, PAD)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, label_smoothed_nll(logits, target, 0.1, PAD), rtol=2e-2,
                               atol=0)


@pytest.mark.parametrize("eps", [-0.1, 1.0, 1.5])
def test_label_smoothing_out_of_range_is_rejected(eps):
    logits, target = _batch(0)
    with pytest.raises(ValueError, match="label_smoothing"):
        label_smoothed_nll(logits, target, eps)
    with pytest.raises(ValueError, match="label_smoothing"):
        LabelSmoothingLoss(eps)


def test_target_shape_mismatch_is_rejected():
    logits, target = _batch(0)
    with pytest.raises(ValueError, match="target"):
        label_smoothed_nll(logits, target[:, :-1])


def test_float_target_is_rejected():
    logits, target = _batch(0)
    with pytest.raises(TypeError, match="target"):
        label_smoothed_nll(logits, target.float())


def test_bad_reduction_and_tiny_vocab_are_rejected():
    logits, target = _batch(0)
    with pytest.raises(ValueError, match="reduction"):
        label_smoothed_nll(logits, target, reduction="avg")
    with pytest.raises(ValueError, match="vocab >= 3"):
        label_smoothed_nll(torch.randn(4, 2), torch.ones(4, dtype=torch.long),
                           smooth_over_padding=False)

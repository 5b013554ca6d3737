"""TransformerModule trains both model kinds through lightning.Trainer, step for step as the
package's own Trainer does (same loss per step, same weights after), and refuses bad input.

The reference is :class:`transformer.training.Trainer` (itself tested against the paper's
definitions in tests/test_training_trainer.py): same model, same batches, same seed, no dropout.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch
from torch.utils.data import DataLoader

lightning = pytest.importorskip("lightning")

from transformer import DecoderOnlyTransformer, Transformer, TransformerConfig  # noqa: E402
from transformer.lightning import TransformerModule  # noqa: E402
from transformer.training import TrainConfig, Trainer  # noqa: E402

PAD, BOS = 0, 1
STEPS = 4


def copy_batches(n: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Copy-task batches for the encoder-decoder: the target repeats the source."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        src = torch.randint(2, 12, (8, 6), generator=g)
        src[0, 4:] = PAD  # a shorter sequence: padding is ignored by the loss
        tgt = src.clone()
        out.append({"src": src, "tgt_in": torch.cat([torch.full((8, 1), BOS), tgt[:, :-1]], 1),
                    "tgt_out": tgt})
    return out


def lm_batches(n: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Next-token batches for the decoder-only model."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        seq = torch.randint(1, 12, (8, 10), generator=g)
        out.append({"tokens": seq[:, :-1], "targets": seq[:, 1:]})
    return out


KINDS = {"encoder-decoder": (Transformer, copy_batches),
         "decoder-only": (DecoderOnlyTransformer, lm_batches)}


def make(kind: type) -> torch.nn.Module:
    torch.manual_seed(0)
    # float64: in float32, Adam turns rounding noise in near-zero gradients into differences
    # the comparison below would report (seen on an AVX2-only CPU)
    return kind(TransformerConfig.tiny(vocab_size=12, dropout=0.0)).double()


def fit(module: TransformerModule, batches: list, steps: int) -> None:
    trainer = lightning.Trainer(fast_dev_run=steps, accelerator="cpu", logger=False,
                                enable_checkpointing=False, enable_progress_bar=False,
                                enable_model_summary=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on dataloader workers
        # batch_size=None: the loader passes our ready-made batches through as they are
        trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))


CONFIG = TrainConfig(warmup_steps=10, lr_factor=2.0, progress=False, device="cpu")


@pytest.mark.parametrize("name", list(KINDS))
def test_lightning_trains_the_model_and_the_loss_falls(name: str) -> None:
    kind, batches = KINDS[name]
    module = TransformerModule(make(kind), CONFIG)
    data = batches(1) * 12  # one batch, again and again: the loss must fall
    fit(module, data, 12)
    assert len(module.losses) == 12
    assert module.losses[-1] < module.losses[0] - 0.1


@pytest.mark.parametrize("name", list(KINDS))
def test_lightning_steps_equal_the_package_trainers(name: str) -> None:
    kind, batches = KINDS[name]
    data = batches(STEPS)
    module = TransformerModule(make(kind), CONFIG)
    fit(module, data, STEPS)
    reference = Trainer(make(kind), CONFIG, data)
    history = reference.train(until_step=STEPS)
    torch.testing.assert_close(torch.tensor(module.losses),
                               torch.tensor([m["loss"] for m in history]), rtol=1e-5, atol=1e-6)
    for (key, a), (_, b) in zip(module.model.state_dict().items(),
                                reference.model.state_dict().items(), strict=True):
        if key.endswith("w_k.bias"):  # its gradient is 0 in exact arithmetic (softmax ignores
            continue  # a shift shared by all keys): Adam normalises rounding noise there
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=key)
    # the learning rate followed eq. 3, one step per optimizer step
    assert module.lr_schedulers().last_epoch == STEPS == reference.scheduler.last_epoch


def test_a_batch_without_the_expected_keys_is_refused() -> None:
    module = TransformerModule(make(DecoderOnlyTransformer), CONFIG)
    with pytest.raises(ValueError, match=r"batch must have keys .* got \['input_ids'\]"):
        module.training_step({"input_ids": torch.ones(2, 3, dtype=torch.long)}, 0)


@pytest.mark.parametrize(("args", "error", "match"), [
    ((torch.ones(3),), TypeError, "model must be a torch.nn.Module, got Tensor"),
    ((torch.nn.Linear(2, 2),), ValueError, "model.config must give d_model .* got NoneType"),
    ((make(DecoderOnlyTransformer), {"warmup_steps": 10}), TypeError,
     "config must be a TrainConfig, got dict"),
])
def test_bad_arguments_are_refused(args: tuple, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        TransformerModule(*args)


def test_without_lightning_the_import_error_says_how_to_install_it() -> None:
    code = ("import sys; sys.modules['lightning'] = None\n"
            "try:\n    import transformer.lightning\n"
            "except ImportError as err:\n    print(err)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "pip install 'executable-transformer[lightning]'" in out


def test_importing_the_package_does_not_import_lightning() -> None:
    code = "import sys, transformer, transformer.training; print('lightning' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"

"""The defaults are the paper's: a run built with no options trains with §5.3's Adam and
schedule and §5.4's label smoothing, the paper's runs last Table 3's steps, and decoding with no
options is §6.1's beam search. Appendix A (tests/test_appendix.py) points at these tests."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from transformer import Transformer, TransformerConfig
from transformer.generation import beam_search, generate
from transformer.training import TrainConfig, Trainer
from transformer.training.presets import PAPER_TRAIN_STEPS, paper_train_config


def test_trainer_uses_adam_warmup_and_label_smoothing_of_the_paper_by_default() -> None:
    model = Transformer(TransformerConfig.tiny())
    trainer = Trainer(model, TrainConfig(progress=False, device="cpu"), [])
    adam = trainer.optimizer.defaults
    assert isinstance(trainer.optimizer, torch.optim.Adam)
    assert adam["betas"] == (0.9, 0.98) and adam["eps"] == 1e-9  # §5.3
    assert trainer.scheduler.warmup_steps == 4000  # eq. 3's warmup_steps
    assert trainer.loss_fn.label_smoothing == 0.1  # §5.4, ε_ls
    assert TrainConfig().max_steps == 100_000  # Table 3, base


def test_paper_train_configs_run_100k_and_300k_steps() -> None:
    assert PAPER_TRAIN_STEPS == {"base": 100_000, "big": 300_000}
    base, big = paper_train_config("base"), paper_train_config("big", progress=False)
    assert (base.max_steps, big.max_steps) == (100_000, 300_000)
    assert dataclasses.replace(big, max_steps=100_000, progress=True) == base  # only the steps
    assert dataclasses.replace(base, max_steps=100_000) == TrainConfig()
    with pytest.raises(ValueError, match="model must be one of"):
        paper_train_config("huge")


def test_beam_search_defaults_are_beam_4_and_alpha_0_6() -> None:
    torch.manual_seed(0)
    model = Transformer(TransformerConfig.tiny(vocab_size=12)).eval()
    src = torch.randint(3, 12, (3, 5))
    default = beam_search(model, src, bos_id=1, eos_id=2, max_new_tokens=6)
    paper = beam_search(model, src, bos_id=1, eos_id=2, max_new_tokens=6, beam_size=4,
                        alpha=0.6)
    assert torch.equal(default.sequences, paper.sequences)
    torch.testing.assert_close(default.scores, paper.scores)
    beam = generate(model, src, strategy="beam", bos_id=1, eos_id=2, max_new_tokens=6)
    assert torch.equal(beam.sequences, paper.sequences)

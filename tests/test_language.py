"""Language modeling on real text: the GPT-style optimizer and schedule, random windows, the
causal fast path, the shakespeare and wikitext2 tasks, text prompts on the command line."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from transformer import DecoderOnlyTransformer, TransformerConfig
from transformer.cli import main
from transformer.data.tokenizers import CharTokenizer
from transformer.tasks import TASKS
from transformer.tasks.language import (
    SHAKESPEARE,
    WIKITEXT2,
    HeldOutText,
    ShakespeareRecipe,
    WikiText2Recipe,
    bits_per_character,
    continue_text,
    shakespeare_split,
    strided_nats,
    window_loss,
)
from transformer.training import (
    RandomWindows,
    TrainConfig,
    Trainer,
    cosine_lr,
    make_optimizer,
)

SMALL = dict(d_model=64, n_layers=2, n_heads=4, context=32, batch_size=16, eval_iters=4)


def nanogpt_get_lr(it: int, lr: float, warmup: int, decay: int, min_lr: float) -> float:
    """nanoGPT's train.py get_lr, written out again from its description."""
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it > decay:
        return min_lr
    ratio = (it - warmup) / (decay - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def test_cosine_schedule_is_nanogpts_get_lr_shifted_by_one_step():
    for step in range(1, 2101):
        assert cosine_lr(step, 1e-3, 100, 2000, 1e-4) == pytest.approx(
            nanogpt_get_lr(step - 1, 1e-3, 100, 2000, 1e-4), rel=1e-12)


def test_trainer_follows_the_cosine_schedule():
    model = DecoderOnlyTransformer(TransformerConfig.tiny(vocab_size=20, max_len=8))
    config = TrainConfig(max_steps=30, warmup_steps=5, optimizer="adamw", weight_decay=0.1,
                         schedule="cosine", lr=1e-2, min_lr=1e-3, label_smoothing=0.0,
                         progress=False, device="cpu")
    trainer = Trainer(model, config, RandomWindows(torch.randint(3, 20, (200,)), 8, 4))
    lrs = [trainer.train_step()["lr"] for _ in range(30)]
    assert lrs == pytest.approx([cosine_lr(s, 1e-2, 5, 30, 1e-3) for s in range(1, 31)])


@pytest.mark.parametrize("changes, message", [
    (dict(schedule="cosine"), "needs lr"),
    (dict(lr=1e-3), "lr_factor instead"),
    (dict(weight_decay=0.1), "needs optimizer='adamw'"),
    (dict(optimizer="sgd"), "optimizer must be"),
    (dict(schedule="cosine", lr=1e-3, min_lr=1e-2), "min_lr"),
    (dict(schedule="cosine", lr=1e-3, warmup_steps=50, max_steps=40), "decay_steps"),
])
def test_gpt_style_settings_are_checked(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_adamw_decays_matrices_and_embeddings_only():
    model = DecoderOnlyTransformer(TransformerConfig.tiny(vocab_size=20, max_len=8))
    optimizer = make_optimizer(model, TrainConfig(optimizer="adamw", weight_decay=0.1))
    decayed, kept = optimizer.param_groups
    assert decayed["weight_decay"] == 0.1 and kept["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decayed["params"])
    assert all(p.dim() < 2 for p in kept["params"])
    assert len(decayed["params"]) + len(kept["params"]) == len(list(model.parameters()))
    assert isinstance(optimizer, torch.optim.AdamW)


def test_random_windows_are_shifted_windows_of_the_text_fixed_by_seed_and_epoch():
    ids = torch.arange(100)
    windows = RandomWindows(ids, context=8, batch_size=5, seed=3, batches_per_epoch=4)
    epoch = list(windows(0))
    assert len(epoch) == 4
    for batch in epoch:
        assert batch["tokens"].shape == batch["targets"].shape == (5, 8)
        assert torch.equal(batch["targets"], batch["tokens"] + 1)  # consecutive ids, shifted
        assert torch.equal(batch["tokens"][:, 1:], batch["tokens"][:, :-1] + 1)
        assert batch["unpadded"] is True
    again = list(windows(0))
    assert all(torch.equal(a["tokens"], b["tokens"]) for a, b in zip(epoch, again, strict=True))
    other = list(windows(1))
    assert not all(torch.equal(a["tokens"], b["tokens"]) for a, b in zip(epoch, other,
                                                                          strict=True))


@pytest.mark.parametrize("kwargs, message", [
    (dict(ids=torch.arange(9), context=8, batch_size=2), "longer than context"),
    (dict(ids=torch.arange(50).view(5, 10), context=8, batch_size=2), "1-D"),
    (dict(ids=torch.arange(50), context=0, batch_size=2), "context"),
    (dict(ids=torch.arange(50), context=8, batch_size=0), "batch_size"),
])
def test_random_windows_refuse_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RandomWindows(**kwargs)


@pytest.mark.parametrize("config", [
    dict(),
    dict(positional="rope", norm="rmsnorm", activation="swiglu", n_kv_heads=2),
])
def test_causal_fast_path_equals_the_default_mask(config):
    torch.manual_seed(0)
    model = DecoderOnlyTransformer(TransformerConfig.tiny(
        vocab_size=30, max_len=16, n_heads=4, **config)).double().eval()
    tokens = torch.randint(3, 30, (3, 16))
    torch.testing.assert_close(model(tokens, is_causal=True), model(tokens), rtol=1e-10,
                               atol=1e-10)


def test_causal_fast_path_refuses_a_mask_or_a_cache():
    model = DecoderOnlyTransformer(TransformerConfig.tiny(vocab_size=30, max_len=16))
    tokens = torch.randint(3, 30, (2, 5))
    with pytest.raises(ValueError, match="is_causal"):
        model(tokens, is_causal=True, cache=model.new_cache())
    with pytest.raises(ValueError, match="is_causal"):
        model(tokens, is_causal=True, mask=torch.ones(5, 5, dtype=torch.bool))


def test_strided_nats_scores_every_token_once_as_a_direct_loop_does():
    torch.manual_seed(0)
    model = DecoderOnlyTransformer(TransformerConfig.tiny(vocab_size=20, max_len=8)).double()
    ids = torch.randint(3, 20, (30,))
    total, scored = strided_nats(model, ids, context=8, stride=4, batch_size=3)
    assert scored == 29
    expected, previous = 0.0, 0  # the same windows, one at a time
    torch.set_grad_enabled(False)
    for end in [8, 12, 16, 20, 24, 28, 29]:
        start = max(0, end - 8)
        logp = torch.log_softmax(model(ids[start:end][None]).double(), -1)[0]
        nll = -logp.gather(-1, ids[start + 1:end + 1, None])[:, 0]
        expected += float(nll[len(nll) - (end - previous):].sum())
        previous = end
    torch.set_grad_enabled(True)
    assert total == pytest.approx(expected, rel=1e-9)


def test_bits_per_character_of_a_uniform_model_is_log2_of_the_vocabulary():
    model = DecoderOnlyTransformer(TransformerConfig.tiny(vocab_size=16, max_len=8))
    for p in model.parameters():
        torch.nn.init.zeros_(p)  # every logit 0: uniform over 16 ids
    ids = torch.randint(3, 16, (41,))
    held_out = HeldOutText(ids, characters=40, context=8, stride=4)
    assert bits_per_character(model, held_out) == pytest.approx(4.0)


def test_the_text_tasks_are_in_the_table():
    assert TASKS["shakespeare"] is SHAKESPEARE and TASKS["wikitext2"] is WIKITEXT2
    recipe = ShakespeareRecipe()
    assert (recipe.n_layers, recipe.n_heads, recipe.d_model, recipe.context, recipe.batch_size,
            recipe.max_steps, recipe.lr, recipe.min_lr, recipe.warmup_steps, recipe.dropout) == \
        (4, 4, 128, 64, 12, 2000, 1e-3, 1e-4, 100, 0.0)  # nanoGPT's CPU command
    config = recipe.train_config()
    assert (config.optimizer, config.schedule, config.betas, config.weight_decay,
            config.grad_clip, config.label_smoothing) == ("adamw", "cosine", (0.9, 0.99), 0.1,
                                                           1.0, 0.0)


def _unigram_entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(c / len(text) * math.log(c / len(text)) for c in counts.values())


def test_a_short_shakespeare_run_learns_far_below_the_unigram_entropy():
    """150 steps of a small model: the validation loss falls well below what a model that
    knows only character frequencies reaches (the unigram entropy, ≈ 3.3 nats)."""
    recipe = ShakespeareRecipe(max_steps=150, warmup_steps=20, lr=3e-3, min_lr=3e-4, **SMALL)
    model = DecoderOnlyTransformer(SHAKESPEARE.model_config(recipe))
    trainer = Trainer(model, recipe.train_config(progress=False, device="cpu"),
                      SHAKESPEARE.data(recipe, "train"))
    valid = SHAKESPEARE.data(recipe, "valid")
    before = window_loss(model, valid)
    trainer.train(until_step=150)
    after = window_loss(model, valid)
    unigram = _unigram_entropy(shakespeare_split()[1])
    assert before > unigram  # an untrained model knows not even the frequencies
    assert after < unigram - 0.6, (before, after, unigram)


def test_wikitext2_char_model_scores_bits_per_character():
    recipe = WikiText2Recipe(tokenizer="char", max_steps=60, warmup_steps=10, lr=3e-3,
                             min_lr=3e-4, eval_chars=2000, **SMALL)
    model = DecoderOnlyTransformer(WIKITEXT2.model_config(recipe))
    trainer = Trainer(model, recipe.train_config(progress=False, device="cpu"),
                      WIKITEXT2.data(recipe, "train"))
    valid = WIKITEXT2.data(recipe, "valid")
    before = WIKITEXT2.metric.compute(model, valid)
    trainer.train(until_step=60)
    after = WIKITEXT2.metric.compute(model, valid)
    assert valid.characters == 2000 and after < before - 1
    assert "wiki.test.raw" in WIKITEXT2.note(recipe)


def test_continue_text_runs_past_the_context():
    tokenizer = CharTokenizer.train("abcdefgh ")
    model = DecoderOnlyTransformer(TransformerConfig.tiny(
        vocab_size=tokenizer.vocab_size, max_len=10, pad_id=tokenizer.pad_id)).eval()
    text = continue_text(model, tokenizer, "abc", max_new_tokens=37, temperature=1.0, seed=1)
    assert text.startswith("abc") and len(text) == 3 + 37  # one character per token
    again = continue_text(model, tokenizer, "abc", max_new_tokens=37, temperature=1.0, seed=1)
    assert again == text  # a fixed seed gives the same text
    greedy = continue_text(model, tokenizer, "abc", max_new_tokens=5, temperature=0)
    assert len(greedy) == 8
    with pytest.raises(ValueError, match="prompt"):
        continue_text(model, tokenizer, "", max_new_tokens=5)


@pytest.fixture(scope="module")
def shakespeare_run(tmp_path_factory):
    shakespeare_split()  # the corpus, or the registry's DatasetError (a skip offline)
    out = tmp_path_factory.mktemp("runs") / "shakespeare"
    args = ["train", "shakespeare", "--max-steps", "30", "--warmup-steps", "5",
            "--eval-every", "30", "--eval-iters", "2", "--d-model", "32", "--n-layers", "1",
            "--context", "16", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    return out


def test_cli_generates_text_after_a_prompt(shakespeare_run, capsys):
    capsys.readouterr()
    assert (shakespeare_run / "tokenizer.json").is_file()
    args = ["generate", "--checkpoint", str(shakespeare_run), "--prompt", "ROMEO:",
            "--max-new-tokens", "40", "--temperature", "0.8", "--top-k", "50", "--seed", "0"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert text.startswith("ROMEO:") and len(text.rstrip("\n")) >= len("ROMEO:") + 30
    assert main(args) == 0
    assert capsys.readouterr().out == text  # same seed, same text


@pytest.mark.parametrize("prompt, message", [
    ("", "empty"),
    ("ROMEO€", "not in its vocabulary"),
])
def test_cli_refuses_a_bad_prompt_in_one_line(shakespeare_run, capsys, prompt, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--checkpoint", str(shakespeare_run), "--prompt", prompt])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def test_cli_prompt_needs_a_text_run(tmp_path, capsys):
    out = tmp_path / "copy"
    assert main(["train", "copy", "--max-steps", "2", "--out", str(out), "--no-progress",
                 "--no-early-stop"]) == 0
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--checkpoint", str(out), "--prompt", "hello"])
    assert exit_info.value.code == 2
    assert "--input" in capsys.readouterr().err


def test_gpt2_initialization_matches_its_description():
    torch.manual_seed(0)
    config = TransformerConfig(vocab_size=500, d_model=256, n_heads=4, d_ff=1024, n_layers=8,
                               positional="learned", norm_first=True, max_len=64, init="gpt2")
    model = DecoderOnlyTransformer(config)
    assert model.embed.scale == 1.0  # no sqrt(d_model): GPT-2 adds raw embeddings
    residual = 0.02 / math.sqrt(2 * 8)
    for name, p in model.named_parameters():
        if p.dim() > 1:
            expected = residual if name.endswith((".w_o.weight", ".linear2.weight")) else 0.02
            assert abs(p.std().item() - expected) < 0.1 * expected, name
            assert abs(p.mean().item()) < 0.1 * expected, name
        elif name.endswith(".bias"):
            assert torch.equal(p, torch.zeros_like(p)), name
    assert DecoderOnlyTransformer(TransformerConfig.tiny(vocab_size=20)).embed.scale == \
        pytest.approx(math.sqrt(TransformerConfig.tiny(vocab_size=20).d_model))  # the paper's
    with pytest.raises(ValueError, match="init"):
        TransformerConfig(init="he")

"""The tasks table: each entry builds its recipe, model configuration, data and metric; recipes
check their settings; the exact-match metric and the train-until loop do what they say."""

import dataclasses
import subprocess
import sys

import pytest
import torch

from transformer import Transformer, TransformerConfig
from transformer.data.synthetic import EOS, PAD, SYNTHETIC_TASKS, SyntheticTask
from transformer.tasks import (
    EXACT_MATCH,
    SPLITS,
    TASKS,
    Metric,
    Recipe,
    SyntheticRecipe,
    Task,
    exact_match,
    exact_match_rate,
    retune,
    setting,
    train_until,
)
from transformer.tasks.synthetic import synthetic_data, synthetic_model_config
from transformer.training import TrainConfig, Trainer, seed_everything


def test_the_table_holds_copy_reverse_and_sort_under_their_names():
    assert list(TASKS)[:3] == ["copy", "reverse", "sort"] == list(SYNTHETIC_TASKS)
    for name in SYNTHETIC_TASKS:
        task = TASKS[name]
        assert isinstance(task, Task) and task.name == name and task.description
        assert dataclasses.is_dataclass(task.recipe) and issubclass(task.recipe, Recipe)
        assert task.tokenizer is None  # token-id tasks
        assert task.metric is EXACT_MATCH and task.model is Transformer


def test_task_entries_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TASKS["copy"].name = "paste"
    with pytest.raises(dataclasses.FrozenInstanceError):
        SyntheticRecipe().max_steps = 3


@pytest.mark.parametrize("name", SYNTHETIC_TASKS)
def test_each_task_builds_a_model_its_data_and_metric_fit(name):
    task = TASKS[name]
    recipe = task.recipe(eval_size=5, batch_size=3)
    model = task.model(task.model_config(recipe))
    batch = next(iter(task.data(recipe, "train")))
    assert model(batch["src"], batch["tgt_in"]).shape == (3, recipe.seq_len + 1,
                                                          recipe.vocab_size)
    score = task.metric.compute(model, task.data(recipe, "valid"))
    assert 0.0 <= score <= 1.0


@pytest.mark.parametrize("name", SYNTHETIC_TASKS)
def test_each_task_has_the_targets_its_name_says(name):
    recipe = SyntheticRecipe(eval_size=20)
    test = TASKS[name].data(recipe, "test")
    answer = {"copy": list, "reverse": lambda s: s[::-1], "sort": sorted}[name]
    for src, tgt in zip(test["src"].tolist(), test["tgt_out"].tolist(), strict=True):
        src = [t for t in src if t != PAD]
        assert tgt[: len(src) + 1] == [*answer(src), EOS]


def test_validation_test_and_training_data_come_from_three_seeds():
    recipe = SyntheticRecipe(seed=4, eval_size=50)
    train = next(iter(synthetic_data("copy", recipe, "train")))["src"]
    valid = synthetic_data("copy", recipe, "valid")["src"]
    test = synthetic_data("copy", recipe, "test")["src"]
    assert valid.shape == test.shape == (50, recipe.seq_len)
    assert not torch.equal(valid, test) and not torch.equal(valid, train[:50])
    stream = SyntheticTask("copy", vocab_size=13, seq_len=10, batch_size=64, min_len=1, seed=4)
    assert torch.equal(test, stream.held_out(50)["src"])  # the test data: the stream's held_out
    assert torch.equal(synthetic_data("copy", recipe, "valid")["src"], valid)  # reproducible
    with pytest.raises(ValueError, match="split must be 'train', 'valid' or 'test', got 'dev'"):
        synthetic_data("copy", recipe, "dev")
    assert SPLITS == ("train", "valid", "test")


def test_recipe_defaults_are_the_papers_and_the_synthetic_recipe_retunes_two():
    paper, synthetic = Recipe(), SyntheticRecipe()
    assert (paper.max_steps, paper.warmup_steps, paper.label_smoothing) == (100_000, 4000, 0.1)
    assert (synthetic.max_steps, synthetic.warmup_steps, synthetic.n_layers) == (1000, 100, 1)
    assert TransformerConfig.tiny().n_layers == 2  # one layer fewer than the tiny preset
    meta = {f.name: f.metadata for f in dataclasses.fields(SyntheticRecipe)}
    assert meta["warmup_steps"] == {f.name: f.metadata for f in dataclasses.fields(Recipe)}[
        "warmup_steps"]  # retune keeps the help and range
    with pytest.raises(ValueError, match="name must be a field of Recipe"):
        retune(Recipe, "warmup", 3)


def test_recipe_builds_its_model_config_and_the_trainer_config():
    recipe = SyntheticRecipe(seed=3, d_model=48, n_heads=6, lr_factor=0.5)
    cfg = synthetic_model_config(recipe)
    assert (cfg.vocab_size, cfg.d_model, cfg.n_heads, cfg.n_layers, cfg.pad_id, cfg.dropout) == \
        (recipe.vocab_size, 48, 6, recipe.n_layers, PAD, 0.0)
    train = recipe.train_config(max_steps=7)
    assert isinstance(train, TrainConfig)
    assert (train.max_steps, train.warmup_steps, train.lr_factor, train.seed,
            train.label_smoothing) == (7, recipe.warmup_steps, 0.5, 3, recipe.label_smoothing)
    assert recipe.to_dict()["d_model"] == 48 and len(recipe.to_dict()) == len(
        dataclasses.fields(recipe))
    with pytest.raises(ValueError, match=r"d_model \(30\) must be divisible by n_heads \(4\)"):
        synthetic_model_config(SyntheticRecipe(d_model=30))


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(max_steps=0), r"max_steps must be an integer >= 1, got 0"),
    (dict(seq_len=0), r"seq_len must be an integer >= 1, got 0"),
    (dict(vocab_size=3), r"vocab_size must be an integer >= 4, got 3"),
    (dict(min_len=11), r"min_len must be an integer in \[1, seq_len=10\], got 11"),
    (dict(lr_factor=0.0), r"lr_factor must be a finite number > 0, got 0.0"),
    (dict(lr_factor=float("nan")), r"lr_factor must be a finite number > 0, got nan"),
    (dict(label_smoothing=1.0), r"label_smoothing must be a finite number in \[0, 1\), got 1.0"),
    (dict(seed=1.5), r"seed must be an integer, got 1.5"),
    (dict(batch_size=True), r"batch_size must be an integer >= 1, got True"),
    (dict(eval_every="50"), r"eval_every must be an integer >= 1, got '50'"),
])
def test_recipe_refuses_settings_outside_their_range_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SyntheticRecipe(**kwargs)


def test_a_recipe_field_may_be_none_when_its_type_says_so():
    assert SyntheticRecipe(min_len=None).min_len is None
    assert SyntheticRecipe.field_type("min_len") == (int, True)
    assert SyntheticRecipe.field_type("lr_factor") == (float, False)
    with pytest.raises(ValueError, match="seq_len must be an integer >= 1, got None"):
        SyntheticRecipe(seq_len=None)


def test_a_recipe_field_of_an_unsupported_type_is_refused():
    @dataclasses.dataclass(frozen=True)
    class Odd(Recipe):
        sizes: tuple = setting((1, 2), "two sizes")

    with pytest.raises(TypeError, match="recipe fields must be int, float, str or bool"):
        Odd()


def test_a_task_needs_a_recipe_type_a_name_and_a_description():
    entry = dict(name="x", description="y", recipe=SyntheticRecipe,
                 data=lambda recipe, split: None, model_config=synthetic_model_config,
                 metric=EXACT_MATCH)
    assert Task(**entry).tokenizer is None
    with pytest.raises(TypeError, match="recipe must be a Recipe dataclass"):
        Task(**(entry | {"recipe": TrainConfig}))
    with pytest.raises(ValueError, match="a task needs a name and a description"):
        Task(**(entry | {"description": ""}))


def test_importing_the_table_loads_no_optional_dependency():
    heavy = ("matplotlib", "sacrebleu", "tokenizers", "sentencepiece", "datasets", "pandas")
    code = ("import sys, transformer.tasks; "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert run.stdout.strip() == "[]", run.stdout


def test_exact_match_needs_every_token_and_the_eos():
    tgt_out = torch.tensor([[5, 6, EOS, PAD], [5, 6, EOS, PAD], [5, 6, EOS, PAD],
                            [5, 6, EOS, PAD]])
    predicted = torch.tensor([[5, 6, EOS, PAD, PAD],  # right
                              [5, 6, EOS, 7, 7],  # right: what follows EOS does not count
                              [5, 6, 6, EOS, PAD],  # one token too many
                              [5, 7, EOS, PAD, PAD]])  # one token wrong
    assert exact_match(predicted, tgt_out).tolist() == [True, True, False, False]
    assert exact_match(torch.tensor([[5, 6]]), tgt_out[:1]).tolist() == [False]  # too short
    with pytest.raises(ValueError, match="same batch"):
        exact_match(predicted[:2], tgt_out)


def test_metric_reached_compares_with_its_target_in_its_direction():
    assert EXACT_MATCH.reached(1.0) and not EXACT_MATCH.reached(0.999)
    perplexity = Metric("perplexity", lambda model, data: 0.0, target=20.0,
                        greater_is_better=False)
    assert perplexity.reached(19.5) and not perplexity.reached(20.5)
    assert not Metric("loss", lambda model, data: 0.0).reached(0.0)  # no target: never


def _trivial_trainer(max_steps: int) -> tuple[Trainer, SyntheticRecipe]:
    recipe = SyntheticRecipe(vocab_size=4, seq_len=1, min_len=None, max_steps=max_steps,
                             eval_size=10)  # always copy the token 3
    seed_everything(0)
    model = Transformer(synthetic_model_config(recipe))
    trainer = Trainer(model, recipe.train_config(progress=False, device="cpu"),
                      synthetic_data("copy", recipe, "train"))
    return trainer, recipe


def test_train_until_checks_every_round_and_stops_at_the_target():
    trainer, recipe = _trivial_trainer(300)
    rounds = []
    history = train_until(trainer, synthetic_data("copy", recipe, "valid"), EXACT_MATCH,
                          eval_every=7, on_eval=rounds.append)
    checked = [m["step"] for m in history if "exact_match" in m]
    assert checked == [7 * (i + 1) for i in range(len(rounds))]  # one check per round
    assert history[-1]["exact_match"] == 1.0 and trainer.step < 300  # stopped early
    assert [m["step"] for m in history] == list(range(1, trainer.step + 1))
    with pytest.raises(ValueError, match="eval_every must be an integer >= 1, got 0"):
        train_until(trainer, synthetic_data("copy", recipe, "valid"), EXACT_MATCH,
                    eval_every=0)


def test_train_until_without_early_stop_trains_every_step_and_scores_the_last():
    trainer, recipe = _trivial_trainer(30)
    history = train_until(trainer, synthetic_data("copy", recipe, "valid"), EXACT_MATCH,
                          eval_every=20, early_stop=False)
    assert trainer.step == 30 and [m["step"] for m in history if "exact_match" in m] == [20, 30]


def test_exact_match_rate_of_beam_search_and_greedy_agree_on_a_trained_model():
    trainer, recipe = _trivial_trainer(60)
    trainer.train()
    held_out = synthetic_data("copy", recipe, "test")
    greedy = exact_match_rate(trainer.model, held_out)
    assert greedy == exact_match_rate(trainer.model, held_out, beam_size=2) == 1.0

"""``transformer train TASK`` and ``transformer generate``: a run saved by one is decoded by the
other; ``train``'s options are its task's recipe fields; every command has ``--help``; bad
arguments exit with status 2 and a one-line reason, known failures while running with status 1,
and anything else (a bug) is not disguised as either."""

import dataclasses
import json
import re
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_model

from transformer import Transformer, TransformerConfig
from transformer.cli import RUNTIME_ERRORS, build_parser, load_run, main
from transformer.data.synthetic import BOS, EOS, PAD
from transformer.generation import beam_search, greedy_decode
from transformer.tasks import TASKS, SyntheticRecipe, setting
from transformer.training import CheckpointError, Trainer
from transformer.training import load_run as training_load_run

FAST = ["--max-steps", "8", "--eval-size", "20", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A copy-task run of a few steps, trained once for the tests of this file."""
    out = tmp_path_factory.mktemp("runs") / "copy"
    assert main(["train", "copy", "--out", str(out), *FAST]) == 0
    return out


@pytest.mark.parametrize("argv", [["--help"], ["info", "--help"], ["train", "--help"],
                                  ["generate", "--help"]])
def test_every_command_has_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: transformer {' '.join(argv[:-1])}".rstrip())
    for word in {"--help": ["info", "train", "generate"], "info": ["--preset"],
                 "train": [*TASKS, *(task.description for task in TASKS.values())],
                 "generate": ["--checkpoint", "--input", "--beam-size", "--max-len"]}[argv[0]]:
        assert word in out


@pytest.mark.parametrize("name", list(TASKS))
def test_train_task_options_are_the_recipe_fields_with_their_help_and_default(name, capsys):
    with pytest.raises(SystemExit):
        main(["train", name, "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    recipe = TASKS[name].recipe()
    for f in dataclasses.fields(recipe):
        flag = "--" + f.name.replace("_", "-")
        kind = recipe.field_type(f.name)[0]
        default = "none" if f.default is None else f.default
        if kind is bool:  # a switch: --compile / --no-compile
            no = "--no-" + f.name.replace("_", "-")
            assert f"{flag}, {no} {f.metadata['help']} (default: {default})" in out, flag
        else:  # INT, FLOAT, STR
            metavar = kind.__name__.upper()
            assert f"{flag} {metavar} {f.metadata['help']} (default: {default})" in out, flag
    for run_option in ("--out", "--device", "--threads", "--no-progress", "--no-early-stop"):
        assert run_option in out


def test_train_defaults_are_the_recipe_defaults_and_options_reach_the_recipe():
    args = build_parser().parse_args(["train", "sort"])
    defaults = {f.name: getattr(args, f.name) for f in dataclasses.fields(SyntheticRecipe)}
    assert defaults == SyntheticRecipe().to_dict()
    args = build_parser().parse_args(["train", "sort", "--min-len", "none", "--lr-factor", "0.5",
                                      "--n-layers", "3"])
    assert (args.min_len, args.lr_factor, args.n_layers) == (None, 0.5, 3)


def test_train_saves_one_checkpoint_holding_config_recipe_and_exact_match(run_dir, capsys):
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint", "metrics.jsonl"]
    run = training_load_run(run_dir)
    assert run.extra["step"] == 8 and run.extra["task"] == "copy"
    assert run.extra["recipe"] == SyntheticRecipe(max_steps=8, eval_size=20).to_dict()
    assert 0.0 <= run.extra["results"]["exact_match"] <= 1.0
    assert run.config.vocab_size == 13 and isinstance(run.model, Transformer)
    assert {p.name for p in (run_dir / "checkpoint").iterdir()} == {"model.safetensors",
                                                                   "state.pt"}
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(1, 9))


def test_train_prints_the_exact_match_on_held_out_sequences(tmp_path, capsys):
    assert main(["train", "reverse", "--out", str(tmp_path / "r"), "--seq-len", "4", *FAST]) == 0
    out = capsys.readouterr().out
    assert re.search(r"trained reverse for 8 steps: final loss \d+\.\d{4}; test exact_match: "
                     r"\d+\.\d%", out), out


def test_train_stops_early_once_every_validation_sequence_is_decoded_exactly(tmp_path, capsys):
    trivial = ["--vocab-size", "4", "--seq-len", "1", "--max-steps", "200", "--eval-every", "10",
               "--eval-size", "20", "--no-progress", "--threads", "1"]  # always copy token 3
    assert main(["train", "copy", "--out", str(tmp_path / "a"), *trivial]) == 0
    out = capsys.readouterr().out
    steps = int(re.search(r"trained copy for (\d+) steps \(stopped early: validation "
                          r"exact_match reached 100.0%\)", out)[1])
    assert steps < 200 and steps % 10 == 0 and "test exact_match: 100.0%" in out
    assert main(["train", "copy", "--out", str(tmp_path / "b"), *trivial, "--max-steps", "30",
                 "--no-early-stop"]) == 0
    assert "trained copy for 30 steps:" in capsys.readouterr().out


def test_generate_prints_the_greedy_decoding_of_the_saved_weights(run_dir, capsys):
    state = torch.load(run_dir / "checkpoint" / "state.pt", weights_only=True)
    model = Transformer(TransformerConfig(**state["model"]["config"]))
    load_model(model, run_dir / "checkpoint" / "model.safetensors")
    src = torch.tensor([[3, 5, 7, 9]])
    expected = greedy_decode(model, src, bos_id=BOS, eos_id=EOS)[0].tolist()
    assert main(["generate", "--checkpoint", str(run_dir), "--input", "3 5 7 9"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == " ".join(str(i) for i in expected if i not in (EOS, PAD))
    assert all(0 < int(i) < 13 for i in printed.split())  # never PAD; ids of the vocabulary


def test_generate_with_beam_search_and_max_len(run_dir, capsys):
    model = load_run(run_dir).model
    expected = beam_search(model, torch.tensor([[4, 4, 4]]), beam_size=3, max_new_tokens=2,
                           bos_id=BOS, eos_id=EOS).sequences[0].tolist()
    assert main(["generate", "--checkpoint", str(run_dir), "--input", "4 4 4",
                 "--beam-size", "3", "--max-len", "2"]) == 0
    printed = capsys.readouterr().out
    assert printed == " ".join(str(i) for i in expected if i not in (EOS, PAD)) + "\n"
    assert len(printed.split()) <= 2


def test_load_run_rebuilds_the_trained_model(run_dir):
    model = load_run(run_dir).model
    assert not model.training and model.config.d_model == SyntheticRecipe().d_model
    state = torch.load(run_dir / "checkpoint" / "state.pt", weights_only=True)
    assert state["extra"]["step"] == 8


def test_train_in_a_subprocess_shows_progress_and_generate_reads_its_run(tmp_path):
    out = tmp_path / "run"
    train = subprocess.run([sys.executable, "-m", "transformer.cli", "train", "copy",
                            "--max-steps", "5", "--eval-size", "10", "--threads", "1",
                            "--out", str(out)],
                           capture_output=True, text=True, timeout=120)
    assert train.returncode == 0, train.stderr
    assert "5/5" in train.stderr  # tqdm's progress bar, on stderr
    assert f"saved to {out}" in train.stdout
    generate = subprocess.run([sys.executable, "-m", "transformer.cli", "generate",
                               "--checkpoint", str(out), "--input", "3 4 5"],
                              capture_output=True, text=True, timeout=120)
    assert generate.returncode == 0, generate.stderr
    assert re.fullmatch(r"(\d+( \d+)*)?\n", generate.stdout), generate.stdout


@pytest.mark.parametrize(("argv", "reason"), [
    (["train", "copy", "--max-steps", "-3"],
     r"argument --max-steps: must be an integer >= 1, got -3"),
    (["train", "copy", "--max-steps", "many"], r"argument --max-steps: invalid int value: 'many'"),
    (["train"], r"the following arguments are required: TASK"),
    (["train", "shuffle"], r"argument TASK: invalid choice: 'shuffle'"),
    (["train", "copy", "--d-model", "30"],
     r"^transformer train: error: d_model \(30\) must be divisible by n_heads \(4\)$"),
    (["train", "copy", "--vocab-size", "3"],
     r"argument --vocab-size: must be an integer >= 4, got 3"),
    (["train", "copy", "--min-len", "11"],
     r"^transformer train: error: min_len must be an integer in \[1, seq_len=10\], got 11$"),
    (["train", "copy", "--label-smoothing", "1.5"],
     r"argument --label-smoothing: must be a finite number in \[0, 1\), got 1.5"),
    (["train", "copy", "--lr-factor", "0"],
     r"argument --lr-factor: must be a finite number > 0, got 0"),
    (["train", "copy", "--lr-factor", "nan"],
     r"argument --lr-factor: must be a finite number > 0, got nan"),
    (["train", "copy", "--seq-len", "none"], r"argument --seq-len: invalid int value: 'none'"),
    (["train", "copy", "--device", "warp-drive"],
     r"argument --device: not a torch device: 'warp-drive'"),
    (["generate", "--input", "3 4"], r"the following arguments are required: --checkpoint"),
    (["generate", "--checkpoint", "no/such/run", "--input", "3 4"],
     r"argument --checkpoint: cannot load no/such/run: no checkpoint at no/such/run"),
])
def test_bad_arguments_exit_2_with_a_one_line_reason(argv, reason, cli_error):
    assert re.search(reason, cli_error(argv))


@pytest.mark.parametrize(("tokens", "reason"), [
    ("3 99", r"argument --input: token ids must be in \[3, 13\) for this model .*got \[99\]"),
    ("1 3", r"argument --input: token ids must be in \[3, 13\).*got \[1\]"),
    ("three four", r"argument --input: expected token ids separated by spaces, got 'three four'"),
    ("  ", r"argument --input: expected at least one token id"),
])
def test_generate_refuses_tokens_outside_the_vocabulary(run_dir, tokens, reason, cli_error):
    line = cli_error(["generate", "--checkpoint", str(run_dir), "--input", tokens])
    assert line.startswith("transformer generate: error: ") and re.search(reason, line), line


def test_generate_refuses_a_max_len_beyond_the_positional_table(run_dir, cli_error):
    line = cli_error(["generate", "--checkpoint", str(run_dir), "--input", "3",
                      "--max-len", "100000"])
    max_len = load_run(run_dir).config.max_len
    assert line == (f"transformer generate: error: argument --max-len: at most {max_len} new "
                    "tokens fit this model's positional table, got 100000")
    long_input = " ".join(["3"] * (max_len + 1))
    line = cli_error(["generate", "--checkpoint", str(run_dir), "--input", long_input])
    assert f"argument --input: at most {max_len} tokens fit" in line


def test_train_refuses_to_overwrite_a_directory_that_is_not_a_run(tmp_path, cli_error):
    (tmp_path / "notes.txt").write_text("precious")
    line = cli_error(["train", "copy", "--out", str(tmp_path), *FAST])
    assert "argument --out:" in line and "is not a training run" in line
    assert (tmp_path / "notes.txt").read_text() == "precious"


def test_generate_refuses_a_run_whose_checkpoint_is_missing(tmp_path, run_dir, cli_error):
    (tmp_path / "metrics.jsonl").write_text((run_dir / "metrics.jsonl").read_text())
    line = cli_error(["generate", "--checkpoint", str(tmp_path), "--input", "3"])
    assert f"argument --checkpoint: cannot load {tmp_path}: no checkpoint" in line


@dataclasses.dataclass(frozen=True)
class ToyRecipe(SyntheticRecipe):
    """A recipe with every kind of field the command line must derive an option from."""

    temperature: float = setting(0.5, "a float in (0, 1)", above=0, below=1)
    limit: int | None = setting(None, "an optional count", at_least=2)
    label: str = setting("plain", "a 100% free string")
    shuffle: bool = setting(False, "a switch")


@pytest.fixture
def toy_task(monkeypatch):
    """The copy task with ToyRecipe, added to the table as "toy" for one test."""
    toy = dataclasses.replace(TASKS["copy"], name="toy", description="a toy entry",
                              recipe=ToyRecipe)
    monkeypatch.setitem(TASKS, "toy", toy)
    return toy


def test_options_are_derived_from_any_recipe_in_the_table(toy_task, capsys):
    args = build_parser().parse_args(["train", "toy"])
    assert (args.temperature, args.limit, args.label, args.shuffle) == (0.5, None, "plain", False)
    args = build_parser().parse_args(["train", "toy", "--temperature", "0.25", "--limit", "7",
                                      "--label", "fancy", "--shuffle"])
    assert (args.temperature, args.limit, args.label, args.shuffle) == (0.25, 7, "fancy", True)
    assert build_parser().parse_args(["train", "toy", "--no-shuffle"]).shuffle is False
    with pytest.raises(SystemExit):
        main(["train", "toy", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--temperature FLOAT a float in (0, 1) (default: 0.5)" in out
    assert "--limit INT an optional count (default: none)" in out
    assert "--label STR a 100% free string (default: plain)" in out
    assert "--shuffle, --no-shuffle a switch (default: False)" in out


@pytest.mark.parametrize(("argv", "reason"), [
    (["--temperature", "1"],
     r"argument --temperature: must be a finite number in \(0, 1\), got 1.0"),
    (["--temperature", "warm"], r"argument --temperature: invalid float value: 'warm'"),
    (["--limit", "1"], r"argument --limit: must be an integer >= 2, got 1"),
])
def test_derived_options_refuse_values_outside_the_fields_range(argv, reason, toy_task,
                                                                 cli_error):
    assert re.search(reason, cli_error(["train", "toy", *argv]))


def test_a_value_error_deep_inside_training_is_a_bug_not_a_usage_error(tmp_path, monkeypatch):
    def broken_step(self):
        raise ValueError("a bug deep inside the training step")

    monkeypatch.setattr(Trainer, "train_step", broken_step)
    with pytest.raises(ValueError, match="a bug deep inside the training step"):
        main(["train", "copy", "--out", str(tmp_path / "run"), *FAST])


@pytest.mark.parametrize("error", [CheckpointError("disk said no\nsecond line"),
                                   PermissionError(13, "Permission denied")])
def test_a_known_failure_while_running_exits_1_with_one_line(error, tmp_path, monkeypatch,
                                                             capsys):
    def failing_save(self, path, extra=None):
        raise error

    monkeypatch.setattr(Trainer, "save", failing_save)
    assert main(["train", "copy", "--out", str(tmp_path / "run"), *FAST]) == 1
    err = capsys.readouterr().err.splitlines()
    first_line = str(error).splitlines()[0]
    assert err[-1] == f"transformer train: error: {first_line}"
    assert [line for line in err if "error:" in line] == [err[-1]]
    assert isinstance(error, RUNTIME_ERRORS)


def test_a_diverging_run_exits_1_naming_the_step_and_saves_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "copy", "--out", str(out), "--lr-factor", "1e30", *FAST]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("transformer train: error: training diverged at step "), err
    assert not (out / "checkpoint").exists()  # no model with non-finite weights on disk
    for line in (out / "metrics.jsonl").read_text().splitlines():  # strict JSON only
        json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} in metrics.jsonl"))


def test_an_infinite_learning_rate_factor_is_refused_before_training(tmp_path, cli_error):
    line = cli_error(["train", "copy", "--out", str(tmp_path / "run"), "--lr-factor", "inf",
                      *FAST])
    assert line.endswith("argument --lr-factor: must be a finite number > 0, got inf"), line
    assert not (tmp_path / "run").exists()


def test_runtime_errors_are_a_family_other_modules_can_join():
    assert isinstance(RUNTIME_ERRORS, tuple) and CheckpointError in RUNTIME_ERRORS
    assert OSError in RUNTIME_ERRORS
    assert not issubclass(ValueError, RUNTIME_ERRORS)  # a plain ValueError stays a bug


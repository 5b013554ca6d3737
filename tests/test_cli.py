"""``transformer train`` and ``transformer generate``: a run saved by one is decoded by the other;
every command has ``--help``; bad arguments exit with status 2 and a one-line reason."""

import json
import re
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_model

from transformer import Transformer, TransformerConfig
from transformer.cli import load_run, main
from transformer.data.synthetic import BOS, EOS, PAD, TaskRecipe
from transformer.generation import beam_search, greedy_decode

FAST = ["--steps", "8", "--eval-size", "20", "--no-progress", "--threads", "1"]


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
                 "train": ["copy,reverse,sort", "--steps", "--out", "--seed", "--device"],
                 "generate": ["--checkpoint", "--input", "--beam-size", "--max-len"]}[argv[0]]:
        assert word in out


def test_train_saves_config_checkpoint_and_metrics_and_reports_exact_match(run_dir, capsys):
    config = json.loads((run_dir / "config.json").read_text())
    assert config["steps"] == 8 and config["recipe"]["task"] == "copy"
    assert config["eval_size"] == 20 and 0.0 <= config["exact_match"] <= 1.0
    assert TransformerConfig(**config["model"]).vocab_size == 13
    assert {p.name for p in (run_dir / "checkpoint").iterdir()} == {"model.safetensors",
                                                                   "state.pt"}
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(1, 9))


def test_train_prints_the_exact_match_on_held_out_sequences(tmp_path, capsys):
    assert main(["train", "reverse", "--out", str(tmp_path / "r"), "--seq-len", "4", *FAST]) == 0
    out = capsys.readouterr().out
    assert re.search(r"trained reverse for 8 steps: final loss \d+\.\d{4}; exact match on 20 "
                     r"held-out sequences \(greedy\): \d+\.\d%", out), out


def test_train_stops_early_once_every_validation_sequence_is_decoded_exactly(tmp_path, capsys):
    trivial = ["--vocab-size", "4", "--seq-len", "1", "--steps", "200", "--eval-every", "10",
               "--eval-size", "20", "--no-progress", "--threads", "1"]  # always copy token 3
    assert main(["train", "copy", "--out", str(tmp_path / "a"), *trivial]) == 0
    out = capsys.readouterr().out
    steps = int(re.search(r"trained copy for (\d+) steps \(stopped early", out)[1])
    assert steps < 200 and steps % 10 == 0 and "(greedy): 100.0%" in out
    assert main(["train", "copy", "--out", str(tmp_path / "b"), *trivial, "--steps", "30",
                 "--no-early-stop"]) == 0
    assert "trained copy for 30 steps:" in capsys.readouterr().out


def test_generate_prints_the_greedy_decoding_of_the_saved_weights(run_dir, capsys):
    cfg = TransformerConfig(**json.loads((run_dir / "config.json").read_text())["model"])
    model = Transformer(cfg)
    load_model(model, run_dir / "checkpoint" / "model.safetensors")
    src = torch.tensor([[3, 5, 7, 9]])
    expected = greedy_decode(model, src, bos_id=BOS, eos_id=EOS)[0].tolist()
    assert main(["generate", "--checkpoint", str(run_dir), "--input", "3 5 7 9"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == " ".join(str(i) for i in expected if i not in (EOS, PAD))
    assert all(0 < int(i) < 13 for i in printed.split())  # never PAD; ids of the vocabulary


def test_generate_with_beam_search_and_max_len(run_dir, capsys):
    model = load_run(run_dir)
    expected = beam_search(model, torch.tensor([[4, 4, 4]]), beam_size=3, max_new_tokens=2,
                           bos_id=BOS, eos_id=EOS).sequences[0].tolist()
    assert main(["generate", "--checkpoint", str(run_dir), "--input", "4 4 4",
                 "--beam-size", "3", "--max-len", "2"]) == 0
    printed = capsys.readouterr().out
    assert printed == " ".join(str(i) for i in expected if i not in (EOS, PAD)) + "\n"
    assert len(printed.split()) <= 2


def test_load_run_rebuilds_the_trained_model(run_dir):
    model = load_run(run_dir)
    assert not model.training and model.config.d_model == TaskRecipe().d_model
    state = torch.load(run_dir / "checkpoint" / "state.pt", weights_only=True)
    assert state["extra"]["step"] == 8


def test_train_in_a_subprocess_shows_progress_and_generate_reads_its_run(tmp_path):
    out = tmp_path / "run"
    train = subprocess.run([sys.executable, "-m", "transformer.cli", "train", "copy", "--steps",
                            "5", "--eval-size", "10", "--threads", "1", "--out", str(out)],
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
    (["train", "copy", "--steps", "-3"], r"argument --steps: must be a positive integer, got -3"),
    (["train", "copy", "--steps", "many"], r"argument --steps: invalid int value: 'many'"),
    (["train", "shuffle"], r"argument task: invalid choice: 'shuffle'"),
    (["train", "copy", "--d-model", "30"], r"d_model \(30\) must be divisible by n_heads \(4\)"),
    (["train", "copy", "--vocab-size", "3"], r"vocab_size must be an integer >= 4, got 3"),
    (["train", "copy", "--min-len", "11"], r"min_len must be an integer in \[1, seq_len=10\]"),
    (["train", "copy", "--label-smoothing", "1.5"],
     r"argument --label-smoothing: must be in \[0, 1\), got 1.5"),
    (["train", "copy", "--lr-factor", "0"], r"argument --lr-factor: must be a positive number"),
    (["train", "copy", "--device", "warp-drive"],
     r"argument --device: not a torch device: 'warp-drive'"),
    (["generate", "--input", "3 4"], r"the following arguments are required: --checkpoint"),
    (["generate", "--checkpoint", "no/such/run", "--input", "3 4"],
     r"argument --checkpoint: no training run at no/such/run"),
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
    assert "max_new_tokens=100000 is too large" in line


def test_train_refuses_to_overwrite_a_directory_that_is_not_a_run(tmp_path, cli_error):
    (tmp_path / "notes.txt").write_text("precious")
    line = cli_error(["train", "copy", "--out", str(tmp_path), *FAST])
    assert "argument --out:" in line and "is not a training run" in line
    assert (tmp_path / "notes.txt").read_text() == "precious"


def test_generate_refuses_a_run_whose_checkpoint_is_missing(tmp_path, run_dir, cli_error):
    (tmp_path / "config.json").write_text((run_dir / "config.json").read_text())
    line = cli_error(["generate", "--checkpoint", str(tmp_path), "--input", "3"])
    assert f"argument --checkpoint: cannot load {tmp_path}: no checkpoint at" in line

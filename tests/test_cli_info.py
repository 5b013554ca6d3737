"""``transformer info``: prints the model summary and its parameter table (the same numbers as
``count_parameters``), and bad arguments exit with status 2 and a one-line reason."""

import re
import subprocess
import sys

import pytest
import torch

from transformer import DecoderOnlyTransformer, Transformer, TransformerConfig, count_parameters
from transformer.cli import main


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "transformer.cli", *args], capture_output=True,
                          text=True, timeout=120)


def _table(stdout: str) -> dict[str, int]:
    """The ``  part   1,234`` lines of the output, as numbers."""
    return {m[1]: int(m[2].replace(",", ""))
            for m in re.finditer(r"^\s+(\w+)\s+([\d,]+)$", stdout, flags=re.MULTILINE)}


def _expected(cls, cfg) -> dict[str, int]:
    with torch.device("meta"):  # shapes only
        model = cls(cfg)
    return {part: n for part, n in count_parameters(model).items() if n}


def test_help_exits_0_and_lists_the_info_command():
    run = _cli("--help")
    assert run.returncode == 0, run.stderr
    assert "usage: transformer" in run.stdout and "info" in run.stdout


def test_info_in_a_subprocess_prints_the_base_models_parameter_table():
    run = _cli("info")
    assert run.returncode == 0, run.stderr
    assert "preset 'base': N=6, d_model=512, d_ff=2048, h=8" in run.stdout
    table = _table(run.stdout)
    assert table == _expected(Transformer, TransformerConfig.paper_base())
    assert 0.97 * 65e6 <= table["total"] <= 1.03 * 65e6  # Table 3: 65M


@pytest.mark.parametrize(("argv", "cls", "cfg"), [
    (["info", "--preset", "tiny"], Transformer, TransformerConfig.tiny(vocab_size=37000)),
    (["info", "--preset", "tiny", "--vocab-size", "100", "--decoder-only"],
     DecoderOnlyTransformer, TransformerConfig.tiny(vocab_size=100)),
    (["info", "--preset", "big", "--vocab-size", "1000"], Transformer,
     TransformerConfig.paper_big(vocab_size=1000)),
])
def test_info_in_process_prints_count_parameters(argv, cls, cfg, capsys):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert _table(out) == _expected(cls, cfg)
    assert out.splitlines()[0].startswith("decoder-only" if cls is DecoderOnlyTransformer
                                          else "encoder-decoder")


@pytest.mark.parametrize(("argv", "reason"), [
    (["info", "--preset", "huge"], r"argument --preset: invalid choice: 'huge'"),
    (["info", "--vocab-size", "many"], r"argument --vocab-size: invalid int value: 'many'"),
    (["info", "--vocab-size", "0"], r"vocab_size must be a positive integer, got 0"),
    (["info", "--no-such-flag"], r"unrecognized arguments: --no-such-flag"),
    ([], r"the following arguments are required: COMMAND"),
    (["train-a-model"], r"invalid choice: 'train-a-model'"),
])
def test_bad_arguments_exit_2_with_a_one_line_reason(argv, reason, cli_error):
    assert re.search(reason, cli_error(argv))


def test_bad_arguments_exit_2_in_a_subprocess_too():
    run = _cli("info", "--preset", "huge")
    assert run.returncode == 2
    assert run.stderr.splitlines()[-1].startswith("transformer info: error: argument --preset")
    assert run.stdout == ""

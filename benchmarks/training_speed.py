"""Training speed on a CPU: fp32 or bf16 autocast, eager or ``torch.compile`` (chapter 18).

Run by hand (not part of the tests)::

    python benchmarks/training_speed.py                 # 300 steps per variant
    python benchmarks/training_speed.py --steps 50      # a quick look

The Shakespeare character model (DecoderOnlyTransformer: 4 layers, 4 heads, d_model 128, d_ff
512, context 64, vocabulary 65, batch 12) is trained from the same initial weights on the same
batches four ways, through the package's :class:`~transformer.training.Trainer`
(``TrainConfig(precision=..., compile=...)``). Reported per variant: the median milliseconds
per optimizer step (the first ``--skip`` steps, which include compilation, left out), the time
of those first steps, the mean training loss over the last 50 steps (and its standard
deviation from batch to batch, the noise to judge differences by) and the validation loss
at the end (the same held-out windows for all), and each median's ratio to fp32 eager's.
Writes ``benchmarks/results/training_speed.json`` (command, date, machine with its load
average, torch version, settings, figures), which chapter 18 reads;
tests/test_benchmark_results_training_speed.py checks its form.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from transformer import DecoderOnlyTransformer, TransformerConfig, count_parameters
from transformer.data.datasets import tiny_shakespeare
from transformer.data.tokenizers import CharTokenizer
from transformer.training import TrainConfig, Trainer, seed_everything

RESULTS = Path(__file__).resolve().parent / "results" / "training_speed.json"
VARIANTS: dict[str, dict[str, Any]] = {
    "fp32, eager": dict(precision="fp32", compile=False),
    "bf16 autocast, eager": dict(precision="bf16", compile=False),
    "fp32, compiled": dict(precision="fp32", compile=True),
    "bf16 autocast, compiled": dict(precision="bf16", compile=True),
}
REFERENCE = "fp32, eager"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--skip", type=int, default=10, help="first steps left out of the median")
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--block", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--lr-factor", type=float, default=1.0)
    parser.add_argument("--eval-batches", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.steps <= args.skip + 50:
        parser.error(f"--steps must exceed --skip + 50 = {args.skip + 50}, got {args.steps}")
    return args


def windows(ids: torch.Tensor, starts: torch.Tensor, block: int) -> dict[str, torch.Tensor]:
    """``{"tokens", "targets"}`` ``(len(starts), block)``: each window and the next characters."""
    rows = starts[:, None] + torch.arange(block + 1)[None, :]  # (batch, block + 1)
    chunk = ids[rows]
    return {"tokens": chunk[:, :-1], "targets": chunk[:, 1:]}


def run(name: str, args: argparse.Namespace, ids: dict[str, torch.Tensor],
        vocab: int) -> dict[str, Any]:
    train, valid = ids["train"], ids["valid"]

    def train_batches(epoch: int) -> Iterator[dict[str, torch.Tensor]]:  # same for every variant
        g = torch.Generator().manual_seed(args.seed * 100_003 + epoch)
        for _ in range(1000):
            yield windows(train, torch.randint(0, len(train) - args.block - 1, (args.batch,),
                                               generator=g), args.block)

    g = torch.Generator().manual_seed(12345)
    held_out = [windows(valid, torch.randint(0, len(valid) - args.block - 1, (args.batch,),
                                             generator=g), args.block)
                for _ in range(args.eval_batches)]
    cfg = TransformerConfig(vocab_size=vocab, d_model=128, n_heads=4, d_ff=512, n_layers=4,
                            dropout=0.0, max_len=args.block)
    seed_everything(args.seed)
    model = DecoderOnlyTransformer(cfg)
    trainer = Trainer(model, TrainConfig(max_steps=args.steps, warmup_steps=args.warmup,
                                         lr_factor=args.lr_factor, label_smoothing=0.0,
                                         seed=args.seed, device="cpu", progress=False,
                                         **VARIANTS[name]), train_batches, held_out)
    seconds, losses = [], []
    for _ in range(args.steps):
        start = time.perf_counter()
        losses.append(trainer.train_step()["loss"])
        seconds.append(time.perf_counter() - start)
    valid_loss = trainer.evaluate()["eval_loss"]
    return {"switches": VARIANTS[name], "parameters": count_parameters(model)["total"],
            "median_ms_per_step": round(1000 * statistics.median(seconds[args.skip:]), 3),
            "first_steps_s": round(sum(seconds[: args.skip]), 2),
            "train_loss_last_50": round(statistics.fmean(losses[-50:]), 5),
            "train_loss_last_50_std": round(statistics.stdev(losses[-50:]), 5),  # batch noise
            "valid_loss": round(valid_loss, 5), "first_loss": round(losses[0], 5)}


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    text = tiny_shakespeare(progress=False)
    tokenizer = CharTokenizer.train(text)
    all_ids = torch.tensor(tokenizer.encode(text))
    cut = int(0.9 * len(all_ids))
    ids = {"train": all_ids[:cut], "valid": all_ids[cut:]}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs, "
          f"load average {load:.1f}; {args.steps} steps of batch {args.batch} x {args.block}")
    figures: dict[str, dict[str, Any]] = {}
    for name in args.variants:
        figures[name] = f = run(name, args, ids, tokenizer.vocab_size)
        print(f"{name:<24} {f['median_ms_per_step']:8.2f} ms/step (first {args.skip} steps "
              f"{f['first_steps_s']:6.1f} s)  train loss {f['train_loss_last_50']:.4f}  "
              f"valid loss {f['valid_loss']:.4f}", flush=True)
    if REFERENCE in figures:
        for f in figures.values():
            f["speedup_vs_reference"] = round(figures[REFERENCE]["median_ms_per_step"] /
                                              f["median_ms_per_step"], 3)
    command = "python " + " ".join(shlex.quote(a) for a in ["benchmarks/training_speed.py",
                                                             *sys.argv[1:]])
    result = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "load_average_1min_at_start": round(load, 2),
                    "load_average_1min_at_end": round(os.getloadavg()[0], 2)},
        "torch": torch.__version__,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                     if k != "output"} | {"vocab_size": tokenizer.vocab_size},
        "reference": REFERENCE,
        "figures": figures,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

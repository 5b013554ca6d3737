"""Does the token/position scale imbalance matter? ``python benchmarks/embedding_init.py``.

Chapter 1 measures that, with Xavier-uniform initialization of the shared embedding matrix,
the scaled token vector of the paper's base model is about 4 times shorter than its sinusoidal
positional vector. This benchmark asks whether such an imbalance changes training, on the copy
task (the encoder-decoder of ``transformer.tasks.TASKS["copy"]``, its recipe's defaults), by
training the same model, seed, data and schedule from three initializations of the embedding
matrix, which differ only in one factor applied to it after the default initialization:

- ``xavier``: the default (Xavier-uniform, as ``nn.Transformer`` and The Annotated Transformer);
- ``balanced``: rescaled so that the mean length of a scaled token vector,
  ``‖E[t]‖·√d_model``, equals that of a positional vector, ``√(d_model/2)``;
- ``position-dominated``: rescaled so that the token vector is ``--ratio`` (4.3, the paper-size
  figure of chapter 1) times shorter than the positional vector.

For each, and each of ``--seeds``, it reports the optimizer steps until every one of the
validation sequences is copied exactly (checked every ``--eval-every`` steps, at most
``--max-steps``) and the training loss at step ``--loss-at``. Writes
``benchmarks/results/embedding_init.json`` (command, date, machine, torch version, settings,
figures), which chapter 1 reads.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from transformer import Transformer
from transformer.tasks import EXACT_MATCH, TASKS, train_until
from transformer.training import Trainer, seed_everything

RESULTS = Path(__file__).resolve().parent / "results" / "embedding_init.json"
INITS = ("xavier", "balanced", "position-dominated")


def token_to_position_ratio(model: Transformer) -> float:
    """Mean length of a scaled token vector over the length of a positional vector."""
    d_model = model.config.d_model
    token = model.src_embed.weight.norm(dim=-1).mean().item() * math.sqrt(d_model)
    return token / math.sqrt(d_model / 2)


def rescale(model: Transformer, init: str, ratio: float) -> None:
    """Multiply the (shared) embedding matrix so the token/position ratio is the one of ``init``."""
    target = {"xavier": None, "balanced": 1.0, "position-dominated": 1.0 / ratio}[init]
    if target is None:
        return
    with torch.no_grad():
        model.src_embed.weight.mul_(target / token_to_position_ratio(model))


def run(init: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train the copy model from ``init``; steps to 100 % on validation, loss at a step."""
    task = TASKS["copy"]
    recipe = task.recipe(seed=seed, eval_size=args.eval_size, max_steps=args.max_steps)
    start, start_cpu = time.perf_counter(), time.process_time()
    seed_everything(seed)
    model = Transformer(task.model_config(recipe))
    rescale(model, init, args.ratio)
    ratio = token_to_position_ratio(model)
    trainer = Trainer(model, recipe.train_config(progress=False, device="cpu"),
                      task.data(recipe, "train"))
    history = train_until(trainer, task.data(recipe, "valid"), EXACT_MATCH,
                          eval_every=args.eval_every)
    valid = history[-1][EXACT_MATCH.name]
    at = min(args.loss_at, len(history)) - 1
    return {"seed": seed, "token_to_position_ratio": ratio,
            "steps_to_100": trainer.step if valid == 1.0 else None,
            "valid_exact_match": valid, "loss_at_step": history[at]["loss"],
            "wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - start_cpu}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--inits", nargs="+", default=list(INITS), choices=INITS)
    parser.add_argument("--ratio", type=float, default=4.3,
                        help="position/token length ratio of the position-dominated init")
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--eval-size", type=int, default=200)
    parser.add_argument("--max-steps", type=int, default=1500)
    parser.add_argument("--loss-at", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {load:.1f}")
    print(f"{'init':<20} {'seed':>4} {'token/pos':>9} {'steps to 100%':>13} "
          f"{'loss@' + str(args.loss_at):>9} {'wall s':>7}")
    figures: dict[str, dict[str, Any]] = {}
    for init in args.inits:
        runs = []
        for seed in args.seeds:
            r = run(init, seed, args)
            runs.append(r)
            steps = r["steps_to_100"]
            shown = str(steps) if steps is not None else f">{args.max_steps}"
            print(f"{init:<20} {seed:>4} {r['token_to_position_ratio']:>9.2f} {shown:>13} "
                  f"{r['loss_at_step']:>9.3f} {r['wall_s']:>7.1f}", flush=True)
        reached = [r["steps_to_100"] for r in runs if r["steps_to_100"] is not None]
        figures[init] = {
            "runs": runs,
            "seeds_reaching_100": len(reached),
            "median_steps_to_100": statistics.median(reached) if reached else None,
            "mean_loss_at_step": statistics.fmean(r["loss_at_step"] for r in runs),
        }
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                if k != "output"}
    settings["copy_recipe"] = dataclasses.asdict(TASKS["copy"].recipe(
        eval_size=args.eval_size, max_steps=args.max_steps))
    command = "python " + " ".join(shlex.quote(a) for a in
                                   ["benchmarks/embedding_init.py", *sys.argv[1:]])
    result = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "load_average_1min_at_start": round(load, 2)},
        "torch": torch.__version__,
        "settings": settings,
        "figures": figures,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

"""How long until a small Transformer copies perfectly? ``python benchmarks/copy_task.py``.

Trains the encoder-decoder of the copy task's entry in :data:`transformer.tasks.TASKS` (its
:class:`~transformer.tasks.SyntheticRecipe`, the defaults of ``transformer train copy``) with
the :class:`~transformer.training.Trainer`, and every ``--eval-every`` steps decodes
``--eval-size`` (1,000) held-out sequences greedily. It reports the wall time (training and the
evaluations together, as a user waits for it) and the CPU time of this process (less sensitive
to other processes on a shared machine) until all of them are copied exactly, for each
``--seeds``. The goal is 60 s on two CPU cores.

The reference, measured in the same run: the same model trained for the same number of steps
with the paper's own schedule (eq. 3 with ``warmup_steps = 4000``, factor 1, §5.3), whose
learning rate is still tiny after a few hundred steps; the table gives its exact match then.

Writes ``benchmarks/results/copy_task.json`` (command, date, machine, torch version, settings,
figures), which chapter 10 reads.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

from transformer import Transformer
from transformer.tasks import EXACT_MATCH, TASKS, SyntheticRecipe, exact_match_rate, train_until
from transformer.training import Trainer, seed_everything

COPY = TASKS["copy"]
RESULTS = Path(__file__).resolve().parent / "results" / "copy_task.json"


def time_to_perfect(recipe: SyntheticRecipe, eval_every: int, max_steps: int
                    ) -> tuple[int | None, float, float, float]:
    """Train until exact match 1.0 on ``recipe.eval_size`` held-out sequences, or ``max_steps``.

    Returns (steps or None, wall seconds, CPU seconds, last exact match).
    """
    test = COPY.data(recipe, "test")
    start, start_cpu = time.perf_counter(), time.process_time()
    seed_everything(recipe.seed)
    model = Transformer(COPY.model_config(recipe))
    trainer = Trainer(model, recipe.train_config(max_steps=max_steps, progress=False,
                                                 device="cpu"), COPY.data(recipe, "train"))
    history = train_until(trainer, test, EXACT_MATCH, eval_every=eval_every)
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    em = history[-1]["exact_match"]
    return (trainer.step if em == 1.0 else None), wall, cpu, em


def exact_match_after(recipe: SyntheticRecipe, steps: int) -> float:
    """Exact match of ``recipe``'s model after exactly ``steps`` training steps."""
    seed_everything(recipe.seed)
    model = Transformer(COPY.model_config(recipe))
    Trainer(model, recipe.train_config(max_steps=steps, progress=False, device="cpu"),
            COPY.data(recipe, "train")).train()
    return exact_match_rate(model, COPY.data(recipe, "test"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--eval-size", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the paper-schedule reference run")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    load = os.getloadavg()[0]
    base = SyntheticRecipe(eval_size=args.eval_size)
    print(f"copy task: vocab {base.vocab_size} (10 symbols + PAD/BOS/EOS), lengths "
          f"{base.min_len}..{base.seq_len}, batch {base.batch_size}; model N={base.n_layers}, "
          f"d_model={base.d_model}, h={base.n_heads}, d_ff={base.d_ff}; eq. 3 with warmup "
          f"{base.warmup_steps}, factor {base.lr_factor}; label smoothing {base.label_smoothing}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; exact match on "
          f"{args.eval_size} held-out sequences, checked every {args.eval_every} steps\n")
    print(f"{'seed':>4}  {'steps':>5}  {'wall s':>7}  {'cpu s':>7}  "
          f"{'paper schedule, same steps':>26}")
    walls, runs = [], []
    for seed in args.seeds:
        recipe = dataclasses.replace(base, seed=seed)
        steps, wall, cpu, em = time_to_perfect(recipe, args.eval_every, args.max_steps)
        reference, paper_em = "-", None
        if not args.no_reference:
            paper = dataclasses.replace(recipe, warmup_steps=4000, lr_factor=1.0)
            paper_em = exact_match_after(paper, steps or args.max_steps)
            reference = f"{paper_em:.1%}"
        runs.append({"seed": seed, "steps_to_100": steps, "exact_match": em, "wall_s": wall,
                     "cpu_s": cpu, "paper_schedule_exact_match": paper_em})
        shown = str(steps) if steps is not None else f">{args.max_steps} ({em:.1%})"
        print(f"{seed:>4}  {shown:>5}  {wall:>7.1f}  {cpu:>7.1f}  {reference:>26}", flush=True)
        if steps is not None:
            walls.append(wall)
    if walls:
        median = statistics.median(walls)
        print(f"\nmedian wall time to 100% exact match: {median:.1f} s "
              f"({median / 60:.2f} x the 60 s goal), {len(walls)}/{len(args.seeds)} seeds")
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                if k != "output"}
    settings["recipe"] = dataclasses.asdict(base)
    command = "python " + " ".join(shlex.quote(a) for a in
                                   ["benchmarks/copy_task.py", *sys.argv[1:]])
    result = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "load_average_1min_at_start": round(load, 2)},
        "torch": torch.__version__,
        "settings": settings,
        "figures": {"runs": runs, "seeds_reaching_100": len(walls),
                    "median_wall_s_to_100": statistics.median(walls) if walls else None},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

"""Post-LN against pre-LN on Multi30k, with the translation recipe's short warm-up.
``python benchmarks/layer_norm.py``.

The ``multi30k`` task's recipe (:class:`~transformer.tasks.translation.TranslationRecipe`:
3 + 3 layers of width 256, shared BPE of 4,000, 2,000-token batches, eq. 3 with 150 warm-up
steps and factor 0.35, label smoothing 0.1, bf16 autocast) is trained twice for ``--steps``
steps on the same batches from the same initial draw: once with the paper's post-LN layers
(``norm_first=False``), once with pre-LN (``norm_first=True``, the recipe's default). The
mean training loss of every ``--every`` steps, the greedy validation BLEU (sacreBLEU, the
first ``--eval-size`` validation pairs) at the end and the first three translations are
written to ``benchmarks/results/layer_norm.json``; chapter 16 draws the two curves.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from transformer.model import Transformer
from transformer.tasks.translation import MULTI30K, TranslationRecipe, sacrebleu_scores, translate
from transformer.training import Trainer, seed_everything

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "layer_norm.json"


def run(recipe: TranslationRecipe, steps: int, every: int) -> dict[str, Any]:
    """Train ``recipe``'s model for ``steps`` steps; its loss curve, BLEU and outputs."""
    batches = MULTI30K.data(recipe, "train")
    valid = MULTI30K.data(recipe, "valid")
    seed_everything(recipe.seed)
    model = Transformer(MULTI30K.model_config(recipe))
    trainer = Trainer(model, recipe.train_config(device="cpu", progress=False,
                                                 precision="bf16"), batches)
    curve, losses, start = [], [], time.perf_counter()
    while trainer.step < steps:
        losses.append(trainer.train_step()["loss"])
        if trainer.step % every == 0:
            curve.append({"step": trainer.step, "loss": sum(losses) / len(losses)})
            losses.clear()
            print(f"  norm_first={recipe.norm_first} step {trainer.step}: loss "
                  f"{curve[-1]['loss']:.3f}", flush=True)
    seconds = time.perf_counter() - start
    model.eval()
    hypotheses = translate(model, valid.tokenizer, valid.sources)
    return {"norm_first": recipe.norm_first, "steps": steps, "train_seconds": round(seconds, 1),
            "curve": curve, "valid_bleu": sacrebleu_scores(hypotheses, valid.references)["bleu"],
            "examples": [{"source": s, "reference": r, "greedy": h} for s, r, h in
                         zip(valid.source_texts[:3], valid.references[:3], hypotheses[:3],
                             strict=True)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=25, help="steps per point of the curve")
    parser.add_argument("--eval-size", type=int, default=150)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.steps < args.every or args.every < 1 or args.eval_size < 1:
        parser.error("need --steps >= --every >= 1 and --eval-size >= 1")
    torch.set_num_threads(args.threads)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = [round(x, 2) for x in os.getloadavg()]
    runs = [run(TranslationRecipe(norm_first=norm_first, eval_size=args.eval_size), args.steps,
                args.every) for norm_first in (False, True)]
    for r in runs:
        print(f"norm_first={r['norm_first']}: final loss {r['curve'][-1]['loss']:.3f}, "
              f"valid BLEU {r['valid_bleu']:.2f}; {r['examples'][0]['greedy']!r}")
    results = {
        "benchmark": "layer_norm",
        "command": " ".join(["python", "benchmarks/layer_norm.py", *sys.argv[1:]]),
        "date": started.isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average": {"start": load_start, "end": [round(x, 2) for x in os.getloadavg()]},
        "recipe": TranslationRecipe(eval_size=args.eval_size).to_dict(),
        "runs": {"post_ln" if not r["norm_first"] else "pre_ln": r for r in runs},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1, ensure_ascii=False, allow_nan=False)
                           + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

"""Multi30k German→English under a CPU time budget, scored with sacreBLEU on test2016.

The ``multi30k`` task of the tasks table (``transformer/tasks/translation.py``): a shared
byte-level BPE vocabulary, a tied 3 + 3-layer Transformer of width 256, token batches (§5.1),
Adam with the eq. 3 schedule and label smoothing 0.1 (§5.3–5.4), checkpoint averaging (§6.1).
It trains for ``--minutes`` of wall time (evaluations not counted), scoring greedy BLEU on a
validation subset every ``--eval-minutes`` (the BLEU-vs-time curve), snapshots the weights
every ``--snapshot-steps`` steps and averages the last 5 snapshots at the end. The averaged
model and the last one are compared on the validation subset; the better is decoded on
test2016 (1,000 pairs) greedily and with beam search (beam 4, α = 0.6, input length + 50).
The cross-attention of the chosen model is stored for three sentences (chapter 16 draws it).

First, unless ``--precision`` is given, a few steps are timed in fp32 and under bf16 autocast,
and the faster is used.

    python benchmarks/translation.py --minutes 30        # the run the book reads
    python benchmarks/translation.py --minutes 2         # a quick check of the script

The results go to ``benchmarks/results/translation.json``; the trained run (checkpoint and
tokenizer, what ``transformer translate --checkpoint`` reads) to ``runs/translation/``.
"""

from __future__ import annotations

import argparse
import collections
import copy
import datetime
import json
import os
import platform
import re
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from transformer.model import Transformer, count_parameters
from transformer.tasks.translation import (
    MULTI30K,
    TranslationRecipe,
    cross_attention,
    multi30k_tokenizer,
    sacrebleu_scores,
    translate,
)
from transformer.training import Trainer, average_state_dicts, seed_everything

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "translation.json"
RUN_DIR = ROOT / "runs" / "translation"
GOAL_BLEU = 30.0  # the goal: sacreBLEU >= 30 on test2016 within 30 minutes
EXAMPLE_SOURCES = ["Ein Hund läuft im Schnee.", "Zwei Kinder spielen am Strand."]
ALIGNMENT_TEST_INDEX = 0  # the test2016 sentence whose cross-attention is stored too


def _rounded(weights: torch.Tensor) -> list[Any]:
    """Attention weights as nested lists, 4 decimals (what the results file stores)."""
    return weights.double().round(decimals=4).tolist()


def _machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "processor": _cpu_name(),
            "cpus": os.cpu_count(), "python": platform.python_version()}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def time_precision(recipe: TranslationRecipe, batches: Any, precision: str,
                   steps: int) -> float:
    """Seconds per training step under ``precision``, after two warm-up steps."""
    seed_everything(recipe.seed)
    model = Transformer(MULTI30K.model_config(recipe))
    trainer = Trainer(model, recipe.train_config(device="cpu", progress=False,
                                                 precision=precision), batches)
    trainer.train(until_step=2)
    start = time.perf_counter()
    trainer.train(until_step=2 + steps)
    return (time.perf_counter() - start) / steps


def scores_on(model: Transformer, held_out: Any, beam_size: int) -> tuple[dict[str, Any],
                                                                         list[str], float]:
    start = time.perf_counter()
    hypotheses = translate(model, held_out.tokenizer, held_out.sources, beam_size=beam_size)
    seconds = time.perf_counter() - start
    return sacrebleu_scores(hypotheses, held_out.references), hypotheses, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0,
                        help="training wall time, evaluations not counted (default 30)")
    parser.add_argument("--eval-minutes", type=float, default=3.0,
                        help="training minutes between two validation BLEU points (default 3)")
    parser.add_argument("--snapshot-steps", type=int, default=100,
                        help="steps between two snapshots; the last 5 are averaged")
    parser.add_argument("--average", type=int, default=5, help="snapshots averaged (§6.1: 5)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default=None,
                        help="training precision (default: the faster of the two, timed)")
    parser.add_argument("--probe-steps", type=int, default=4,
                        help="steps timed per precision to choose it")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: 1 if the load average >= CPUs, else "
                        "2; on a shared machine one thread is faster)")
    parser.add_argument("--vocab-size", type=int, default=TranslationRecipe.vocab_size)
    parser.add_argument("--max-tokens", type=int, default=TranslationRecipe.max_tokens)
    parser.add_argument("--d-model", type=int, default=TranslationRecipe.d_model)
    parser.add_argument("--d-ff", type=int, default=TranslationRecipe.d_ff)
    parser.add_argument("--layers", type=int, default=TranslationRecipe.n_layers)
    parser.add_argument("--heads", type=int, default=TranslationRecipe.n_heads)
    parser.add_argument("--warmup", type=int, default=TranslationRecipe.warmup_steps)
    parser.add_argument("--post-ln", action="store_true",
                        help="the paper's post-LN layers instead of the recipe's pre-LN")
    parser.add_argument("--lr-factor", type=float, default=TranslationRecipe.lr_factor)
    parser.add_argument("--eval-size", type=int, default=TranslationRecipe.eval_size)
    parser.add_argument("--test-size", type=int, default=0,
                        help="development only: score the first N test pairs (0: all 1,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--run-dir", type=Path, default=RUN_DIR)
    args = parser.parse_args()
    if args.minutes <= 0 or args.eval_minutes <= 0 or args.test_size < 0:
        parser.error(f"--minutes and --eval-minutes must be > 0, got {args.minutes} and "
                     f"{args.eval_minutes}")
    load_start = _load()
    if args.threads is None:
        args.threads = 1 if load_start[0] >= (os.cpu_count() or 1) else 2
    torch.set_num_threads(args.threads)
    started = datetime.datetime.now(datetime.timezone.utc)

    recipe = TranslationRecipe(
        vocab_size=args.vocab_size, max_tokens=args.max_tokens, d_model=args.d_model,
        d_ff=args.d_ff, n_layers=args.layers, n_heads=args.heads, warmup_steps=args.warmup,
        lr_factor=args.lr_factor, eval_size=args.eval_size, seed=args.seed,
        norm_first=not args.post_ln, max_steps=10**7)
    t0 = time.perf_counter()
    tokenizer = multi30k_tokenizer(recipe.vocab_size)
    tokenizer_seconds = time.perf_counter() - t0
    batches = MULTI30K.data(recipe, "train")
    valid, test = MULTI30K.data(recipe, "valid"), MULTI30K.data(recipe, "test")
    if args.test_size:
        test = replace(test, sources=test.sources[:args.test_size],
                       references=test.references[:args.test_size],
                       source_texts=test.source_texts[:args.test_size])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} "
          f"CPUs, load average {load_start}; BPE vocabulary {tokenizer.vocab_size} in "
          f"{tokenizer_seconds:.1f} s", flush=True)
    print(batches.report, valid.report, test.report, sep="\n", flush=True)

    probe: dict[str, float] = {}
    if args.precision is None:
        for precision in ("fp32", "bf16"):
            probe[precision] = time_precision(recipe, batches, precision, args.probe_steps)
            print(f"{precision}: {probe[precision]:.2f} s/step", flush=True)
        precision = min(probe, key=probe.__getitem__)
    else:
        precision = args.precision
    print(f"training in {precision}", flush=True)

    seed_everything(recipe.seed)
    model = Transformer(MULTI30K.model_config(recipe))
    trainer = Trainer(model, recipe.train_config(device="cpu", progress=False,
                                                 precision=precision), batches)
    budget, every = args.minutes * 60, args.eval_minutes * 60
    snapshots: collections.deque[dict[str, torch.Tensor]] = collections.deque(
        maxlen=args.average)
    curve, train_seconds, next_eval, tokens, losses = [], 0.0, every, 0, []

    def point() -> dict[str, Any]:
        scores, _, seconds = scores_on(model, valid, beam_size=1)
        row = {"train_minutes": round(train_seconds / 60, 3), "step": trainer.step,
               "epoch": trainer.epoch, "loss": sum(losses) / max(len(losses), 1),
               "valid_bleu": scores["bleu"], "valid_chrf": scores["chrf"],
               "eval_seconds": round(seconds, 1), "load_average": _load()}
        losses.clear()
        print(json.dumps(row), flush=True)
        return row

    while train_seconds < budget:
        start = time.perf_counter()
        metrics = trainer.train(until_step=trainer.step + 1)[-1]
        train_seconds += time.perf_counter() - start
        tokens += metrics["tokens"]
        losses.append(metrics["loss"])
        if trainer.step % args.snapshot_steps == 0:
            snapshots.append(copy.deepcopy(model.state_dict()))
        if train_seconds >= next_eval:
            curve.append(point())
            next_eval += every
    if not curve or curve[-1]["step"] != trainer.step:
        curve.append(point())
    last_state = copy.deepcopy(model.state_dict())

    # §6.1: the average of the last checkpoints (the final weights are the last of them)
    if not snapshots or trainer.step % args.snapshot_steps != 0:
        snapshots.append(copy.deepcopy(last_state))
    averaged_state = average_state_dicts(list(snapshots))
    candidates = {}
    for name, state in (("last", last_state), ("averaged", averaged_state)):
        model.load_state_dict(state)
        candidates[name] = scores_on(model, valid, beam_size=1)[0]["bleu"]
    chosen = max(candidates, key=candidates.__getitem__)
    model.load_state_dict(last_state if chosen == "last" else averaged_state)
    model.eval()
    print(f"validation BLEU: last {candidates['last']:.2f}, average of {len(snapshots)} "
          f"{candidates['averaged']:.2f}: using {chosen}", flush=True)

    table, outputs = {}, {}
    for name, beam in (("greedy", 1), ("beam", 4)):
        scores, outputs[name], seconds = scores_on(model, test, beam_size=beam)
        table[name] = {**scores, "beam_size": beam, "alpha": 0.6 if beam > 1 else None,
                       "decode_seconds": round(seconds, 1)}
        print(f"test2016 {name}: BLEU {scores['bleu']:.2f}, chrF {scores['chrf']:.2f} "
              f"({scores['bleu_signature']}); lower-cased BLEU {scores['bleu_lowercase_13a']:.2f}",
              flush=True)

    import sacrebleu

    per_sentence = [(sacrebleu.sentence_chrf(h, [r]).score, i) for i, (h, r) in
                    enumerate(zip(outputs["beam"], test.references, strict=True))][:200]
    ranked = sorted(per_sentence)
    picked = [("good", i) for _, i in ranked[-3:][::-1]] + [("bad", i) for _, i in ranked[:3]]
    examples = [{"kind": kind, "source": test.source_texts[i], "reference": test.references[i],
                 "greedy": outputs["greedy"][i], "beam": outputs["beam"][i],
                 "chrf": sacrebleu.sentence_chrf(outputs["beam"][i],
                                                 [test.references[i]]).score}
                for kind, i in picked]
    # cross-attention while the model writes its own beam translation (chapter 16's maps)
    aligned = [*EXAMPLE_SOURCES, test.source_texts[ALIGNMENT_TEST_INDEX]]
    translated = translate(model, tokenizer, aligned, beam_size=4)
    fresh = translated[:len(EXAMPLE_SOURCES)]
    alignments = []
    for source, target in zip(aligned, translated, strict=True):
        found = cross_attention(model, tokenizer, source, target)
        alignments.append({
            "source": source, "target": target, "source_tokens": found.source_tokens,
            "target_tokens": found.target_tokens, "last_layer": _rounded(found.weights[-1]),
            "head_mean": _rounded(found.weights.mean(dim=1))})

    # the run that `transformer translate --checkpoint runs/translation` reads
    run_dir = args.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer.save(run_dir / "checkpoint", extra={
        "task": MULTI30K.name, "recipe": recipe.to_dict(),
        "results": {"bleu": table["beam"]["bleu"]}})
    tokenizer.save(run_dir)

    results = {
        "benchmark": "translation",
        "command": " ".join(["python", "benchmarks/translation.py", *sys.argv[1:]]),
        "date": started.isoformat(timespec="seconds"),
        "machine": _machine(),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average": {"start": load_start, "end": _load()},
        "budget": {"minutes": args.minutes, "train_seconds": round(train_seconds, 1),
                   "eval_minutes": args.eval_minutes},
        "precision": {"used": precision, "seconds_per_step": probe,
                      "probe_steps": args.probe_steps if probe else 0},
        "recipe": recipe.to_dict(),
        "model": {"parameters": sum(count_parameters(model).values()),
                  "vocab_size": tokenizer.vocab_size, "tie_embeddings": True},
        "data": {"train": vars(batches.report), "valid": vars(valid.report),
                 "test": vars(test.report), "valid_scored": len(valid),
                 "test_scored": len(test), "full_test": len(test) == 1000},
        "training": {"steps": trainer.step, "epochs": trainer.epoch + trainer.batch_in_epoch
                     / max(len(batches(trainer.epoch)), 1), "target_tokens": tokens,
                     "tokens_per_second": tokens / max(train_seconds, 1e-9)},
        "curve": curve,
        "averaging": {"snapshots": len(snapshots), "snapshot_steps": args.snapshot_steps,
                      "valid_bleu": candidates, "used": chosen},
        "test": table,
        "goal": {"bleu": GOAL_BLEU, "minutes": 30,
                 "reached": max(t["bleu"] for t in table.values()) >= GOAL_BLEU
                 and args.minutes <= 30 and len(test) == 1000},
        "examples": examples,
        "alignments": {"description": "cross-attention, decoder queries × source keys, "
                                      "teacher-forced on the beam output; last_layer: (heads, "
                                      "target, source), head_mean: (layers, target, source)",
                       "examples": alignments},
        "fresh_examples": [{"source": s, "beam": t} for s, t in zip(EXAMPLE_SOURCES, fresh,
                                                                    strict=True)],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=1, ensure_ascii=False, allow_nan=False)
    # one line per row of numbers (the attention maps), not one line per number
    text = re.sub(r"\[\n[-0-9.e,\s]*\]", lambda m: " ".join(m.group().split()), text)
    args.output.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

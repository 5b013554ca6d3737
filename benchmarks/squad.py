"""SQuAD v1.1 from scratch on a CPU: an extractive span model and a generative encoder-decoder
against the SQuAD paper's sliding-window baseline, on the same held-out questions.
``python benchmarks/squad.py``.

**Data and split.** SQuAD v1.1 (Rajpurkar et al. 2016). Where ``train-v1.1.json`` is in the
dataset cache, both models train on it and everything is scored on ``dev-v1.1.json``. Where it
is not (the machines this project is built on hold only the dev file), the dev file is split
*by article* with :func:`~transformer.data.squad.split_by_article` (``held_out_fraction=0.2``,
``seed=0``: 10 of its 48 articles, ranked by the SHA-256 of ``"0\\x00" + title``): the models
train on the questions of the other 38 and every figure is measured on the 10 held out, whose
paragraphs no model has seen. The output and the results file name the split and the titles.

**Models.** One byte-level BPE tokenizer (``--vocab`` ids, with ``<sep>``) learned on the
training questions and contexts. (a) :class:`~transformer.qa.SpanExtractor`: token + segment +
exact-match embeddings, a pre-LN encoder with rotary positions (``--positional``), a start/end
head; trained on the
summed cross-entropy of the gold start and end, on the windows of ``max_len`` tokens
(question + context) that hold the answer; decoded by the exact best-span search
(``end <= start + 15`` tokens) over *every* window of the full context (stride 64), the best
window's span winning. (b) :class:`~transformer.model.Transformer` (encoder-decoder): source
``question <sep> context`` (``max_len`` tokens; in training a window around the answer, in
evaluation the context's first window), target the answer's tokens; label smoothing 0.1,
greedy decoding. Both: Adam with eq. 3, gradient clipping 1, dropout ``--dropout`` (0.1: in a
first 20-minute run without it, the span model with learned positions scored F1 47 on 300 of
its training questions and 13 on 300 held-out ones: it memorized its paragraphs), bf16
autocast in training (``--precision``), batches of ``--batch-size``. The extractive model
is also scored on ``--train-sample`` training questions, to show how far it overfits.

**Budget.** ``--minutes`` (default 20) of training wall time in all, ``--extractive-share``
(default 0.7) for (a) and the rest for (b). Tokenizing, the baseline and evaluation are outside
the budget and timed separately. ``--eval-questions N`` scores only the first N held-out
questions, for development runs; such a run is marked in the file and is not a result.

The results go to ``benchmarks/results/squad.json`` (command, date, machine, torch version,
threads, load average, budget, split, every figure, example predictions); ``--save-runs DIR``
also keeps both trained models (``DIR/extractive``, ``DIR/generative``) for ``transformer
answer``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch

from transformer.data import datasets
from transformer.data.squad import SquadData, read_squad, split_by_article
from transformer.model import Transformer, TransformerConfig
from transformer.qa import SpanExtractor
from transformer.tasks.squad import (
    evaluate,
    exact_match_score,
    f1_score,
    max_over_ground_truths,
    sliding_window_predict,
)
from transformer.tasks.squad_models import (
    QASettings,
    SpanLoss,
    encode_questions,
    extractive_batches,
    extractive_config,
    extractive_features,
    generative_batches,
    generative_pairs,
    new_trainer,
    predict_generative,
    predict_spans,
    save_qa_run,
    train_for,
    train_qa_tokenizer,
)

RESULTS = Path(__file__).parent / "results" / "squad.json"
HELD_OUT_FRACTION, SPLIT_SEED = 0.2, 0
LOGISTIC_REGRESSION_F1 = 51.0  # Rajpurkar et al. 2016, Table 2 (dev), full training set


def load_data() -> tuple[SquadData, SquadData, dict[str, Any]]:
    """(train, evaluation) questions and the description of the split."""
    cached = datasets.status("squad-v1.1")
    dev = read_squad(datasets.fetch("squad-v1.1", "dev-v1.1.json", progress=False))
    if cached.get("train-v1.1.json") == "ok":
        train = read_squad(datasets.fetch("squad-v1.1", "train-v1.1.json", progress=False))
        return train, dev, {"kind": "official", "note": "trained on train-v1.1.json, "
                            "evaluated on dev-v1.1.json"}
    train, held = split_by_article(dev, held_out_fraction=HELD_OUT_FRACTION, seed=SPLIT_SEED)
    note = (f"train-v1.1.json is not cached on this machine: dev-v1.1.json is split by article "
            f"(split_by_article, held_out_fraction={HELD_OUT_FRACTION}, seed={SPLIT_SEED}); "
            f"the models train on {len(train.titles)} articles ({len(train)} questions) and "
            f"every figure is measured on the other {len(held.titles)} ({len(held)} questions)")
    return train, held, {"kind": "dev-by-article", "note": note,
                         "held_out_fraction": HELD_OUT_FRACTION, "seed": SPLIT_SEED,
                         "train_titles": sorted(train.titles.values()),
                         "held_out_titles": sorted(held.titles.values())}


def _scores(predictions: dict[str, str], data: SquadData) -> dict[str, Any]:
    figures = evaluate(predictions, data)
    return {"exact_match": figures["exact_match"], "f1": figures["f1"],
            "count": figures["count"], "missing": figures["missing"]}


def _examples(predictions: dict[str, dict[str, str]], data: SquadData, k: int
              ) -> list[dict[str, Any]]:
    """The first ``k`` questions with every model's answer and its F1."""
    out = []
    for e in data.examples[:k]:
        row: dict[str, Any] = {"id": e.id, "title": e.title, "question": e.question,
                               "gold": e.answer_texts, "predictions": {}}
        for name, preds in predictions.items():
            p = preds.get(e.id, "")
            row["predictions"][name] = {
                "answer": p, "f1": max_over_ground_truths(f1_score, p, e.answer_texts),
                "exact_match": max_over_ground_truths(exact_match_score, p, e.answer_texts)}
        out.append(row)
    return out


def _machine() -> dict[str, Any]:
    name = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"platform": platform.platform(), "processor": name, "cpus": os.cpu_count(),
            "python": platform.python_version()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0,
                        help="training wall time in all (default 20)")
    parser.add_argument("--extractive-share", type=float, default=0.7,
                        help="the extractive model's share of the budget (default 0.7)")
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--positional", choices=["rope", "learned"], default="rope",
                        help="positions of both models: rotary (default) or a learned table")
    parser.add_argument("--learned-minutes", type=float, default=0.0,
                        help="also train the span model with learned positions for this many "
                             "minutes (outside --minutes; default 0: not at all)")
    parser.add_argument("--dropout", type=float, default=0.1,
                        help="dropout of both models (default 0.1: with 0, the span model "
                             "memorized its training paragraphs)")
    parser.add_argument("--train-sample", type=int, default=500,
                        help="training questions the extractive model is also scored on, to "
                             "show how much it overfits (default 500)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-len", type=int, default=QASettings.max_len,
                        help="tokens per window: question + context + 3 specials")
    parser.add_argument("--stride", type=int, default=QASettings.stride,
                        help="context tokens between the starts of two windows")
    parser.add_argument("--warmup", type=int, default=100, help="eq. 3 warm-up steps")
    parser.add_argument("--lr-factor", type=float, default=0.25, help="eq. 3 factor")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: 1 if the load average >= CPUs)")
    parser.add_argument("--eval-questions", type=int, default=None,
                        help="development only: score the first N held-out questions")
    parser.add_argument("--save-runs", type=Path, default=None, metavar="DIR")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.minutes <= 0 or not 0 < args.extractive_share < 1:
        parser.error("need --minutes > 0 and 0 < --extractive-share < 1")

    load_start = os.getloadavg()
    if args.threads is None and load_start[0] >= (os.cpu_count() or 1):
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    started = datetime.datetime.now(datetime.timezone.utc)
    train, held, split = load_data()
    full_eval = len(held)
    if args.eval_questions:
        held = SquadData(held.source, held.version, held.titles,
                         held.examples[:args.eval_questions], held.misaligned)
    print(f"SQuAD v1.1: {split['note']}.")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
          f"{load_start[0]:.1f}; budget {args.minutes:g} min of training\n", flush=True)

    timings: dict[str, float] = {}
    t = time.perf_counter()
    baseline = {e.id: sliding_window_predict(e.context, e.question) for e in held.examples}
    timings["baseline_seconds"] = round(time.perf_counter() - t, 1)
    figures: dict[str, Any] = {"sliding_window": _scores(baseline, held)}
    print(f"sliding window: EM {figures['sliding_window']['exact_match']:.2f} "
          f"F1 {figures['sliding_window']['f1']:.2f} ({timings['baseline_seconds']} s)",
          flush=True)

    t = time.perf_counter()
    tokenizer = train_qa_tokenizer(train.examples, args.vocab)
    settings = QASettings(max_len=args.max_len, stride=args.stride)
    train_encoded = encode_questions(train.examples, tokenizer)
    held_encoded = encode_questions(held.examples, tokenizer)
    timings["tokenize_seconds"] = round(time.perf_counter() - t, 1)
    seconds = {"extractive": args.minutes * 60 * args.extractive_share}
    seconds["generative"] = args.minutes * 60 - seconds["extractive"]
    common = dict(d_model=args.d_model, n_heads=args.heads, d_ff=4 * args.d_model,
                  n_layers=args.layers, dropout=args.dropout, positional=args.positional)

    print(f"\n(a) extractive span model, {seconds['extractive'] / 60:.1f} min", flush=True)
    features = extractive_features(train_encoded, tokenizer, settings, training=True)
    torch.manual_seed(args.seed)
    span_model = SpanExtractor(extractive_config(tokenizer.vocab_size, max_len=settings.max_len,
                                                 **common))
    trainer = new_trainer(span_model, seed=args.seed, warmup=args.warmup,
                          lr_factor=args.lr_factor, precision=args.precision,
                          batches=extractive_batches(features, args.batch_size,
                                                     tokenizer.pad_id, args.seed),
                          loss_fn=SpanLoss())
    extractive = train_for(trainer, seconds=seconds["extractive"], log=print)
    t = time.perf_counter()
    span_predictions = predict_spans(span_model, held.examples, tokenizer, settings,
                                     encoded=held_encoded)
    extractive |= {"eval_seconds": round(time.perf_counter() - t, 1),
                   "train_windows": len(features),
                   "parameters": sum(p.numel() for p in span_model.parameters()),
                   "model": span_model.config.to_dict()}
    extractive |= _scores(span_predictions, held)
    sample = random.Random(args.seed).sample(range(len(train)), min(args.train_sample,
                                                                    len(train)))
    seen = [train.examples[k] for k in sorted(sample)]
    extractive["train_sample"] = _scores(
        predict_spans(span_model, seen, tokenizer, settings,
                      encoded=[train_encoded[k] for k in sorted(sample)]), seen)
    print(f"  EM {extractive['exact_match']:.2f} F1 {extractive['f1']:.2f} (on "
          f"{len(seen)} training questions: F1 {extractive['train_sample']['f1']:.2f})",
          flush=True)
    if args.save_runs:
        save_qa_run(args.save_runs / "extractive", trainer, tokenizer, settings)

    if args.learned_minutes:  # the same span model with a learned table of positions
        print(f"\n(a') extractive span model with learned positions, {args.learned_minutes:g} "
              f"min", flush=True)
        torch.manual_seed(args.seed)
        learned_model = SpanExtractor(extractive_config(
            tokenizer.vocab_size, max_len=settings.max_len, **(common | {
                "positional": "learned"})))
        learned_trainer = new_trainer(
            learned_model, seed=args.seed, warmup=args.warmup, lr_factor=args.lr_factor,
            precision=args.precision, loss_fn=SpanLoss(),
            batches=extractive_batches(features, args.batch_size, tokenizer.pad_id, args.seed))
        learned = train_for(learned_trainer, seconds=args.learned_minutes * 60, log=print)
        learned |= {"parameters": sum(p.numel() for p in learned_model.parameters()),
                    "model": learned_model.config.to_dict()}
        learned |= _scores(predict_spans(learned_model, held.examples, tokenizer, settings,
                                         encoded=held_encoded), held)
        figures["extractive_learned_positions"] = learned
        print(f"  EM {learned['exact_match']:.2f} F1 {learned['f1']:.2f}", flush=True)

    print(f"\n(b) generative encoder-decoder, {seconds['generative'] / 60:.1f} min", flush=True)
    pairs = generative_pairs(train_encoded, train.examples, tokenizer, settings, training=True)
    config = TransformerConfig(vocab_size=tokenizer.vocab_size, activation="gelu",
                               norm_first=True, max_len=settings.max_len,
                               pad_id=tokenizer.pad_id, **common)
    torch.manual_seed(args.seed)
    seq2seq = Transformer(config)
    trainer = new_trainer(seq2seq, seed=args.seed, warmup=args.warmup, lr_factor=args.lr_factor,
                          precision=args.precision, label_smoothing=0.1,
                          batches=generative_batches(pairs, args.batch_size, tokenizer,
                                                     args.seed))
    generative = train_for(trainer, seconds=seconds["generative"], log=print)
    t = time.perf_counter()
    gen_predictions = predict_generative(seq2seq, held.examples, tokenizer, settings,
                                         encoded=held_encoded)
    generative |= {"eval_seconds": round(time.perf_counter() - t, 1),
                   "train_pairs": len(pairs),
                   "parameters": sum(p.numel() for p in seq2seq.parameters()),
                   "model": config.to_dict()}
    generative |= _scores(gen_predictions, held)
    print(f"  EM {generative['exact_match']:.2f} F1 {generative['f1']:.2f}", flush=True)
    if args.save_runs:
        save_qa_run(args.save_runs / "generative", trainer, tokenizer, settings)

    figures |= {"extractive": extractive, "generative": generative}
    figures = {k: figures[k] for k in ("sliding_window", "extractive",
                                       "extractive_learned_positions", "generative")
               if k in figures}
    print(f"\n{'model':<32}{'EM':>8}{'F1':>8}")
    for name, f in figures.items():
        print(f"{name:<32}{f['exact_match']:>8.2f}{f['f1']:>8.2f}")

    results = {
        "benchmark": "squad",
        "command": " ".join(["python", "benchmarks/squad.py", *sys.argv[1:]]),
        "date": started.isoformat(timespec="seconds"),
        "machine": _machine(),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average": {"start": list(load_start), "end": list(os.getloadavg())},
        "budget": {"minutes": args.minutes, "extractive_share": args.extractive_share,
                   "seconds": seconds, "learned_positions_minutes": args.learned_minutes,
                   "note": "training wall time; tokenizing, the baseline and evaluation are "
                           "not counted"},
        "split": split,
        "data": {"train_questions": len(train), "eval_questions": len(held),
                 "full_eval": len(held) == full_eval},
        "tokenizer": {"kind": "bpe", "vocab_size": tokenizer.vocab_size},
        "settings": settings.to_dict(),
        "training": {"batch_size": args.batch_size, "dropout": args.dropout,
                     "warmup_steps": args.warmup,
                     "lr_factor": args.lr_factor, "precision": args.precision,
                     "seed": args.seed},
        "timings": timings,
        "figures": figures,
        "logistic_regression_f1": LOGISTIC_REGRESSION_F1,
        "extractive_beats_baseline": extractive["f1"] > figures["sliding_window"]["f1"],
        "examples": _examples({"sliding_window": baseline, "extractive": span_predictions,
                               "generative": gen_predictions}, held, 12),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n",
                           encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

"""WikiText-2 in bits per character: a Kneser–Ney character n-gram against two small
decoder-only Transformers (characters and BPE), in one run. ``python benchmarks/wikitext2.py``.

**Data.** WikiText-2 raw (Merity et al. 2016). Where ``wiki.train.raw`` is not in the dataset
cache (as on the machines this project is built on, whose seeded cache holds only the valid and
test files), every model is trained on ``wiki.valid.raw`` and evaluated on ``wiki.test.raw``;
the output and the results file say which file was used. Both texts are used whole, as the
registry reads them (``transformer.data.datasets.wikitext2``).

**Models**, all fitted on the same training text:

* (a) :class:`~transformer.tasks.ngram.CharNGramLM`, interpolated Kneser–Ney with D = 0.75, for
  each of ``--orders``; the headline is the best order *on the test text* (an optimistic
  baseline: its order is chosen on the data it is scored on).
* (b) a character-level :class:`~transformer.DecoderOnlyTransformer`
  (:class:`~transformer.data.tokenizers.CharTokenizer` of the training text, with ``<unk>``);
* (c) the same architecture over a byte-level :class:`~transformer.data.tokenizers.BPETokenizer`
  trained on the training text (``--bpe-vocab`` ids).

**Budget.** ``--minutes`` (default 20) of training wall time in all, split equally between the
two Transformers (``minutes / 2`` each); each trains with the package's
:class:`~transformer.training.Trainer` (Adam, β = (0.9, 0.98), the learning rate of eq. 3 with
``--warmup`` steps and ``--lr-factor``, gradient clipping at 1, no label smoothing: the loss is
the log-likelihood we report) on random windows of ``context + 1`` tokens (a small batch
function below), until its share of the budget is spent. Tokenizer training, the n-gram and
evaluation are outside the budget and timed separately. Architecture: pre-LN, GELU, learned
positions, tied embeddings, dropout 0 (short runs on ~1 MB of text: a run this short sees each
window only a few times, and pre-LN trains stably at the larger learning rates a short budget
needs). The defaults (4 layers, 4 heads, d_model 128, nanoGPT's CPU size; batch 16; eq. 3 with
100 warm-up steps and factor 0.5, a peak learning rate of 4.4e-3) are sized for minutes of CPU:
a bigger model sees too few tokens in ten minutes to be worth its size. Training runs under
bf16 autocast (``--precision``; this CPU has AMX: a training step of the default model took
1.13 s in bf16 against 1.63 s in fp32, one thread, load average 13); evaluation is fp32. On a
CPU shared with other processes, one thread is faster than two (measured: a 512×512 matmul at
26 vs 8.5 GFLOP/s under a load average of 15), so ``--threads`` defaults to 1 when the 1-minute
load average reaches the CPU count, else to torch's choice.

**Metrics.** Each model scores *every* character (or token) of the test text. The Transformers
see the text as ``[<bos>] + encode(test)`` (``<bos>`` starts the training ids too) in windows of
``context`` tokens moved by ``--stride`` (default half the context): each window scores only
the tokens the previous one did not, so every token but the first window's is predicted from at
least ``context - stride`` tokens of context. Bits per character = total nats over the test text
/ number of characters / ln 2, the same for every tokenization; perplexity per token = exp(total
nats / number of tokens) (per character for (a) and (b)). Characters outside the training
alphabet are scored as the unknown symbol by (a) and as ``<unk>`` by (b) (each counted);
(c) is byte-level and has no unknowns.

The results go to ``benchmarks/results/wikitext2.json`` (command, date, machine, torch version,
threads, load average, budget, the training-file note, every figure). ``--eval-chars N``
evaluates on the first N test characters only, for quick development runs; such a run is marked
in the file and is not a result.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from transformer import DecoderOnlyTransformer, TransformerConfig
from transformer.data import datasets
from transformer.data.tokenizers import BPETokenizer, CharTokenizer, Tokenizer
from transformer.tasks.ngram import CharNGramLM
from transformer.training import TrainConfig, Trainer

RESULTS = Path(__file__).parent / "results" / "wikitext2.json"
Batch = dict[str, Tensor]


def training_text() -> tuple[str, str, str]:
    """The training text, its file name, and the note saying which file it is and why."""
    cached = datasets.status("wikitext-2-raw")
    if cached.get("wiki.train.raw") == "ok":
        return (datasets.wikitext2("train", progress=False), "wiki.train.raw",
                "trained on wiki.train.raw, evaluated on wiki.test.raw")
    return (datasets.wikitext2("valid", progress=False), "wiki.valid.raw",
            "wiki.train.raw is not cached on this machine (the dataset cache holds only the "
            "valid and test files): every model is trained on wiki.valid.raw (the validation "
            "split) and evaluated on wiki.test.raw")


# ----------------------------------------------------------------------------- the n-gram
def ngram_figures(train: str, test: str, order: int) -> dict[str, Any]:
    """Fit a Kneser–Ney n-gram of ``order`` on ``train``, score every character of ``test``."""
    start = time.perf_counter()
    model = CharNGramLM.fit(train, order)
    fitted = time.perf_counter()
    score = model.score(test)
    scored = time.perf_counter()
    return {"order": order, "smoothing": model.smoothing, "discount": model.discounts[0],
            "fit_seconds": round(fitted - start, 2), "score_seconds": round(scored - fitted, 2),
            "test_nats": score.nats, "test_characters": score.characters,
            "unseen_characters": score.unseen,
            "nats_per_character": score.cross_entropy,
            "perplexity_per_token": score.perplexity,  # a token is a character here
            "bits_per_character": score.bits_per_character}


# ---------------------------------------------------------------------- the Transformers
def random_windows(ids: Tensor, context: int, batch_size: int, seed: int,
                   batches_per_epoch: int = 500) -> Callable[[int], Iterator[Batch]]:
    """Trainer batches: ``batch_size`` windows of ``context + 1`` ids at random offsets.

    ``ids``: ``(n,)``. Each batch is ``{"tokens": (batch, context), "targets": (batch,
    context)}``, the targets being the tokens shifted by one. An epoch's windows depend only on
    ``(seed, epoch)``, as the trainer's resuming needs.
    """
    if len(ids) <= context + 1:
        raise ValueError(f"ids must be longer than context + 1 = {context + 1}, got {len(ids)}")

    def epoch(number: int) -> Iterator[Batch]:
        generator = torch.Generator().manual_seed(seed * 1_000_003 + number)
        for _ in range(batches_per_epoch):
            starts = torch.randint(0, len(ids) - context, (batch_size,), generator=generator)
            rows = torch.stack([ids[s:s + context + 1] for s in starts.tolist()])
            yield {"tokens": rows[:, :-1], "targets": rows[:, 1:]}

    return epoch


@torch.inference_mode()
def strided_nats(model: DecoderOnlyTransformer, ids: Tensor, context: int, stride: int,
                 batch_size: int = 32) -> tuple[float, int]:
    """Total nats of ``ids[1:]`` given what precedes each, in windows of ``context`` tokens.

    The first window predicts ``ids[1:context + 1]``; each next one ends ``stride`` tokens
    later and scores only its last ``stride`` targets (the last window, fewer), so every target
    is scored once, with at least ``context - stride`` tokens before it (except in the first
    window). Returns ``(total nats, targets scored)``.
    """
    n = len(ids)
    ends, end = [], min(context, n - 1)
    ends.append(end)
    while end < n - 1:
        end = min(end + stride, n - 1)
        ends.append(end)
    model.eval()
    total, scored, previous = 0.0, 0, 0
    for first in range(0, len(ends), batch_size):
        group = ends[first:first + batch_size]
        width = min(context, group[0])  # only the first window can be shorter than context
        starts = [e - width for e in group]
        tokens = torch.stack([ids[s:s + width] for s in starts])  # (batch, width)
        targets = torch.stack([ids[s + 1:s + width + 1] for s in starts])  # (batch, width)
        logp = torch.log_softmax(model(tokens).float(), dim=-1)  # (batch, width, vocab)
        nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (batch, width)
        for row, e in enumerate(group):
            new = e - previous  # targets previous..e-1 of ids[1:] are new
            total += float(nll[row, width - new:].double().sum())
            scored, previous = scored + new, e
    return total, scored


def train_for(model: DecoderOnlyTransformer, batches: Callable[[int], Iterator[Batch]],
              seconds: float, args: argparse.Namespace) -> dict[str, Any]:
    """Train ``model`` with the package's Trainer until ``seconds`` of wall time are spent."""
    config = TrainConfig(max_steps=10**9, warmup_steps=args.warmup, lr_factor=args.lr_factor,
                         label_smoothing=0.0, grad_clip=1.0, seed=args.seed, device="cpu",
                         precision=args.precision, progress=False)
    trainer = Trainer(model, config, batches)
    losses, tokens = [], 0
    start, start_cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        metrics = trainer.train_step()
        losses.append(metrics["loss"])
        tokens += metrics["tokens"]
        if trainer.step % 100 == 0:
            print(f"    step {trainer.step:>6}  loss {metrics['loss']:.3f}  "
                  f"lr {metrics['lr']:.2e}  {time.perf_counter() - start:6.0f} s", flush=True)
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    tail = losses[-max(1, len(losses) // 20):]  # the last 5% of the steps
    return {"steps": trainer.step, "train_tokens": tokens, "train_seconds": round(wall, 1),
            "train_cpu_seconds": round(cpu, 1), "tokens_per_second": round(tokens / wall),
            "final_train_loss": sum(tail) / len(tail)}


def transformer_figures(name: str, tokenizer: Tokenizer, train: str, test: str,
                        context: int, seconds: float, args: argparse.Namespace
                        ) -> dict[str, Any]:
    """Train a DecoderOnlyTransformer over ``tokenizer``'s ids for ``seconds``, then score
    every token of ``test`` (strided windows)."""
    start = time.perf_counter()
    bos = tokenizer.bos_id
    train_ids = torch.tensor([bos, *tokenizer.encode(train)])
    test_ids = torch.tensor([bos, *tokenizer.encode(test)])
    encode_seconds = time.perf_counter() - start
    config = TransformerConfig(
        vocab_size=tokenizer.vocab_size, d_model=args.d_model, n_heads=args.heads,
        d_ff=4 * args.d_model, n_layers=args.layers, dropout=args.dropout, activation="gelu",
        norm_first=True, positional=args.positional, max_len=context, pad_id=tokenizer.pad_id)
    torch.manual_seed(args.seed)
    model = DecoderOnlyTransformer(config)
    print(f"  ({name}) {tokenizer.vocab_size} ids, {len(train_ids):,} training tokens, "
          f"{len(test_ids) - 1:,} test tokens; context {context}; "
          f"{sum(p.numel() for p in model.parameters()):,} parameters; "
          f"training for {seconds / 60:.1f} min", flush=True)
    figures: dict[str, Any] = {
        "tokenizer": tokenizer.kind, "vocab_size": tokenizer.vocab_size,
        "model": {"d_model": config.d_model, "n_heads": config.n_heads, "d_ff": config.d_ff,
                  "n_layers": config.n_layers, "context": context, "dropout": config.dropout,
                  "norm_first": True, "activation": "gelu", "positional": args.positional},
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_token_count": len(train_ids), "encode_seconds": round(encode_seconds, 1),
        "batch_size": args.batch_size, "warmup_steps": args.warmup, "lr_factor": args.lr_factor,
        "precision": args.precision}
    batches = random_windows(train_ids, context, args.batch_size, args.seed)
    figures |= train_for(model, batches, seconds, args)
    stride = args.stride or context // 2
    start = time.perf_counter()
    nats, tokens = strided_nats(model, test_ids, context, stride)
    figures |= {
        "eval_stride": stride, "eval_seconds": round(time.perf_counter() - start, 1),
        "test_nats": nats, "test_tokens": tokens, "test_characters": len(test),
        "nats_per_token": nats / tokens, "perplexity_per_token": math.exp(nats / tokens),
        "bits_per_character": nats / len(test) / math.log(2)}
    if tokenizer.unk_id is not None:
        figures["unseen_characters"] = int((test_ids == tokenizer.unk_id).sum())
    return figures


# ---------------------------------------------------------------------------------- main
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0,
                        help="training wall time in all, split equally between the two "
                             "Transformers (default 20: 10 each)")
    parser.add_argument("--orders", type=int, nargs="+", default=[3, 4, 5, 6, 7, 8],
                        help="n-gram orders to fit (the best on the test text is the headline)")
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--char-context", type=int, default=128)
    parser.add_argument("--bpe-context", type=int, default=64)
    parser.add_argument("--bpe-vocab", type=int, default=1024)
    parser.add_argument("--positional", choices=["rope", "learned"], default="rope",
                        help="rotary (default) or learned positions")
    parser.add_argument("--dropout", type=float, default=0.1,
                        help="dropout (default 0.1: both models see their 1.1M training "
                             "characters many times over)")
    parser.add_argument("--char-share", type=float, default=0.5,
                        help="the char model's share of the training budget (default 0.5)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=100, help="eq. 3 warm-up steps")
    parser.add_argument("--lr-factor", type=float, default=0.5, help="eq. 3 factor")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16",
                        help="training autocast (evaluation is always fp32)")
    parser.add_argument("--stride", type=int, default=None,
                        help="evaluation stride in tokens (default: half the context)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: 1 if the load average >= CPUs, "
                             "else torch's choice)")
    parser.add_argument("--eval-chars", type=int, default=None,
                        help="development only: score the first N test characters")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.minutes <= 0 or not 0 < args.char_share < 1 or not 0 <= args.dropout < 1:
        parser.error(f"need --minutes > 0, 0 < --char-share < 1 and 0 <= --dropout < 1, got "
                     f"{args.minutes}, {args.char_share} and {args.dropout}")

    load_start = os.getloadavg()
    if args.threads is None and load_start[0] >= (os.cpu_count() or 1):
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    started = datetime.datetime.now(datetime.timezone.utc)

    train, train_file, note = training_text()
    test = datasets.wikitext2("test", progress=False)
    full_test_chars = len(test)
    if args.eval_chars:
        test = test[:args.eval_chars]
    print(f"WikiText-2 raw: {note}.")
    print(f"training text {len(train):,} characters ({train_file}), test text {len(test):,} "
          f"characters (wiki.test.raw{'' if not args.eval_chars else ', a prefix: DEV RUN'})")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {load_start[0]:.1f}; budget {args.minutes:g} min of training, "
          f"{args.char_share:.0%} of it for the char Transformer\n", flush=True)

    print("(a) character n-gram, interpolated Kneser-Ney, D = 0.75")
    ngrams = []
    for order in args.orders:
        figures = ngram_figures(train, test, order)
        ngrams.append(figures)
        print(f"  order {order}: {figures['bits_per_character']:.4f} bits/char, perplexity "
              f"{figures['perplexity_per_token']:.3f}/char (fit {figures['fit_seconds']} s, "
              f"score {figures['score_seconds']} s, {figures['unseen_characters']} unseen "
              f"characters)", flush=True)
    best = min(ngrams, key=lambda f: f["bits_per_character"])

    seconds = {"char": args.minutes * 60 * args.char_share}
    seconds["bpe"] = args.minutes * 60 - seconds["char"]
    print("\n(b) character-level Transformer")
    start = time.perf_counter()
    char_tokenizer = CharTokenizer.train(train, unk=True)
    char_seconds = time.perf_counter() - start
    char = transformer_figures("char", char_tokenizer, train, test, args.char_context,
                               seconds["char"],
                               args)
    char["tokenizer_seconds"] = round(char_seconds, 1)
    print("\n(c) BPE Transformer")
    start = time.perf_counter()
    bpe_tokenizer = BPETokenizer.train(train, vocab_size=args.bpe_vocab)
    bpe_seconds = time.perf_counter() - start
    bpe = transformer_figures("bpe", bpe_tokenizer, train, test, args.bpe_context,
                              seconds["bpe"], args)
    bpe["tokenizer_seconds"] = round(bpe_seconds, 1)
    models = {"char": char, "bpe": bpe}
    for figures in models.values():
        figures["beats_ngram"] = figures["bits_per_character"] < best["bits_per_character"]

    print(f"\n{'model':<28}{'bits/char':>10}{'ppl/token':>11}{'tokens':>11}")
    print(f"{'n-gram KN, order ' + str(best['order']):<28}{best['bits_per_character']:>10.4f}"
          f"{best['perplexity_per_token']:>11.3f}{best['test_characters']:>11,}")
    for name, figures in models.items():
        label = f"Transformer, {name} ({figures['steps']} steps)"
        print(f"{label:<28}"
              f"{figures['bits_per_character']:>10.4f}{figures['perplexity_per_token']:>11.3f}"
              f"{figures['test_tokens']:>11,}")
    print(f"\n{note}.")

    results = {
        "benchmark": "wikitext2",
        "command": " ".join(["python", "benchmarks/wikitext2.py", *sys.argv[1:]]),
        "date": started.isoformat(timespec="seconds"),
        "machine": _machine(),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average": {"start": list(load_start), "end": list(os.getloadavg())},
        "budget": {"minutes": args.minutes, "seconds_per_transformer": seconds,
                   "split": f"training wall time, {args.char_share:.0%} for the char "
                            f"Transformer and the rest for the BPE one; tokenizers, n-gram "
                            f"and evaluation not counted"},
        "data": {"dataset": "wikitext-2-raw", "train_file": train_file,
                 "eval_file": "wiki.test.raw", "note": note,
                 "train_characters": len(train), "test_characters": len(test),
                 "full_test": len(test) == full_test_chars},
        "ngram": {"orders": ngrams, "best_order": best["order"],
                  "bits_per_character": best["bits_per_character"],
                  "perplexity_per_token": best["perplexity_per_token"]},
        "transformers": models,
        "transformer_beats_ngram": any(f["beats_ngram"] for f in models.values()),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n",
                           encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

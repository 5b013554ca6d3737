"""The modern variants side by side, under one CPU budget: ``python benchmarks/variants.py``.

Two small experiments, every variant with the same data, seed, steps and schedule; only the
``TransformerConfig`` switches differ (chapter 15):

(a) **copy task** (the encoder-decoder of ``transformer.tasks.TASKS["copy"]``, its recipe's
    defaults): optimizer steps until every one of the held-out validation sequences is copied
    exactly (checked every ``--copy-eval-every`` steps, at most ``--copy-max-steps``), and the
    exact match on the test sequences at the end;
(b) **Tiny Shakespeare**, character level: a small :class:`~transformer.DecoderOnlyTransformer`
    trained for ``--lm-steps`` steps on random windows of the first 90 % of the text, then its
    mean cross-entropy (nats per character) on fixed windows of the last 10 %.

The reference is the paper's model (post-LN, ReLU, sinusoidal positions, biases), measured in
the same run. Writes ``benchmarks/results/variants.json`` (command, date, machine, torch
version, settings, figures), which chapter 15 reads; the file records each run's wall and CPU
seconds. ``--quick`` is a smoke run of a few seconds per variant.
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
import sys
import time
from pathlib import Path
from typing import Any

import torch

from transformer import DecoderOnlyTransformer, Transformer, TransformerConfig, count_parameters
from transformer.data.datasets import tiny_shakespeare
from transformer.data.tokenizers import CharTokenizer
from transformer.tasks import EXACT_MATCH, TASKS, exact_match_rate, train_until
from transformer.training import TrainConfig, Trainer, seed_everything

RESULTS = Path(__file__).resolve().parent / "results" / "variants.json"

# --8<-- [start:variants]
VARIANTS: dict[str, dict[str, Any]] = {  # name -> the TransformerConfig switches
    "paper": {},  # post-LN, ReLU, sinusoidal positions, biases: the defaults
    "pre-LN": dict(norm_first=True),
    "RMSNorm": dict(norm="rmsnorm"),
    "SwiGLU": dict(activation="swiglu"),
    "RoPE": dict(positional="rope"),
    "GQA (2 kv heads)": dict(n_kv_heads=2),
    "MQA (1 kv head)": dict(n_kv_heads=1),
    "no bias": dict(bias=False),
    "modern": dict(norm_first=True, norm="rmsnorm", activation="swiglu", positional="rope",
                   n_kv_heads=2, bias=False),
}
# --8<-- [end:variants]


def copy_task(switches: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Steps to 100 % exact match on the copy task's validation sequences."""
    task = TASKS["copy"]
    recipe = task.recipe(seed=args.seed, eval_size=args.copy_eval_size,
                         max_steps=args.copy_max_steps)
    cfg = task.model_config(recipe).replace(**switches)
    start, start_cpu = time.perf_counter(), time.process_time()
    seed_everything(recipe.seed)
    model = Transformer(cfg)
    trainer = Trainer(model, recipe.train_config(progress=False, device="cpu"),
                      task.data(recipe, "train"))
    history = train_until(trainer, task.data(recipe, "valid"), EXACT_MATCH,
                          eval_every=args.copy_eval_every)
    valid = history[-1][EXACT_MATCH.name]
    return {"steps_to_100": trainer.step if valid == 1.0 else None,
            "valid_exact_match": valid,
            "test_exact_match": exact_match_rate(model, task.data(recipe, "test")),
            "parameters": count_parameters(model)["total"],
            "wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - start_cpu}


def windows(ids: torch.Tensor, starts: torch.Tensor, block: int) -> dict[str, torch.Tensor]:
    """``{"tokens", "targets"}`` ``(len(starts), block)``: each window and the next characters."""
    rows = starts[:, None] + torch.arange(block + 1)[None, :]  # (batch, block + 1)
    chunk = ids[rows]
    return {"tokens": chunk[:, :-1], "targets": chunk[:, 1:]}


def shakespeare(switches: dict[str, Any], data: dict[str, Any],
                args: argparse.Namespace) -> dict[str, Any]:
    """Validation cross-entropy after ``args.lm_steps`` steps of a small character model."""
    train, valid, vocab = data["train"], data["valid"], data["vocab_size"]
    block, batch = args.lm_block, args.lm_batch

    def train_batches(epoch: int):  # random windows; each epoch depends on its number only
        g = torch.Generator().manual_seed(args.seed * 100_003 + epoch)
        for _ in range(1000):
            yield windows(train, torch.randint(0, len(train) - block - 1, (batch,), generator=g),
                          block)

    g = torch.Generator().manual_seed(12345)  # the same held-out windows for every variant
    held_out = [windows(valid, torch.randint(0, len(valid) - block - 1, (batch,), generator=g),
                        block) for _ in range(args.lm_eval_batches)]
    cfg = TransformerConfig(vocab_size=vocab, d_model=args.lm_d_model, n_heads=args.lm_heads,
                            d_ff=4 * args.lm_d_model, n_layers=args.lm_layers, dropout=0.0,
                            max_len=block, **switches)
    start, start_cpu = time.perf_counter(), time.process_time()
    seed_everything(args.seed)
    model = DecoderOnlyTransformer(cfg)
    trainer = Trainer(model, TrainConfig(max_steps=args.lm_steps, warmup_steps=args.lm_warmup,
                                         lr_factor=args.lm_lr_factor, label_smoothing=0.0,
                                         grad_clip=1.0, seed=args.seed, device="cpu",
                                         progress=False), train_batches, held_out)
    history = trainer.train()
    valid_loss = trainer.evaluate()["eval_loss"]
    return {"valid_loss": valid_loss, "train_loss": history[-1]["loss"],
            "parameters": count_parameters(model)["total"],
            "wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - start_cpu}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        metavar="NAME", help=f"which of {list(VARIANTS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--copy-max-steps", type=int, default=1500)
    parser.add_argument("--copy-eval-every", type=int, default=50)
    parser.add_argument("--copy-eval-size", type=int, default=1000)
    parser.add_argument("--lm-steps", type=int, default=600)
    parser.add_argument("--lm-warmup", type=int, default=100)
    parser.add_argument("--lm-lr-factor", type=float, default=1.0)
    parser.add_argument("--lm-block", type=int, default=64)
    parser.add_argument("--lm-batch", type=int, default=32)
    parser.add_argument("--lm-d-model", type=int, default=64)
    parser.add_argument("--lm-heads", type=int, default=4)
    parser.add_argument("--lm-layers", type=int, default=2)
    parser.add_argument("--lm-eval-batches", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 100 copy steps, 30 Shakespeare steps")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.copy_max_steps, args.copy_eval_every, args.copy_eval_size = 100, 50, 100
        args.lm_steps, args.lm_warmup, args.lm_eval_batches = 30, 10, 2
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    text = tiny_shakespeare(progress=False)
    tokenizer = CharTokenizer.train(text)
    ids = torch.tensor(tokenizer.encode(text))
    cut = int(0.9 * len(ids))
    data = {"train": ids[:cut], "valid": ids[cut:], "vocab_size": tokenizer.vocab_size}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {load:.1f}")
    print(f"{'variant':<18} {'copy steps':>10} {'test EM':>8} {'copy s':>7} "
          f"{'LM params':>9} {'valid loss':>10} {'LM s':>6}")
    figures: dict[str, dict[str, Any]] = {}
    for name in args.variants:
        switches = VARIANTS[name]
        copy, lm = copy_task(switches, args), shakespeare(switches, data, args)
        figures[name] = {"switches": switches, "copy": copy, "shakespeare": lm}
        steps = copy["steps_to_100"]
        shown = str(steps) if steps is not None else f">{args.copy_max_steps}"
        print(f"{name:<18} {shown:>10} {copy['test_exact_match']:>8.1%} {copy['wall_s']:>7.1f} "
              f"{lm['parameters']:>9,} {lm['valid_loss']:>10.4f} {lm['wall_s']:>6.1f}", flush=True)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                if k != "output"}
    settings["lm_vocab_size"] = tokenizer.vocab_size
    settings["lm_characters"] = {"train": cut, "valid": len(ids) - cut}
    settings["copy_recipe"] = dataclasses.asdict(TASKS["copy"].recipe(
        seed=args.seed, eval_size=args.copy_eval_size, max_steps=args.copy_max_steps))
    command = "python " + " ".join(shlex.quote(a) for a in
                                   ["benchmarks/variants.py", *sys.argv[1:]])
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
    assert all(math.isfinite(f["shakespeare"]["valid_loss"]) for f in figures.values())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

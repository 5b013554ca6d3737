"""Tiny Shakespeare, character level: ours and nanoGPT side by side, in one run.
``python benchmarks/shakespeare.py``.

**nanoGPT** (github.com/karpathy/nanoGPT, unmodified) is run from a temporary copy of the folder
given by ``--nanogpt`` (default ``../shared/reference/nanogpt`` next to the repository; it must
hold ``train.py``, ``model.py``, ``configurator.py``, ``config/`` and
``data/shakespeare_char/prepare.py``) with the exact CPU command of its README::

    python data/shakespeare_char/prepare.py
    python train.py config/train_shakespeare_char.py --device=cpu --compile=False \\
      --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 \\
      --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0

(its ``input.txt`` is copied from this package's dataset cache, so ``prepare.py`` skips its
download), and once more with ``--compile=True``. Its ``iter N: loss L, time T ms`` lines give
the milliseconds per iteration, its ``step N: train loss A, val loss B`` lines the validation
loss (mean of 20 random batches of 12 windows), and the ``ckpt.pt`` it saves when the
validation loss improves gives the full validation loss (below).

**Ours** is the package's ``shakespeare`` task (:mod:`transformer.tasks.language`) with the
same configuration: 4 layers, 4 heads, d_model 128, context 64, batch 12, 2,000 steps of AdamW
(weight decay 0.1 on matrices, β = (0.9, 0.99)), learning rate 1e-3 with 100 warm-up steps and
cosine decay to 1e-4, gradient clipping at 1, dropout 0, the same 90/10 split. The differences
in the model: our vocabulary has 3 more ids (the specials ``<pad>``, ``<bos>``, ``<eos>``, never
seen in the data); the initialization is GPT-2's, as nanoGPT's (``TransformerConfig(
init="gpt2")``: no √d_model scale on the embeddings); the positions are rotary (RoPE, the
recipe's default) where nanoGPT learns a table of them (the ``fp32-learned`` variant does
too). Each of our runs trains with
:class:`~transformer.training.Trainer`; ms/iteration is the wall time of
:meth:`~transformer.training.Trainer.train_step` (the batch, forward, backward, clipping,
AdamW), and the validation loss is measured every 250 steps as nanoGPT does (20 batches of 12
windows, fixed offsets), outside the timed steps.

**Variants of ours**: fp32 eager; bf16 autocast eager; bf16 autocast with ``torch.compile``;
fp32 eager with learned positions, as nanoGPT (``--variants`` chooses). **Threads**: both
implementations run with the same number of torch
threads, ``--threads`` (nanoGPT through ``OMP_NUM_THREADS``, which torch reads at start-up; its
code is not touched). The default is 1 when the machine is busy (the 1-minute load average at
least the number of CPUs: with more runnable threads than cores, OpenMP threads that wait for
each other spin and slow both implementations several times over), else torch's default.

**Full validation loss**, the same function for both: the mean cross-entropy over every
character of the validation text, in consecutive windows of 64 (each character predicted
from the ones before it in its window), of the model at the end of training (for nanoGPT, its
last saved checkpoint, at the step it reports).

The results go to ``benchmarks/results/shakespeare.json`` (command, date, machine, torch
version, threads, load average, each run's figures and evaluation curve, the ratios of our
ms/iteration to nanoGPT's eager and compiled runs, and samples of our best run).
``--max-iters N`` shortens every run for development; such a file is marked as not a result.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from transformer import DecoderOnlyTransformer
from transformer.data import datasets
from transformer.tasks.language import (
    SHAKESPEARE,
    ShakespeareRecipe,
    continue_text,
    shakespeare_split,
    shakespeare_tokenizer,
    window_loss,
)
from transformer.training import Trainer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "shakespeare.json"
ITER_LINE = re.compile(r"^iter (\d+): loss ([\d.]+), time ([\d.]+)ms")
EVAL_LINE = re.compile(r"^step (\d+): train loss ([\d.]+), val loss ([\d.]+)")
VARIANTS = {  # name -> (precision, torch.compile, positions)
    "fp32": ("fp32", False, "rope"), "bf16": ("bf16", False, "rope"),
    "bf16-compile": ("bf16", True, "rope"), "fp32-learned": ("fp32", False, "learned")}


def nanogpt_command(max_iters: int, compile: bool) -> list[str]:
    """nanoGPT's README command for a CPU (``--compile`` as given)."""
    return [sys.executable, "train.py", "config/train_shakespeare_char.py", "--device=cpu",
            f"--compile={compile}", "--eval_iters=20", "--log_interval=1", "--block_size=64",
            "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128",
            f"--max_iters={max_iters}", f"--lr_decay_iters={max_iters}", "--dropout=0.0"]


def prepare_nanogpt(source: Path, work: Path) -> Path:
    """Copy nanoGPT to ``work`` and run its ``prepare.py`` on our cached ``input.txt``."""
    if not (source / "train.py").is_file():
        sys.exit(f"benchmarks/shakespeare.py: error: no nanoGPT train.py in {source} "
                 f"(give its folder with --nanogpt)")
    ref = work / "nanogpt"
    shutil.copytree(source, ref)
    data = ref / "data" / "shakespeare_char"
    shutil.copyfile(datasets.fetch("tinyshakespeare", "input.txt"), data / "input.txt")
    subprocess.run([sys.executable, "prepare.py"], cwd=data, check=True,
                   stdout=subprocess.DEVNULL)
    return ref


def window_batches(ids: torch.Tensor, context: int = 64) -> torch.Tensor:
    """Consecutive windows of ``context + 1`` ids, overlapping by one: every id after the
    first is a target exactly once. ``(n_windows, context + 1)``."""
    return ids[: (len(ids) - 1) // context * context + 1].unfold(0, context + 1, context)


@torch.inference_mode()
def full_loss(loss_of: Any, windows: torch.Tensor, batch: int = 64) -> float:
    """Mean cross-entropy over every target of ``windows`` (``loss_of(x, y)`` is a mean)."""
    total, count = 0.0, 0
    for rows in windows.split(batch):
        x, y = rows[:, :-1], rows[:, 1:]
        total += float(loss_of(x, y)) * y.numel()
        count += y.numel()
    return total / count


def run_nanogpt(ref: Path, max_iters: int, compile: bool) -> dict[str, Any]:
    """Run nanoGPT's command; parse its log; score its checkpoint on the full validation text."""
    out_dir = ref / "out-shakespeare-char"
    shutil.rmtree(out_dir, ignore_errors=True)
    command = nanogpt_command(max_iters, compile)
    print(f"  nanoGPT{' (compiled)' if compile else ''}: {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    env = os.environ | {"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.Popen(command, cwd=ref, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    times, curve, lines = [], [], []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if m := ITER_LINE.match(line):
            if int(m.group(1)) > 0:  # iteration 0 includes start-up
                times.append(float(m.group(3)))
            if int(m.group(1)) % 250 == 0:
                print(f"    {line.strip()}", flush=True)
        elif m := EVAL_LINE.match(line):
            curve.append({"step": int(m.group(1)), "train_loss": float(m.group(2)),
                          "val_loss": float(m.group(3))})
    if proc.wait() != 0:
        sys.exit("nanoGPT failed:\n" + "".join(lines[-20:]))
    wall = time.perf_counter() - start
    full, saved_at = None, None
    if (out_dir / "ckpt.pt").is_file():  # saved at an evaluation that improved the loss
        spec = importlib.util.spec_from_file_location("nanogpt_model", ref / "model.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        checkpoint = torch.load(out_dir / "ckpt.pt", map_location="cpu", weights_only=True)
        model = module.GPT(module.GPTConfig(**checkpoint["model_args"]))
        model.load_state_dict({k.removeprefix("_orig_mod."): v
                               for k, v in checkpoint["model"].items()})
        model.eval()
        import numpy as np

        val = torch.from_numpy(np.fromfile(ref / "data" / "shakespeare_char" / "val.bin",
                                           dtype=np.uint16).astype(np.int64))
        full = full_loss(lambda x, y: model(x, y)[1], window_batches(val))
        saved_at = int(checkpoint["iter_num"])
    return {"implementation": "nanoGPT", "name": "nanoGPT" + (" compiled" if compile else ""),
            "precision": "fp32", "compile": compile, "iters": max_iters,
            "val_loss": curve[-1]["val_loss"], "full_val_loss": full,
            "checkpoint_iter": saved_at,
            "median_ms_per_iter": statistics.median(times),
            "tokens_per_s": 12 * 64 / (statistics.median(times) / 1000),
            "wall_s": wall, "curve": curve, "command": " ".join(command[1:])}


def run_ours(name: str, max_iters: int) -> tuple[dict[str, Any], DecoderOnlyTransformer]:
    """Train the package's shakespeare task with variant ``name``; time every step."""
    precision, compile, positional = VARIANTS[name]
    recipe = ShakespeareRecipe(max_steps=max_iters, precision=precision, compile=compile,
                               positional=positional)
    print(f"  ours ({name}): {recipe}", flush=True)
    start = time.perf_counter()
    model = DecoderOnlyTransformer(SHAKESPEARE.model_config(recipe))
    trainer = Trainer(model, recipe.train_config(progress=False, device="cpu"),
                      SHAKESPEARE.data(recipe, "train"))
    valid = SHAKESPEARE.data(recipe, "valid")
    times, curve, losses = [], [], []
    while trainer.step < max_iters:
        if trainer.step % recipe.eval_every == 0:
            curve.append({"step": trainer.step, "val_loss": window_loss(model, valid)})
        t = time.perf_counter()
        metrics = trainer.train_step()
        times.append((time.perf_counter() - t) * 1000)
        losses.append(metrics["loss"])
        if trainer.step % 250 == 0:
            print(f"    step {trainer.step}: loss {metrics['loss']:.4f}, "
                  f"{times[-1]:.1f} ms", flush=True)
    curve.append({"step": trainer.step, "val_loss": window_loss(model, valid)})
    wall = time.perf_counter() - start
    tokenizer = shakespeare_tokenizer(recipe)
    val = torch.tensor(tokenizer.encode(shakespeare_split()[1]))
    full = full_loss(lambda x, y: torch.nn.functional.cross_entropy(
        model(x, is_causal=True).float().flatten(0, 1), y.flatten()), window_batches(val))
    timed = times[1:]  # the first step includes start-up (and compilation)
    return ({"implementation": "ours", "name": f"ours {name}", "precision": precision,
             "compile": compile, "positional": positional, "iters": max_iters,
             "val_loss": curve[-1]["val_loss"],
             "full_val_loss": full, "median_ms_per_iter": statistics.median(timed),
             "tokens_per_s": 12 * 64 / (statistics.median(timed) / 1000), "wall_s": wall,
             "final_train_loss": statistics.fmean(losses[-50:]), "curve": curve}, model)


def samples(model: DecoderOnlyTransformer) -> list[dict[str, Any]]:
    """The four ways of chapter 11 after one prompt, fixed seeds."""
    tokenizer = shakespeare_tokenizer(ShakespeareRecipe())
    settings = [("greedy", dict(temperature=0)), ("temperature 0.8", dict(temperature=0.8)),
                ("top-k 50, temperature 0.8", dict(temperature=0.8, top_k=50)),
                ("top-p 0.9, temperature 0.8", dict(temperature=0.8, top_p=0.9))]
    return [{"strategy": label, "seed": 0, "prompt": "ROMEO:", "text": continue_text(
        model, tokenizer, "ROMEO:", max_new_tokens=200, seed=0, **kw)} for label, kw in settings]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nanogpt", type=Path,
                        default=ROOT.parent / "shared" / "reference" / "nanogpt")
    parser.add_argument("--max-iters", type=int, default=2000)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--no-nanogpt-compile", action="store_true",
                        help="skip nanoGPT's --compile=True run")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for both implementations (default: 1 on a busy "
                        "machine, else torch's default)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    load_start = list(os.getloadavg())
    cpus = os.cpu_count() or 1
    threads = args.threads or (1 if load_start[0] >= cpus else torch.get_num_threads())
    torch.set_num_threads(threads)
    print(f"threads: {threads} (load average {load_start[0]:.1f}, {cpus} CPUs)", flush=True)
    runs: list[dict[str, Any]] = []
    best: tuple[float, DecoderOnlyTransformer | None] = (math.inf, None)
    with tempfile.TemporaryDirectory() as work:
        ref = prepare_nanogpt(args.nanogpt.resolve(), Path(work))
        # interleaved, so that a change of load touches both implementations alike
        plan: list[tuple[str, Any]] = [("nanogpt", False)]
        plan += [("ours", v) for v in args.variants]
        if not args.no_nanogpt_compile:  # before our last run: compiled next to compiled
            plan.insert(max(2, len(plan) - 1), ("nanogpt", True))
        for kind, what in plan:
            if kind == "nanogpt":
                runs.append(run_nanogpt(ref, args.max_iters, bool(what)))
            else:
                figures, model = run_ours(str(what), args.max_iters)
                runs.append(figures)
                if figures["median_ms_per_iter"] < best[0]:
                    best = (figures["median_ms_per_iter"], model)
            r = runs[-1]
            full = "n/a" if r["full_val_loss"] is None else f"{r['full_val_loss']:.4f}"
            print(f"  -> {r['name']}: val loss {r['val_loss']:.4f} (full {full})"
                  f", {r['median_ms_per_iter']:.1f} ms/iter, {r['tokens_per_s']:.0f} tokens/s, "
                  f"{r['wall_s']:.0f} s", flush=True)
    eager = next(r for r in runs if r["name"] == "nanoGPT")
    compiled = next((r for r in runs if r["name"] == "nanoGPT compiled"), None)
    ratios = {r["name"]: {"vs_nanogpt_eager": r["median_ms_per_iter"] / eager["median_ms_per_iter"],
                          **({"vs_nanogpt_compiled": r["median_ms_per_iter"]
                              / compiled["median_ms_per_iter"]} if compiled else {})}
              for r in runs if r["implementation"] == "ours"}
    for name, ratio in ratios.items():
        print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in ratio.items()))
    results = {
        "benchmark": "shakespeare",
        "command": "python benchmarks/shakespeare.py" + "".join(f" {a}" for a in sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": os.cpu_count(), "python": platform.python_version()},
        "torch_version": torch.__version__, "threads": torch.get_num_threads(),
        "load_average": {"start": load_start, "end": list(os.getloadavg())},
        "complete": args.max_iters == 2000,
        "runs": runs, "ratios": ratios,
        "samples": samples(best[1]) if best[1] is not None else [],
        "samples_from": min((r for r in runs if r["implementation"] == "ours"),
                            key=lambda r: r["median_ms_per_iter"])["name"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

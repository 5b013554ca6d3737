"""How much the KV cache, and then a static cache with a compiled step, speed up decoding.

Run by hand (not part of the tests)::

    python benchmarks/kv_cache.py                  # 256 new tokens, the Shakespeare-size model
    python benchmarks/kv_cache.py --threads 2 --new-tokens 500 --rounds 3

Greedy decoding of the same prompt with the same random decoder-only model, five ways:

- ``eager, no cache``: step ``t`` runs the model on all ``prompt + t`` positions;
- ``eager, KV cache``: ``greedy_decode`` with the growing cache of chapter 13;
- ``static cache, eager``: :class:`~transformer.static_cache.CompiledDecoder` with
  ``compile=False`` (pre-allocated keys/values, a mask over the empty slots);
- ``static cache, compiled``: the same with the one-token step compiled by ``torch.compile``;
- ``static cache, compiled, C++ wrapper``: compiled with Inductor's ``cpp_wrapper`` option,
  which calls the step's kernels from C++ instead of from generated Python.

The script checks that all five give the same tokens, runs them in turn ``--rounds`` times (so
a change in the machine's load falls on all of them), and reports the median milliseconds per
new token and each one's ratio to the eager KV cache. Writes ``benchmarks/results/kv_cache.json``
(command, date, machine with its load average, torch version, settings, figures, ratios),
which chapter 18 reads; tests/test_benchmark_results_kv_cache.py checks its form.
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
from collections.abc import Callable
from pathlib import Path

import torch

from transformer import DecoderOnlyTransformer, TransformerConfig, count_parameters
from transformer.generation import greedy_decode
from transformer.static_cache import CompiledDecoder

RESULTS = Path(__file__).resolve().parent / "results" / "kv_cache.json"
VARIANTS = ("eager, no cache", "eager, KV cache", "static cache, eager", "static cache, compiled",
            "static cache, compiled, C++ wrapper")
CPP_WRAPPER = {"fullgraph": True, "options": {"cpp_wrapper": True}}
REFERENCE = "eager, KV cache"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--prompt-len", type=int, default=16)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--n-heads", type=int, default=4)
    parser.add_argument("--d-ff", type=int, default=512)
    parser.add_argument("--n-layers", type=int, default=4)
    parser.add_argument("--vocab-size", type=int, default=65)
    parser.add_argument("--rounds", type=int, default=5, help="timed runs of each variant")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=args.vocab_size, d_model=args.d_model,
                            n_heads=args.n_heads, d_ff=args.d_ff, n_layers=args.n_layers,
                            dropout=0.0, max_len=args.prompt_len + args.new_tokens)
    model = DecoderOnlyTransformer(cfg).eval()
    prompt = torch.randint(1, cfg.vocab_size, (args.batch, args.prompt_len))
    n_params = count_parameters(model)["total"]
    print(f"decoder-only model: d_model={cfg.d_model}, n_heads={cfg.n_heads}, d_ff={cfg.d_ff}, "
          f"n_layers={cfg.n_layers}, vocab={cfg.vocab_size}, {n_params:,} parameters")
    print(f"greedy decoding of {args.new_tokens} new tokens after a {args.prompt_len}-token "
          f"prompt, batch {args.batch}, {torch.get_num_threads()} CPU thread(s), torch "
          f"{torch.__version__}, load average {load:.1f}")

    static = CompiledDecoder(model, args.batch, compile=False)
    compile_s = {}
    for name, options in (("static cache, compiled", None),
                          ("static cache, compiled, C++ wrapper", CPP_WRAPPER)):
        start = time.perf_counter()
        decoder = CompiledDecoder(model, args.batch, compile_options=options)
        decoder.generate(prompt, 4)  # compiles the step
        compile_s[name] = round(time.perf_counter() - start, 2)
        print(f"torch.compile of the one-token step ({name}): {compile_s[name]:.1f} s")
        if options is None:
            compiled = decoder
        else:
            compiled_cpp = decoder
    n = args.new_tokens
    runs: dict[str, Callable[[], torch.Tensor]] = {
        "eager, no cache": lambda: greedy_decode(model, prompt, max_new_tokens=n,
                                                 use_cache=False),
        "eager, KV cache": lambda: greedy_decode(model, prompt, max_new_tokens=n),
        "static cache, eager": lambda: static.generate(prompt, n),
        "static cache, compiled": lambda: compiled.generate(prompt, n),
        "static cache, compiled, C++ wrapper": lambda: compiled_cpp.generate(prompt, n),
    }
    outputs = {name: run() for name, run in runs.items()}  # warm-up, and the tokens to compare
    same = all(torch.equal(out, outputs[REFERENCE]) for out in outputs.values())
    print(f"same tokens: {same}")
    if not same:
        raise SystemExit("the decoders disagree")
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(1000 * (time.perf_counter() - start) / n)  # ms per new token
    ms = {name: statistics.median(t) for name, t in times.items()}
    for name in runs:
        print(f"{name:<36} {ms[name]:7.3f} ms per token  ({ms[REFERENCE] / ms[name]:5.2f}x "
              f"the eager KV cache's speed)")
    load_end = os.getloadavg()[0]
    command = "python " + " ".join(shlex.quote(a) for a in ["benchmarks/kv_cache.py",
                                                             *sys.argv[1:]])
    result = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "load_average_1min_at_start": round(load, 2),
                    "load_average_1min_at_end": round(load_end, 2)},
        "torch": torch.__version__,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                     if k != "output"} | {"parameters": n_params},
        "reference": REFERENCE,
        "compile_s": compile_s,
        "same_tokens": same,
        "figures": {name: {"ms_per_token": round(ms[name], 4),
                           "ms_per_token_each_round": [round(t, 4) for t in times[name]],
                           "speedup_vs_reference": round(ms[REFERENCE] / ms[name], 3)}
                    for name in runs},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

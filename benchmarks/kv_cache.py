"""How much the KV cache speeds up decoding: greedy decoding with and without it.

Run by hand (not part of the tests)::

    python benchmarks/kv_cache.py                # 500 new tokens, decoder-only model
    python benchmarks/kv_cache.py --threads 1 --new-tokens 200

Both runs decode the same prompt with the same random model; the script checks that they
produce the same tokens, then prints the two times and their ratio. Without the cache, step
``t`` runs the model on all ``prompt + t`` positions; with it, on the newest position only.
"""

from __future__ import annotations

import argparse
import time

import torch

from transformer import DecoderOnlyTransformer, TransformerConfig, count_parameters
from transformer.generation import greedy_decode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=500)
    parser.add_argument("--prompt-len", type=int, default=16)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--n-heads", type=int, default=8)
    parser.add_argument("--d-ff", type=int, default=1024)
    parser.add_argument("--n-layers", type=int, default=4)
    parser.add_argument("--vocab-size", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=args.vocab_size, d_model=args.d_model,
                            n_heads=args.n_heads, d_ff=args.d_ff, n_layers=args.n_layers,
                            dropout=0.0, max_len=args.prompt_len + args.new_tokens)
    model = DecoderOnlyTransformer(cfg).eval()
    prompt = torch.randint(1, cfg.vocab_size, (args.batch, args.prompt_len))
    print(f"decoder-only model: d_model={cfg.d_model}, n_heads={cfg.n_heads}, d_ff={cfg.d_ff}, "
          f"n_layers={cfg.n_layers}, vocab={cfg.vocab_size}, "
          f"{count_parameters(model)['total']:,} parameters")
    print(f"greedy decoding of {args.new_tokens} new tokens after a {args.prompt_len}-token "
          f"prompt, batch {args.batch}, {torch.get_num_threads()} CPU thread(s)")

    greedy_decode(model, prompt, max_new_tokens=8)  # warm-up
    times, outputs = {}, {}
    for use_cache in (True, False):
        start = time.perf_counter()
        outputs[use_cache] = greedy_decode(model, prompt, max_new_tokens=args.new_tokens,
                                           use_cache=use_cache)
        times[use_cache] = time.perf_counter() - start
        label = "with KV cache   " if use_cache else "without cache   "
        per_token = 1000 * times[use_cache] / args.new_tokens
        print(f"{label}{times[use_cache]:8.2f} s  ({per_token:6.2f} ms per token)")
    same = torch.equal(outputs[True], outputs[False])
    print(f"same tokens: {same}")
    print(f"speed-up: {times[False] / times[True]:.1f}x")
    if not same:
        raise SystemExit("cached and uncached decoding disagree")


if __name__ == "__main__":
    main()

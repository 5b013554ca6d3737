"""How fast is ours next to PyTorch's own modules? Run by hand: ``python benchmarks/attention.py``.

Everything is measured in this one process, on the CPU, with PyTorch's default thread count,
ours and theirs taking turns (so a busy machine slows both alike), after warm-up iterations;
the table shows the median wall-clock time of the repeats, the median CPU time of this process
(less sensitive to other processes on a shared machine), and the ratios ours / PyTorch (below 1
= ours faster).

(a) multi-head attention forward + backward, batch 32, length 128, d_model 512, 8 heads, as
    self-attention without a mask and with a padding + causal mask: our ``MultiHeadAttention``
    with separate and with fused Q/K/V projections against ``nn.MultiheadAttention``.
(b) one training step (forward, cross-entropy, backward, Adam step) of the encoder-decoder with
    the paper's base sizes (N 6, d_model 512, d_ff 2048, 8 heads, dropout 0.1) but a small
    vocabulary (1000) and a small batch of short, ragged sentences (16 x 32 tokens), so that a
    step takes about a second on two cores: our ``Transformer`` (fused Q/K/V) against an
    ``nn.Transformer`` of the same size between the same embeddings and tied output projection.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from transformer import (
    MultiHeadAttention,
    SinusoidalPositionalEncoding,
    TokenEmbedding,
    Transformer,
    TransformerConfig,
    causal_mask,
    padding_mask,
    to_torch_masks,
)
from transformer.interop import load_torch_multihead_attention, load_torch_transformer

PAD = 0


def measure(contenders: dict[str, Callable[[], object]], warmup: int, repeats: int
            ) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds per call of each contender; they take turns every repeat."""
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    wall: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name]))
            for name in contenders}


def report(title: str, medians: dict[str, tuple[float, float]], reference: str) -> None:
    print(f"\n{title}")
    print(f"  {'':<34} {'wall ms':>9} {'ratio':>6} {'CPU ms':>9} {'ratio':>6}")
    ref_wall, ref_cpu = medians[reference]
    for name, (wall, cpu) in medians.items():
        print(f"  {name:<34} {wall * 1e3:>9.1f} {wall / ref_wall:>6.2f} {cpu * 1e3:>9.1f} "
              f"{cpu / ref_cpu:>6.2f}")


# --- (a) multi-head attention ---------------------------------------------------------------

def bench_attention(args: argparse.Namespace) -> None:
    b, t, d, h = args.mha_batch, args.mha_len, 512, 8
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(d, h, batch_first=True)
    separate = load_torch_multihead_attention(MultiHeadAttention(d, h), theirs)
    fused = load_torch_multihead_attention(MultiHeadAttention(d, h, fused=True), theirs)
    x = torch.randn(b, t, d, requires_grad=True)
    lengths = torch.randint(t // 2, t + 1, (b,))
    tokens = (torch.arange(t)[None, :] < lengths[:, None]).long()  # 1 = real, 0 = padding
    ours_mask = padding_mask(tokens, PAD) & causal_mask(t)  # (b, 1, t, t)
    kpm, _ = to_torch_masks(padding_mask(tokens, PAD))
    _, causal = to_torch_masks(causal_mask(t))

    def step(module: nn.Module, **kw) -> Callable[[], None]:
        def run() -> None:
            out, _ = module(x, x, x, **kw)
            out.sum().backward()
        return run

    for title, ours_kw, theirs_kw in [
        ("no mask", {}, {}),
        ("padding + causal mask", {"mask": ours_mask},
         {"key_padding_mask": kpm, "attn_mask": causal}),
    ]:
        medians = measure({
            "nn.MultiheadAttention": step(theirs, need_weights=False, **theirs_kw),
            "ours, separate Q/K/V": step(separate, **ours_kw),
            "ours, fused Q/K/V": step(fused, **ours_kw),
        }, args.warmup, args.repeats)
        report(f"(a) MHA forward+backward, batch {b}, length {t}, d_model {d}, {h} heads, "
               f"{title}", medians, "nn.MultiheadAttention")


# --- (b) one training step of the encoder-decoder -------------------------------------------

class TorchTransformerLM(nn.Module):
    """``nn.Transformer`` between the same embeddings, positions and tied generator as ours."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.embed = TokenEmbedding(cfg.vocab_size, cfg.d_model)
        self.positions = SinusoidalPositionalEncoding(cfg.d_model, cfg.max_len)
        self.dropout = nn.Dropout(cfg.dropout)
        self.transformer = nn.Transformer(cfg.d_model, cfg.n_heads, cfg.n_layers, cfg.n_layers,
                                          cfg.d_ff, cfg.dropout, batch_first=True)
        self.generator = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.generator.weight = self.embed.weight

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        causal = to_torch_masks(causal_mask(tgt.shape[1]))[1]
        hidden = self.transformer(
            self.dropout(self.positions(self.embed(src))),
            self.dropout(self.positions(self.embed(tgt))),
            tgt_mask=causal, src_key_padding_mask=src == PAD, tgt_key_padding_mask=tgt == PAD,
            memory_key_padding_mask=src == PAD)
        return self.generator(hidden)


def bench_training_step(args: argparse.Namespace) -> None:
    cfg = TransformerConfig.paper_base(vocab_size=args.vocab, n_layers=args.layers,
                                       final_norm=True, fused_qkv=args.fused)
    torch.manual_seed(0)
    ours = Transformer(cfg)
    theirs = TorchTransformerLM(cfg)
    load_torch_transformer(ours, theirs.transformer)  # same starting point
    with torch.no_grad():
        theirs.embed.weight.copy_(ours.src_embed.weight)
    g = torch.Generator().manual_seed(0)
    b, s = args.batch, args.seq_len
    src = torch.randint(1, cfg.vocab_size, (b, s), generator=g)
    tgt = torch.randint(1, cfg.vocab_size, (b, s + 1), generator=g)
    for row in range(b):  # ragged sentences, padded on the right
        src[row, int(torch.randint(s // 2, s + 1, (1,), generator=g)):] = PAD
        tgt[row, int(torch.randint(s // 2, s + 2, (1,), generator=g)):] = PAD
    tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:]

    def step(model: nn.Module) -> Callable[[], None]:
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)

        def run() -> None:
            logits = model(src, tgt_in)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1),
                                   ignore_index=PAD)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return run

    n_params = sum(p.numel() for p in {id(p): p for p in ours.parameters()}.values())
    medians = measure({"nn.Transformer (same embeddings)": step(theirs),
                       f"ours ({'fused' if args.fused else 'separate'} Q/K/V)": step(ours)},
                      args.warmup, args.repeats)
    report(f"(b) training step: N={cfg.n_layers}, d_model={cfg.d_model}, d_ff={cfg.d_ff}, "
           f"h={cfg.n_heads}, dropout={cfg.dropout}, vocab={cfg.vocab_size} "
           f"({n_params / 1e6:.1f}M parameters), batch {b}, src/tgt length {s}",
           medians, "nn.Transformer (same embeddings)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--mha-batch", type=int, default=32)
    parser.add_argument("--mha-len", type=int, default=128)
    parser.add_argument("--layers", type=int, default=6, help="N (the paper: 6)")
    parser.add_argument("--vocab", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--fused", action=argparse.BooleanOptionalAction, default=True,
                        help="fused Q/K/V projections in our model (default: on)")
    parser.add_argument("--only", choices=["mha", "train"], default=None)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          f"warm-up {args.warmup}, median of {args.repeats}")
    if args.only in (None, "mha"):
        bench_attention(args)
    if args.only in (None, "train"):
        bench_training_step(args)


if __name__ == "__main__":
    main()

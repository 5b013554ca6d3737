"""The ``transformer`` command: ``transformer info`` (more commands arrive with training)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from transformer.model import DecoderOnlyTransformer, Transformer, TransformerConfig, count_parameters

PRESETS = {"base": TransformerConfig.paper_base, "big": TransformerConfig.paper_big,
           "tiny": TransformerConfig.tiny}


def _info(args: argparse.Namespace) -> int:
    cfg = PRESETS[args.preset](vocab_size=args.vocab_size)
    model = DecoderOnlyTransformer(cfg) if args.decoder_only else Transformer(cfg)
    kind = "decoder-only" if args.decoder_only else "encoder-decoder"
    print(f"{kind} Transformer, preset {args.preset!r}: N={cfg.n_layers}, d_model={cfg.d_model}, "
          f"d_ff={cfg.d_ff}, h={cfg.n_heads}, dropout={cfg.dropout}, vocab={cfg.vocab_size}")
    for part, n in count_parameters(model).items():
        if n:
            print(f"  {part:<12} {n:>14,}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``transformer`` command."""
    parser = argparse.ArgumentParser(
        prog="transformer",
        description="The Executable Transformer: models from 'Attention Is All You Need'.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    info = sub.add_parser("info", help="print a model summary and its parameter counts",
                          description="Print a model summary and its parameter counts.")
    info.add_argument("--preset", choices=sorted(PRESETS), default="base",
                      help="model size (default: base, the paper's base model)")
    info.add_argument("--vocab-size", type=int, default=37000,
                      help="shared vocabulary size (default: 37000, as in the paper)")
    info.add_argument("--decoder-only", action="store_true", help="a GPT-style model instead")
    info.set_defaults(func=_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for bad arguments, as argparse does)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:  # bad values that argparse cannot see, e.g. vocab_size <= 0
        parser.exit(2, f"transformer {args.command}: error: {err}\n")
    return 2  # unreachable; keeps type checkers happy


if __name__ == "__main__":
    sys.exit(main())

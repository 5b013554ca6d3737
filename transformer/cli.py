"""The ``transformer`` command: ``info``, ``train`` (a synthetic task) and ``generate``.

::

    transformer info --preset base                 # Table 3's base model, parameter counts
    transformer train copy --steps 400 --out runs/copy
    transformer generate --checkpoint runs/copy --input "3 5 7 9"

Bad arguments exit with status 2 and a one-line reason on stderr, as argparse does, including
values argparse cannot check by itself (a missing checkpoint, tokens outside the vocabulary).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformer.model import (
    DecoderOnlyTransformer,
    Transformer,
    TransformerConfig,
    count_parameters,
)

PRESETS = {"base": TransformerConfig.paper_base, "big": TransformerConfig.paper_big,
           "tiny": TransformerConfig.tiny}
RUN_FILE = "config.json"  # what `generate` needs to rebuild the model
CHECKPOINT_DIR = "checkpoint"  # transformer.training.checkpoint format (safetensors + state)
METRICS_FILE = "metrics.jsonl"  # one JSON object per training step
RUN_FORMAT = "executable-transformer-run/1"


class UsageError(ValueError):
    """A command-line value that argparse could not check (reported with exit status 2)."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _device(name: str) -> Any:
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"argument --device: not a torch device: {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"argument --device: {name!r} requested but CUDA is not available")
    return device


# --------------------------------------------------------------------------------------- info


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


# -------------------------------------------------------------------------------------- train


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` through a temporary file, so it is never half-written."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _train(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from transformer.data.synthetic import TaskRecipe, exact_match_rate, train_until_exact_match
    from transformer.training import Trainer, seed_everything

    recipe = TaskRecipe(task=args.task, vocab_size=args.vocab_size, seq_len=args.seq_len,
                        min_len=args.min_len, batch_size=args.batch_size, d_model=args.d_model,
                        n_heads=args.n_heads, d_ff=args.d_ff, n_layers=args.n_layers,
                        warmup_steps=args.warmup_steps, lr_factor=args.lr_factor,
                        label_smoothing=args.label_smoothing, max_steps=args.steps,
                        seed=args.seed)
    model_config = recipe.model_config()  # raises ValueError, e.g. d_model % n_heads != 0
    device = _device(args.device) if args.device else None
    out = Path(args.out) if args.out is not None else Path("runs") / args.task
    if out.exists() and (not out.is_dir() or (any(out.iterdir())
                                              and not (out / RUN_FILE).is_file())):
        raise UsageError(f"argument --out: {out} exists and is not a training run of this "
                         "command; choose a new directory")
    if args.threads:
        torch.set_num_threads(args.threads)

    out.mkdir(parents=True, exist_ok=True)
    (out / METRICS_FILE).unlink(missing_ok=True)
    seed_everything(recipe.seed)
    model = Transformer(model_config)
    train_config = recipe.train_config(device=None if device is None else str(device),
                                       progress=False, log_path=str(out / METRICS_FILE))
    trainer = Trainer(model, train_config, recipe.data())
    # Early stopping looks at validation sequences; the exact match reported is on others.
    validation = recipe.data().held_out(args.eval_size, seed=recipe.seed + 2)
    test = recipe.data().held_out(args.eval_size)
    with tqdm(total=recipe.max_steps, desc=f"train {recipe.task}", unit="step",
              disable=args.no_progress) as bar:
        def show(metrics: list[dict[str, float]]) -> None:
            bar.update(len(metrics))
            bar.set_postfix(loss=f"{metrics[-1]['loss']:.3f}",
                            valid_exact_match=f"{metrics[-1]['exact_match']:.1%}")

        history = train_until_exact_match(trainer, validation, eval_every=args.eval_every,
                                          target=None if args.no_early_stop else 1.0,
                                          on_eval=show)
    trainer.save(out / CHECKPOINT_DIR)
    em = exact_match_rate(model, test)
    _write_json(out / RUN_FILE, {"format": RUN_FORMAT, "model": model_config.to_dict(),
                                 "recipe": recipe.to_dict(), "steps": trainer.step,
                                 "final_loss": history[-1]["loss"], "exact_match": em,
                                 "eval_size": args.eval_size})
    stopped = " (stopped early: every validation sequence copied exactly)" \
        if trainer.step < recipe.max_steps else ""
    print(f"trained {recipe.task} for {trainer.step} steps{stopped}: final loss "
          f"{history[-1]['loss']:.4f}; exact match on {args.eval_size} held-out sequences "
          f"(greedy): {em:.1%}")
    print(f"saved to {out}/ ({RUN_FILE}, {CHECKPOINT_DIR}/, {METRICS_FILE})")
    return 0


# ----------------------------------------------------------------------------------- generate


def load_run(directory: str | os.PathLike[str], device: Any = "cpu") -> Transformer:
    """Rebuild the model saved by ``transformer train`` in ``directory`` (weights loaded).

    Raises:
        UsageError: ``directory`` holds no ``config.json`` or no checkpoint, or they do not fit.
    """
    from transformer.training.checkpoint import CheckpointError, load_checkpoint

    run = Path(directory)
    if not (run / RUN_FILE).is_file():
        raise UsageError(f"argument --checkpoint: no training run at {run} (expected "
                         f"{run / RUN_FILE}, written by `transformer train`)")
    try:
        data = json.loads((run / RUN_FILE).read_text(encoding="utf-8"))
        if data.get("format") != RUN_FORMAT:
            raise ValueError(f"format {data.get('format')!r} is not {RUN_FORMAT!r}")
        model = Transformer(TransformerConfig(**data["model"]))
        load_checkpoint(run / CHECKPOINT_DIR, model, map_location=device)
    except (ValueError, TypeError, KeyError, CheckpointError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UsageError(f"argument --checkpoint: cannot load {run}: {reason}") from None
    return model.to(device).eval()


def _parse_tokens(text: str, vocab_size: int) -> list[int]:
    from transformer.data.synthetic import FIRST_TOKEN

    try:
        ids = [int(word) for word in text.replace(",", " ").split()]
    except ValueError:
        raise UsageError(f"argument --input: expected token ids separated by spaces, got "
                         f"{text!r}") from None
    if not ids:
        raise UsageError("argument --input: expected at least one token id, got none")
    bad = [i for i in ids if not FIRST_TOKEN <= i < vocab_size]
    if bad:
        raise UsageError(f"argument --input: token ids must be in [{FIRST_TOKEN}, {vocab_size}) "
                         f"for this model (0-2 are PAD, BOS, EOS), got {bad}")
    return ids


def _generate(args: argparse.Namespace) -> int:
    import torch

    from transformer.data.synthetic import BOS, EOS, PAD
    from transformer.generation import beam_search, greedy_decode

    device = _device(args.device) if args.device else torch.device("cpu")
    model = load_run(args.checkpoint, device)
    ids = _parse_tokens(args.input, model.config.vocab_size)
    src = torch.tensor([ids], device=device)  # (1, src_len)
    if args.beam_size == 1:
        out = greedy_decode(model, src, max_new_tokens=args.max_len, bos_id=BOS, eos_id=EOS)
    else:
        out = beam_search(model, src, beam_size=args.beam_size, max_new_tokens=args.max_len,
                          bos_id=BOS, eos_id=EOS).sequences
    print(" ".join(str(i) for i in out[0].tolist() if i not in (EOS, PAD)))
    return 0


# --------------------------------------------------------------------------------------- data


def _data(args: argparse.Namespace) -> int:
    """``transformer data [list]`` and ``transformer data fetch NAME [--file F]``."""
    from transformer.data import datasets

    if args.data_command == "fetch":
        if args.name not in datasets.DATASETS:
            raise UsageError(f"argument NAME: unknown dataset {args.name!r} (choose from "
                             f"{', '.join(sorted(datasets.DATASETS))})")
        dataset = datasets.DATASETS[args.name]
        if args.file is not None and args.file not in {f.name for f in dataset.files}:
            raise UsageError(f"argument --file: {args.name} has no file {args.file!r} (choose "
                             f"from {', '.join(f.name for f in dataset.files)})")
        names = [args.file] if args.file is not None else [f.name for f in dataset.files]
        try:
            for name in names:
                print(datasets.fetch(dataset, name, cache_dir=args.cache_dir,
                                     progress=not args.no_progress), flush=True)
        except datasets.DatasetError as err:
            print(f"transformer data: error: {str(err).splitlines()[0]}", file=sys.stderr)
            return 1
        return 0

    root = datasets.cache_dir(args.cache_dir)
    origin = ("--cache-dir" if args.cache_dir is not None else f"${datasets.ENV_VAR}"
              if os.environ.get(datasets.ENV_VAR) else
              f"the default; --cache-dir or ${datasets.ENV_VAR} move it")
    print(f"cache directory: {root} ({origin})")
    for dataset in datasets.DATASETS.values():
        print(f"\n{dataset.name}: {dataset.description}")
        print(f"  licence: {dataset.licence}")
        print(f"  homepage: {dataset.homepage}")
        width = max(len(f.name) for f in dataset.files)
        for name, state in datasets.status(dataset, root).items():
            size = dataset.file(name).size
            size_text = "size unknown" if size is None else f"{size:,} bytes"
            print(f"  {name:<{width}}  {size_text:>17}  {state}")
    return 0


def _add_data_parser(sub: Any) -> None:
    """``transformer data``: the dataset registry and its download cache."""
    data = sub.add_parser(
        "data", help="list the registered datasets and what the cache holds, or fetch one",
        description="List the registered datasets (files, sizes, licences) with the state of "
        "each file in the download cache (ok, missing or corrupt), or download and verify "
        "one. The cache is --cache-dir, else $TRANSFORMER_DATA_DIR, else the user cache folder.")
    data.set_defaults(func=_data, data_command="list", cache_dir=None)
    actions = data.add_subparsers(dest="data_command", metavar="ACTION")
    listing = actions.add_parser("list", help="list the datasets and their cache status "
                                 "(the default)", description="List the registered datasets "
                                 "and the cache status of each file.")
    listing.add_argument("--cache-dir", default=None, metavar="DIR",
                         help="the cache folder (default: $TRANSFORMER_DATA_DIR or the user "
                         "cache folder)")
    fetch = actions.add_parser("fetch", help="download and verify a dataset's files",
                               description="Download the files of dataset NAME into the cache "
                               "(or find them there), verify their SHA-256, print their paths.")
    fetch.add_argument("name", metavar="NAME", help="a dataset name, as `transformer data` "
                       "lists them")
    fetch.add_argument("--file", default=None, metavar="FILE",
                       help="only this file of the dataset (default: all of them)")
    fetch.add_argument("--cache-dir", default=None, metavar="DIR",
                       help="the cache folder (default: $TRANSFORMER_DATA_DIR or the user "
                       "cache folder)")
    fetch.add_argument("--no-progress", action="store_true", help="no progress bar")


# ------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``transformer`` command."""
    from transformer.data.synthetic import TASKS, TaskRecipe

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

    r = TaskRecipe()  # the defaults of `train`
    train = sub.add_parser(
        "train", help="train a small encoder-decoder on a synthetic task",
        description="Train a small encoder-decoder on a synthetic task (copy, reverse or sort "
        "random token sequences), save it, and print its exact match on held-out sequences. "
        "Training stops early once the model decodes every validation sequence exactly; "
        "the defaults get there on the copy task in a few hundred steps on a CPU.")
    train.add_argument("task", choices=TASKS, help="what the target is: the source copied, "
                       "reversed, or sorted")
    train.add_argument("--steps", type=_positive_int, default=r.max_steps,
                       help="optimizer steps (default: %(default)s)")
    train.add_argument("--batch-size", type=_positive_int, default=r.batch_size,
                       help="sequences per step (default: %(default)s)")
    train.add_argument("--seq-len", type=_positive_int, default=r.seq_len,
                       help="source length (the longest, with --min-len) (default: %(default)s)")
    train.add_argument("--min-len", type=_positive_int, default=r.min_len,
                       help="draw each source length from MIN_LEN..SEQ_LEN (default: fixed)")
    train.add_argument("--vocab-size", type=_positive_int, default=r.vocab_size,
                       help="vocabulary size, PAD=0, BOS=1 and EOS=2 included, >= 4 "
                       "(default: %(default)s)")
    train.add_argument("--d-model", type=_positive_int, default=r.d_model,
                       help="model width (default: %(default)s)")
    train.add_argument("--n-heads", type=_positive_int, default=r.n_heads,
                       help="attention heads h (default: %(default)s)")
    train.add_argument("--d-ff", type=_positive_int, default=r.d_ff,
                       help="feed-forward inner width (default: %(default)s)")
    train.add_argument("--n-layers", type=_positive_int, default=r.n_layers,
                       help="layers N in the encoder and in the decoder (default: %(default)s)")
    train.add_argument("--warmup-steps", type=_positive_int, default=r.warmup_steps,
                       help="warm-up of the eq. 3 learning-rate schedule (default: %(default)s)")
    train.add_argument("--lr-factor", type=_positive_float, default=r.lr_factor,
                       help="factor on the eq. 3 learning rate (default: %(default)s)")
    train.add_argument("--label-smoothing", type=_unit_float, default=r.label_smoothing,
                       help="epsilon_ls of the loss (§5.4) (default: %(default)s)")
    train.add_argument("--seed", type=int, default=r.seed,
                       help="seed of the data, the initial weights and dropout "
                       "(default: %(default)s)")
    train.add_argument("--eval-size", type=_positive_int, default=1000,
                       help="held-out sequences for the final exact match, and as many "
                       "validation sequences for early stopping (default: %(default)s)")
    train.add_argument("--eval-every", type=_positive_int, default=50,
                       help="steps between two exact-match checks on the validation "
                       "sequences (default: %(default)s)")
    train.add_argument("--no-early-stop", action="store_true",
                       help="train all --steps, even once every validation sequence is "
                       "decoded exactly")
    train.add_argument("--out", default=None, metavar="DIR",
                       help="directory for config.json, the checkpoint and metrics.jsonl "
                       "(default: runs/TASK)")
    train.add_argument("--device", default=None,
                       help="torch device, e.g. cpu or cuda (default: cuda if available)")
    train.add_argument("--threads", type=_positive_int, default=None,
                       help="CPU threads for torch (default: torch's choice)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=_train)

    generate = sub.add_parser(
        "generate", help="decode a source sequence with a model saved by `train`",
        description="Load a model saved by `transformer train` and print the token ids it "
        "generates for one source sequence (EOS and padding left out).")
    generate.add_argument("--checkpoint", required=True, metavar="DIR",
                          help="the --out directory of `transformer train`")
    generate.add_argument("--input", required=True, metavar="IDS",
                          help='source token ids separated by spaces, e.g. "3 5 7 9"')
    generate.add_argument("--beam-size", type=_positive_int, default=1,
                          help="1 for greedy decoding, more for beam search (§6.1) "
                          "(default: %(default)s)")
    generate.add_argument("--max-len", type=_positive_int, default=None,
                          help="most tokens to generate (default: input length + 50, §6.1)")
    generate.add_argument("--device", default=None, help="torch device (default: cpu)")
    generate.set_defaults(func=_generate)
    _add_data_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for bad arguments, as argparse does)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:  # bad values that argparse cannot see, e.g. vocab_size <= 0
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        parser.exit(2, f"transformer {args.command}: error: {reason}\n")
    return 2  # unreachable; keeps type checkers happy


if __name__ == "__main__":
    sys.exit(main())

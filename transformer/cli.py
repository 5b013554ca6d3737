"""The ``transformer`` command: ``info``, ``train TASK``, ``generate``, ``translate``, ``answer``
and ``data``.

::

    transformer info --preset base                 # Table 3's base model, parameter counts
    transformer train copy --max-steps 400 --out runs/copy
    transformer generate --checkpoint runs/copy --input "3 5 7 9"
    transformer train shakespeare --out runs/shakespeare
    transformer generate --checkpoint runs/shakespeare --prompt "ROMEO:" --top-k 50
    transformer answer --checkpoint runs/squad/extractive --context "..." --question "..."
    transformer train numbers --out runs/numbers      # digits -> English words, sacreBLEU
    transformer translate --checkpoint runs/numbers "4 0 7"

``train`` reads the tasks table (:data:`transformer.tasks.TASKS`): one subcommand per task,
whose options are the fields of the task's recipe (``max_steps`` becomes ``--max-steps``,
with the field's type, default and help).

Exit status: 0 on success; 2 for a bad argument, with a one-line reason on stderr, as argparse
does, also for values argparse cannot check alone (a recipe or model configuration that does
not hold together, a missing checkpoint, tokens outside the vocabulary); 1 with one line
``transformer CMD: error: ...`` when running fails for a known reason (:data:`RUNTIME_ERRORS`).
Any other exception is a bug, and shows its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import torch

from transformer.model import (
    DecoderOnlyTransformer,
    Transformer,
    TransformerConfig,
    count_parameters,
)
from transformer.tasks import TASKS, Recipe, Task
from transformer.training import CheckpointError, Run, TrainingDiverged
from transformer.training import load_run as training_load_run

PRESETS = {"base": TransformerConfig.paper_base, "big": TransformerConfig.paper_big,
           "tiny": TransformerConfig.tiny}
CHECKPOINT_DIR = "checkpoint"  # transformer.training's run format (weights + config + state)
METRICS_FILE = "metrics.jsonl"  # one JSON object per training step

# Failures while running that are no bug of ours: reported in one line, exit status 1. Modules
# with their own family of such errors add it here (a dataset that cannot be fetched, ...).
RUNTIME_ERRORS: tuple[type[Exception], ...] = (CheckpointError, TrainingDiverged, OSError,
                                               torch.cuda.OutOfMemoryError)


class UsageError(Exception):
    """A command-line value that argparse could not check (reported with exit status 2)."""


def _reason(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"argument --device: not a torch device: {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"argument --device: {name!r} requested but CUDA is not available")
    return device


# --------------------------------------------------------------------------------------- info


def _info(args: argparse.Namespace) -> int:
    try:
        cfg = PRESETS[args.preset](vocab_size=args.vocab_size)
    except ValueError as err:
        raise UsageError(_reason(err)) from None
    model = DecoderOnlyTransformer(cfg) if args.decoder_only else Transformer(cfg)
    kind = "decoder-only" if args.decoder_only else "encoder-decoder"
    print(f"{kind} Transformer, preset {args.preset!r}: N={cfg.n_layers}, d_model={cfg.d_model}, "
          f"d_ff={cfg.d_ff}, h={cfg.n_heads}, dropout={cfg.dropout}, vocab={cfg.vocab_size}")
    for part, n in count_parameters(model).items():
        if n:
            print(f"  {part:<12} {n:>14,}")
    return 0


def _add_info_parser(sub: Any) -> None:
    info = sub.add_parser("info", help="print a model summary and its parameter counts",
                          description="Print a model summary and its parameter counts.")
    info.add_argument("--preset", choices=sorted(PRESETS), default="base",
                      help="model size (default: base, the paper's base model)")
    info.add_argument("--vocab-size", type=int, default=37000,
                      help="shared vocabulary size (default: 37000, as in the paper)")
    info.add_argument("--decoder-only", action="store_true", help="a GPT-style model instead")
    info.set_defaults(func=_info)


# ---------------------------------------------------------------------------------- run format
# What `train` writes and `generate` reads: a run directory holding checkpoint/ (weights, model
# configuration and what `train` adds: task, recipe, results; transformer.training's format)
# and metrics.jsonl. transformer.training.load_run reads it back.


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir())
                                              and not (out / CHECKPOINT_DIR).is_dir())):
        raise UsageError(f"argument --out: {out} exists and is not a training run of this "
                         "command; choose a new directory")


def load_run(directory: str | os.PathLike[str], device: Any = "cpu") -> Run:
    """The run saved by ``transformer train`` in ``directory``, model on ``device``
    (:func:`transformer.training.load_run`).

    Raises:
        UsageError: ``directory`` holds no checkpoint, or one that cannot be loaded.
    """
    try:
        return training_load_run(directory, map_location=device)
    except CheckpointError as err:
        raise UsageError(f"argument --checkpoint: cannot load {directory}: "
                         f"{_reason(err)}") from None


# -------------------------------------------------------------------------------------- train


def _option_type(recipe: type[Recipe], name: str, kind: type, optional: bool
                 ) -> Callable[[str], Any]:
    """Text -> the field's type, checked against the field's range (argparse names the option
    in the message)."""

    def convert(text: str) -> Any:
        if optional and text.lower() == "none":
            return None
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None
        problem = recipe.problem(name, value)
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return value

    return convert


def _add_recipe_options(parser: argparse.ArgumentParser, recipe: type[Recipe]) -> None:
    """One option per field of ``recipe``: ``--kebab-case`` name, type from the annotation,
    default from the field, help from its ``metadata["help"]``; the task's own fields first,
    then the training settings every :class:`~transformer.tasks.Recipe` has."""
    common = {f.name for f in fields(Recipe)}
    own = parser.add_argument_group(f"{recipe.__name__} settings")
    training = parser.add_argument_group("training settings")
    for f in fields(recipe):
        group = training if f.name in common else own
        kind, optional = recipe.field_type(f.name)
        flag = "--" + f.name.replace("_", "-")
        default = None if f.default is MISSING else f.default
        shown = "none" if default is None else default
        text = f.metadata.get("help", "").replace("%", "%%") + f" (default: {shown})"
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default,
                               help=text)
        else:
            group.add_argument(flag, type=_option_type(recipe, f.name, kind, optional),
                               default=default, metavar=kind.__name__.upper(), help=text)


def _train(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from transformer.tasks import train_until
    from transformer.training import Trainer, seed_everything

    task: Task = TASKS[args.task]
    out = Path(args.out) if args.out is not None else Path("runs") / task.name
    _check_out(out)
    device = _device(args.device) if args.device else None
    try:  # the run's settings must hold together: else exit 2, before any work
        recipe = task.recipe(**{f.name: getattr(args, f.name) for f in fields(task.recipe)})
        model_config = task.model_config(recipe)
        train_config = recipe.train_config(device=None if device is None else str(device),
                                           progress=False, log_path=str(out / METRICS_FILE))
    except ValueError as err:
        raise UsageError(_reason(err)) from None
    if args.threads:
        torch.set_num_threads(args.threads)

    out.mkdir(parents=True, exist_ok=True)
    (out / METRICS_FILE).unlink(missing_ok=True)
    if task.note is not None:
        print(task.note(recipe))
    seed_everything(recipe.seed)
    model = task.model(model_config)
    trainer = Trainer(model, train_config, task.data(recipe, "train"))
    # Early stopping looks at the validation data; the score reported is on the test data.
    validation, test = task.data(recipe, "valid"), task.data(recipe, "test")
    metric = task.metric
    with tqdm(total=recipe.max_steps, desc=f"train {task.name}", unit="step",
              disable=args.no_progress) as bar:
        def show(metrics: list[dict[str, float]]) -> None:
            bar.update(len(metrics))
            bar.set_postfix(loss=f"{metrics[-1]['loss']:.3f}",
                            **{f"valid_{metric.name}": metric.fmt.format(metrics[-1][metric.name])})

        history = train_until(trainer, validation, metric, eval_every=recipe.eval_every,
                              early_stop=not args.no_early_stop, on_eval=show)
    score = metric.compute(model, test)
    if task.tokenizer is not None:  # beside the checkpoint: `generate` and `translate` read it
        task.tokenizer(recipe).save(out)
    trainer.save(out / CHECKPOINT_DIR, extra={
        "task": task.name, "recipe": recipe.to_dict(),
        "results": {"final_loss": history[-1]["loss"], metric.name: score}})
    stopped = (f" (stopped early: validation {metric.name} reached "
               f"{metric.fmt.format(metric.target)})" if trainer.step < recipe.max_steps else "")
    print(f"trained {task.name} for {trainer.step} steps{stopped}: final loss "
          f"{history[-1]['loss']:.4f}; test {metric.name}: {metric.fmt.format(score)}")
    saved = f"{CHECKPOINT_DIR}/, {METRICS_FILE}" + (", tokenizer.json" if task.tokenizer else "")
    print(f"saved to {out}/ ({saved})")
    return 0


def _add_train_parser(sub: Any) -> None:
    train = sub.add_parser(
        "train", help="train a model on a task of the tasks table",
        description="Train a model on a task, save it, and print its score on held-out test "
        "data. Training stops early once the score on validation data reaches the task's "
        "target (every sequence exact, for copy, reverse and sort). `transformer train TASK "
        "--help` lists the task's settings.")
    tasks = train.add_subparsers(dest="task", required=True, metavar="TASK")
    for task in TASKS.values():
        p = tasks.add_parser(task.name, help=task.description,
                             description=f"Train on the {task.name} task: {task.description}. "
                             f"Metric: {task.metric.name}.")
        _add_recipe_options(p, task.recipe)
        run = p.add_argument_group("run")
        run.add_argument("--no-early-stop", action="store_true",
                         help="train all --max-steps, even once the validation score reaches "
                         "the target")
        run.add_argument("--out", default=None, metavar="DIR",
                         help=f"directory for the checkpoint and {METRICS_FILE} "
                         "(default: runs/TASK)")
        run.add_argument("--device", default=None,
                         help="torch device, e.g. cpu or cuda (default: cuda if available)")
        run.add_argument("--threads", type=_positive_int, default=None,
                         help="CPU threads for torch (default: torch's choice)")
        run.add_argument("--no-progress", action="store_true", help="no progress bar")
        p.set_defaults(func=_train)


# ----------------------------------------------------------------------------------- generate


def _parse_tokens(text: str, config: TransformerConfig) -> list[int]:
    from transformer.data.synthetic import FIRST_TOKEN

    try:
        ids = [int(word) for word in text.replace(",", " ").split()]
    except ValueError:
        raise UsageError(f"argument --input: expected token ids separated by spaces, got "
                         f"{text!r}") from None
    if not ids:
        raise UsageError("argument --input: expected at least one token id, got none")
    bad = [i for i in ids if not FIRST_TOKEN <= i < config.vocab_size]
    if bad:
        raise UsageError(f"argument --input: token ids must be in [{FIRST_TOKEN}, "
                         f"{config.vocab_size}) for this model (0-2 are PAD, BOS, EOS), "
                         f"got {bad}")
    if len(ids) > config.max_len:
        raise UsageError(f"argument --input: at most {config.max_len} tokens fit this model's "
                         f"positional table, got {len(ids)}")
    return ids


def _run_tokenizer(directory: str, run: Run) -> Any:
    """The tokenizer saved beside a run by `train` (``tokenizer.json``), or ``None``."""
    from transformer.data.tokenizers import TOKENIZER_FILE, load_tokenizer

    for folder in (Path(directory), run.path.parent):
        if (folder / TOKENIZER_FILE).is_file():
            try:
                return load_tokenizer(folder)
            except ValueError as err:
                raise UsageError(f"argument --checkpoint: {_reason(err)}") from None
    return None


def _generate_text(args: argparse.Namespace, run: Run, device: torch.device) -> int:
    from transformer.tasks.language import continue_text

    tokenizer = _run_tokenizer(args.checkpoint, run)
    if tokenizer is None:
        raise UsageError(f"argument --prompt: {args.checkpoint} has no tokenizer.json (a run of "
                         "a text task saves one); give token ids with --input instead")
    try:
        tokenizer.encode(args.prompt) if args.prompt else None
    except ValueError as err:
        raise UsageError(f"argument --prompt: {_reason(err)}") from None
    try:
        text = continue_text(run.model, tokenizer, args.prompt,
                             max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                             top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    except ValueError as err:
        raise UsageError(f"argument --prompt: {_reason(err)}") from None
    print(text)
    return 0


def _generate(args: argparse.Namespace) -> int:
    from transformer.data.synthetic import BOS, EOS, PAD
    from transformer.tasks.base import _decode

    device = _device(args.device) if args.device else torch.device("cpu")
    run = load_run(args.checkpoint, device)
    if args.prompt is not None:
        if isinstance(run.model, Transformer):
            raise UsageError("argument --prompt: this run is an encoder-decoder model; it "
                             "decodes token ids given with --input")
        return _generate_text(args, run, device)
    model = run.model
    ids = _parse_tokens(args.input, model.config)
    if args.max_len is not None and args.max_len > model.config.max_len:
        raise UsageError(f"argument --max-len: at most {model.config.max_len} new tokens fit "
                         f"this model's positional table, got {args.max_len}")
    src = torch.tensor([ids], device=device)  # (1, src_len)
    out = _decode(model, src, bos_id=BOS, eos_id=EOS, beam_size=args.beam_size,
                  max_new_tokens=args.max_len)
    print(" ".join(str(i) for i in out[0].tolist() if i not in (EOS, PAD)))
    return 0


def _temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (value >= 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def _add_generate_parser(sub: Any) -> None:
    generate = sub.add_parser(
        "generate", help="continue a text prompt, or decode token ids, with a trained model",
        description="Load a model saved by `transformer train`. With --prompt (a text task "
        "such as shakespeare): print the prompt and its continuation, through the run's own "
        "tokenizer. With --input (copy, reverse, sort): print the token ids it generates for "
        "one source sequence (EOS and padding left out).")
    generate.add_argument("--checkpoint", required=True, metavar="DIR",
                          help="the --out directory of `transformer train`")
    what = generate.add_mutually_exclusive_group(required=True)
    what.add_argument("--prompt", metavar="TEXT", help='text to continue, e.g. "ROMEO:"')
    what.add_argument("--input", metavar="IDS",
                      help='source token ids separated by spaces, e.g. "3 5 7 9"')
    text = generate.add_argument_group("with --prompt")
    text.add_argument("--max-new-tokens", type=_positive_int, default=200,
                      help="tokens to generate (default: %(default)s)")
    text.add_argument("--temperature", type=_temperature, default=0.8,
                      help="sampling temperature; 0 for greedy decoding (default: %(default)s)")
    text.add_argument("--top-k", type=_positive_int, default=None,
                      help="sample among the k most probable tokens only")
    text.add_argument("--top-p", type=_probability, default=None,
                      help="sample among the most probable tokens of total mass p only")
    text.add_argument("--seed", type=int, default=0, help="seed of the draws (default: 0)")
    ids = generate.add_argument_group("with --input")
    ids.add_argument("--beam-size", type=_positive_int, default=1,
                     help="1 for greedy decoding, more for beam search (§6.1) "
                     "(default: %(default)s)")
    ids.add_argument("--max-len", type=_positive_int, default=None,
                     help="most tokens to generate (default: input length + 50, §6.1)")
    generate.add_argument("--device", default=None, help="torch device (default: cpu)")
    generate.set_defaults(func=_generate)


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


# ------------------------------------------------------------------------------------- answer


def _answer(args: argparse.Namespace) -> int:
    """``transformer answer``: the answer of a SQuAD run (benchmarks/squad.py --save-runs)."""
    from transformer.data.squad import SquadExample
    from transformer.model import Transformer as EncoderDecoder
    from transformer.qa import SpanExtractor
    from transformer.tasks.squad_models import load_qa_run, predict_generative, predict_spans

    for name in ("context", "question"):
        if not getattr(args, name).strip():
            raise UsageError(f"argument --{name}: expected some text, got {getattr(args, name)!r}")
    try:
        model, tokenizer, settings = load_qa_run(args.checkpoint)
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        raise UsageError(f"argument --checkpoint: cannot load {args.checkpoint}: "
                         f"{_reason(err)}") from None
    example = SquadExample(id="q", title="", article_index=0, paragraph_index=0,
                           context=args.context, question=args.question, answers=(),
                           aligned=())
    if isinstance(model, SpanExtractor):
        answer = predict_spans(model, [example], tokenizer, settings)["q"]
    elif isinstance(model, EncoderDecoder):
        answer = predict_generative(model, [example], tokenizer, settings)["q"]
    else:
        raise UsageError(f"argument --checkpoint: {args.checkpoint} holds a "
                         f"{type(model).__name__}, not a SQuAD model")
    print(answer)
    return 0


def _add_answer_parser(sub: Any) -> None:
    """``transformer answer``: answer a question about a context with a SQuAD run."""
    answer = sub.add_parser(
        "answer", help="answer a question about a context with a SQuAD model",
        description="Load a SQuAD run (benchmarks/squad.py --save-runs DIR: DIR/extractive or "
        "DIR/generative) and print its answer: for the extractive model a span of the context.")
    answer.add_argument("--checkpoint", required=True, metavar="RUN",
                        help="a run directory holding checkpoint/ and tokenizer.json")
    answer.add_argument("--context", required=True, metavar="TEXT", help="the paragraph")
    answer.add_argument("--question", required=True, metavar="TEXT", help="the question")
    answer.set_defaults(func=_answer)
# ---------------------------------------------------------------------------------- translate


def _translate(args: argparse.Namespace) -> int:
    from transformer.data.tokenizers import TOKENIZER_FILE
    from transformer.tasks.translation import translate

    device = _device(args.device) if args.device else torch.device("cpu")
    run = load_run(args.checkpoint, device)
    model = run.model
    if not isinstance(model, Transformer):
        raise UsageError(f"argument --checkpoint: {args.checkpoint} holds a "
                         f"{type(model).__name__}, translate needs an encoder-decoder "
                         "Transformer")
    tokenizer = _run_tokenizer(args.checkpoint, run)
    if tokenizer is None:
        raise UsageError(f"argument --checkpoint: no {TOKENIZER_FILE} in {args.checkpoint} "
                         "(a run of a task with a tokenizer, e.g. `transformer train "
                         "numbers`, saves one)")
    if not args.text or not all(text.strip() for text in args.text):
        raise UsageError("argument TEXT: expected a sentence, got an empty one")
    if tokenizer.vocab_size != model.config.vocab_size:
        raise UsageError(f"argument --checkpoint: the tokenizer has {tokenizer.vocab_size} ids, "
                         f"the model {model.config.vocab_size}")
    try:
        outputs = translate(model, tokenizer, [t.strip() for t in args.text],
                            beam_size=args.beam_size)
    except ValueError as err:  # text the tokenizer cannot encode
        raise UsageError(f"argument TEXT: {_reason(err)}") from None
    for output in outputs:
        print(output)
    return 0


def _add_translate_parser(sub: Any) -> None:
    translate = sub.add_parser(
        "translate", help="translate sentences with a model saved by `train`",
        description="Load a run saved by `transformer train` (a task with a tokenizer, e.g. "
        "numbers or multi30k) and print the translation of each sentence, one per line: "
        "greedy decoding, or beam search with α = 0.6 (§6.1), at most input length + 50 "
        "tokens.")
    translate.add_argument("text", nargs="+", metavar="TEXT", help="sentences to translate")
    translate.add_argument("--checkpoint", required=True, metavar="DIR",
                           help="the --out directory of `transformer train`")
    translate.add_argument("--beam-size", type=_positive_int, default=1,
                           help="1 for greedy decoding, 4 as in the paper (default: "
                           "%(default)s)")
    translate.add_argument("--device", default=None, help="torch device (default: cpu)")
    translate.set_defaults(func=_translate)


# ------------------------------------------------------------------------------------- parser

# one per subcommand
COMMANDS = (_add_info_parser, _add_train_parser, _add_generate_parser, _add_data_parser,
            _add_translate_parser, _add_answer_parser)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``transformer`` command."""
    parser = argparse.ArgumentParser(
        prog="transformer",
        description="The Executable Transformer: models from 'Attention Is All You Need'.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_parser in COMMANDS:
        add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status: 0, or 1 when running fails for a known reason
    (:data:`RUNTIME_ERRORS`). Bad arguments exit with status 2, as argparse does."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as err:  # bad values that argparse cannot see alone
        parser.exit(2, f"transformer {args.command}: error: {err}\n")
    except RUNTIME_ERRORS as err:
        print(f"transformer {args.command}: error: {_reason(err)}", file=sys.stderr)
        return 1
    return 2  # unreachable: parser.exit raises SystemExit


if __name__ == "__main__":
    sys.exit(main())

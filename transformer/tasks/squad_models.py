"""SQuAD models trained from scratch: the extractive span model and the generative one.

- **Extractive**: :class:`~transformer.qa.SpanExtractor` reads ``question <sep> context`` and
  points at the answer's first and last token; trained on the cross-entropy of both, decoded by
  the exact best-span search of :func:`~transformer.qa.best_span` over every window of the
  context.
- **Generative**: the encoder-decoder :class:`~transformer.model.Transformer` reads the same
  ``question <sep> context`` and writes the answer's tokens (teacher forcing, label-smoothed
  loss, greedy decoding); its output is scored as text, like any other answer.

Both use one byte-level :class:`~transformer.data.tokenizers.BPETokenizer` trained on the
training questions and contexts (:func:`train_qa_tokenizer`, with a ``<sep>`` special), and
the package's :class:`~transformer.training.Trainer`. A run directory holds the checkpoint
(``<run>/checkpoint``, the run format of :func:`~transformer.training.load_run`) and
``tokenizer.json`` beside it; :func:`load_qa_run` reads both back.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from transformer.data.squad import SquadExample
from transformer.data.tokenizers import BPETokenizer, Tokenizer, load_tokenizer
from transformer.model import Transformer, TransformerConfig
from transformer.qa import (
    MAX_SPAN,
    QAFeature,
    SpanExtractor,
    best_span,
    build_features,
    question_matches,
    span_loss,
)
from transformer.training import TrainConfig, Trainer, load_run, pad_batch

__all__ = [
    "QA_SPECIALS",
    "SEP",
    "EncodedQuestion",
    "QASettings",
    "SpanLoss",
    "answer_question",
    "encode_questions",
    "extractive_batches",
    "extractive_config",
    "extractive_features",
    "generative_batches",
    "generative_pairs",
    "load_qa_run",
    "new_trainer",
    "predict_generative",
    "predict_spans",
    "save_qa_run",
    "train_for",
    "train_qa_tokenizer",
]

SEP = "<sep>"
QA_SPECIALS = ("<pad>", "<bos>", "<eos>", SEP)
Batch = dict[str, Tensor]


@dataclass(frozen=True)
class QASettings:
    """How questions become model inputs (saved with a run, so answering uses the same).

    ``max_len``: tokens per window; ``max_question``: question tokens kept; ``stride``: tokens
    between the starts of consecutive context windows; ``max_span``: decoding's longest
    ``end - start``; ``max_answer``: answer tokens the generative model is trained on and may
    write.
    """

    max_len: int = 160
    max_question: int = 32
    stride: int = 64
    max_span: int = MAX_SPAN
    max_answer: int = 24

    def to_dict(self) -> dict[str, int]:
        """The settings as a plain dict (checkpoint ``extra``)."""
        return {"max_len": self.max_len, "max_question": self.max_question,
                "stride": self.stride, "max_span": self.max_span, "max_answer": self.max_answer}


def train_qa_tokenizer(examples: Sequence[SquadExample], vocab_size: int) -> BPETokenizer:
    """A byte-level BPE tokenizer learned on the questions and the (distinct) contexts.

    Raises:
        ValueError: ``vocab_size`` below 256 + the 4 specials.
    """
    contexts = list(dict.fromkeys(e.context for e in examples))
    return BPETokenizer.train([*contexts, *(e.question for e in examples)],
                              vocab_size=vocab_size, specials=QA_SPECIALS)


@dataclass(frozen=True)
class EncodedQuestion:
    """A question and its context as token ids, with the context's character offsets."""

    question_ids: list[int]
    context_ids: list[int]
    context_offsets: list[tuple[int, int]]
    matches: list[int]  # exact-match feature of each context token
    answer: tuple[int, int] | None  # gold (first, last) context token, from an aligned answer


def _answer_tokens(offsets: Sequence[tuple[int, int]], start: int, end: int
                   ) -> tuple[int, int] | None:
    covering = [k for k, (a, b) in enumerate(offsets) if b > start and a < end]
    return (covering[0], covering[-1]) if covering else None


def encode_questions(examples: Sequence[SquadExample], tokenizer: Tokenizer
                     ) -> list[EncodedQuestion]:
    """Tokenize every question and context (each distinct context once), find the gold tokens.

    The gold span is the first aligned answer's characters mapped to the tokens that overlap
    them; a question without an aligned answer gets ``answer=None`` (it can be scored, not
    trained on).

    Raises:
        TypeError: ``tokenizer`` has no ``encode_with_offsets`` (use a BPETokenizer).
    """
    if not hasattr(tokenizer, "encode_with_offsets"):
        raise TypeError(f"tokenizer must give character offsets (a BPETokenizer), got "
                        f"{type(tokenizer).__name__}")
    contexts: dict[str, tuple[list[int], list[tuple[int, int]]]] = {}
    out = []
    for e in examples:
        if e.context not in contexts:
            contexts[e.context] = tokenizer.encode_with_offsets(e.context)
        c_ids, c_offsets = contexts[e.context]
        q_ids, q_offsets = tokenizer.encode_with_offsets(e.question)
        answer = None
        if e.span_answers:
            text, start = e.span_answers[0]
            answer = _answer_tokens(c_offsets, start, start + len(text))
        out.append(EncodedQuestion(q_ids, c_ids, c_offsets,
                                   question_matches(e.question, q_offsets, e.context, c_offsets),
                                   answer))
    return out


def extractive_features(encoded: Sequence[EncodedQuestion], tokenizer: Tokenizer,
                        settings: QASettings, *, training: bool) -> list[QAFeature]:
    """Every window of every question (``training``: only the windows holding the answer, and
    only the questions that have one)."""
    features = []
    for k, q in enumerate(encoded):
        if training and q.answer is None:
            continue
        features += build_features(
            k, q.question_ids, q.context_ids, q.matches, bos_id=tokenizer.bos_id,
            sep_id=tokenizer.special_id(SEP), eos_id=tokenizer.eos_id, max_len=settings.max_len,
            max_question=settings.max_question, stride=settings.stride, answer=q.answer,
            only_answer_windows=training)
    return features


def _collate(features: Sequence[QAFeature], pad_id: int) -> Batch:
    def column(name: str) -> Tensor:
        return pad_batch([torch.tensor(getattr(f, name)) for f in features], pad_id
                         if name == "tokens" else 0)

    allowed = pad_batch([torch.tensor(f.allowed) for f in features], False)
    return {"tokens": column("tokens"), "segments": column("segments"),
            "matches": column("matches"), "allowed": allowed,
            "start": torch.tensor([f.start for f in features]),
            "end": torch.tensor([f.end for f in features])}


def extractive_batches(features: Sequence[QAFeature], batch_size: int, pad_id: int, seed: int
                       ) -> Callable[[int], Iterator[Batch]]:
    """Trainer batches: the features shuffled anew each epoch (by ``seed`` and the epoch)."""
    def epoch(number: int) -> Iterator[Batch]:
        order = list(range(len(features)))
        random.Random(seed * 1_000_003 + number).shuffle(order)
        for i in range(0, len(order), batch_size):
            yield _collate([features[k] for k in order[i:i + batch_size]], pad_id)

    return epoch


class SpanLoss:
    """The Trainer's ``loss_fn`` for :class:`~transformer.qa.SpanExtractor`: summed start + end
    cross-entropy (:func:`~transformer.qa.span_loss`) and the number of questions."""

    def __call__(self, model: nn.Module, batch: Batch) -> tuple[Tensor, int]:
        start, end = model(batch["tokens"], batch["segments"], batch["matches"])
        return span_loss(start, end, batch["allowed"], batch["start"], batch["end"]), \
            len(batch["start"])


def train_for(trainer: Trainer, *, seconds: float | None = None, steps: int | None = None,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run ``trainer`` until ``seconds`` of wall time or ``steps`` steps (whichever is given,
    or the first reached). Returns steps, seconds, and the mean loss of the first and last 5%.

    Raises:
        ValueError: neither limit given.
    """
    if seconds is None and steps is None:
        raise ValueError("give seconds or steps (or both)")
    losses = []
    start = time.perf_counter()
    while (seconds is None or time.perf_counter() - start < seconds) \
            and (steps is None or trainer.step < steps):
        metrics = trainer.train_step()
        losses.append(metrics["loss"])
        if log is not None and trainer.step % 100 == 0:
            log(f"    step {trainer.step:>6}  loss {metrics['loss']:.3f}  lr {metrics['lr']:.2e}"
                f"  {time.perf_counter() - start:6.0f} s")
    k = max(1, len(losses) // 20)
    return {"steps": trainer.step, "train_seconds": round(time.perf_counter() - start, 1),
            "first_loss": sum(losses[:k]) / k, "final_loss": sum(losses[-k:]) / k}


# --8<-- [start:predict]
@torch.inference_mode()
def predict_spans(model: SpanExtractor, examples: Sequence[SquadExample], tokenizer: Tokenizer,
                  settings: QASettings, *, batch_size: int = 64,
                  encoded: Sequence[EncodedQuestion] | None = None) -> dict[str, str]:
    """Answer every question with the best span over all windows of its full context.

    Each window's span is :func:`~transformer.qa.best_span` (``end <= start + max_span``) over
    its context tokens; the window with the highest ``start + end`` logit wins, and the answer
    is the context's characters from its first token's start to its last token's end.
    """
    encoded = encode_questions(examples, tokenizer) if encoded is None else encoded
    features = extractive_features(encoded, tokenizer, settings, training=False)
    model.eval()
    best: dict[int, tuple[float, int, int]] = {}  # example -> (score, first, last) tokens
    for i in range(0, len(features), batch_size):
        group = features[i:i + batch_size]
        batch = _collate(group, model.config.pad_id)
        starts, ends = model(batch["tokens"], batch["segments"], batch["matches"])
        for row, f in enumerate(group):
            s, e, score = best_span(starts[row].float(), ends[row].float(),
                                    batch["allowed"][row], settings.max_span)
            if f.example not in best or score > best[f.example][0]:
                best[f.example] = (score, f.first + s - f.offset, f.first + e - f.offset)
    out = {}
    for k, example in enumerate(examples):
        _, first, last = best[k]
        offsets = encoded[k].context_offsets
        out[example.id] = example.context[offsets[first][0]:offsets[last][1]]
    return out
# --8<-- [end:predict]


def answer_question(model: SpanExtractor, tokenizer: Tokenizer, settings: QASettings,
                    context: str, question: str) -> str:
    """The extractive model's answer to one question about one context: a substring of it.

    Raises:
        ValueError: ``context`` or ``question`` is empty.
    """
    for name, text in (("context", context), ("question", question)):
        if not text.strip():
            raise ValueError(f"{name} must hold some text, got {text!r}")
    example = SquadExample(id="q", title="", article_index=0, paragraph_index=0,
                           context=context, question=question, answers=(), aligned=())
    return predict_spans(model, [example], tokenizer, settings)["q"]


# --------------------------------------------------------------------------- generative


def generative_pairs(encoded: Sequence[EncodedQuestion], examples: Sequence[SquadExample],
                     tokenizer: Tokenizer, settings: QASettings, *, training: bool
                     ) -> list[tuple[list[int], list[int]]]:
    """``(source, target)`` id lists for the encoder-decoder: source = ``question <sep>
    context window``; target = the first gold answer's tokens + ``<eos>`` (empty when not
    ``training``).

    The source holds ``max_len`` tokens at most. For training the window is centred on the
    answer when the context is longer (questions without an aligned answer are left out); for
    prediction it is the context's first window: the generative model sees only the start of
    a long context.
    """
    sep, eos = tokenizer.special_id(SEP), tokenizer.eos_id
    pairs = []
    for q, example in zip(encoded, examples, strict=True):
        if training and q.answer is None:
            continue
        question = q.question_ids[:settings.max_question]
        room = settings.max_len - len(question) - 1
        first = 0
        if training and len(q.context_ids) > room:
            middle = (q.answer[0] + q.answer[1]) // 2
            first = max(0, min(middle - room // 2, len(q.context_ids) - room))
        source = [*question, sep, *q.context_ids[first:first + room]]
        target = []
        if training:
            target = [*tokenizer.encode(example.span_answers[0][0])[:settings.max_answer], eos]
        pairs.append((source, target))
    return pairs


def generative_batches(pairs: Sequence[tuple[list[int], list[int]]], batch_size: int,
                       tokenizer: Tokenizer, seed: int) -> Callable[[int], Iterator[Batch]]:
    """Trainer batches ``{"src", "tgt_in", "tgt_out"}``, shuffled anew each epoch;
    ``tgt_in`` is ``<bos>`` + the target without its last token (teacher forcing)."""
    pad, bos = tokenizer.pad_id, tokenizer.bos_id

    def epoch(number: int) -> Iterator[Batch]:
        order = list(range(len(pairs)))
        random.Random(seed * 1_000_003 + number).shuffle(order)
        for i in range(0, len(order), batch_size):
            group = [pairs[k] for k in order[i:i + batch_size]]
            yield {"src": pad_batch([torch.tensor(s) for s, _ in group], pad),
                   "tgt_in": pad_batch([torch.tensor([bos, *t[:-1]]) for _, t in group], pad),
                   "tgt_out": pad_batch([torch.tensor(t) for _, t in group], pad)}

    return epoch


@torch.inference_mode()
def predict_generative(model: Transformer, examples: Sequence[SquadExample],
                       tokenizer: Tokenizer, settings: QASettings, *, batch_size: int = 64,
                       encoded: Sequence[EncodedQuestion] | None = None) -> dict[str, str]:
    """Greedy answers of the encoder-decoder: question id → decoded text (specials dropped,
    white space stripped)."""
    from transformer.generation import generate

    encoded = encode_questions(examples, tokenizer) if encoded is None else encoded
    pairs = generative_pairs(encoded, examples, tokenizer, settings, training=False)
    model.eval()
    out = {}
    for i in range(0, len(pairs), batch_size):
        src = pad_batch([torch.tensor(s) for s, _ in pairs[i:i + batch_size]], tokenizer.pad_id)
        result = generate(model, src, strategy="greedy", bos_id=tokenizer.bos_id,
                          eos_id=tokenizer.eos_id, max_new_tokens=settings.max_answer + 1)
        for k, row in enumerate(result.sequences.tolist()):
            text = tokenizer.decode(row, skip_specials=True)
            out[examples[i + k].id] = text.strip()
    return out


# --------------------------------------------------------------------------- run directory


def save_qa_run(directory: str | os.PathLike[str], trainer: Trainer, tokenizer: Tokenizer,
                settings: QASettings, extra: dict[str, Any] | None = None) -> Path:
    """Write ``directory/checkpoint`` (the trainer's model, with ``task`` and ``qa_settings`` in
    its ``extra``) and ``directory/tokenizer.json``. Returns ``directory``."""
    directory = Path(directory)
    kind = "squad-extractive" if isinstance(trainer.model, SpanExtractor) else "squad-generative"
    trainer.save(directory / "checkpoint",
                 extra={"task": kind, "qa_settings": settings.to_dict(), **(extra or {})})
    tokenizer.save(directory)
    return directory


def load_qa_run(directory: str | os.PathLike[str]
                ) -> tuple[nn.Module, Tokenizer, QASettings]:
    """The model, tokenizer and settings saved by :func:`save_qa_run`.

    Raises:
        CheckpointError: no loadable checkpoint in ``directory``.
        FileNotFoundError: no ``tokenizer.json`` beside it.
        ValueError: the checkpoint was not saved by :func:`save_qa_run`.
    """
    run = load_run(directory)
    stored = run.extra.get("qa_settings")
    if not isinstance(stored, dict) or run.extra.get("task") not in ("squad-extractive",
                                                                      "squad-generative"):
        raise ValueError(f"{directory} is not a SQuAD run (no qa_settings in its checkpoint)")
    return run.model, load_tokenizer(directory), QASettings(**stored)


def new_trainer(model: nn.Module, *, seed: int = 0, warmup: int = 200, lr_factor: float = 1.0,
                precision: str = "fp32", label_smoothing: float = 0.0,
                batches: Callable[[int], Iterator[Batch]], loss_fn: Any = None) -> Trainer:
    """A CPU :class:`~transformer.training.Trainer` (Adam, eq. 3, clipping at 1, no progress
    bar) for either model."""
    config = TrainConfig(max_steps=10**9, warmup_steps=warmup, lr_factor=lr_factor,
                         label_smoothing=label_smoothing, grad_clip=1.0, seed=seed,
                         device="cpu", precision=precision, progress=False)
    return Trainer(model, config, batches, loss_fn=loss_fn)


def extractive_config(vocab_size: int, **changes: Any) -> TransformerConfig:
    """The span model's default shape: pre-LN, GELU, rotary positions (where an answer sits
    relative to the question's words is what the model must learn; a learned table of
    absolute positions learns it far more slowly: chapter 16b), d_model 128, 2 layers, no
    dropout."""
    base = dict(vocab_size=vocab_size, d_model=128, n_heads=4, d_ff=512, n_layers=2,
                dropout=0.0, activation="gelu", norm_first=True, positional="rope",
                max_len=QASettings().max_len, pad_id=0)
    return TransformerConfig(**{**base, **changes})

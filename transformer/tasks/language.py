"""Language modeling on real text: a decoder-only Transformer trained to predict the next
character (Tiny Shakespeare) or the next token (WikiText-2, byte-level BPE or characters).

Two rows of the tasks table:

- ``shakespeare``: Tiny Shakespeare at the character level with nanoGPT's CPU configuration
  (4 layers, 4 heads, ``d_model`` 128, context 64, batch 12, 2,000 steps of AdamW, learning rate
  1e-3 with 100 warm-up steps and cosine decay to 1e-4, dropout 0), on nanoGPT's split: the
  first 90 % of the characters train, the last 10 % are the validation text. That split has no
  third part, so the ``test`` score is on the validation text too.
- ``wikitext2``: WikiText-2 (raw). With ``wiki.train.raw`` in the dataset cache the model trains
  on it, early-stops on ``wiki.valid.raw`` and is scored on ``wiki.test.raw``; without it (as on
  the machines this project is built on, whose cache holds only the valid and test files) it
  trains on ``wiki.valid.raw`` and is both checked and scored on ``wiki.test.raw``, and
  :func:`wikitext2_note` says so (``transformer train wikitext2`` prints it).

The metrics are per token for Shakespeare, ``val_loss`` in nats per character as nanoGPT
reports it (the mean over fixed random windows), and per character for WikiText-2,
``bits_per_character``: total nats over every character of the held-out text divided by its
character count and ln 2, comparable across tokenizations and with the character n-gram of
:mod:`transformer.tasks.ngram`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from transformer.data.tokenizers import BPETokenizer, CharTokenizer, Tokenizer
from transformer.model import DecoderOnlyTransformer, TransformerConfig
from transformer.tasks.base import Metric, Recipe, Task, retune, setting
from transformer.training.batching import RandomWindows
from transformer.training.trainer import TrainConfig

__all__ = [
    "BITS_PER_CHARACTER",
    "SHAKESPEARE",
    "VAL_LOSS",
    "WIKITEXT2",
    "HeldOutText",
    "HeldOutWindows",
    "LanguageRecipe",
    "ShakespeareRecipe",
    "WikiText2Recipe",
    "bits_per_character",
    "continue_text",
    "shakespeare_split",
    "strided_nats",
    "wikitext2_note",
    "window_loss",
]


# --8<-- [start:language_recipe]
@dataclass(frozen=True)
class LanguageRecipe(Recipe):
    """A GPT-style run: AdamW (weight decay on matrices), linear warm-up then cosine decay,
    gradient clipping, no label smoothing; the model a pre-LN decoder with GELU, rotary
    positions (``positional="learned"``: GPT-2's and nanoGPT's learned ones), tied embeddings
    and no biases (nanoGPT's ``bias=False``). The other defaults are nanoGPT's CPU command for
    Tiny Shakespeare.
    """

    max_steps: int = retune(Recipe, "max_steps", 2000)
    warmup_steps: int = retune(Recipe, "warmup_steps", 100)
    lr: float = setting(1e-3, "peak learning rate, reached after the warm-up", above=0)
    min_lr: float = setting(1e-4, "learning rate at the end of the cosine decay", at_least=0)
    lr_factor: float = setting(1.0, "factor on lr and min_lr", above=0)
    weight_decay: float = setting(0.1, "AdamW weight decay of the matrices", at_least=0)
    beta2: float = setting(0.99, "Adam's beta2", at_least=0, below=1)
    grad_clip: float = setting(1.0, "largest global gradient norm", above=0)
    label_smoothing: float = retune(Recipe, "label_smoothing", 0.0)
    batch_size: int = setting(12, "windows per step", at_least=1)
    context: int = setting(64, "tokens per window (the model's context)", at_least=1)
    n_layers: int = setting(4, "decoder blocks", at_least=1)
    n_heads: int = setting(4, "attention heads per block", at_least=1)
    d_model: int = setting(128, "model width", at_least=1)
    dropout: float = setting(0.0, "dropout rate", at_least=0, below=1)
    positional: str = setting("rope", "rope (rotary, chapter 15) or learned (GPT-2's)")
    eval_every: int = retune(Recipe, "eval_every", 250)
    eval_iters: int = setting(20, "validation batches of batch_size windows per check",
                              at_least=1)
    precision: str = setting("fp32", "fp32, or bf16 autocast")
    compile: bool = setting(False, "torch.compile the model")

    def train_config(self, **changes: Any) -> TrainConfig:
        """The :class:`~transformer.training.TrainConfig` of this run (AdamW + cosine)."""
        settings: dict[str, Any] = dict(
            max_steps=self.max_steps, warmup_steps=self.warmup_steps, optimizer="adamw",
            weight_decay=self.weight_decay, betas=(0.9, self.beta2), eps=1e-8,
            schedule="cosine", lr=self.lr * self.lr_factor,
            min_lr=self.min_lr * self.lr_factor, grad_clip=self.grad_clip,
            label_smoothing=self.label_smoothing, precision=self.precision,
            compile=self.compile, seed=self.seed)
        return TrainConfig(**(settings | changes))
# --8<-- [end:language_recipe]

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr must be a number in [0, lr={self.lr}], got {self.min_lr}")
        if self.positional not in ("rope", "learned"):
            raise ValueError(f"positional must be 'rope' or 'learned', got {self.positional!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.max_steps <= self.warmup_steps:
            raise ValueError(f"max_steps must be greater than warmup_steps="
                             f"{self.warmup_steps} (the cosine decays over the steps after "
                             f"the warm-up), got {self.max_steps}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model must be divisible by n_heads={self.n_heads}, got "
                             f"{self.d_model}")


@dataclass(frozen=True)
class ShakespeareRecipe(LanguageRecipe):
    """nanoGPT's CPU configuration for Tiny Shakespeare, characters as tokens."""


@dataclass(frozen=True)
class WikiText2Recipe(LanguageRecipe):
    """WikiText-2 over byte-level BPE (``tokenizer="bpe"``) or characters (``"char"``)."""

    tokenizer: str = setting("bpe", "bpe (byte-level BPE) or char")
    bpe_vocab: int = setting(4096, "BPE vocabulary size, specials included", at_least=260)
    eval_chars: int = setting(100_000, "held-out characters scored at each check (the "
                              "final score reads the whole test text)", at_least=1000)
    context: int = retune(LanguageRecipe, "context", 128)
    batch_size: int = retune(LanguageRecipe, "batch_size", 16)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tokenizer not in ("bpe", "char"):
            raise ValueError(f"tokenizer must be 'bpe' or 'char', got {self.tokenizer!r}")


# ------------------------------------------------------------------------------ the texts
@functools.lru_cache(maxsize=2)
def shakespeare_split() -> tuple[str, str]:
    """Tiny Shakespeare as nanoGPT splits it: (the first 90 % of the characters, the rest)."""
    from transformer.data import datasets

    text = datasets.tiny_shakespeare()
    cut = int(len(text) * 0.9)  # nanoGPT's prepare.py: the first 90 % train
    return text[:cut], text[cut:]


def _wikitext2_has_train() -> bool:
    from transformer.data import datasets

    return datasets.status("wikitext-2-raw").get("wiki.train.raw") == "ok"


def wikitext2_note() -> str:
    """Which WikiText-2 files train, check and score the model, and why."""
    if _wikitext2_has_train():
        return ("wikitext2: trained on wiki.train.raw, checked on wiki.valid.raw, scored on "
                "wiki.test.raw")
    return ("wikitext2: wiki.train.raw is not in the dataset cache, so the model trains on "
            "wiki.valid.raw (the validation split) and is checked and scored on wiki.test.raw")


@functools.lru_cache(maxsize=2)
def _wikitext2() -> tuple[str, str, str]:
    """(training text, checking text, scoring text)."""
    from transformer.data import datasets

    test = datasets.wikitext2("test")
    if _wikitext2_has_train():
        return datasets.wikitext2("train"), datasets.wikitext2("valid"), test
    return datasets.wikitext2("valid"), test, test


# --------------------------------------------------------------------------- tokenizers
@functools.lru_cache(maxsize=4)
def _char_tokenizer(text: str, unk: bool = False) -> CharTokenizer:
    return CharTokenizer.train(text, unk=unk)


@functools.lru_cache(maxsize=4)
def _bpe_tokenizer(text: str, vocab_size: int) -> BPETokenizer:
    return BPETokenizer.train(text, vocab_size=vocab_size)


def shakespeare_tokenizer(recipe: ShakespeareRecipe) -> Tokenizer:
    """Characters of the training text (65 for Tiny Shakespeare's first 90 %) and the
    specials."""
    return _char_tokenizer(shakespeare_split()[0])


def wikitext2_tokenizer(recipe: WikiText2Recipe) -> Tokenizer:
    """A character tokenizer (with ``<unk>`` for characters the training text lacks) or a
    byte-level BPE of ``recipe.bpe_vocab`` ids, trained on the training text."""
    train = _wikitext2()[0]
    if recipe.tokenizer == "char":
        return _char_tokenizer(train, unk=True)  # the held-out text has characters it lacks
    return _bpe_tokenizer(train, recipe.bpe_vocab)


# ------------------------------------------------------------------------------ the data
@dataclass(frozen=True)
class HeldOutWindows:
    """Fixed windows of ``context + 1`` ids of a held-out text: ``windows`` is
    ``(n, context + 1)``, scored ``batch_size`` at a time by :func:`window_loss`."""

    windows: Tensor
    batch_size: int


@dataclass(frozen=True)
class HeldOutText:
    """Every token of a held-out text (``ids``, its first id ``<bos>``) and its character
    count, scored in strided windows of ``context`` tokens by :func:`bits_per_character`."""

    ids: Tensor
    characters: int
    context: int
    stride: int


def _ids(tokenizer: Tokenizer, text: str, bos: bool = False) -> Tensor:
    start = [tokenizer.bos_id] if bos and tokenizer.bos_id is not None else []
    return torch.tensor(start + tokenizer.encode(text), dtype=torch.long)


def shakespeare_data(recipe: ShakespeareRecipe, split: str) -> Any:
    """``"train"``: :class:`~transformer.training.RandomWindows` of the first 90 %;
    ``"valid"`` and ``"test"``: ``eval_iters * batch_size`` windows of the last 10 % at offsets
    drawn once from ``recipe.seed`` (the same windows at every check).

    Raises:
        ValueError: an unknown ``split``.
    """
    train, valid = shakespeare_split()
    tokenizer = shakespeare_tokenizer(recipe)
    if split == "train":
        return RandomWindows(_ids(tokenizer, train), recipe.context, recipe.batch_size,
                             seed=recipe.seed)
    if split in ("valid", "test"):
        windows = _ids(tokenizer, valid).unfold(0, recipe.context + 1, 1)
        generator = torch.Generator().manual_seed(recipe.seed + 1)
        rows = torch.randint(len(windows), (recipe.eval_iters * recipe.batch_size,),
                             generator=generator)
        return HeldOutWindows(windows[rows].clone(), recipe.batch_size)
    raise ValueError(f"split must be 'train', 'valid' or 'test', got {split!r}")


def wikitext2_data(recipe: WikiText2Recipe, split: str) -> Any:
    """``"train"``: random windows of the training text; ``"valid"``: the first
    ``eval_chars`` characters of the checking text; ``"test"``: the whole scoring text
    (:func:`wikitext2_note` says which files these are).

    Raises:
        ValueError: an unknown ``split``.
    """
    train, check, score = _wikitext2()
    tokenizer = wikitext2_tokenizer(recipe)
    if split == "train":
        return RandomWindows(_ids(tokenizer, train, bos=True), recipe.context,
                             recipe.batch_size, seed=recipe.seed)
    if split in ("valid", "test"):
        text = check[:recipe.eval_chars] if split == "valid" else score
        return HeldOutText(_ids(tokenizer, text, bos=True), len(text), recipe.context,
                           max(1, recipe.context // 2))
    raise ValueError(f"split must be 'train', 'valid' or 'test', got {split!r}")


def language_model_config(recipe: LanguageRecipe, tokenizer: Tokenizer) -> TransformerConfig:
    """The decoder-only model of ``recipe``: pre-LN, GELU, ``recipe.positional`` positions
    for ``context`` tokens, tied embeddings, no biases, ``d_ff = 4 d_model``, GPT-2's
    initialization."""
    return TransformerConfig(
        vocab_size=tokenizer.vocab_size, d_model=recipe.d_model, n_heads=recipe.n_heads,
        d_ff=4 * recipe.d_model, n_layers=recipe.n_layers, dropout=recipe.dropout,
        activation="gelu", norm_first=True, positional=recipe.positional, max_len=recipe.context,
        tie_embeddings=True, bias=False, pad_id=tokenizer.pad_id or 0, init="gpt2")


# ------------------------------------------------------------------------------- metrics
def _at_least_fp32(logits: Tensor) -> Tensor:
    return logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 → fp32


# --8<-- [start:window_loss]
@torch.inference_mode()
def window_loss(model: nn.Module, held_out: HeldOutWindows) -> float:
    """Mean cross-entropy (nats per token) of predicting each window's ids ``1..context``
    from those before them, dropout off: nanoGPT's ``estimate_loss`` on fixed windows."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for rows in held_out.windows.split(held_out.batch_size):
        logits = _at_least_fp32(model(rows[:, :-1], is_causal=True))  # (batch, context, vocab)
        total += float(nn.functional.cross_entropy(logits.flatten(0, 1), rows[:, 1:].flatten(),
                                                   reduction="sum"))
        count += rows[:, 1:].numel()
    model.train(was_training)
    return total / count
# --8<-- [end:window_loss]


@torch.inference_mode()
def strided_nats(model: nn.Module, ids: Tensor, context: int, stride: int,
                 batch_size: int = 32) -> tuple[float, int]:
    """Total nats of ``ids[1:]`` given what precedes each, in windows of ``context`` tokens.

    The first window predicts ``ids[1:context + 1]``; each next one ends ``stride`` tokens
    later and scores only its last ``stride`` targets (the last window, fewer), so every target
    is scored once, with at least ``context - stride`` tokens before it (except in the first
    window). Returns ``(total nats, targets scored)``.

    Raises:
        ValueError: ``ids`` shorter than 2, or ``stride`` not in ``[1, context]``.
    """
    if ids.dim() != 1 or len(ids) < 2:
        raise ValueError(f"ids must be a 1-D tensor of at least 2 ids, got {tuple(ids.shape)}")
    if not 1 <= stride <= context:
        raise ValueError(f"stride must be in [1, context={context}], got {stride}")
    n = len(ids)
    end = min(context, n - 1)
    ends = [end]
    while end < n - 1:
        end = min(end + stride, n - 1)
        ends.append(end)
    was_training = model.training
    model.eval()
    total, scored, previous = 0.0, 0, 0
    for first in range(0, len(ends), batch_size):
        group = ends[first:first + batch_size]
        width = min(context, group[0])  # only the first window can be shorter than context
        starts = [e - width for e in group]
        tokens = torch.stack([ids[s:s + width] for s in starts])  # (batch, width)
        targets = torch.stack([ids[s + 1:s + width + 1] for s in starts])  # (batch, width)
        logp = torch.log_softmax(_at_least_fp32(model(tokens, is_causal=True)), dim=-1)
        nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (batch, width)
        for row, e in enumerate(group):
            new = e - previous  # targets previous..e-1 of ids[1:] are new
            total += float(nll[row, width - new:].double().sum())
            scored, previous = scored + new, e
    model.train(was_training)
    return total, scored


def bits_per_character(model: nn.Module, held_out: HeldOutText) -> float:
    """Total nats over every token of the held-out text / its characters / ln 2."""
    nats, _ = strided_nats(model, held_out.ids, held_out.context, held_out.stride)
    return nats / held_out.characters / math.log(2)


VAL_LOSS = Metric("val_loss", window_loss, greater_is_better=False, fmt="{:.4f}")
BITS_PER_CHARACTER = Metric("bits_per_character", bits_per_character, greater_is_better=False,
                            fmt="{:.4f}")

SHAKESPEARE = Task(
    "shakespeare", "Tiny Shakespeare, next character (nanoGPT CPU setup)",
    ShakespeareRecipe, data=shakespeare_data,
    model_config=lambda r: language_model_config(r, shakespeare_tokenizer(r)),
    metric=VAL_LOSS, tokenizer=shakespeare_tokenizer, model=DecoderOnlyTransformer)
WIKITEXT2 = Task(
    "wikitext2", "WikiText-2, next BPE token or character",
    WikiText2Recipe, data=wikitext2_data,
    model_config=lambda r: language_model_config(r, wikitext2_tokenizer(r)),
    metric=BITS_PER_CHARACTER, tokenizer=wikitext2_tokenizer, model=DecoderOnlyTransformer,
    note=lambda r: wikitext2_note())


# ---------------------------------------------------------------------------- text out
# --8<-- [start:continue_text]
def continue_text(model: DecoderOnlyTransformer, tokenizer: Tokenizer, prompt: str, *,
                  max_new_tokens: int = 200, temperature: float = 0.8,
                  top_k: int | None = None, top_p: float | None = None, seed: int = 0) -> str:
    """``prompt`` and ``max_new_tokens`` tokens sampled after it (``temperature=0``: greedy),
    decoded to text.

    The model sees at most ``max_len`` tokens (its learned positions or rotary tables end
    there). Past that, generation restarts from the last ``max_len // 2`` tokens (cached
    decoding within each window), so every token is predicted from between half a context and
    a full one before it.

    Raises:
        ValueError: an empty prompt, one the tokenizer cannot encode, one longer than the
            context, or a bad sampling setting (see :func:`transformer.generation.generate`).
    """
    from transformer.generation import generate

    if not isinstance(prompt, str) or not prompt:
        raise ValueError(f"prompt must be a non-empty string, got {prompt!r}")
    ids = tokenizer.encode(prompt)
    context = model.config.max_len
    if not ids or len(ids) > context:
        raise ValueError(f"prompt must give between 1 and {context} tokens (the model's "
                         f"context), got {len(ids)}")
    if temperature == 0 and (top_k is not None or top_p is not None):
        raise ValueError("top_k and top_p restrict sampling; temperature=0 is greedy decoding, "
                         "which takes neither")
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    new: list[int] = []
    while len(new) < max_new_tokens:
        window = (ids + new)[-context:] if not new else (ids + new)[-(context // 2):]
        room = min(context - len(window) + 1, max_new_tokens - len(new))
        sampling: dict[str, Any] = {} if temperature == 0 else dict(
            strategy="sample", temperature=temperature, top_k=top_k, top_p=top_p,
            generator=generator)
        out = generate(model, torch.tensor([window], device=device), max_new_tokens=room,
                       eos_id=tokenizer.eos_id, **sampling).sequences[0].tolist()
        stop = tokenizer.eos_id in out
        new += out[:out.index(tokenizer.eos_id)] if stop else out
        if stop:
            break
    return prompt + tokenizer.decode(new, skip_specials=True)
# --8<-- [end:continue_text]

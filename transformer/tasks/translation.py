"""Translation (§6.1): Multi30k German→English with a shared byte-level BPE vocabulary, scored
with sacreBLEU.

The pieces every text-to-text task of this layer shares (the numbers task of
:mod:`transformer.tasks.numbers` uses them too):

- :func:`encode_pairs` turns sentence pairs into ids and counts what it leaves out (empty
  lines, pairs too long for the model, text the tokenizer cannot encode) in a
  :class:`DataReport`;
- :func:`token_batches` groups them by length under a token budget (§5.1,
  :class:`~transformer.training.TokenBatchSampler`);
- :func:`translate` decodes sentences greedily or with beam search (beam 4, α = 0.6, at most
  input length + 50 tokens: §6.1);
- :func:`sacrebleu_scores` scores the outputs with sacreBLEU (Post, 2018): corpus BLEU and chrF
  on detokenized text, with their signatures, and BLEU on lower-cased tokenized text, labelled
  as such because it is not comparable with the first.

Source and target share one vocabulary, so the model ties its source embedding, target
embedding and pre-softmax matrix (§3.4).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from transformer.model import Transformer, TransformerConfig
from transformer.tasks.base import Metric, Recipe, Task, _decode, retune, setting
from transformer.training.batching import TokenBatchSampler, pad_batch
from transformer.viz import attention_maps

__all__ = [
    "BLEU",
    "MULTI30K",
    "Alignment",
    "DataReport",
    "ParallelSet",
    "TranslationRecipe",
    "bleu_metric",
    "cross_attention",
    "encode_pairs",
    "multi30k_tokenizer",
    "sacrebleu_scores",
    "token_batches",
    "translate",
]

EXTRA_OUTPUT = 50  # §6.1: "maximum output length during inference to input length + 50"


# ------------------------------------------------------------------------------ data and report


@dataclass
class DataReport:
    """What :func:`encode_pairs` kept and what it left out, and why.

    Attributes:
        name: which data, e.g. ``"multi30k train"``.
        pairs: pairs read.
        kept: pairs encoded and kept.
        empty: pairs with an empty (or blank) source or target line.
        too_long: pairs whose source or target ids exceed the length limit.
        untokenizable: pairs the tokenizer refused (e.g. a character a
            :class:`~transformer.data.tokenizers.CharTokenizer` does not know).
        examples: the line numbers (from 1) of the first few pairs left out, per reason.
    """

    name: str
    pairs: int = 0
    kept: int = 0
    empty: int = 0
    too_long: int = 0
    untokenizable: int = 0
    examples: dict[str, list[int]] = field(default_factory=dict)

    def _note(self, reason: str, line: int) -> None:
        setattr(self, reason, getattr(self, reason) + 1)
        lines = self.examples.setdefault(reason, [])
        if len(lines) < 3:
            lines.append(line)

    def __str__(self) -> str:
        dropped = [f"{getattr(self, r):,} {r.replace('_', ' ')} (lines "
                   f"{', '.join(map(str, self.examples[r]))}"
                   f"{', ...' if getattr(self, r) > len(self.examples[r]) else ''})"
                   for r in ("empty", "too_long", "untokenizable") if getattr(self, r)]
        left = "; left out: " + ", ".join(dropped) if dropped else "; none left out"
        return f"{self.name}: kept {self.kept:,} of {self.pairs:,} pairs{left}"


@dataclass
class ParallelSet:
    """Held-out pairs as the metric reads them: source ids and reference texts.

    Attributes:
        sources: the source sentences as ids (no BOS or EOS).
        references: the reference translations, as text.
        tokenizer: turns the model's output ids back into text.
        source_texts: the source sentences, as text.
        report: what :func:`encode_pairs` left out.
    """

    sources: list[list[int]]
    references: list[str]
    tokenizer: Any
    source_texts: list[str]
    report: DataReport

    def __len__(self) -> int:
        return len(self.sources)


def encode_pairs(pairs: Iterable[tuple[str, str]], tokenizer: Any, *, max_tokens: int,
                 name: str = "data") -> tuple[list[tuple[list[int], list[int]]], list[int],
                                               DataReport]:
    """Encode ``(source, target)`` text pairs, leaving out the ones a model cannot use.

    A pair is left out, and counted in the report, when either side is empty or blank, when
    the tokenizer raises ``ValueError`` on it, or when either side has more than
    ``max_tokens`` ids (the model adds BOS or EOS: one more).

    Args:
        pairs: ``(source text, target text)`` pairs, e.g. from
            :func:`transformer.data.datasets.multi30k`.
        tokenizer: a :class:`~transformer.data.tokenizers.Tokenizer`.
        max_tokens: most ids a side may have.
        name: what the report calls the data.

    Returns:
        ``(encoded pairs, their line numbers from 1, report)``.

    Raises:
        ValueError: ``max_tokens`` < 1.
    """
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be an integer >= 1, got {max_tokens!r}")
    report, encoded, lines = DataReport(name), [], []
    for line, (src, tgt) in enumerate(pairs, start=1):
        report.pairs += 1
        if not src.strip() or not tgt.strip():
            report._note("empty", line)
            continue
        try:
            src_ids, tgt_ids = tokenizer.encode(src.strip()), tokenizer.encode(tgt.strip())
        except ValueError:
            report._note("untokenizable", line)
            continue
        if len(src_ids) > max_tokens or len(tgt_ids) > max_tokens:
            report._note("too_long", line)
            continue
        encoded.append((src_ids, tgt_ids))
        lines.append(line)
    report.kept = len(encoded)
    return encoded, lines, report


# --8<-- [start:token_batches]
def token_batches(encoded: Sequence[tuple[list[int], list[int]]], *, max_tokens: int,
                  bos_id: int, eos_id: int, pad_id: int,
                  seed: int = 0) -> Callable[[int], list[dict[str, Tensor]]]:
    """The trainer's batches, ``epoch -> batches``: pairs grouped by length so that each
    padded side holds at most ``max_tokens`` ids (§5.1), in an order set by ``(seed, epoch)``.

    A batch is ``{"src": ids, "tgt_in": BOS + target, "tgt_out": target + EOS}``, padded.

    Raises:
        ValueError: as :class:`~transformer.training.TokenBatchSampler`, e.g. a pair longer
            than ``max_tokens``.
    """
    lengths = [(len(src), len(tgt) + 1) for src, tgt in encoded]  # the decoder sees one more
    sampler = TokenBatchSampler(lengths, max_tokens, shuffle=True, seed=seed, sort_window=None)

    src = [torch.tensor(s) for s, _ in encoded]
    tgt_in = [torch.tensor([bos_id, *t]) for _, t in encoded]   # BOS + target
    tgt_out = [torch.tensor([*t, eos_id]) for _, t in encoded]  # target + EOS

    def epoch(number: int) -> list[dict[str, Tensor]]:
        sampler.set_epoch(number)
        return [{"src": pad_batch([src[i] for i in batch], pad_id),
                 "tgt_in": pad_batch([tgt_in[i] for i in batch], pad_id),
                 "tgt_out": pad_batch([tgt_out[i] for i in batch], pad_id)}
                for batch in sampler]

    return epoch
# --8<-- [end:token_batches]


# ------------------------------------------------------------------------------------ decoding


# --8<-- [start:translate]
@torch.no_grad()
def translate(model: Transformer, tokenizer: Any, sources: Sequence[str] | Sequence[list[int]],
              *, beam_size: int = 1, batch_size: int = 64) -> list[str]:
    """Translate ``sources`` (texts, or ids already encoded): greedy decoding for
    ``beam_size=1``, else beam search with α = 0.6; at most input length + 50 tokens (§6.1).

    Sentences are decoded in batches of similar length; the outputs come back in the order of
    ``sources``, as text, without special tokens.

    Raises:
        ValueError: ``beam_size`` or ``batch_size`` < 1, or a source with no ids.
    """
    for name, value in (("beam_size", beam_size), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    ids = [tokenizer.encode(s) if isinstance(s, str) else list(s) for s in sources]
    empty = [i for i, s in enumerate(ids) if not s]
    if empty:
        raise ValueError(f"sources must not be empty, got an empty source at index {empty[0]}")
    device = next(model.parameters()).device
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # little padding per batch
    room = model.config.max_len - EXTRA_OUTPUT
    outputs: list[str] = [""] * len(ids)
    eos, pad = tokenizer.eos_id, model.config.pad_id
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        src = pad_batch([torch.tensor(ids[i][:room]) for i in chunk], pad).to(device)
        out = _decode(model, src, bos_id=tokenizer.bos_id, eos_id=eos, beam_size=beam_size)
        for i, row in zip(chunk, out.tolist(), strict=True):
            row = row[:row.index(eos)] if eos in row else row  # (1, steps): cut at EOS
            outputs[i] = tokenizer.decode(row, skip_specials=True).strip()
    return outputs
# --8<-- [end:translate]


class Alignment(NamedTuple):
    """The cross-attention of one translation, what :func:`cross_attention` returns: where in
    the source the decoder looks while it writes each target token (the paper's Figures 3–5
    draw encoder self-attention the same way)."""

    source_tokens: list[str]
    """One label per source id (the keys)."""
    target_tokens: list[str]
    """One label per query row: the target token that row predicts, the last one EOS."""
    weights: Tensor
    """``(layers, heads, len(target_tokens), len(source_tokens))``, each row sums to 1."""


def _piece(tokenizer: Any, i: int) -> str:
    return tokenizer.decode([i]).strip() or "␣"


# --8<-- [start:cross_attention]
@torch.no_grad()
def cross_attention(model: Transformer, tokenizer: Any, source: str,
                    target: str | None = None, *, beam_size: int = 1) -> Alignment:
    """The encoder-decoder attention of every layer and head while ``model`` writes
    ``target`` (teacher forcing: BOS + target in, target + EOS predicted); by default
    ``target`` is the model's own translation of ``source`` (:func:`translate` with
    ``beam_size``).

    Row ``i`` of the weights belongs to the decoder position that predicts target token
    ``i``: it is where the model looks while it chooses that token. An empty ``target`` (a
    model that stops at once) gives one row, the EOS.

    Raises:
        ValueError: ``source`` encodes to no ids, or ``source`` or ``target`` is too long for
            the model.
    """
    src_ids = tokenizer.encode(source)
    if not src_ids:
        raise ValueError(f"source must encode to at least one id, got {source!r}")
    if target is None:
        target = translate(model, tokenizer, [src_ids], beam_size=beam_size)[0]
    tgt_ids = tokenizer.encode(target)
    for name, ids in (("source", src_ids), ("target", tgt_ids)):
        if len(ids) + 1 > model.config.max_len:
            raise ValueError(f"{name} has {len(ids)} ids; the model takes at most "
                             f"{model.config.max_len - 1}")
    device = next(model.parameters()).device
    src = torch.tensor([src_ids], device=device)
    tgt = torch.tensor([[tokenizer.bos_id, *tgt_ids]], device=device)  # BOS + target
    weights = attention_maps(model, src, tgt)["cross"][0]  # (layers, heads, tgt, src)
    eos = tokenizer.decode([tokenizer.eos_id])
    return Alignment([_piece(tokenizer, i) for i in src_ids],
                     [_piece(tokenizer, i) for i in tgt_ids] + [eos], weights.float().cpu())
# --8<-- [end:cross_attention]


# ------------------------------------------------------------------------------------- scoring


# --8<-- [start:sacrebleu]
def sacrebleu_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """sacreBLEU's corpus scores of ``hypotheses`` against one reference each.

    Returns:
        ``{"bleu", "chrf", "bleu_signature", "chrf_signature"}``: BLEU and chrF on the
        detokenized text (sacreBLEU's default 13a tokenization, case kept; the comparable
        figures), and ``"bleu_lowercase_13a"`` with its ``"bleu_lowercase_signature"``: BLEU of
        lower-cased text, a different and higher figure, labelled so.

    Raises:
        ValueError: different numbers of hypotheses and references, or none.
    """
    import sacrebleu

    if len(hypotheses) != len(references) or not hypotheses:
        raise ValueError(f"hypotheses and references must be non-empty and as many, got "
                         f"{len(hypotheses)} and {len(references)}")
    refs = [list(references)]  # one reference stream
    bleu, chrf = sacrebleu.BLEU(), sacrebleu.CHRF()
    lower = sacrebleu.BLEU(lowercase=True, tokenize="13a")
    return {
        "bleu": bleu.corpus_score(list(hypotheses), refs).score,
        "bleu_signature": str(bleu.get_signature()),
        "chrf": chrf.corpus_score(list(hypotheses), refs).score,
        "chrf_signature": str(chrf.get_signature()),
        "bleu_lowercase_13a": lower.corpus_score(list(hypotheses), refs).score,
        "bleu_lowercase_signature": str(lower.get_signature()),
    }
# --8<-- [end:sacrebleu]


def bleu_metric(model: nn.Module, held_out: ParallelSet, *, beam_size: int = 1) -> float:
    """sacreBLEU corpus BLEU of ``model``'s translations of ``held_out`` (greedy by default).

    Raises:
        ValueError: as :func:`translate` and :func:`sacrebleu_scores`.
    """
    hypotheses = translate(model, held_out.tokenizer, held_out.sources, beam_size=beam_size)
    return sacrebleu_scores(hypotheses, held_out.references)["bleu"]


BLEU = Metric("bleu", bleu_metric, target=None, fmt="{:.2f}")


# -------------------------------------------------------------------------------------- multi30k


# --8<-- [start:recipe]
@dataclass(frozen=True)
class TranslationRecipe(Recipe):
    """The paper's recipe (§5: eq. 3, label smoothing 0.1, token batches; §6.1: checkpoint
    averaging, beam 4, α = 0.6) scaled down to Multi30k on a CPU: 3 + 3 layers of width 256
    (d_ff 512) instead of 6 + 6 of 512 (d_ff 2048), one shared BPE vocabulary of 4,000
    instead of 37,000, batches of 2,000 tokens instead of 25,000, a warm-up of 150 steps
    instead of 4,000. One departure: the layers are pre-LN (``norm_first``; the paper's
    post-LN stays one switch away), because with this short warm-up pre-LN learns faster
    (``benchmarks/layer_norm.py``; chapter 16 shows both).

    Raises:
        ValueError: a setting outside its range.
    """

    vocab_size: int = setting(4000, "shared BPE vocabulary (German + English)", at_least=259)
    max_tokens: int = setting(2000, "tokens per padded batch side (§5.1)", at_least=1)
    max_sentence_tokens: int = setting(100, "longer training pairs (in ids) are left out",
                                       at_least=1)
    eval_size: int = setting(200, "validation pairs scored while training (0: all)",
                             at_least=0)
    d_model: int = setting(256, "model width", at_least=1)
    n_heads: int = setting(4, "attention heads h", at_least=1)
    d_ff: int = setting(512, "feed-forward inner width", at_least=1)
    n_layers: int = setting(3, "layers N in the encoder and in the decoder", at_least=1)
    dropout: float = setting(0.1, "P_drop (§5.4)", at_least=0, below=1)
    norm_first: bool = setting(True, "pre-LN layers (False: the paper's post-LN)")
    max_steps: int = retune(Recipe, "max_steps", 3000)
    warmup_steps: int = retune(Recipe, "warmup_steps", 150)
    lr_factor: float = retune(Recipe, "lr_factor", 0.35)  # peak 1.8e-3 at step 150
    eval_every: int = retune(Recipe, "eval_every", 500)
# --8<-- [end:recipe]


@functools.lru_cache(maxsize=4)
def multi30k_tokenizer(vocab_size: int) -> Any:
    """The byte-level BPE vocabulary shared by German and English, trained on Multi30k's
    training pairs (both sides); cached, so ``data`` and ``model_config`` see one."""
    from transformer.data import datasets
    from transformer.data.tokenizers import BPETokenizer

    pairs = datasets.multi30k("train", progress=False)
    return BPETokenizer.train((text for pair in pairs for text in pair), vocab_size=vocab_size)


def _multi30k_tokenizer(recipe: TranslationRecipe) -> Any:
    return multi30k_tokenizer(recipe.vocab_size)


def text_model_config(recipe: Any, tokenizer: Any) -> TransformerConfig:
    """The encoder-decoder of ``recipe``'s sizes over ``tokenizer``'s one vocabulary, tied
    (§3.4), with room for the longest source + 50 output tokens.

    Raises:
        ValueError: sizes that do not fit, e.g. ``d_model`` not divisible by ``n_heads``.
    """
    return TransformerConfig(vocab_size=tokenizer.vocab_size, d_model=recipe.d_model,
                             n_heads=recipe.n_heads, d_ff=recipe.d_ff,
                             n_layers=recipe.n_layers, dropout=recipe.dropout,
                             norm_first=getattr(recipe, "norm_first", False),
                             tie_embeddings=True, pad_id=tokenizer.pad_id,
                             max_len=recipe.max_sentence_tokens + EXTRA_OUTPUT + 2)


def held_out_set(pairs: Sequence[tuple[str, str]], tokenizer: Any, *, max_tokens: int,
                 name: str, size: int = 0) -> ParallelSet:
    """A :class:`ParallelSet` of the first ``size`` usable pairs (``0``: all of them)."""
    encoded, lines, report = encode_pairs(pairs, tokenizer, max_tokens=max_tokens, name=name)
    if size:
        encoded, lines = encoded[:size], lines[:size]
    return ParallelSet([src for src, _ in encoded], [pairs[i - 1][1].strip() for i in lines],
                       tokenizer, [pairs[i - 1][0].strip() for i in lines], report)


def multi30k_data(recipe: TranslationRecipe, split: str) -> Any:
    """Multi30k's data: ``"train"`` the token batches (``epoch -> batches``), ``"valid"`` the
    first ``eval_size`` validation pairs, ``"test"`` test2016 (Flickr, 1,000 pairs).

    Raises:
        ValueError: an unknown split.
    """
    from transformer.data import datasets

    if split not in ("train", "valid", "test"):
        raise ValueError(f"split must be 'train', 'valid' or 'test', got {split!r}")
    tokenizer = multi30k_tokenizer(recipe.vocab_size)
    room = recipe.max_sentence_tokens
    if split == "train":
        encoded, _, report = encode_pairs(datasets.multi30k("train", progress=False), tokenizer,
                                          max_tokens=room, name="multi30k train")
        batches = token_batches(encoded, max_tokens=max(recipe.max_tokens, room + 1),
                                bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id,
                                pad_id=tokenizer.pad_id, seed=recipe.seed)
        batches.report = report  # type: ignore[attr-defined]
        return batches
    name = {"valid": "val", "test": "test"}[split]
    return held_out_set(datasets.multi30k(name, progress=False), tokenizer,
                        max_tokens=10 * room, name=f"multi30k {name}",
                        size=recipe.eval_size if split == "valid" else 0)


MULTI30K = Task(
    "multi30k", "Multi30k German to English captions (sacreBLEU)",
    TranslationRecipe, data=multi30k_data,
    model_config=lambda recipe: text_model_config(recipe, _multi30k_tokenizer(recipe)),
    metric=BLEU, tokenizer=_multi30k_tokenizer)

"""Extractive question answering: an encoder that points at the answer span (SQuAD).

The model reads ``[<bos>] question [<sep>] context [<eos>]`` and gives every position two
logits, how likely the answer *starts* there and how likely it *ends* there (the span head of
BERT, Devlin et al. 2019, §4.2, on top of the encoder stack of chapter 7, trained from scratch).
Two small input features are added to the token and position embeddings:

- a *segment* embedding (question 0, context 1), as BERT's;
- an *exact match* embedding: 1 where a context token's text (lower-cased, white space left
  out) is also a token of the question, DrQA's exact-match feature (Chen et al. 2017, §3.1).

Decoding (:func:`best_span`) picks the context span ``start <= end <= start + max_span`` that
maximises ``start_logit + end_logit``; a long context is read in overlapping windows
(:func:`windows`) and the best span over all windows wins.

This module builds on the model layers only; training lives in
:mod:`transformer.tasks.squad_models`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from transformer.embeddings import TokenEmbedding
from transformer.masks import padding_mask
from transformer.model import Encoder, TransformerConfig, _init_weights, _positions

__all__ = [
    "MAX_SPAN",
    "QAFeature",
    "SpanExtractor",
    "best_span",
    "build_features",
    "question_matches",
    "span_loss",
    "windows",
]

MAX_SPAN = 15  # decoding: end <= start + MAX_SPAN (tokens)


# --8<-- [start:model]
class SpanExtractor(nn.Module):
    """Encoder + span head: ``forward(tokens, segments, matches)`` → ``(start, end)`` logits,
    each ``(batch, seq)``.

    Token embeddings (× √d_model, §3.4) + positions (``config.positional``) + a segment
    embedding + an exact-match embedding, then ``config.n_layers`` encoder layers (padding
    hidden from attention) and one linear map ``d_model → 2``.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.src_embed = TokenEmbedding(config.vocab_size, config.d_model)
        self.positions = _positions(config)
        self.segment_embed = nn.Embedding(2, config.d_model)  # question 0, context 1
        self.match_embed = nn.Embedding(2, config.d_model)  # token also in the question: 1
        self.dropout = nn.Dropout(config.dropout)
        self.encoder = Encoder(config)
        self.span_head = nn.Linear(config.d_model, 2)  # start and end logits
        _init_weights(self)

    def forward(self, tokens: Tensor, segments: Tensor, matches: Tensor) -> tuple[Tensor, Tensor]:
        """``tokens``, ``segments``, ``matches``: ``(batch, seq)`` integers. Returns the start
        and end logits, each ``(batch, seq)``.

        Raises:
            ValueError: the three inputs differ in shape, or a token id or position is out of
                range.
        """
        if segments.shape != tokens.shape or matches.shape != tokens.shape:
            raise ValueError(f"tokens, segments and matches must have one shape, got "
                             f"{tuple(tokens.shape)}, {tuple(segments.shape)} and "
                             f"{tuple(matches.shape)}")
        x = self.positions(self.src_embed(tokens))  # (batch, seq, d_model)
        x = self.dropout(x + self.segment_embed(segments) + self.match_embed(matches))
        h = self.encoder(x, src_mask=padding_mask(tokens, self.config.pad_id))
        start, end = self.span_head(h).unbind(dim=-1)  # (batch, seq) each
        return start, end
# --8<-- [end:model]


# --8<-- [start:loss]
def span_loss(start_logits: Tensor, end_logits: Tensor, allowed: Tensor, start: Tensor,
              end: Tensor) -> Tensor:
    """Cross-entropy of the gold start plus that of the gold end, summed over the batch.

    Positions outside the context (``allowed`` False: question, specials, padding) get
    ``-inf`` before the softmax, so the distributions run over context tokens only.

    Args:
        start_logits, end_logits, allowed: ``(batch, seq)``.
        start, end: ``(batch,)`` gold positions, each an allowed position.

    Raises:
        ValueError: a gold position is not allowed.
    """
    rows = torch.arange(len(start))
    if not (allowed[rows, start].all() and allowed[rows, end].all()):
        raise ValueError("every gold start and end must be an allowed (context) position")
    hidden = torch.finfo(start_logits.dtype).min
    s = start_logits.float().masked_fill(~allowed, hidden)
    e = end_logits.float().masked_fill(~allowed, hidden)
    return nn.functional.cross_entropy(s, start, reduction="sum") \
        + nn.functional.cross_entropy(e, end, reduction="sum")
# --8<-- [end:loss]


# --8<-- [start:best_span]
def best_span(start_logits: Tensor, end_logits: Tensor, allowed: Tensor | None = None,
              max_span: int = MAX_SPAN) -> tuple[int, int, float]:
    """The span ``(i, j)`` with ``i <= j <= i + max_span``, both allowed, that maximises
    ``start_logits[i] + end_logits[j]``: an exact search over every such pair.

    Args:
        start_logits, end_logits: ``(seq,)``.
        allowed: ``(seq,)`` booleans, the positions a span may use (default: all).
        max_span: the largest ``j - i``, ``>= 0``.

    Returns:
        ``(i, j, score)``; ties go to the smallest ``i``, then the smallest ``j``.

    Raises:
        ValueError: the logits are not 1-D of one length, ``max_span < 0``, or no position
            is allowed.
    """
    if start_logits.dim() != 1 or start_logits.shape != end_logits.shape:
        raise ValueError(f"start_logits and end_logits must be 1-D of one length, got "
                         f"{tuple(start_logits.shape)} and {tuple(end_logits.shape)}")
    if not isinstance(max_span, int) or max_span < 0:
        raise ValueError(f"max_span must be an integer >= 0, got {max_span!r}")
    n = len(start_logits)
    allowed = torch.ones(n, dtype=torch.bool) if allowed is None else allowed.bool()
    if not allowed.any():
        raise ValueError("no position is allowed: the span needs at least one")
    scores = start_logits.double()[:, None] + end_logits.double()[None, :]  # (i, j)
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    ok = (j >= i) & (j <= i + max_span) & allowed[:, None] & allowed[None, :]
    scores = scores.masked_fill(~ok, -torch.inf)
    flat = int(torch.argmax(scores.flatten()))  # the first maximum, row-major: smallest i, j
    return flat // n, flat % n, float(scores.flatten()[flat])
# --8<-- [end:best_span]


# ------------------------------------------------------------------------------ features


def windows(n_tokens: int, size: int, stride: int) -> list[int]:
    """First token of each window of ``size`` tokens over ``n_tokens``, ``stride`` apart; the
    last window ends at the last token, so every token is in at least one window.

    Raises:
        ValueError: ``size`` or ``stride`` < 1, ``stride > size`` (tokens would be skipped),
            or ``n_tokens < 0``.
    """
    if size < 1 or stride < 1 or stride > size or n_tokens < 0:
        raise ValueError(f"need size >= 1, 1 <= stride <= size and n_tokens >= 0, got "
                         f"n_tokens={n_tokens}, size={size}, stride={stride}")
    if n_tokens <= size:
        return [0]
    starts = list(range(0, n_tokens - size, stride))
    return [*starts, n_tokens - size]


def question_matches(question: str, q_offsets: Sequence[tuple[int, int]], context: str,
                     c_offsets: Sequence[tuple[int, int]]) -> list[int]:
    """DrQA's exact-match feature over tokens: 1 for each context token whose text (lower-cased,
    white space stripped) is the text of a question token, else 0."""
    words = {question[a:b].strip().lower() for a, b in q_offsets} - {""}
    return [int(context[a:b].strip().lower() in words) for a, b in c_offsets]


@dataclass(frozen=True)
class QAFeature:
    """One window of one question, ready for :class:`SpanExtractor`.

    ``tokens = [bos] + question + [sep] + context[first:first + n] + [eos]``; ``segments`` and
    ``matches`` align with it; context token ``k`` of the window sits at position
    ``offset + k`` and covers ``context_offsets[first + k]`` of the context's characters.
    ``start``/``end`` are the gold positions (``-1`` when the answer is not in the window or
    unknown).
    """

    example: int  # index of the question in the list given to build_features
    tokens: list[int]
    segments: list[int]
    matches: list[int]
    offset: int  # position of the window's first context token
    first: int  # index of that token among the context's tokens
    n: int  # context tokens in the window
    start: int = -1
    end: int = -1

    @property
    def allowed(self) -> list[bool]:
        """Positions a span may use: the window's context tokens."""
        return [self.offset <= p < self.offset + self.n for p in range(len(self.tokens))]


def build_features(
    example: int, question_ids: Sequence[int], context_ids: Sequence[int],
    context_matches: Sequence[int], *, bos_id: int, sep_id: int,
    eos_id: int, max_len: int, max_question: int, stride: int,
    answer: tuple[int, int] | None = None, only_answer_windows: bool = False,
) -> list[QAFeature]:
    """The windows of one question over its context, as :class:`QAFeature`.

    The question keeps its first ``max_question`` tokens; each window holds
    ``max_len - len(question) - 3`` context tokens, consecutive windows ``stride`` apart
    (at most that many). ``answer`` is the gold ``(first, last)`` context token (inclusive);
    with ``only_answer_windows`` (training) only the windows holding the whole answer are
    kept.

    Raises:
        ValueError: no room for context in ``max_len``.
    """
    question_ids = list(question_ids)[:max_question]
    room = max_len - len(question_ids) - 3
    if room < 1:
        raise ValueError(f"max_len={max_len} leaves no room for context after "
                         f"{len(question_ids)} question tokens")
    head = [bos_id, *question_ids, sep_id]
    head_matches = [0] * len(head)  # the feature marks context tokens only
    out = []
    for first in windows(len(context_ids), room, min(stride, room)):
        n = min(room, len(context_ids) - first)
        start = end = -1
        if answer is not None and first <= answer[0] and answer[1] < first + n:
            start, end = len(head) + answer[0] - first, len(head) + answer[1] - first
        if only_answer_windows and start < 0:
            continue
        tokens = [*head, *context_ids[first:first + n], eos_id]
        out.append(QAFeature(
            example=example, tokens=tokens,
            segments=[0] * len(head) + [1] * (n + 1),
            matches=[*head_matches, *context_matches[first:first + n], 0],
            offset=len(head), first=first, n=n, start=start, end=end))
    return out

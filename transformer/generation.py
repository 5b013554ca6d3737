"""Decoding: greedy search, beam search with a length penalty, and sampling (§6.1).

A trained model gives, at each step, a distribution over the next token. Turning those into an
output sequence is a search problem, and this module offers three strategies:

- :func:`greedy_decode` takes the most probable token at every step;
- :func:`beam_search` keeps the ``beam_size`` best partial hypotheses and ranks finished ones by
  ``log P(Y) / lp(Y)``, with the length penalty the paper uses ("beam search with a beam size of 4
  and length penalty α = 0.6", §6.1; :func:`length_penalty`);
- :func:`sample` draws each token at random, after ``temperature``, :func:`top_k_filter` and
  :func:`top_p_filter` (nucleus sampling).

:func:`generate` is the one entry point for callers: it runs any of the three and returns a
:class:`Generation` (sequences and their scores).

This module knows no model class. It searches with any model that offers the decoding protocol
(:class:`Decodable`): both models of :mod:`transformer.model` do. An encoder-decoder turns source
ids ``(batch, src_len)`` into target ids (starting from ``bos_id``); a decoder-only model
continues prompts ``(batch, prompt_len)``. The search functions return only the *generated*
tokens, ``eos_id`` included, padded with ``pad_id`` after it. The padding token is never
generated.

The model's :class:`DecodingState` feeds it one step at a time, with the KV cache
(``use_cache=True``, the default: each step runs the model on the newest token only) or without
it (each step runs the model on the whole prefix again). Both give the same tokens; the tests
prove it.

Imports point one way: this module imports nothing from the package; the models offer the
protocol without importing it (a :class:`typing.Protocol` is matched by its methods).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = [
    "Decodable",
    "DecodingState",
    "Generation",
    "beam_search",
    "generate",
    "greedy_decode",
    "length_penalty",
    "sample",
    "score_sequences",
    "top_k_filter",
    "top_p_filter",
]

NEG_INF = float("-inf")


# --------------------------------------------------------------------------- the protocol


# --8<-- [start:protocol]
@runtime_checkable
class DecodingState(Protocol):
    """One decoding in progress: ``rows`` token sequences that grow by one token per step."""

    @property
    def generated(self) -> Tensor:
        """The tokens appended so far, ``(rows, steps)``."""
        ...

    def next_logits(self) -> Tensor:
        """Logits of every row's next token, ``(rows, vocab)``."""
        ...

    def append(self, tokens: Tensor) -> None:
        """Extend every row by one token; ``tokens`` is ``(rows,)``."""
        ...

    def reorder(self, index: Tensor) -> None:
        """Keep rows ``index`` ``(rows,)``: row ``i`` continues what row ``index[i]`` was."""
        ...


@runtime_checkable
class Decodable(Protocol):
    """What the search algorithms need from a model; both models of chapter 8 offer it."""

    training: bool  # train(False) while decoding, as for every torch.nn.Module

    @property
    def pad_id(self) -> int:
        """The padding id: never generated, and put after a row's ``eos_id``."""
        ...

    @property
    def output_vocab_size(self) -> int:
        """How many ids the logits score."""
        ...

    def train(self, mode: bool = True) -> Any:
        """Switch dropout on or off (``torch.nn.Module.train``)."""
        ...

    def start_decoding(self, inputs: Tensor, *, bos_id: int | None = None, beams: int = 1,
                       use_cache: bool = True) -> DecodingState:
        """Start ``batch * beams`` rows from ``inputs`` ``(batch, seq)``: sources or prompts."""
        ...

    def new_token_limits(self, inputs: Tensor, max_new_tokens: int | None) -> Tensor:
        """How many tokens each row may generate, ``(batch,)``, within the positional table."""
        ...

    def sequence_logits(self, inputs: Tensor, sequences: Tensor, *,
                        bos_id: int | None = None) -> Tensor:
        """Teacher forcing: ``(batch, steps, vocab)`` logits scoring each token of
        ``sequences`` ``(batch, steps)``."""
        ...
# --8<-- [end:protocol]


def _protocol_members(protocol: type) -> list[str]:
    names = set(vars(protocol)) | set(getattr(protocol, "__annotations__", {}))
    return sorted(n for n in names if not n.startswith("_"))


# --------------------------------------------------------------------------- argument checks


def _check_model(model: object) -> None:
    missing = [name for name in _protocol_members(Decodable) if not hasattr(model, name)]
    if missing:
        raise TypeError(f"model must offer the decoding protocol (Decodable), but "
                        f"{type(model).__name__} lacks {', '.join(missing)}")


def _check_inputs(inputs: object) -> None:
    if not isinstance(inputs, Tensor):
        raise TypeError(f"inputs must be a tensor of token ids, got {type(inputs).__name__}")
    if inputs.dtype != torch.long:
        raise TypeError(f"inputs must hold token ids of dtype torch.long, got {inputs.dtype}")
    if inputs.dim() != 2 or inputs.shape[0] < 1 or inputs.shape[1] < 1:
        raise ValueError(f"inputs must have shape (batch, seq) with batch, seq >= 1, got "
                         f"{tuple(inputs.shape)}")


def _check_eos(model: Decodable, eos_id: object) -> None:
    if eos_id is None:
        return
    vocab_size = model.output_vocab_size
    if not isinstance(eos_id, int) or isinstance(eos_id, bool) or not 0 <= eos_id < vocab_size:
        raise ValueError(f"eos_id must be a token id in [0, {vocab_size}), got {eos_id!r}")
    if eos_id == model.pad_id:
        raise ValueError(f"eos_id must differ from pad_id={model.pad_id}")


def _check_int(name: str, value: object, low: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def _check_p(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    return float(value)


def _check_temperature(temperature: object) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not 0.0 < temperature < float("inf"):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")


@contextmanager
def _decoding(model: Decodable) -> Iterator[None]:
    """Evaluation mode (no dropout) and no autograd while decoding; restore the mode after."""
    was_training = model.training
    model.train(False)
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _log_probs(logits: Tensor, pad_id: int) -> Tensor:
    """``log_softmax`` of ``(N, vocab)`` logits, with the padding token made impossible."""
    log_p = torch.log_softmax(logits.float(), dim=-1)  # (N, vocab)
    log_p[:, pad_id] = NEG_INF  # never generate padding (not renormalised, like fairseq)
    return log_p


# --------------------------------------------------------------------------- greedy and sampling


# --8<-- [start:greedy]
def _generate(model: Decodable, inputs: Tensor, pick: Callable[[Tensor], Tensor], *,
              max_new_tokens: int | None, bos_id: int | None, eos_id: int | None,
              use_cache: bool) -> tuple[Tensor, Tensor]:
    """Extend every row with ``pick(log_probs)`` until it emits ``eos_id`` or its length limit.
    Returns the generated tokens ``(B, steps)`` and their ``log P(Y)`` ``(B,)``."""
    _check_model(model)
    _check_inputs(inputs)
    _check_eos(model, eos_id)
    pad_id = model.pad_id
    # --8<-- [start:greedy_loop]
    limits = model.new_token_limits(inputs, max_new_tokens)  # (B,)
    with _decoding(model):
        state = model.start_decoding(inputs, bos_id=bos_id, use_cache=use_cache)
        done = torch.zeros(inputs.shape[0], dtype=torch.bool, device=inputs.device)  # (B,)
        total = torch.zeros(inputs.shape[0], device=inputs.device)  # (B,): log P(Y) so far
        for step in range(1, int(limits.max()) + 1):
            log_p = _log_probs(state.next_logits(), pad_id)  # (B, vocab)
            token = pick(log_p).masked_fill(done, pad_id)  # (B,): finished rows grow padding
            total += log_p.gather(1, token[:, None]).squeeze(1).masked_fill(done, 0.0)
            state.append(token)
            done |= limits <= step
            if eos_id is not None:
                done |= token == eos_id
            if bool(done.all()):
                break
    return state.generated, total  # (B, steps), (B,)
    # --8<-- [end:greedy_loop]


def greedy_decode(model: Decodable, inputs: Tensor, *, max_new_tokens: int | None = None,
                  bos_id: int | None = None, eos_id: int | None = None,
                  use_cache: bool = True) -> Tensor:
    """Greedy decoding: at every step, the most probable next token (§6.1 uses beam search;
    greedy search is beam search with one hypothesis and no look-back).

    Args:
        model: a model offering :class:`Decodable`: a
            :class:`~transformer.model.Transformer` (then ``inputs`` are sources and ``bos_id``
            is required) or a :class:`~transformer.model.DecoderOnlyTransformer` (then
            ``inputs`` are prompts of one length).
        inputs: ``(batch, seq)`` token ids.
        max_new_tokens: tokens to generate at most; for a Transformer the default is each
            source's length + 50 (§6.1), capped by the positional table; required for a
            decoder-only model.
        bos_id: first decoder input of a Transformer; must differ from ``pad_id``.
        eos_id: a row stops after emitting it; ``None`` generates ``max_new_tokens`` tokens.
        use_cache: decode with the KV cache (same result, faster).

    Returns:
        ``(batch, steps)`` generated ids, ``eos_id`` included, ``pad_id`` after it.

    Raises:
        TypeError: if ``model`` lacks the decoding protocol or ``inputs`` are not ``torch.long``.
        ValueError: bad ``inputs`` shape, ids (``bos_id`` missing or equal to ``pad_id``, a
            prompt holding ``pad_id``), or ``max_new_tokens`` (< 1, or too long for the
            positional table).
    """
    return _generate(model, inputs, _most_probable, max_new_tokens=max_new_tokens,
                     bos_id=bos_id, eos_id=eos_id, use_cache=use_cache)[0]


# --8<-- [start:greedy_pick]
def _most_probable(log_p: Tensor) -> Tensor:  # the pick of greedy decoding: (B, vocab) -> (B,)
    return log_p.argmax(dim=-1)
# --8<-- [end:greedy_pick]
# --8<-- [end:greedy]


# --8<-- [start:top_k]
def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the ``k`` largest logits of each row, set the others to ``-inf``.

    Sampling from the result draws only among the ``k`` most probable tokens (Fan et al. 2018).
    Ties with the ``k``-th largest value are kept.

    Args:
        logits: ``(..., vocab)``.
        k: tokens to keep, ``>= 1`` (``k >= vocab`` keeps all).

    Returns:
        A tensor of the same shape.

    Raises:
        ValueError: if ``k`` is not an integer ``>= 1``.
    """
    _check_int("k", k)
    k = min(k, logits.shape[-1])
    kth_largest = logits.topk(k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth_largest, NEG_INF)
# --8<-- [end:top_k]


# --8<-- [start:top_p]
def top_p_filter(logits: Tensor, p: float) -> Tensor:
    r"""Nucleus filtering (Holtzman et al. 2020): keep the smallest set of most probable tokens
    whose probability mass reaches ``p``; set the others to ``-inf``.

    With tokens sorted by probability, :math:`p_{(1)} \ge p_{(2)} \ge \dots`, token :math:`i` is
    kept when the tokens ranked above it hold less than ``p``:
    :math:`\sum_{j < i} p_{(j)} < p`. The most probable token is always kept.

    Args:
        logits: ``(..., vocab)``.
        p: the mass to reach, in ``(0, 1]``; ``p = 1`` keeps every token.

    Returns:
        A tensor of the same shape.

    Raises:
        ValueError: if ``p`` is outside ``(0, 1]``.
    """
    if _check_p("p", p) == 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (..., vocab)
    probs = sorted_logits.softmax(dim=-1)
    mass_above = probs.cumsum(dim=-1).roll(1, dims=-1)  # (..., vocab): mass ranked higher
    mass_above[..., 0] = 0.0
    drop = mass_above >= p  # the tokens above already reach p
    drop[..., 0] = False  # always keep the most probable token
    sorted_logits = sorted_logits.masked_fill(drop, NEG_INF)
    return torch.empty_like(logits).scatter_(-1, order, sorted_logits)  # back to vocab order
# --8<-- [end:top_p]


# --8<-- [start:sample]
def sample(model: Decodable, inputs: Tensor, *, max_new_tokens: int | None = None,
           temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
           generator: torch.Generator | None = None, bos_id: int | None = None,
           eos_id: int | None = None, use_cache: bool = True) -> Tensor:
    """Sample each next token from ``softmax(logits / temperature)``, optionally restricted by
    :func:`top_k_filter` then :func:`top_p_filter`.

    Temperature below 1 sharpens the distribution (towards greedy decoding), above 1 flattens
    it. Not in the paper, which uses beam search (§6.1); it is how language models generate.

    Args:
        model, inputs, max_new_tokens, bos_id, eos_id, use_cache: as in :func:`greedy_decode`.
        temperature: ``> 0``.
        top_k: keep only the ``k`` most probable tokens (``>= 1``), or ``None``.
        top_p: keep the smallest set of tokens with mass ``>= top_p``, in ``(0, 1]``, or ``None``.
        generator: a seeded :class:`torch.Generator` makes the draws reproducible.

    Returns:
        ``(batch, steps)`` generated ids, ``eos_id`` included, ``pad_id`` after it.

    Raises:
        ValueError: ``temperature <= 0``, ``top_k < 1``, ``top_p`` outside ``(0, 1]``, and the
            errors of :func:`greedy_decode`.
    """
    pick = _sampler(temperature, top_k, top_p, generator)
    return _generate(model, inputs, pick, max_new_tokens=max_new_tokens, bos_id=bos_id,
                     eos_id=eos_id, use_cache=use_cache)[0]


def _sampler(temperature: float, top_k: int | None, top_p: float | None,
             generator: torch.Generator | None) -> Callable[[Tensor], Tensor]:
    """The ``pick`` of sampling: temperature, then top-k, then top-p, then one draw per row."""
    _check_temperature(temperature)
    if top_k is not None:
        _check_int("top_k", top_k)
    if top_p is not None:
        _check_p("top_p", top_p)

    def pick(log_p: Tensor) -> Tensor:  # (B, vocab) -> (B,)
        logits = log_p / temperature
        if top_k is not None:
            logits = top_k_filter(logits, top_k)
        if top_p is not None:
            logits = top_p_filter(logits, top_p)
        probs = logits.softmax(dim=-1)  # (B, vocab)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

    return pick
# --8<-- [end:sample]


# --------------------------------------------------------------------------- beam search


# --8<-- [start:length_penalty]
def length_penalty(length: int | Tensor, alpha: float = 0.6) -> Tensor:
    r"""The length penalty of Wu et al. (2016), used by the paper's beam search (§6.1):

    .. math:: lp(Y) = \left(\frac{5 + |Y|}{6}\right)^{\alpha}

    A hypothesis is ranked by :math:`\log P(Y) / lp(Y)`. Log-probabilities are negative and
    every token makes them smaller, so plain :math:`\log P(Y)` (``alpha = 0``) favours short
    outputs; dividing by a penalty that grows with :math:`|Y|` offsets that.

    Args:
        length: :math:`|Y|`, the number of generated tokens (``eos_id`` included); an int or a
            tensor of any shape.
        alpha: ``>= 0``; 0 turns the penalty off (``lp = 1``).

    Returns:
        A float tensor of the shape of ``length``.

    Raises:
        ValueError: if ``alpha < 0``.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha >= 0:
        raise ValueError(f"alpha must be a number >= 0, got {alpha!r}")
    length = torch.as_tensor(length, dtype=torch.float32)
    return ((5.0 + length) / 6.0) ** alpha
# --8<-- [end:length_penalty]


# --8<-- [start:generation]
class Generation(NamedTuple):
    """What :func:`generate` and :func:`beam_search` return.

    Attributes:
        sequences: ``(batch, steps)`` the output of each input, ``eos_id`` included, ``pad_id``
            after it.
        scores: ``(batch,)`` its score under the model, ``log P(Y) / lp(Y)`` (§6.1,
            :func:`length_penalty`), whatever the strategy: what :func:`score_sequences` gives.
    """

    sequences: Tensor
    scores: Tensor
# --8<-- [end:generation]


# --8<-- [start:beam_search]
def beam_search(model: Decodable, inputs: Tensor, *, beam_size: int = 4, alpha: float = 0.6,
                max_new_tokens: int | None = None, bos_id: int | None = None,
                eos_id: int | None = None, use_cache: bool = True) -> Generation:
    r"""Beam search with the length penalty, as in §6.1: "beam search with a beam size of 4 and
    length penalty α = 0.6 ... maximum output length ... input length + 50, but terminate early
    when possible."

    Every step extends each of the ``beam_size`` live hypotheses by every token. Extensions
    ending in ``eos_id`` are finished: the best finished one so far is kept, ranked by
    ``log P(Y) / lp(Y)`` (:func:`length_penalty`). The ``beam_size`` best other extensions (by
    ``log P``) stay live. Hypotheses that reach the length limit finish there too. An input is
    done when no live hypothesis can beat its best finished one any more: a live hypothesis
    with log-probability ``s`` can at best score ``s / lp(max length)``, since log-probabilities
    only decrease and the penalty only grows. With ``beam_size`` at least the number of live
    hypotheses, the result is the best of all sequences.

    Args:
        model, inputs, max_new_tokens, bos_id, eos_id, use_cache: as in :func:`greedy_decode`;
            ``inputs`` may hold several sources (padded with ``pad_id``) or prompts.
        beam_size: hypotheses kept per input (4 in the paper), ``>= 1``.
        alpha: length penalty exponent (0.6 in the paper), ``>= 0``.

    Returns:
        :class:`Generation`: ``sequences`` ``(batch, steps)`` and ``scores`` ``(batch,)``.

    Raises:
        ValueError: ``beam_size < 1``, ``alpha < 0``, and the errors of :func:`greedy_decode`.
    """
    _check_model(model)
    _check_inputs(inputs)
    K = _check_int("beam_size", beam_size)
    length_penalty(0, alpha)  # validates alpha
    _check_eos(model, eos_id)
    pad_id = model.pad_id
    limits = model.new_token_limits(inputs, max_new_tokens)  # (B,)
    B, device = inputs.shape[0], inputs.device
    rows = torch.arange(B, device=device)
    best_lp = length_penalty(limits, alpha).to(device)  # (B,): the largest lp any output gets
    alive = torch.full((B, K), NEG_INF, device=device)  # log P of the live hypotheses
    alive[:, 0] = 0.0  # one empty hypothesis to start with
    best_score = torch.full((B,), NEG_INF, device=device)  # best finished log P(Y) / lp(Y)
    best_seq = torch.full((B, int(limits.max())), pad_id, dtype=torch.long, device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)

    def keep_if_better(score: Tensor, seq: Tensor, allowed: Tensor) -> None:
        better = allowed & ~done & (score > best_score)  # (B,)
        best_score[better] = score[better]
        best_seq[better] = pad_id
        best_seq[better, : seq.shape[1]] = seq[better]

    # --8<-- [start:beam_loop]
    with _decoding(model):
        state = model.start_decoding(inputs, bos_id=bos_id, beams=K, use_cache=use_cache)
        for step in range(1, int(limits.max()) + 1):  # step = |Y| after this step
            log_p = _log_probs(state.next_logits(), pad_id)  # (B * K, V)
            V = log_p.shape[-1]
            cand = (alive.view(B * K, 1) + log_p).view(B, K, V)  # log P of every extension
            history = state.generated.view(B, K, step - 1)  # tokens of the live hypotheses
            if eos_id is not None:  # extensions by EOS are finished hypotheses
                eos_score, k = (cand[:, :, eos_id] / length_penalty(step, alpha)).max(dim=1)
                eos = torch.full((B, 1), eos_id, dtype=torch.long, device=device)
                keep_if_better(eos_score, torch.cat([history[rows, k], eos], dim=1), ~done)
                cand[:, :, eos_id] = NEG_INF  # a finished hypothesis is not extended
            alive, flat = cand.view(B, K * V).topk(K, dim=-1)  # (B, K) best live extensions
            beam, token = flat // V, flat % V  # which hypothesis, which new token
            at_limit = limits == step  # live hypotheses finish at the length limit
            if bool(at_limit.any()):
                seq = torch.cat([history[rows, beam[:, 0]], token[:, :1]], dim=1)  # (B, step)
                keep_if_better(alive[:, 0] / length_penalty(step, alpha), seq, at_limit)
            done |= at_limit | (alive[:, 0] / best_lp <= best_score)  # nothing can beat it
            if bool(done.all()):
                break
            state.reorder((rows[:, None] * K + beam).view(-1))  # (B * K,) rows to continue
            state.append(token.view(-1))
    length = int((best_seq != pad_id).sum(dim=1).max())
    return Generation(best_seq[:, :length], best_score)
    # --8<-- [end:beam_loop]
# --8<-- [end:beam_search]


def score_sequences(model: Decodable, inputs: Tensor, sequences: Tensor, *,
                    alpha: float = 0.6, bos_id: int | None = None) -> Tensor:
    """Score given outputs as :func:`beam_search` does, ``log P(Y) / lp(Y)`` (§6.1), with one
    teacher-forced forward pass (no search, no cache).

    Args:
        model: a model offering :class:`Decodable` (see :func:`greedy_decode`).
        inputs: ``(batch, seq)`` sources or prompts.
        sequences: ``(batch, steps)`` generated ids in ``[0, vocab)``, ``pad_id`` after the end
            of each; ``steps >= 1``.
        alpha: length penalty exponent, ``>= 0``.
        bos_id: first decoder input of a Transformer.

    Returns:
        ``(batch,)`` scores; ``|Y|`` counts the non-padding tokens of each row.

    Raises:
        TypeError: if ``sequences`` does not hold ``torch.long`` ids.
        ValueError: if ``sequences`` is not ``(batch, steps)`` with the batch of ``inputs``, or
            holds an id outside ``[0, vocab)``; and the errors of :func:`greedy_decode`.
    """
    _check_model(model)
    _check_inputs(inputs)
    length_penalty(0, alpha)
    _check_sequences(sequences, inputs.shape[0], model.output_vocab_size)
    pad_id = model.pad_id
    with _decoding(model):
        logits = model.sequence_logits(inputs, sequences, bos_id=bos_id)  # (B, T, V)
        log_p = _log_probs(logits.flatten(0, 1), pad_id).view(logits.shape)  # (B, T, V)
        token_log_p = log_p.gather(-1, sequences[..., None]).squeeze(-1)  # (B, T)
        real = sequences != pad_id
        total = token_log_p.masked_fill(~real, 0.0).sum(dim=1)  # (B,)
        return total / length_penalty(real.sum(dim=1), alpha).to(total.device)


def _check_sequences(sequences: object, batch: int, vocab_size: int) -> None:
    if not isinstance(sequences, Tensor) or sequences.dtype != torch.long:
        raise TypeError("sequences must be a tensor of token ids of dtype torch.long, got "
                        f"{getattr(sequences, 'dtype', type(sequences).__name__)}")
    if sequences.dim() != 2 or sequences.shape[0] != batch or sequences.shape[1] < 1:
        raise ValueError(f"sequences must have shape (batch={batch}, steps) with steps >= 1, "
                         f"got {tuple(sequences.shape)}")
    low, high = int(sequences.min()), int(sequences.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(f"sequences must hold token ids in [0, {vocab_size}), got ids in "
                         f"[{low}, {high}]")


# --------------------------------------------------------------------------- one entry point


STRATEGIES = ("greedy", "beam", "sample")


# --8<-- [start:generate]
def generate(model: Decodable, inputs: Tensor, *,
             strategy: Literal["greedy", "beam", "sample"] = "greedy", beam_size: int = 4,
             alpha: float = 0.6, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, generator: torch.Generator | None = None,
             max_new_tokens: int | None = None, bos_id: int | None = None,
             eos_id: int | None = None, use_cache: bool = True) -> Generation:
    """Decode ``inputs`` with one of the three strategies of this module; the one entry point.

    ``"greedy"`` is :func:`greedy_decode`, ``"beam"`` is :func:`beam_search` (§6.1: beam size 4,
    ``alpha`` 0.6), ``"sample"`` is :func:`sample`. Whatever the strategy, ``scores`` are the
    model's ``log P(Y) / lp(Y)`` of the output, with ``lp`` from ``alpha``: the score beam search
    ranks by (for sampling, under the model's distribution, not the filtered one it drew from).

    Args:
        model, inputs, max_new_tokens, bos_id, eos_id, use_cache: as in :func:`greedy_decode`.
        strategy: ``"greedy"``, ``"beam"`` or ``"sample"``.
        beam_size: hypotheses kept per input, for ``"beam"`` (other strategies ignore it).
        alpha: length penalty exponent, ``>= 0``: ranks beam search's hypotheses, and every
            strategy's ``scores``.
        temperature, top_k, top_p, generator: for ``"sample"`` only, as in :func:`sample`.

    Returns:
        :class:`Generation`: ``sequences`` ``(batch, steps)``, ``scores`` ``(batch,)``.

    Raises:
        ValueError: an unknown ``strategy``; a sampling option given to another strategy; and
            the errors of the strategy's function.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(map(repr, STRATEGIES))}, got "
                         f"{strategy!r}")
    changed = {"temperature": temperature != 1.0, "top_k": top_k is not None,
               "top_p": top_p is not None, "generator": generator is not None}
    given = [name for name, is_set in changed.items() if is_set]
    if given and strategy != "sample":
        raise ValueError(f"{', '.join(given)} only apply to strategy='sample', got "
                         f"strategy={strategy!r}")
    length_penalty(0, alpha)  # validates alpha
    common: dict[str, Any] = dict(max_new_tokens=max_new_tokens, bos_id=bos_id, eos_id=eos_id,
                                  use_cache=use_cache)
    if strategy == "beam":
        return beam_search(model, inputs, beam_size=beam_size, alpha=alpha, **common)
    if strategy == "greedy":
        pick = _most_probable
    else:
        pick = _sampler(temperature, top_k, top_p, generator)
    sequences, log_p = _generate(model, inputs, pick, **common)  # (B, steps), (B,)
    lengths = (sequences != model.pad_id).sum(dim=1)  # (B,): |Y|, EOS included
    return Generation(sequences, log_p / length_penalty(lengths, alpha).to(log_p.device))
# --8<-- [end:generate]

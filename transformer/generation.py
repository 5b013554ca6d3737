"""Decoding: greedy search, beam search with a length penalty, and sampling (§6.1).

A trained model gives, at each step, a distribution over the next token. Turning those into an
output sequence is a search problem, and this module offers three strategies:

- :func:`greedy_decode` takes the most probable token at every step;
- :func:`beam_search` keeps the ``beam_size`` best partial hypotheses and ranks finished ones by
  ``log P(Y) / lp(Y)``, with the length penalty the paper uses ("beam search with a beam size of 4
  and length penalty α = 0.6", §6.1; :func:`length_penalty`);
- :func:`sample` draws each token at random, after ``temperature``, :func:`top_k_filter` and
  :func:`top_p_filter` (nucleus sampling).

All of them work for both model kinds: a :class:`~transformer.model.Transformer` turns source
ids ``(batch, src_len)`` into target ids (starting from ``bos_id``); a
:class:`~transformer.model.DecoderOnlyTransformer` continues prompts ``(batch, prompt_len)``.
They return only the *generated* tokens, ``eos_id`` included, padded with ``pad_id`` after it.
The padding token is never generated.

:class:`DecodeState` feeds the model one step at a time, with the KV cache (``use_cache=True``,
the default: each step runs the model on the newest token only) or without it (each step runs
the model on the whole prefix again). Both give the same tokens; the tests prove it.

Imports point one way: this module builds on ``model``, ``masks`` and ``attention``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

import torch
from torch import Tensor

from transformer.attention import KVCache
from transformer.layers import DecoderLayerCache
from transformer.masks import padding_mask
from transformer.model import DecoderOnlyTransformer, Transformer

__all__ = [
    "BeamSearchOutput",
    "DecodeState",
    "beam_search",
    "greedy_decode",
    "length_penalty",
    "sample",
    "score_sequences",
    "top_k_filter",
    "top_p_filter",
]

Model = Transformer | DecoderOnlyTransformer
NEG_INF = float("-inf")
EXTRA_OUTPUT_LENGTH = 50  # §6.1: "maximum output length during inference to input length + 50"


# --------------------------------------------------------------------------- argument checks


def _check_model(model: object) -> None:
    if not isinstance(model, (Transformer, DecoderOnlyTransformer)):
        raise TypeError("model must be a Transformer or a DecoderOnlyTransformer, got "
                        f"{type(model).__name__}")


def _check_inputs(model: Model, inputs: object) -> None:
    if not isinstance(inputs, Tensor):
        raise TypeError(f"inputs must be a tensor of token ids, got {type(inputs).__name__}")
    if inputs.dtype != torch.long:
        raise TypeError(f"inputs must hold token ids of dtype torch.long, got {inputs.dtype}")
    if inputs.dim() != 2 or inputs.shape[0] < 1 or inputs.shape[1] < 1:
        raise ValueError(f"inputs must have shape (batch, seq) with batch, seq >= 1, got "
                         f"{tuple(inputs.shape)}")
    if isinstance(model, DecoderOnlyTransformer) and bool((inputs == model.config.pad_id).any()):
        raise ValueError(f"prompts must not contain pad_id={model.config.pad_id}: prompts decoded "
                         "together share one length (decode prompts of other lengths separately)")


def _check_token_id(name: str, value: object, vocab_size: int, required: bool) -> None:
    if value is None:
        if required:
            raise ValueError(f"{name} is required to decode with a Transformer (the first "
                             "decoder input, §3.1: 'output embeddings are offset by one position')")
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < vocab_size:
        raise ValueError(f"{name} must be a token id in [0, {vocab_size}), got {value!r}")


def _check_int(name: str, value: object, low: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def _check_p(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    return float(value)


def _limits(model: Model, inputs: Tensor, max_new_tokens: int | None) -> Tensor:
    """How many tokens each row may generate, ``(batch,)``, checked against the position table.

    A Transformer feeds ``bos_id`` then every generated token but the last: ``max_new_tokens``
    positions. A decoder-only model feeds the prompt then the generated tokens but the last.
    """
    max_len = model.config.max_len
    if isinstance(model, Transformer):
        room = max_len
        if max_new_tokens is None:  # §6.1: input length + 50 (within the position table)
            src_len = (inputs != model.config.pad_id).sum(dim=1)  # (batch,)
            return (src_len + EXTRA_OUTPUT_LENGTH).clamp(max=room)
    else:
        room = max_len - inputs.shape[1] + 1
        if max_new_tokens is None:
            raise ValueError("max_new_tokens is required to continue prompts with a "
                             "DecoderOnlyTransformer")
    if _check_int("max_new_tokens", max_new_tokens) > room:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} is too large for the positional table "
            f"(max_len={max_len}, input length {inputs.shape[1]}): at most {max(room, 0)} "
            "new tokens fit")
    return torch.full((inputs.shape[0],), max_new_tokens, device=inputs.device)


@contextmanager
def _decoding(model: Model) -> Iterator[None]:
    """Evaluation mode (no dropout) and no autograd while decoding; restore the mode after."""
    was_training = model.training
    model.eval()
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


# --------------------------------------------------------------------------- the decoding state


# --8<-- [start:decode_state]
class DecodeState:
    """Feed a model one decoding step at a time, with or without the KV cache.

    ``next_logits()`` returns the scores of the next token for every row; ``append(tokens)``
    extends every row by one token; ``reorder(index)`` keeps rows ``index`` (beam search).

    - With ``use_cache=True`` the model keeps the keys and values of earlier positions
      (:class:`~transformer.attention.KVCache`): the first call runs on the whole prefix, each
      later call on the newest token only. A Transformer's cross-attention keys/values over the
      encoder output are computed at the first step and reused.
    - With ``use_cache=False`` every call runs the model on the whole prefix again.

    Args:
        model: a :class:`~transformer.model.Transformer` or
            :class:`~transformer.model.DecoderOnlyTransformer`, in evaluation mode.
        inputs: ``(batch, seq)`` ids: the sources (Transformer, encoded once here) or the
            prompts (decoder-only; no padding).
        bos_id: the first target token (required for a Transformer, ignored otherwise).
        beams: copies of each row (``beam_search`` uses ``beam_size``); rows are
            ``batch * beams``, the copies of one input next to each other.
        use_cache: keep keys/values between steps.

    Raises:
        TypeError: if ``model`` is neither kind or ``inputs`` are not ``torch.long`` ids.
        ValueError: if ``inputs`` is not ``(batch, seq)``, a prompt holds ``pad_id``, or
            ``bos_id`` is missing or out of range.
    """

    def __init__(self, model: Model, inputs: Tensor, *, bos_id: int | None = None,
                 beams: int = 1, use_cache: bool = True) -> None:
        _check_model(model)
        _check_inputs(model, inputs)
        _check_int("beams", beams)
        self.model = model
        self.memory: Tensor | None = None
        self.memory_mask: Tensor | None = None
        if isinstance(model, Transformer):
            _check_token_id("bos_id", bos_id, model.config.target_vocab_size, required=True)
            assert bos_id is not None
            with torch.no_grad():
                src_mask = padding_mask(inputs, model.config.pad_id)  # (B, 1, 1, src_len)
                memory = model.encode(inputs, src_mask=src_mask)  # (B, src_len, d_model), once
            self.memory = memory.repeat_interleave(beams, dim=0)  # (B * beams, src_len, d_model)
            self.memory_mask = src_mask.repeat_interleave(beams, dim=0)  # (B * beams, 1, 1, S)
            rows = inputs.shape[0] * beams
            self.tokens = torch.full((rows, 1), bos_id, dtype=torch.long, device=inputs.device)
        else:
            self.tokens = inputs.repeat_interleave(beams, dim=0)  # (B * beams, prompt_len)
        self.prefix_len = self.tokens.shape[1]  # BOS, or the prompt
        self.cache: list[KVCache] | list[DecoderLayerCache] | None = \
            model.new_cache() if use_cache else None
        self._fed = 0  # positions already in the cache

    @property
    def generated(self) -> Tensor:
        """The tokens appended so far, ``(rows, steps)``."""
        return self.tokens[:, self.prefix_len:]

    @torch.no_grad()
    def next_logits(self) -> Tensor:
        """Logits of the next token, ``(rows, vocab)``.

        Raises:
            RuntimeError: if called twice with the cache and no :meth:`append` in between.
        """
        if self.cache is None:
            new = self.tokens  # (rows, len): the whole prefix, every step
        else:
            new = self.tokens[:, self._fed:]  # (rows, len - cached): only what is not cached
            if new.shape[1] == 0:
                raise RuntimeError("append() a token before asking for the next logits")
            self._fed = self.tokens.shape[1]
        if self.memory is None:
            logits = self.model(new, cache=self.cache)
        else:
            logits = self.model.decode(new, self.memory, memory_mask=self.memory_mask,
                                          cache=self.cache)
        return logits[:, -1]  # (rows, vocab): the prediction after the last position

    def append(self, tokens: Tensor) -> None:
        """Extend every row by one token; ``tokens`` is ``(rows,)``."""
        self.tokens = torch.cat([self.tokens, tokens[:, None]], dim=1)  # (rows, len + 1)

    def reorder(self, index: Tensor) -> None:
        """Keep rows ``index`` ``(rows,)``: each row continues the hypothesis it names.

        Only self-attention caches move. The cross-attention cache is left alone: beam search
        only ever picks rows among the copies of the same source, and those copies hold equal
        keys/values, so the cross-attention keys/values stay computed once.
        """
        self.tokens = self.tokens.index_select(0, index)
        for layer_cache in self.cache or []:
            if isinstance(layer_cache, DecoderLayerCache):
                layer_cache.self_attn.reorder(index)
            else:
                layer_cache.reorder(index)
# --8<-- [end:decode_state]


# --------------------------------------------------------------------------- greedy and sampling


# --8<-- [start:greedy]
def _generate(model: Model, inputs: Tensor, pick: Callable[[Tensor], Tensor], *,
              max_new_tokens: int | None, bos_id: int | None, eos_id: int | None,
              use_cache: bool) -> Tensor:
    """Extend every row with ``pick(log_probs)`` until it emits ``eos_id`` or its length limit."""
    _check_model(model)
    _check_inputs(model, inputs)
    pad_id = model.config.pad_id
    _check_token_id("eos_id", eos_id, model.config.target_vocab_size, required=False)
    if eos_id == pad_id:
        raise ValueError(f"eos_id must differ from pad_id={pad_id}")
    limits = _limits(model, inputs, max_new_tokens)  # (B,)
    with _decoding(model):
        state = DecodeState(model, inputs, bos_id=bos_id, use_cache=use_cache)
        done = torch.zeros(inputs.shape[0], dtype=torch.bool, device=inputs.device)  # (B,)
        for step in range(1, int(limits.max()) + 1):
            token = pick(_log_probs(state.next_logits(), pad_id))  # (B,)
            token = token.masked_fill(done, pad_id)  # finished rows only grow padding
            state.append(token)
            done |= limits <= step
            if eos_id is not None:
                done |= token == eos_id
            if bool(done.all()):
                break
    return state.generated  # (B, steps)


def greedy_decode(model: Model, inputs: Tensor, *, max_new_tokens: int | None = None,
                  bos_id: int | None = None, eos_id: int | None = None,
                  use_cache: bool = True) -> Tensor:
    """Greedy decoding: at every step, the most probable next token (§6.1 uses beam search;
    greedy search is beam search with one hypothesis and no look-back).

    Args:
        model: a :class:`~transformer.model.Transformer` (then ``inputs`` are sources and
            ``bos_id`` is required) or a :class:`~transformer.model.DecoderOnlyTransformer`
            (then ``inputs`` are prompts of one length).
        inputs: ``(batch, seq)`` token ids.
        max_new_tokens: tokens to generate at most; for a Transformer the default is each
            source's length + 50 (§6.1), capped by the positional table; required for a
            decoder-only model.
        bos_id: first decoder input of a Transformer.
        eos_id: a row stops after emitting it; ``None`` generates ``max_new_tokens`` tokens.
        use_cache: decode with the KV cache (same result, faster).

    Returns:
        ``(batch, steps)`` generated ids, ``eos_id`` included, ``pad_id`` after it.

    Raises:
        TypeError: wrong model kind or ``inputs`` dtype.
        ValueError: bad ``inputs`` shape, ids, or ``max_new_tokens`` (< 1, or too long for the
            positional table).
    """
    return _generate(model, inputs, lambda log_p: log_p.argmax(dim=-1),
                     max_new_tokens=max_new_tokens, bos_id=bos_id, eos_id=eos_id,
                     use_cache=use_cache)
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
def sample(model: Model, inputs: Tensor, *, max_new_tokens: int | None = None,
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
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not 0.0 < temperature < float("inf"):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
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

    return _generate(model, inputs, pick, max_new_tokens=max_new_tokens, bos_id=bos_id,
                     eos_id=eos_id, use_cache=use_cache)
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


class BeamSearchOutput(NamedTuple):
    """What :func:`beam_search` returns (§6.1).

    Attributes:
        sequences: ``(batch, steps)`` the best hypothesis of each input, ``eos_id`` included,
            ``pad_id`` after it.
        scores: ``(batch,)`` its score, ``log P(Y) / lp(Y)``.
    """

    sequences: Tensor
    scores: Tensor


# --8<-- [start:beam_search]
def beam_search(model: Model, inputs: Tensor, *, beam_size: int = 4, alpha: float = 0.6,
                max_new_tokens: int | None = None, bos_id: int | None = None,
                eos_id: int | None = None, use_cache: bool = True) -> BeamSearchOutput:
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
        :class:`BeamSearchOutput`: ``sequences`` ``(batch, steps)`` and ``scores`` ``(batch,)``.

    Raises:
        ValueError: ``beam_size < 1``, ``alpha < 0``, and the errors of :func:`greedy_decode`.
    """
    _check_model(model)
    _check_inputs(model, inputs)
    K = _check_int("beam_size", beam_size)
    length_penalty(0, alpha)  # validates alpha
    pad_id = model.config.pad_id
    _check_token_id("eos_id", eos_id, model.config.target_vocab_size, required=False)
    if eos_id == pad_id:
        raise ValueError(f"eos_id must differ from pad_id={pad_id}")
    limits = _limits(model, inputs, max_new_tokens)  # (B,)
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

    with _decoding(model):
        state = DecodeState(model, inputs, bos_id=bos_id, beams=K, use_cache=use_cache)
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
    return BeamSearchOutput(best_seq[:, :length], best_score)
# --8<-- [end:beam_search]


def score_sequences(model: Model, inputs: Tensor, sequences: Tensor, *, alpha: float = 0.6,
                    bos_id: int | None = None) -> Tensor:
    """Score given outputs as :func:`beam_search` does, ``log P(Y) / lp(Y)`` (§6.1), with one
    teacher-forced forward pass (no search, no cache).

    Args:
        model: either model kind (see :func:`greedy_decode`).
        inputs: ``(batch, seq)`` sources or prompts.
        sequences: ``(batch, steps)`` generated ids, ``pad_id`` after the end of each.
        alpha: length penalty exponent, ``>= 0``.
        bos_id: first decoder input of a Transformer.

    Returns:
        ``(batch,)`` scores; ``|Y|`` counts the non-padding tokens of each row.

    Raises:
        ValueError: if ``sequences`` is not ``(batch, steps)`` with the batch of ``inputs``, and
            the errors of :class:`DecodeState`.
    """
    _check_model(model)
    _check_inputs(model, inputs)
    length_penalty(0, alpha)
    if sequences.dim() != 2 or sequences.shape[0] != inputs.shape[0]:
        raise ValueError(f"sequences must have shape (batch={inputs.shape[0]}, steps), got "
                         f"{tuple(sequences.shape)}")
    pad_id = model.config.pad_id
    with _decoding(model):
        if isinstance(model, Transformer):
            _check_token_id("bos_id", bos_id, model.config.target_vocab_size, required=True)
            bos = torch.full_like(sequences[:, :1], bos_id)
            logits = model(inputs, torch.cat([bos, sequences[:, :-1]], dim=1))  # (B, T, V)
        else:
            prompt_len = inputs.shape[1]
            logits = model(torch.cat([inputs, sequences[:, :-1]], dim=1))[:, prompt_len - 1:]
        log_p = _log_probs(logits.flatten(0, 1), pad_id).view(logits.shape)  # (B, T, V)
        token_log_p = log_p.gather(-1, sequences[..., None]).squeeze(-1)  # (B, T)
        real = sequences != pad_id
        total = token_log_p.masked_fill(~real, 0.0).sum(dim=1)  # (B,)
        return total / length_penalty(real.sum(dim=1), alpha).to(total.device)

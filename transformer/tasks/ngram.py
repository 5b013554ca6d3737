"""A smoothed character n-gram language model: the baseline a reader can check by hand.

The model predicts each character from the ``order - 1`` characters before it. Its counts come
from one training string; its probabilities are **interpolated Kneser–Ney** (Kneser & Ney 1995,
in the interpolated form of Chen & Goodman 1998, "An Empirical Study of Smoothing Techniques
for Language Modeling", eq. 26 with one discount ``D`` per order) or, as a second smoothing,
**interpolated Witten–Bell** (Witten & Bell 1991; Chen & Goodman eq. 17). For a context ``h``
(the last ``k - 1`` characters), ``h'`` (``h`` without its first character) and a character
``w``, order ``k`` of Kneser–Ney is::

    P_k(w | h) = ( max(c_k(h w) - D_k, 0) + D_k * N1+(h •) * P_{k-1}(w | h') ) / c_k(h •)

* ``c_k`` is the raw count at the highest order (``k = order``) and the *continuation count*
  ``N1+(• h w)`` (how many distinct characters precede ``h w`` in the training text) at every
  lower order; ``c_k(h •) = Σ_w c_k(h w)`` and ``N1+(h •)`` is the number of characters ``w``
  with ``c_k(h w) > 0``.
* ``D_k`` is one number for every order (``discount=0.75``, the default) or, with
  ``discount="estimate"``, Ney's estimate ``D_k = n1 / (n1 + 2 n2)`` from the number of
  order-``k`` n-grams whose count ``c_k`` is exactly 1 (``n1``) and exactly 2 (``n2``), as
  Chen & Goodman use for their single-discount Kneser–Ney (not their three-discount "modified"
  Kneser–Ney).
* A context never seen at order ``k`` (``c_k(h •) = 0``) gives all its mass to order ``k - 1``.
* Order 0 is the uniform distribution over the training alphabet **plus one unknown symbol**
  :data:`UNKNOWN`, so the unigram order (``k = 1``) is discounted and interpolated with it like
  every other order, and a character never seen in training gets a probability above zero.
  Every character outside the training alphabet is scored as :data:`UNKNOWN` (all of them share
  its probability; :class:`NGramScore` counts them).

Witten–Bell uses raw counts at every order: ``P_k(w | h) = (c(h w) + N1+(h •) P_{k-1}(w | h'))
/ (c(h •) + N1+(h •))``, with the same order 0 and the same unknown symbol.

**No padding symbol**: the training text is one stream of characters, and so is a scored text.
Character ``i`` is predicted from ``text[max(0, i - order + 1):i]``: the first ``order - 1``
characters of a scored text use the shorter contexts there are (the very first character uses
the unigram order ``P_1``), i.e. the model's order-``(i + 1)`` distribution, the same one the
full-order estimate backs off to. Every character of the text is scored, none is skipped.

Pure Python with :mod:`collections`: the tables are dicts from strings to counts, small enough
to print and check against the formula above with a pencil (``tests/test_ngram.py`` does so for
"abracadabra").
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["SMOOTHINGS", "UNKNOWN", "CharNGramLM", "NGramScore"]

UNKNOWN = "<unk>"  # the one symbol for every character outside the training alphabet
SMOOTHINGS = ("kneser-ney", "witten-bell")
DEFAULT_DISCOUNT = 0.75  # Chen & Goodman's usual fixed value for Kneser-Ney

Smoothing = Literal["kneser-ney", "witten-bell"]


@dataclass(frozen=True)
class NGramScore:
    """The log-loss of a model over a text: total nats, characters scored, unseen characters.

    Attributes:
        nats: ``-Σ_i ln P(text[i] | context_i)`` over every character of the text.
        characters: how many characters were scored (``len(text)``).
        unseen: how many of them are outside the training alphabet (scored as
            :data:`UNKNOWN`).
    """

    nats: float
    characters: int
    unseen: int

    @property
    def cross_entropy(self) -> float:
        """Nats per character: ``nats / characters``."""
        return self.nats / self.characters

    @property
    def bits_per_character(self) -> float:
        """Bits per character: the cross-entropy divided by ``ln 2``."""
        return self.cross_entropy / math.log(2)

    @property
    def perplexity(self) -> float:
        """Perplexity per character: ``exp(cross_entropy)``."""
        return math.exp(self.cross_entropy)


def _check_text(name: str, text: object, *, empty_ok: bool = False) -> str:
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    if not text and not empty_ok:
        raise ValueError(f"{name} must hold at least one character, got an empty string")
    return text


def _ngram_counts(text: str, k: int) -> Counter[str]:
    """Raw counts of every k-character substring of ``text`` (overlapping)."""
    return Counter(text[i:i + k] for i in range(len(text) - k + 1))


def _continuation_counts(higher: Iterable[str]) -> Counter[str]:
    """``N1+(• g)`` for each gram ``g``: how many distinct characters precede it, read off the
    distinct (k+1)-grams ``higher``."""
    return Counter(gram[1:] for gram in higher)


def _context_table(counts: dict[str, int]) -> dict[str, tuple[int, int]]:
    """For each context ``h``: ``(c(h •), N1+(h •))``, the total count of the grams ``h w`` and
    how many distinct ``w`` follow ``h``."""
    totals: Counter[str] = Counter()
    types: Counter[str] = Counter()
    for gram, count in counts.items():
        totals[gram[:-1]] += count
        types[gram[:-1]] += 1
    return {h: (totals[h], types[h]) for h in totals}


def _estimated_discount(counts: dict[str, int], k: int) -> float:
    """Ney's estimate ``D = n1 / (n1 + 2 n2)`` (Chen & Goodman 1998, eq. 26's D)."""
    n1 = sum(1 for c in counts.values() if c == 1)
    n2 = sum(1 for c in counts.values() if c == 2)
    if n1 == 0:
        raise ValueError(f"discount='estimate' needs order-{k} n-grams seen exactly once (n1), "
                         f"and this training text has none (n2={n2}); pass a fixed discount in "
                         f"(0, 1] instead")
    return n1 / (n1 + 2 * n2)


class CharNGramLM:
    """A character n-gram language model with interpolated Kneser–Ney or Witten–Bell smoothing
    (Chen & Goodman 1998; the formulas are in this module's docstring).

    Build one with :meth:`fit`. ``order`` characters per n-gram (``order - 1`` of context);
    ``alphabet`` is the training text's characters; ``vocab_size`` is ``len(alphabet) + 1`` (the
    unknown symbol); ``discounts[k - 1]`` is the discount ``D_k`` of order ``k`` (Kneser–Ney only).
    """

    def __init__(self, order: int, smoothing: Smoothing, alphabet: frozenset[str],
                 counts: list[dict[str, int]], contexts: list[dict[str, tuple[int, int]]],
                 discounts: tuple[float, ...]) -> None:
        self.order, self.smoothing, self.alphabet = order, smoothing, alphabet
        self.vocab_size = len(alphabet) + 1  # + UNKNOWN
        self.counts = counts  # counts[k - 1]: gram of k characters -> c_k (raw or continuation)
        self.contexts = contexts  # contexts[k - 1]: h (k - 1 characters) -> (c_k(h •), N1+(h •))
        self.discounts = discounts

    @classmethod
    def fit(cls, text: str, order: int = 5, *, smoothing: Smoothing = "kneser-ney",
            discount: float | Literal["estimate"] | None = None) -> CharNGramLM:
        """Count the n-grams of ``text`` (one stream, no padding) for every order 1..``order``.

        Args:
            text: the training text.
            order: characters per n-gram, at least 1.
            smoothing: ``"kneser-ney"`` (default) or ``"witten-bell"``.
            discount: Kneser–Ney's ``D`` for every order, a number in (0, 1] (default 0.75), or
                ``"estimate"`` for ``D_k = n1 / (n1 + 2 n2)`` per order; ``None`` with Witten–Bell,
                which has no discount.

        Raises:
            TypeError: ``text`` is not a str, or ``order`` not an integer.
            ValueError: ``text`` is empty, ``order < 1``, an unknown ``smoothing``, a discount
                outside (0, 1], a discount given with Witten–Bell, or ``"estimate"`` on counts
                with no n-gram seen once.
        """
        _check_text("text", text)
        if not isinstance(order, numbers.Integral) or isinstance(order, bool):
            raise TypeError(f"order must be an integer, got {order!r} ({type(order).__name__})")
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        if smoothing not in SMOOTHINGS:
            raise ValueError(f"smoothing must be one of {SMOOTHINGS}, got {smoothing!r}")
        if smoothing == "witten-bell" and discount is not None:
            raise ValueError(f"Witten-Bell smoothing has no discount, got discount={discount!r}")
        if smoothing == "kneser-ney":
            discount = DEFAULT_DISCOUNT if discount is None else discount
            if discount != "estimate" and not (
                    isinstance(discount, numbers.Real) and not isinstance(discount, bool)
                    and 0 < discount <= 1):
                raise ValueError(f"discount must be a number in (0, 1] or 'estimate', got "
                                 f"{discount!r}")
        order = int(order)
        raw = [_ngram_counts(text, k) for k in range(1, order + 1)]  # raw[k - 1]: c(k-gram)
        if smoothing == "kneser-ney":  # lower orders: continuation counts N1+(• g)
            counts = [dict(_continuation_counts(raw[k])) for k in range(1, order)]
            counts.append(dict(raw[-1]))
        else:
            counts = [dict(c) for c in raw]
        if discount == "estimate":
            discounts = tuple(_estimated_discount(c, k) for k, c in enumerate(counts, 1))
        elif smoothing == "kneser-ney":
            discounts = (float(discount),) * order  # type: ignore[arg-type]
        else:
            discounts = ()
        return cls(order, smoothing, frozenset(text), counts,
                   [_context_table(c) for c in counts], discounts)

    def _check_char(self, char: object) -> str:
        if not isinstance(char, str) or (len(char) != 1 and char != UNKNOWN):
            raise ValueError(f"char must be one character or UNKNOWN ({UNKNOWN!r}), got "
                             f"{char!r}")
        return char if char in self.alphabet else UNKNOWN

    def prob(self, context: str, char: str) -> float:
        """``P(char | context)``: the interpolated estimate from order 0 (uniform) up.

        Only the last ``order - 1`` characters of ``context`` are used; a shorter context uses
        the orders it has (see the module docstring). A character outside the training alphabet
        (or :data:`UNKNOWN` itself) gets the unknown symbol's probability.

        Raises:
            TypeError: ``context`` is not a str.
            ValueError: ``char`` is not a single character or :data:`UNKNOWN`.
        """
        _check_text("context", context, empty_ok=True)
        char = self._check_char(char)
        known = char != UNKNOWN
        kneser_ney = self.smoothing == "kneser-ney"
        p = 1.0 / self.vocab_size  # order 0: uniform over the alphabet and UNKNOWN
        for k in range(1, min(self.order, len(context) + 1) + 1):
            h = context[len(context) - (k - 1):]  # the last k - 1 characters
            seen = self.contexts[k - 1].get(h)
            if seen is None:  # unseen context: all its mass goes to order k - 1
                continue
            total, types = seen
            c = self.counts[k - 1].get(h + char, 0) if known else 0
            if kneser_ney:
                d = self.discounts[k - 1]
                p = (max(c - d, 0.0) + d * types * p) / total
            else:
                p = (c + types * p) / (total + types)
        return p

    def log_prob(self, context: str, char: str) -> float:
        """``ln P(char | context)`` in nats (see :meth:`prob`; never ``-inf``)."""
        return math.log(self.prob(context, char))

    def distribution(self, context: str) -> dict[str, float]:
        """``P(w | context)`` for every ``w`` of the alphabet and :data:`UNKNOWN`; sums to 1.

        Raises:
            TypeError: ``context`` is not a str.
        """
        return {w: self.prob(context, w) for w in (*sorted(self.alphabet), UNKNOWN)}

    def score(self, text: str) -> NGramScore:
        """Total nats, characters and unseen characters over every character of ``text``.

        Character ``i`` is predicted from ``text[max(0, i - order + 1):i]`` (no padding).

        Raises:
            TypeError: ``text`` is not a str. ValueError: ``text`` is empty.
        """
        _check_text("text", text)
        n = self.order
        nats = 0.0
        unseen = 0
        for i, char in enumerate(text):
            if char not in self.alphabet:
                unseen += 1
            nats -= math.log(self.prob(text[max(0, i - n + 1):i], char))
        return NGramScore(nats, len(text), unseen)

    def cross_entropy(self, text: str) -> float:
        """Nats per character over ``text`` (every character scored; see :meth:`score`)."""
        return self.score(text).cross_entropy

    def bits_per_character(self, text: str) -> float:
        """Bits per character over ``text``: :meth:`cross_entropy` / ``ln 2``."""
        return self.score(text).bits_per_character

    def perplexity(self, text: str) -> float:
        """Perplexity per character over ``text``: ``exp(cross_entropy)``."""
        return self.score(text).perplexity

    def __repr__(self) -> str:
        discounts = f", discounts={tuple(round(d, 4) for d in self.discounts)}" \
            if self.discounts else ""
        return (f"CharNGramLM(order={self.order}, smoothing={self.smoothing!r}, "
                f"alphabet={len(self.alphabet)}{discounts})")

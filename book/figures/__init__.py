"""The book's figures: :func:`svg` turns a matplotlib figure into inline SVG for a markdown-exec
block, and ``book/figures/chNN_<chapter>.py`` holds what one chapter draws that no other does.
Drawing that the package offers its readers (attention maps, attention entropy, positional
encodings, learning-rate schedules) lives in :mod:`transformer.viz`, which chapters call directly.

A chapter draws its figure at build time, so the picture always shows what the code computes:

    ```python exec="on" html="on" notest
    import matplotlib.pyplot as plt
    from book.figures import svg

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([0, 1, 2], [0, 1, 4])
    print(svg(fig, alt="A parabola"))
    ```
"""

from __future__ import annotations

import html
import io
import re

import matplotlib

matplotlib.use("Agg")  # build machines have no display

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["svg"]

_XML_PROLOGUE = re.compile(r"^.*?(?=<svg\b)", re.DOTALL)


def svg(fig: Figure, *, alt: str = "", caption: str | None = None, close: bool = True) -> str:
    """Return ``fig`` as an HTML ``<figure class="book-figure">`` holding an inline ``<svg>``.

    Args:
        fig: the matplotlib figure to render.
        alt: a text description for screen readers (stored as the SVG's ``aria-label``).
        caption: optional caption, shown under the figure (plain text, HTML-escaped).
        close: close the figure afterwards, so a page with many figures does not keep them all.

    Returns:
        One line of HTML with no blank lines in it, safe to ``print`` from a markdown-exec block
        with ``html="on"``. Text stays text (``svg.fonttype = "none"``) and no ids clash between
        figures (``svg.hashsalt`` is fixed, so the output is also reproducible).
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "book"}):
        fig.savefig(
            buffer,
            format="svg",
            bbox_inches="tight",
            transparent=True,
            metadata={"Date": None},  # reproducible output
        )
    if close:
        plt.close(fig)
    text = _XML_PROLOGUE.sub("", buffer.getvalue(), count=1)
    # Markdown ends an HTML block at a blank line: keep the whole figure on one line.
    text = re.sub(r">\s+<", "><", text).replace("\n", " ")
    label = f' role="img" aria-label="{html.escape(alt, quote=True)}"' if alt else ""
    text = text.replace("<svg ", f"<svg{label} ", 1)
    figcaption = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure class="book-figure">{text}{figcaption}</figure>'

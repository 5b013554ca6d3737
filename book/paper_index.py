"""Appendix A of the book: every equation and hyper-parameter of the paper → the code that
implements it → the test that checks it.

Each :class:`Entry` names its implementation by a *spec* that :func:`resolve` imports and reads,
so the appendix shows the value the code actually has, never a number typed next to it:

- ``"module.name"``: the object itself (a function, class or constant);
- ``"module.name:field"``: the default of a dataclass field or of a function's parameter,
  read with :func:`dataclasses.fields` / :func:`inspect.signature`; ``"field[0]"`` indexes it;
- ``"module.name():attr"``: call the object with no arguments, then read ``attr`` (a preset);
- ``"module.name():attr.attr"``: dotted attributes after the call.

tests/test_appendix.py checks that every entry resolves, that its value equals the paper's,
and that its test exists and mentions the implementation. An entry whose code is on another
branch says so with ``pending=True``; it is shown as pending and the check tolerates it.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["ENTRIES", "EQUATION", "Entry", "has_test", "implemented", "resolve"]

_EQUATION = object()  # the paper gives a formula, not a number: the implementation is a callable


@dataclass(frozen=True)
class Entry:
    """One line of the appendix.

    Args:
        where: the place in the paper (``"eq. 1"``, ``"§5.3"``, ``"Table 3, base"``).
        what: the quantity, in Markdown (TeX allowed).
        paper: the paper's value, or ``EQUATION`` for a formula.
        spec: the implementation, as described in the module docstring.
        test: a pytest node id ``tests/FILE.py::test_name`` that checks it.
        mentions: a name the test's source must contain (by default the spec's last name).
        pending: the implementation lives on a branch not merged yet.
    """

    where: str
    what: str
    paper: Any
    spec: str
    test: str
    mentions: str | None = None
    pending: bool = False

    @property
    def is_equation(self) -> bool:
        """Whether the paper gives a formula (implemented by a callable) rather than a value."""
        return self.paper is _EQUATION

    @property
    def mentioned_name(self) -> str:
        """The name the test must mention."""
        if self.mentions:
            return self.mentions
        spec = re.sub(r"\[[^\]]*\]$", "", self.spec)  # betas[0] -> betas
        return [name for name in re.split(r"[.:()]+", spec) if name][-1]


EQUATION = _EQUATION

_TC = "transformer.training.TrainConfig"
_BASE = "transformer.model.TransformerConfig.paper_base()"
_BIG = "transformer.model.TransformerConfig.paper_big()"
_PRESETS = "tests/test_model.py::test_presets_have_the_papers_hyper_parameters"
_DEFAULTS = ("tests/test_paper_defaults.py::"
             "test_trainer_uses_adam_warmup_and_label_smoothing_of_the_paper_by_default")
_STEPS = "tests/test_paper_defaults.py::test_paper_train_configs_run_100k_and_300k_steps"
_BEAM = "tests/test_paper_defaults.py::test_beam_search_defaults_are_beam_4_and_alpha_0_6"


def _table3(name: str, spec: str) -> list[Entry]:
    """The Table 3 row ``name`` ("base" or "big"), every column."""
    big = name == "big"
    return [
        Entry(f"Table 3, {name}", r"\(N\)", 6, f"{spec}:n_layers", _PRESETS),
        Entry(f"Table 3, {name}", r"\(d_{model}\)", 1024 if big else 512, f"{spec}:d_model",
              _PRESETS),
        Entry(f"Table 3, {name}", r"\(d_{ff}\)", 4096 if big else 2048, f"{spec}:d_ff",
              _PRESETS),
        Entry(f"Table 3, {name}", r"\(h\)", 16 if big else 8, f"{spec}:n_heads", _PRESETS),
        Entry(f"Table 3, {name}", r"\(d_k\)", 64, f"{spec}:d_head", _PRESETS,
              mentions="n_heads"),
        Entry(f"Table 3, {name}", r"\(d_v\)", 64, f"{spec}:d_head", _PRESETS,
              mentions="n_heads"),
        Entry(f"Table 3, {name}", r"\(P_{drop}\)", 0.3 if big else 0.1, f"{spec}:dropout",
              _PRESETS),
        Entry(f"Table 3, {name}", r"\(\epsilon_{ls}\)", 0.1, f"{_TC}:label_smoothing", _DEFAULTS),
        Entry(f"Table 3, {name}", "train steps", 300_000 if big else 100_000,
              f"transformer.training.presets.PAPER_TRAIN_STEPS[{name}]", _STEPS,
              mentions="PAPER_TRAIN_STEPS"),
    ]


ENTRIES: tuple[Entry, ...] = (
    Entry("eq. 1", r"\(\operatorname{softmax}(QK^\top / \sqrt{d_k})\,V\)", EQUATION,
          "transformer.attention.scaled_dot_product_attention",
          "tests/test_attention.py::test_explicit_attention_is_softmax_of_scaled_scores"),
    Entry("§3.2.2", r"\(\operatorname{Concat}(\mathrm{head}_1, \dots, \mathrm{head}_h) W^O\)",
          EQUATION, "transformer.attention.MultiHeadAttention",
          "tests/test_attention.py::"
          "test_multi_head_attention_equals_torch_outputs_and_per_head_weights",
          mentions="_pair"),  # the helper that builds ours and torch's
    Entry("eq. 2", r"\(\max(0, xW_1 + b_1) W_2 + b_2\)", EQUATION,
          "transformer.layers.PositionwiseFeedForward",
          "tests/test_layers.py::test_feed_forward_is_max_0_xw1_b1_w2_b2"),
    Entry("§3.5", r"\(PE_{(pos, 2i)} = \sin(pos / 10000^{2i/d_{model}})\)", EQUATION,
          "transformer.embeddings.sinusoidal_table",
          "tests/test_embeddings.py::test_sinusoidal_table_equals_the_formula_of_section_3_5"),
    Entry("eq. 3", r"\(d_{model}^{-0.5} \min(s^{-0.5}, s \cdot w^{-1.5})\)", EQUATION,
          "transformer.training.noam_lr",
          "tests/test_training_schedule.py::test_noam_lr_matches_equation_3"),
    Entry("§5.1", "about 25,000 source and 25,000 target tokens per batch", EQUATION,
          "transformer.training.TokenBatchSampler",
          "tests/test_training_batching.py::"
          "test_no_batch_exceeds_the_token_budget_on_either_side"),
    Entry("§5.3", r"warm-up steps \(w\)", 4000, f"{_TC}:warmup_steps", _DEFAULTS),
    Entry("§5.3", r"Adam \(\beta_1\)", 0.9, f"{_TC}:betas[0]", _DEFAULTS),
    Entry("§5.3", r"Adam \(\beta_2\)", 0.98, f"{_TC}:betas[1]", _DEFAULTS),
    Entry("§5.3", r"Adam \(\epsilon\)", 1e-9, f"{_TC}:eps", _DEFAULTS),
    Entry("§5.4", r"residual dropout \(P_{drop}\)", 0.1,
          "transformer.model.TransformerConfig:dropout", _PRESETS),
    Entry("§5.4", r"label smoothing \(\epsilon_{ls}\)", 0.1, f"{_TC}:label_smoothing", _DEFAULTS),
    Entry("§6.1", "average the last 5 checkpoints", EQUATION,
          "transformer.training.averaging.average_checkpoints",
          "tests/test_training_averaging.py::"
          "test_average_of_two_checkpoints_is_the_hand_computed_mean"),
    Entry("§6.1", "beam size", 4, "transformer.generation.beam_search:beam_size", _BEAM),
    Entry("§6.1", r"length penalty \(\alpha\)", 0.6, "transformer.generation.beam_search:alpha",
          _BEAM),
    Entry("§6.1", "maximum output length: input length + 50", 50,
          "transformer.model.EXTRA_OUTPUT_LENGTH",
          "tests/test_generation.py::test_default_maximum_output_length_is_input_length_plus_50",
          mentions="50"),
    *_table3("base", _BASE),
    *_table3("big", _BIG),
)


def _import(dotted: str) -> Any:
    """Import ``a.b.c.d``: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ModuleNotFoundError(f"nothing of {dotted!r} can be imported")


def _default(obj: Any, name: str) -> Any:
    """The default of field/parameter ``name`` of a dataclass or callable ``obj``."""
    if dataclasses.is_dataclass(obj) and isinstance(obj, type):
        field = {f.name: f for f in dataclasses.fields(obj)}[name]
        if field.default is not dataclasses.MISSING:
            return field.default
        return field.default_factory()  # type: ignore[misc]
    parameter = inspect.signature(obj).parameters[name]
    if parameter.default is inspect.Parameter.empty:
        raise KeyError(f"{name} of {obj!r} has no default")
    return parameter.default


def _d_head(config: Any) -> int:
    """``d_k = d_v`` of the model built from ``config``: read from its first attention."""
    import torch

    from transformer import Transformer

    with torch.device("meta"):
        model = Transformer(config)
    return model.encoder.layers[0].self_attn.d_head


def resolve(entry: Entry) -> Any:
    """Import the implementation of ``entry`` and return its value (or the callable itself).

    Raises:
        ImportError, AttributeError, KeyError: the implementation is missing.
    """
    spec = entry.spec
    index = None
    if match := re.fullmatch(r"(?P<base>.*)\[(?P<index>[^\]]+)\]", spec):
        spec, index = match["base"], match["index"]
    if ":" in spec:
        target, attribute = spec.split(":", 1)
        if target.endswith("()"):
            instance = _import(target[:-2])()
            value = _d_head(instance) if attribute == "d_head" else instance
            if attribute != "d_head":
                for name in attribute.split("."):
                    value = getattr(value, name)
        else:
            value = _default(_import(target), attribute)
    else:
        value = _import(spec)
    if index is not None:
        value = value[int(index)] if index.isdigit() else value[index]
    return value


def implemented(entry: Entry) -> bool:
    """Whether the implementation resolves and equals the paper's value (is callable, for a
    formula)."""
    try:
        value = resolve(entry)
    except (ImportError, AttributeError, KeyError):
        return False
    return callable(value) if entry.is_equation else value == entry.paper


def has_test(entry: Entry, root: Any) -> bool:
    """Whether ``entry.test`` names a test function in a file under ``root`` whose source
    mentions :attr:`Entry.mentioned_name`."""
    import ast
    from pathlib import Path

    path, _, name = entry.test.partition("::")
    file = Path(root) / path
    if not file.is_file():
        return False
    source = file.read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return entry.mentioned_name in (ast.get_source_segment(source, node) or "")
    return False


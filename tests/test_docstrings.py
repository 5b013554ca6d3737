"""Every public name has a docstring; the paper's components cite the paper and state shapes."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import transformer

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(transformer.__path__, prefix="transformer.")
)

# Components of the paper: their docstrings must cite it (section, equation, table or figure).
PAPER_COMPONENTS = [
    "scaled_dot_product_attention", "MultiHeadAttention", "TokenEmbedding",
    "SinusoidalPositionalEncoding", "LearnedPositionalEmbedding", "sinusoidal_table",
    "padding_mask", "causal_mask", "PositionwiseFeedForward", "ResidualSublayer",
    "EncoderLayer", "DecoderLayer", "Encoder", "Decoder", "Transformer", "TransformerConfig",
]
PAPER_REFERENCE = ("§", "eq.", "Eq.", "Table", "Figure")


def _public_names(module_name: str) -> list[tuple[str, object]]:
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, obj in vars(module).items()
                 if not n.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
                 and getattr(obj, "__module__", None) == module_name]
    return [(n, getattr(module, n)) for n in names if not n.startswith("__")]


def test_package_has_modules() -> None:
    assert {"transformer.attention", "transformer.model", "transformer.masks"} <= set(MODULES)


@pytest.mark.parametrize("module_name", MODULES)
def test_every_public_name_has_a_docstring(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert (module.__doc__ or "").strip(), f"{module_name} has no module docstring"
    missing = [n for n, obj in _public_names(module_name)
               if callable(obj) and not (inspect.getdoc(obj) or "").strip()]
    assert not missing, f"{module_name}: public names without a docstring: {missing}"


@pytest.mark.parametrize("name", PAPER_COMPONENTS)
def test_paper_components_cite_the_paper(name: str) -> None:
    doc = inspect.getdoc(getattr(transformer, name)) or ""
    assert any(ref in doc for ref in PAPER_REFERENCE), f"{name}'s docstring cites no section"


@pytest.mark.parametrize("name", PAPER_COMPONENTS)
def test_paper_components_state_shapes(name: str) -> None:
    obj = getattr(transformer, name)
    docs = [inspect.getdoc(obj) or ""]
    if inspect.isclass(obj):
        docs += [inspect.getdoc(getattr(obj, m)) or "" for m in ("forward", "encode", "decode")
                 if m in vars(obj)]
    text = "\n".join(docs)
    assert any(s in text for s in ("(batch", "(...", "q_len", "d_model")), f"{name}: no shapes"

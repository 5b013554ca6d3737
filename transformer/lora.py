r"""Low-rank adapters (LoRA) for fine-tuning (Hu et al. 2021, "LoRA: Low-Rank Adaptation of
Large Language Models", arXiv:2106.09685).

A pretrained weight :math:`W_0` (``d_out × d_in``) stays frozen; what is learned is a low-rank
update :math:`\Delta W = B A` with :math:`A` ``(r, d_in)`` and :math:`B` ``(d_out, r)``,
``r ≪ min(d_in, d_out)``, scaled by :math:`\alpha / r` (eq. 3 and §4.1):

.. math::
    h = W_0 x + \frac{\alpha}{r} B A x

``B`` starts at zero, so the adapted model starts equal to the base model. After training the
update can be folded into the weight (:func:`merge_lora`), so inference costs nothing extra.

**Which layers.** :func:`apply_lora` adapts ``nn.Linear`` modules chosen by name. In this
package they are ``w_q``, ``w_k``, ``w_v``, ``w_o`` (attention, see
:class:`~transformer.attention.MultiHeadAttention`), ``linear1``, ``linear2`` (the feed-forward
network) and ``generator`` (the pre-softmax projection). A model built with ``fused_qkv=True``
has one linear ``w_qkv`` instead of ``w_q``, ``w_k``, ``w_v``: targeting ``"w_qkv"`` gives that
``3·d_model × d_model`` matrix one adapter, ``B`` ``(3·d_model, r)`` and ``A`` ``(r, d_model)``,
so the updates of Q, K and V share ``A`` (as peft does for GPT-2's fused ``c_attn``); the names
``w_q``, ``w_k``, ``w_v`` then match nothing, and the error says so.

This file imports only ``torch`` and :mod:`transformer.attention`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from transformer.attention import MultiHeadAttention

__all__ = [
    "DEFAULT_TARGETS",
    "LoRALinear",
    "apply_lora",
    "load_lora_state_dict",
    "lora_state_dict",
    "merge_lora",
    "trainable_parameters",
    "unmerge_lora",
]

DEFAULT_TARGETS = ("w_q", "w_v")  # the LoRA paper's choice for a fixed budget (§7.1, Table 5)

Targets = str | Iterable[str] | Callable[[str], bool]


def _check_hyperparameters(rank: object, alpha: object, dropout: object) -> None:
    if not isinstance(rank, int) or isinstance(rank, bool):
        raise TypeError(f"rank must be an integer >= 1, got {rank!r} ({type(rank).__name__})")
    if rank < 1:
        raise ValueError(f"rank must be an integer >= 1, got {rank}")
    for name, value in (("alpha", alpha), ("dropout", dropout)):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    if not (math.isfinite(alpha) and alpha > 0):  # type: ignore[arg-type]
        raise ValueError(f"alpha must be a finite number > 0, got {alpha}")
    if not 0.0 <= dropout < 1.0:  # type: ignore[operator]
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")


# --8<-- [start:lora_linear]
class LoRALinear(nn.Module):
    r"""An ``nn.Linear`` plus a trainable low-rank update (Hu et al. 2021, eq. 3, §4.1):
    :math:`h = W_0 x + b + \frac{\alpha}{r} B A\,\mathrm{dropout}(x)`.

    ``A`` ``(rank, in_features)`` is initialised as ``nn.Linear``, loralib and peft do
    (Kaiming-uniform, ``a = sqrt(5)``; the paper draws it from a Gaussian), ``B``
    ``(out_features, rank)`` to zero, so the module starts equal to ``base``. Dropout acts on
    the adapter's input only. ``weight`` is the effective matrix :math:`W_0 + \frac{\alpha}{r}
    BA` (differentiable in ``A`` and ``B``), for code that applies the weight directly.

    Args:
        base: the pretrained layer; it is kept as ``self.base``, unchanged until merged.
        rank: ``r >= 1``.
        alpha: ``α > 0``; the update is scaled by ``α / r``.
        dropout: dropout on the adapter input, in ``[0, 1)``.

    Raises:
        TypeError: if ``base`` is not an ``nn.Linear`` or an argument has the wrong type.
        ValueError: if ``rank < 1``, ``alpha <= 0`` or ``dropout`` is outside ``[0, 1)``.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base must be an nn.Linear, got {type(base).__name__}")
        _check_hyperparameters(rank, alpha, dropout)
        self.base = base
        self.rank, self.alpha, self.scaling = rank, alpha, alpha / rank  # α / r
        like = dict(dtype=base.weight.dtype, device=base.weight.device)
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, **like))  # A: (r, d_in)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, **like))  # B = 0
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout)
        self.merged = False  # True while ΔW is folded into base.weight

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(..., in_features)`` → ``(..., out_features)``."""
        out = self.base(x)  # W_0 x + b: (..., d_out)
        if self.merged:  # base.weight already holds W_0 + (α/r) B A
            return out
        down = self.dropout(x) @ self.lora_A.T  # A x: (..., r)
        return out + (down @ self.lora_B.T) * self.scaling  # + (α/r) B A x: (..., d_out)

    def delta_weight(self) -> Tensor:
        r""":math:`\Delta W = \frac{\alpha}{r} B A`, ``(out_features, in_features)``."""
        return (self.lora_B @ self.lora_A) * self.scaling
# --8<-- [end:lora_linear]

    @property
    def weight(self) -> Tensor:
        """The effective weight ``(out_features, in_features)``: ``W_0 + ΔW``."""
        return self.base.weight if self.merged else self.base.weight + self.delta_weight()

    @property
    def bias(self) -> Tensor | None:
        """The base layer's bias (LoRA leaves it as it is)."""
        return self.base.bias

    @property
    def in_features(self) -> int:
        """``d_in`` of the base layer."""
        return self.base.in_features

    @property
    def out_features(self) -> int:
        """``d_out`` of the base layer."""
        return self.base.out_features

    # --8<-- [start:lora_merge]
    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into the base weight: ``W ← W_0 + (α/r) B A``."""
        if self.merged:
            raise ValueError("this LoRALinear is already merged; unmerge it first")
        self.base.weight += self.delta_weight()
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Take the update out again: ``W ← W - (α/r) B A`` (back to ``W_0``, up to rounding)."""
        if not self.merged:
            raise ValueError("this LoRALinear is not merged; merge it first")
        self.base.weight -= self.delta_weight()
        self.merged = False
    # --8<-- [end:lora_merge]

    def extra_repr(self) -> str:
        return (f"rank={self.rank}, alpha={self.alpha}, scaling={self.scaling:g}, "
                f"dropout={self.dropout.p}, merged={self.merged}")


def _lora_modules(model: nn.Module) -> dict[str, LoRALinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def _require_lora(model: nn.Module, what: str) -> dict[str, LoRALinear]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    modules = _lora_modules(model)
    if not modules:
        raise ValueError(f"{what} needs a model with LoRA adapters, but this "
                         f"{type(model).__name__} has none; call apply_lora(model, ...) first")
    return modules


def _matches(name: str, target: str) -> bool:
    """A target names a module by its full name or by its last parts (``"w_q"``,
    ``"self_attn.w_q"``, ``"layers.0.self_attn.w_q"``)."""
    return name == target or name.endswith("." + target)


def _describe_linears(names: list[str]) -> str:
    if not names:
        return "the model has no nn.Linear layers"
    short = list(dict.fromkeys(n.rsplit(".", 1)[-1] for n in names))
    return (f"its linear layers are named {', '.join(short)} (full names such as "
            f"{names[0]!r}); a target matches a full name or its last parts")


def _select(linears: list[str], targets: Targets) -> list[str]:
    if callable(targets):
        chosen = [n for n in linears if targets(n)]
        if not chosen:
            raise ValueError(f"the targets predicate selects no linear layer; "
                             f"{_describe_linears(linears)}")
        return chosen
    names = [targets] if isinstance(targets, str) else list(targets)
    if not names or not all(isinstance(t, str) and t for t in names):
        raise TypeError(f"targets must be module names (non-empty strings) or a predicate "
                        f"over module names, got {targets!r}")
    missing = [t for t in names if not any(_matches(n, t) for n in linears)]
    if missing:
        hint = ""
        if any(t in ("w_q", "w_k", "w_v") for t in missing) and \
                any(_matches(n, "w_qkv") for n in linears):
            hint = ("; this model stores Q, K and V as one fused matrix (fused_qkv=True): "
                    "target 'w_qkv' to give the three one shared adapter")
        raise ValueError(f"targets {missing} match no linear layer of the model; "
                         f"{_describe_linears(linears)}{hint}")
    return [n for n in linears if any(_matches(n, t) for t in names)]


def _check_fused_dropout(model: nn.Module, name: str, dropout: float) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name)
    if dropout > 0 and child == "w_qkv" and isinstance(parent, MultiHeadAttention):
        raise ValueError(f"dropout must be 0 for the fused projection {name!r}, got {dropout}: "
                         f"cross-attention applies slices of w_qkv's weight directly, which "
                         f"bypasses the adapter's input dropout; use dropout=0.0 or a model "
                         f"with fused_qkv=False")


# --8<-- [start:apply_lora]
def apply_lora(model: nn.Module, *, rank: int, alpha: float, dropout: float = 0.0,
               targets: Targets = DEFAULT_TARGETS) -> list[str]:
    """Replace the chosen ``nn.Linear`` layers of ``model`` by :class:`LoRALinear` and freeze
    everything else (Hu et al. 2021, §4.2): afterwards only the adapters' ``A`` and ``B``
    have ``requires_grad=True``.

    Args:
        model: any module, e.g. a :class:`~transformer.model.DecoderOnlyTransformer`.
        rank: ``r >= 1`` of every adapter.
        alpha: ``α > 0``; each update is scaled by ``α / r``.
        dropout: dropout on the adapters' input, in ``[0, 1)``.
        targets: names (a string or several) matched against each linear layer's full
            module name or its last parts (``"w_q"`` matches ``"layers.0.self_attn.w_q"``), or
            a predicate ``name -> bool`` over full names. The default adapts ``w_q`` and
            ``w_v``, as the paper does.

    Returns:
        The full names of the adapted modules, in the model's order.

    Raises:
        ValueError: a target name matches no linear layer (the message lists the names there
            are), the predicate selects none, ``rank < 1``, ``alpha <= 0``, ``dropout``
            outside ``[0, 1)`` (or above 0 on a fused ``w_qkv``), or the model already has
            adapters.
        TypeError: ``model`` is not an ``nn.Module``, or an argument has the wrong type.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    _check_hyperparameters(rank, alpha, dropout)
    already = list(_lora_modules(model))
    if already:
        raise ValueError(f"apply_lora was already applied to this model (adapted: "
                         f"{', '.join(already)}); apply it once, with all the targets")
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n]
    chosen = _select(linears, targets)
    for name in chosen:
        _check_fused_dropout(model, name, dropout)
    for name in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, LoRALinear(getattr(parent, child), rank, alpha, dropout))
    adapters = {id(p) for m in _lora_modules(model).values() for p in (m.lora_A, m.lora_B)}
    for p in model.parameters():
        p.requires_grad_(id(p) in adapters)  # base frozen: only A and B train
    return chosen
# --8<-- [end:apply_lora]


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` numbers of parameters of ``model``, each shared tensor counted
    once (a tied embedding and pre-softmax matrix is one)."""
    trainable = total = 0
    for p in model.parameters():  # parameters() yields a shared tensor once
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total


def _check_untied(model: nn.Module, modules: Mapping[str, LoRALinear]) -> None:
    owners: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        owners.setdefault(id(p), []).append(name)
    for name, m in modules.items():
        others = [n for n in owners[id(m.base.weight)] if not n.startswith(name + ".")]
        if others:
            raise ValueError(f"cannot merge the adapter of {name!r}: its weight is shared with "
                             f"{others} (tied embeddings), which merging would change too; "
                             f"keep this adapter unmerged, or do not adapt {name!r}")


def merge_lora(model: nn.Module) -> list[str]:
    r"""Fold every adapter into its base weight, :math:`W \leftarrow W_0 + \frac{\alpha}{r}BA`
    (Hu et al. 2021, §4.1: "no additional inference latency"); returns the merged names.

    The merged model computes the same outputs up to rounding; :func:`unmerge_lora` undoes it.

    Raises:
        ValueError: the model has no adapters, one is merged already, or an adapted weight is
            shared with another module (tied embeddings); nothing is merged then.
    """
    modules = _require_lora(model, "merge_lora")
    merged = [n for n, m in modules.items() if m.merged]
    if merged:
        raise ValueError(f"adapters {merged} are already merged; call unmerge_lora first")
    _check_untied(model, modules)
    for m in modules.values():
        m.merge()
    return list(modules)


def unmerge_lora(model: nn.Module) -> list[str]:
    r"""Take every merged adapter back out of its base weight, :math:`W \leftarrow W -
    \frac{\alpha}{r}BA`, so that training can go on; returns the unmerged names.

    Raises:
        ValueError: the model has no adapters, or one of them is not merged; nothing is
            changed then.
    """
    modules = _require_lora(model, "unmerge_lora")
    unmerged = [n for n, m in modules.items() if not m.merged]
    if unmerged:
        raise ValueError(f"adapters {unmerged} are not merged; call merge_lora first")
    for m in modules.values():
        m.unmerge()
    return list(modules)


def lora_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The adapters only: ``{"<module>.lora_A": (r, d_in), "<module>.lora_B": (d_out, r)}``.

    Contiguous copies that share no memory, ready for ``safetensors.torch.save_file``. The
    rank is in the shapes; ``alpha`` (and the targets) are not: pass them to
    :func:`apply_lora` again before :func:`load_lora_state_dict`.

    Raises:
        ValueError: the model has no adapters.
    """
    state: dict[str, Tensor] = {}
    for name, m in _require_lora(model, "lora_state_dict").items():
        state[f"{name}.lora_A"] = m.lora_A.detach().clone().contiguous()
        state[f"{name}.lora_B"] = m.lora_B.detach().clone().contiguous()
    return state


def load_lora_state_dict(model: nn.Module, state: Mapping[str, Any]) -> None:
    """Copy adapters saved by :func:`lora_state_dict` into a model adapted the same way.

    Raises:
        ValueError: the model has no adapters or has merged ones, ``state`` misses a key or
            has an unexpected one (both listed), or a tensor's shape differs (named, with the
            expected and the received shape).
        TypeError: a value is not a tensor.
    """
    modules = _require_lora(model, "load_lora_state_dict")
    merged = [n for n, m in modules.items() if m.merged]
    if merged:
        raise ValueError(f"adapters {merged} are merged; call unmerge_lora before loading")
    params = {f"{n}.{part}": getattr(m, part) for n, m in modules.items()
              for part in ("lora_A", "lora_B")}
    missing, unexpected = sorted(params.keys() - state.keys()), sorted(state.keys() - params.keys())
    if missing or unexpected:
        raise ValueError(f"the state does not fit the model's adapters: missing keys "
                         f"{missing}, unexpected keys {unexpected}")
    for key, p in params.items():
        value = state[key]
        if not isinstance(value, Tensor):
            raise TypeError(f"state[{key!r}] must be a tensor, got {type(value).__name__}")
        if value.shape != p.shape:
            raise ValueError(f"state[{key!r}] must have shape {tuple(p.shape)}, got "
                             f"{tuple(value.shape)} (a different rank or layer size?)")
    with torch.no_grad():
        for key, p in params.items():
            p.copy_(state[key])

"""The kernel kinds, by name. ``kinds/__init__.py`` registers the built-in ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tvm

    from .base import KernelKind
    from .layer import LinearLayer

_KINDS: dict[str, KernelKind] = {}


def register(kind: KernelKind) -> KernelKind:
    if not kind.name or kind.name in _KINDS:
        raise ValueError(f"kernel kind {kind.name!r} is unnamed or registered twice")
    _KINDS[kind.name] = kind
    return kind


def get(name: str) -> KernelKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise ValueError(f"unknown kernel kind {name!r}; expected one of {names()}") from None


def names() -> tuple[str, ...]:
    return tuple(_KINDS)


def tunable() -> tuple[str, ...]:
    """The kinds with a design space (what ``tune-kernel --kind`` takes)."""
    return tuple(n for n, k in _KINDS.items() if k.tuned)


def for_layer(layer: LinearLayer, m: int, target: tvm.target.Target) -> KernelKind | None:
    """The kind that runs ``layer`` at ``m`` tokens on ``target``: of those the target can run that support
    the layer, the highest priority. None: no kernel (dense fp32 stays a Relax matmul, tuned with the rest
    of the graph)."""
    fit = [k for k in _KINDS.values() if k.supports(layer, m) and k.available(target)]
    return max(fit, key=lambda k: k.priority) if fit else None

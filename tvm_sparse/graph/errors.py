"""Errors the graph compiler raises for bad models and bad arguments (all subclass ValueError)."""

from __future__ import annotations


class GraphError(ValueError):
    """A model this compiler cannot handle as asked."""


class UnsupportedModelError(GraphError):
    """The model uses operators or a structure this compiler does not support (names them)."""


class MissingDependencyError(ImportError):
    """An optional dependency (torch, transformers, onnxruntime) is needed for this step."""


def require(module: str, extra: str, why: str):
    """Import an optional dependency or say exactly what to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependencyError(
            f"{why} needs the optional package {module!r}: pip install 'tvm-sparse[{extra}]'"
        ) from err

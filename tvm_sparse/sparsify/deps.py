"""torch and transformers are an optional extra: import them late, or say what to install."""

from __future__ import annotations

import importlib
from types import ModuleType


class SparsifyError(ValueError):
    """Bad input to sparsify (a model, a text file, an output directory): a message, not a traceback."""


class MissingExtraError(ImportError):
    """torch / transformers are not installed."""


EXTRA_HINT = 'pip install -e ".[export]"  (or: pip install "tvm-sparse[export]")'


def require(module: str, why: str = "sparsify") -> ModuleType:
    """Import ``module`` or raise ``MissingExtraError`` naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(f"{why} needs {module!r}, part of the 'export' extra: {EXTRA_HINT}") from err

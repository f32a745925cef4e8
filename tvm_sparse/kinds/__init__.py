"""Kernel kinds as plug-ins: a new kind is a module here (a ``KernelKind`` subclass, see ``base.py``) plus
one entry in ``BUILTIN`` below. Everything above the kernels picks and uses kernels through this package
(``for_layer``, ``get``); nothing else names a kind.
"""

from __future__ import annotations

from . import dense_amx, dense_int8, sparse_amx, sparse_fp32, sparse_int8
from .base import KernelKey, KernelKind, for_layer, get, names, register, sparsity_bucket, tunable
from .layer import LinearLayer

BUILTIN = (sparse_int8.KIND, sparse_fp32.KIND, dense_int8.KIND, dense_amx.KIND, sparse_amx.KIND)
for _kind in BUILTIN:
    register(_kind)

__all__ = ["KernelKey", "KernelKind", "LinearLayer", "for_layer", "get", "names", "register", "sparsity_bucket",
           "tunable"]

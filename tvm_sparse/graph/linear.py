"""One Linear layer -> a PrimFunc ``func(X[m, K] f32, *consts, Y[m, N] f32)`` plus its constant arrays.

Uses the kernel library (``tvm_sparse.kernels.library.build_linear``: tuned 4x1 sparse and dense VNNI
kernels) when it is importable; ``None`` then means "leave this Linear to Relax" (dense fp32: an
ordinary matmul that MetaSchedule tunes with the graph). Without the library (``use_library=False``
or not importable) a reference TE kernel with the same signature and numerics is returned
*unscheduled*, so MetaSchedule tunes it too (nothing ships untuned).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tvm
from tvm import te, tirx

from .calibrate import weight_scales


@dataclass(frozen=True)
class LinearSpec:
    """What the graph knows about one Linear: the mirror of the library's ``LinearLayer``."""

    weight: np.ndarray  # float32 [N, K]
    bias: np.ndarray | None  # float32 [N]
    gelu: bool
    precision: str  # "int8" | "fp32"
    sparse: bool
    act_scale: float = 1.0
    act_zero_point: int = 0


def library_available() -> bool:
    try:
        from ..kernels.library import build_linear  # noqa: F401
    except ImportError:
        return False
    return True


SCHEDULED_ATTRS = ("tirx.is_scheduled", "tir.is_scheduled")  # 0.27 reads the first; accept both


def is_scheduled(func: tirx.PrimFunc) -> bool:
    return any(bool(func.attrs.get(a, False)) for a in SCHEDULED_ATTRS) if func.attrs else False


def build(spec: LinearSpec, m: int, target: tvm.target.Target, database=None, use_library: bool = True
          ) -> tuple[tirx.PrimFunc, list[np.ndarray]] | None:
    """The kernel and its constants for ``spec`` at ``m`` rows (tokens); None: keep the Relax ops."""
    if use_library and library_available():
        from ..kernels.library import LinearLayer, build_linear

        layer = LinearLayer(weight=spec.weight, bias=spec.bias, gelu=spec.gelu, precision=spec.precision,
                            sparse=spec.sparse, act_scale=spec.act_scale,
                            act_zero_point=spec.act_zero_point)
        built = build_linear(layer, m=m, target=target, database=database)
        if built is None:
            return None
        func, consts = built
        # MetaSchedule (0.27) skips functions marked "tirx.is_scheduled": never retune a library kernel
        return func.with_attr("tirx.is_scheduled", True), list(consts)
    return reference(spec, m)


def _gelu(v):
    return v * 0.5 * (1.0 + tirx.erf(v * (1.0 / math.sqrt(2.0))))


def reference(spec: LinearSpec, m: int) -> tuple[tirx.PrimFunc, list[np.ndarray]]:
    """Dense TE kernel with the library's signature; int8 quantizes X and W exactly as the library does."""
    n, k = spec.weight.shape
    bias = spec.bias if spec.bias is not None else np.zeros(n, np.float32)
    x = te.placeholder((m, k), "float32", name="X")
    kk = te.reduce_axis((0, k), name="k")
    if spec.precision == "fp32":
        w = te.placeholder((n, k), "float32", name="W")
        b = te.placeholder((n,), "float32", name="bias")
        acc = te.compute((m, n), lambda i, j: te.sum(x[i, kk] * w[j, kk], axis=kk), name="matmul")
        val = lambda i, j: acc[i, j] + b[j]  # noqa: E731
        params, consts = [x, w, b], [spec.weight.astype(np.float32), bias.astype(np.float32)]
    else:
        sw = weight_scales(spec.weight)
        wq = np.clip(np.round(spec.weight / sw[:, None]), -127, 127).astype(np.int8)
        corr = (spec.act_zero_point * wq.astype(np.int64).sum(axis=1)).astype(np.int32)
        scale = (spec.act_scale * sw).astype(np.float32)
        w = te.placeholder((n, k), "int8", name="Wq")
        s = te.placeholder((n,), "float32", name="scale")
        c = te.placeholder((n,), "int32", name="corr")
        b = te.placeholder((n,), "float32", name="bias")
        # [1/scale, zero_point] as data, not immediates: every layer of a shape shares one kernel
        q = te.placeholder((2,), "float32", name="qin")
        xq = te.compute((m, k), lambda i, j: tirx.Cast("uint8", tirx.max(tirx.min(
            tirx.round(x[i, j] * q[0]) + q[1], 255.0), 0.0)), name="quantize")
        acc = te.compute((m, n), lambda i, j: te.sum(
            xq[i, kk].astype("int32") * w[j, kk].astype("int32"), axis=kk), name="matmul")
        val = lambda i, j: (acc[i, j] - c[j]).astype("float32") * s[j] + b[j]  # noqa: E731
        qin = np.array([1.0 / spec.act_scale, spec.act_zero_point], np.float32)
        params, consts = [x, q, w, s, c, b], [qin, wq, scale, corr, bias.astype(np.float32)]
    y = te.compute((m, n), lambda i, j: _gelu(val(i, j)) if spec.gelu else val(i, j), name="epilogue")
    func = te.create_prim_func([*params, y])
    return func.with_attr("tvm_sparse.reference", True), consts

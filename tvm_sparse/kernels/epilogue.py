"""Fused epilogues: what happens to an s32 accumulator before it leaves the kernel.

``FP32``:  dequantize with the zero-point correction folded in, add bias:
           ``y = (acc - corr[n]) * scale[n] + bias[n]`` where ``scale = s_x * s_w[n]`` and
           ``corr = zp_x * sum_k W[n, k]`` (so u8 activations need no zero-point subtraction inside)
``GELU``:  ``FP32`` then exact (erf) GELU, as BERT uses
``U8``:    ``GELU`` or ``FP32`` result requantized for the next int8 layer:
           ``clip(round(y / s_out) + zp_out, 0, 255)``; ``qout = [1 / s_out, zp_out]``
"""

from __future__ import annotations

import enum
import math

from tvm import tirx
from tvm.script import tirx as T


class Epilogue(str, enum.Enum):
    S32 = "s32"  # raw accumulator: exact, for tests and for callers that rescale themselves
    FP32 = "fp32"
    GELU = "gelu"
    U8 = "u8"  # dequant + bias, requantized
    GELU_U8 = "gelu_u8"

    @property
    def dequantizes(self) -> bool:
        return self is not Epilogue.S32

    @property
    def has_gelu(self) -> bool:
        return self in (Epilogue.GELU, Epilogue.GELU_U8)

    @property
    def requantizes(self) -> bool:
        return self in (Epilogue.U8, Epilogue.GELU_U8)

    @property
    def out_dtype(self) -> str:
        return {"s32": "int32", "fp32": "float32", "gelu": "float32"}.get(self.value, "uint8")

    def arg_names(self) -> list[str]:
        """Names of the epilogue's own arguments, in signature order."""
        return (["scale", "corr", "bias"] if self.dequantizes else []) + (
            ["qout"] if self.requantizes else []
        )

    def param_names(self) -> list[str]:
        """The same as the kernels' buffer parameters are named."""
        return [a.capitalize() for a in self.arg_names()]


# erf as a clamped rational polynomial (the coefficients of Eigen's and TVM's fast_erf; error
# ~1e-7): LLVM vectorizes it, where T.erf becomes one libm call per element, 10x slower
_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
          -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
          -1.42647390514189e-02)


def fast_erf(x: tirx.PrimExpr) -> tirx.PrimExpr:
    a = T.max(T.min(x, T.float32(4.0)), T.float32(-4.0))
    a2 = a * a
    p = T.float32(_ERF_P[0])
    for c in _ERF_P[1:]:
        p = p * a2 + T.float32(c)
    q = T.float32(_ERF_Q[0])
    for c in _ERF_Q[1:]:
        q = q * a2 + T.float32(c)
    return a * p / q


def gelu(v: tirx.PrimExpr) -> tirx.PrimExpr:
    return v * T.float32(0.5) * (T.float32(1.0) + fast_erf(v * T.float32(1.0 / math.sqrt(2.0))))


# Phi(x) - 1/2 = x P(x^2) on |x| <= 3.4, fitted (reweighted least squares) for the error of GELU
# itself, clamp tail included: 1.0e-3 on [-16, 16], 1/20 of a u8 step or less. For epilogues that
# requantize to u8 only: no division, 9 vector ops a value against 24 for the rational erf.
_PHI_C = 3.4
_PHI_P = (0.39427907348399105, -0.059807344517996026, 0.006711821207849713, -0.0004151285619403527,
          1.0556066166378342e-05)


def gelu_coarse(v: tirx.PrimExpr, scale: tirx.PrimExpr = None, offset: tirx.PrimExpr = None) -> tirx.PrimExpr:
    """GELU by the fitted polynomial; ``scale * GELU(v) + offset`` when given, with ``scale`` folded
    into the coefficients (loop-invariant scalars) and ``offset`` into the last FMA."""
    x = T.max(T.min(v, T.float32(_PHI_C)), T.float32(-_PHI_C))
    s = x * x
    c = [T.float32(c) if scale is None else T.float32(c) * scale for c in _PHI_P]
    p = c[-1]
    for ci in reversed(c[:-1]):
        p = p * s + ci
    half = T.float32(0.5) if scale is None else T.float32(0.5) * scale
    y = v * (x * p + half)
    return y if offset is None else y + offset


# 1.5 * 2^23: in [2^23, 2^24) a float's ulp is 1, so adding this rounds x to the nearest integer
# (ties to even, like np.round) and leaves round(x) + 0x400000 in the low mantissa bits: for
# 0 <= round(x) <= 255 its low byte is the u8. The requantization is then one FMA, a clamp and a
# truncating narrow (no round, add, convert: 3 vector ops fewer a value). It rounds x / s + zp
# where ONNX rounds x / s and adds zp: they differ, by one step, only on exact ties with odd zp.
_ROUND_BIAS = 12582912.0
def to_u8(x: tirx.PrimExpr, qin, quantize: bool) -> tirx.PrimExpr:
    """An activation as u8: as is, or quantized from fp32 with ``qin = [1 / s_x, zp_x]``."""
    if not quantize:
        return x
    return _narrow_rounded(x * qin[0] + (qin[1] + T.float32(_ROUND_BIAS)))


def _narrow_rounded(y: tirx.PrimExpr) -> tirx.PrimExpr:
    """``y`` = a value + ``_ROUND_BIAS`` (so already rounded), clamped to [0, 255] and narrowed to u8."""
    y = T.max(T.min(y, T.float32(_ROUND_BIAS + 255.0)), T.float32(_ROUND_BIAS))
    return T.cast(T.reinterpret("int32", y), "uint8")


def buffers(scale, corr, bias, qout) -> dict:
    """The epilogue's argument buffers by name (a TVMScript body cannot build a dict itself)."""
    return {"scale": scale, "corr": corr, "bias": bias, "qout": qout}


def apply(epilogue: Epilogue, acc: tirx.PrimExpr, n: tirx.PrimExpr, bufs: dict) -> tirx.PrimExpr:
    """The epilogue's value for accumulator ``acc`` of output channel ``n``."""
    if not epilogue.dequantizes:
        return acc
    a = T.cast(acc - bufs["corr"][n], "float32")
    scale, bias = bufs["scale"][n], bufs["bias"][n]
    if not epilogue.requantizes:
        v = a * scale + bias
        return gelu(v) if epilogue.has_gelu else v
    # y = round(v / s_out) + zp_out + _ROUND_BIAS in one rounding, clamped to the u8 range there
    q, offset = bufs["qout"][0], bufs["qout"][1] + T.float32(_ROUND_BIAS)
    if epilogue.has_gelu:
        y = gelu_coarse(a * scale + bias, q, offset)
    else:  # the per-channel products are hoisted out of the token loop
        y = a * (scale * q) + (bias * q + offset)
    return _narrow_rounded(y)

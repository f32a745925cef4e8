"""One Linear layer -> a scheduled kernel and its constant arrays: what the graph rewrite calls.

Weights are quantized here (s8, symmetric, per output channel); activations arrive as fp32 and the
kernel quantizes them itself with the calibrated (u8, per-tensor) parameters, so the graph only
swaps ``matmul + add (+ gelu)`` for one call. Outputs are fp32.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tvm
from tvm import tirx

from ..format import bsr4x1
from .amx import dense_amx, targets_amx
from .amx import fits as amx_fits
from .dense_int8 import dense_int8, pack_dense
from .epilogue import Epilogue
from .sparse_fp32 import sparse_fp32
from .sparse_int8 import sparse_int8, swizzles


@dataclass
class LinearLayer:
    weight: np.ndarray  # float32 [N, K]
    bias: np.ndarray | None  # float32 [N]
    gelu: bool
    precision: str  # "int8" | "fp32"
    sparse: bool
    act_scale: float = 1.0  # int8: u8 quantization of the input activation
    act_zero_point: int = 0
    # sparse int8 chains (BERT's FFN): the input arrives as u8 [K, mp] from the previous layer, or
    # the output leaves as u8 [N, mp] quantized with out_quant = (scale, zero point) for the next
    in_transposed: bool = False
    out_quant: tuple[float | np.ndarray, int] | None = None
    # the u8 [N, mp] output's token order: swizzled 64-token tiles (a chain's hand-over), or
    # natural (the attention kernel reads Q, K and V so); a scale array is per output channel
    # (Q, K and V's per-head scales), folded into the dequantization
    out_swizzled: bool = True
    # the graph folds what follows the layer into it: a constant factor (attention's 1/sqrt(d) on
    # Q and K) and, for K, the transpose to [N, mp] fp32 that Q @ K^T wants
    out_scale: float = 1.0
    out_transposed: bool = False

    def __post_init__(self) -> None:
        if self.precision not in ("int8", "fp32"):
            raise ValueError(f"precision must be 'int8' or 'fp32', got {self.precision!r}")
        if self.weight.ndim != 2:
            raise ValueError(f"weight must be [N, K], got shape {self.weight.shape}")
        if not (self.act_scale > 0 and 0 <= self.act_zero_point <= 255):
            raise ValueError(f"bad activation quantization: scale={self.act_scale}, zp={self.act_zero_point}")
        if (self.in_transposed or self.out_quant or self.out_transposed) and not (
                self.sparse and self.precision == "int8"):
            raise ValueError("only sparse int8 layers chain in the [K, M] layout")
        if self.out_scale != 1.0 and (self.precision != "int8" or self.out_quant or self.gelu):
            raise ValueError("out_scale folds into an int8 layer's fp32 epilogue (without GELU) only")
        if self.out_quant and np.ndim(self.out_quant[0]) and (
                self.gelu or np.shape(self.out_quant[0]) != (self.weight.shape[0],)):
            raise ValueError("per-channel output scales need one per output channel, and no GELU")


def quantize_weight(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-output-channel s8: ``W ~= Wq * scale[:, None]`` (zero stays exactly zero,
    so the 4x1 sparsity pattern survives quantization)."""
    amax = np.abs(weight).max(axis=1)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    wq = np.clip(np.round(weight / scale[:, None]), -127, 127).astype(np.int8)
    return wq, scale


def kernel_key(layer: LinearLayer, m: int):
    from ..tune.workload import KernelKey, sparsity_bucket

    n, k = layer.weight.shape
    kind = f"{'sparse' if layer.sparse else 'dense'}_{layer.precision}"
    bucket = sparsity_bucket(bsr4x1.block_sparsity(layer.weight)) if layer.sparse else 0
    # the spmm's loop nest reads its input in the input's layout: that layout's records serve
    return KernelKey(kind, m, k, n, bucket, transposed=layer.in_transposed)


def linear_func(layer: LinearLayer, m: int, amx: bool = False) -> tuple[tirx.PrimFunc, list[np.ndarray]] | None:
    """The unscheduled kernel and its constants for ``layer`` at ``m`` tokens; None for dense fp32,
    which stays an ordinary Relax matmul (MetaSchedule tunes it with the rest of the graph)."""
    n, k = layer.weight.shape
    bias = np.zeros(n, np.float32) if layer.bias is None else layer.bias.astype(np.float32)
    if layer.precision == "fp32":
        if not layer.sparse:
            return None
        p = bsr4x1.pack(layer.weight.astype(np.float32))
        return sparse_fp32(m, k, n, gelu=layer.gelu), [p.indptr, p.indices, p.values, bias]
    wq, sw = quantize_weight(layer.weight.astype(np.float32))
    if layer.out_quant:
        epilogue = Epilogue.GELU_U8 if layer.gelu else Epilogue.U8
    else:
        epilogue = Epilogue.GELU if layer.gelu else Epilogue.FP32
    qin = np.array([1.0 / layer.act_scale, layer.act_zero_point], np.float32)
    scale = (layer.act_scale * sw * layer.out_scale).astype(np.float32)
    corr = (layer.act_zero_point * wq.astype(np.int32).sum(axis=1)).astype(np.int32)
    bias = (bias * layer.out_scale).astype(np.float32)
    qout = None
    if layer.out_quant:
        s_out, zp_out = layer.out_quant
        qout = np.array([1.0 / s_out if np.ndim(s_out) == 0 else 1.0, zp_out], np.float32)
        if np.ndim(s_out):  # per channel: y / s_out[n] = acc' * (scale / s_out) + bias / s_out
            scale = (scale / s_out).astype(np.float32)
            bias = (bias / s_out).astype(np.float32)
    if layer.sparse:
        p = bsr4x1.pack(wq)
        # a chain's u8 [n, mp] hand-over is in swizzled tiles: both of its kernels then take the
        # 4x64x4 intrinsic (the first accumulates swizzled, the second reads swizzled)
        func = sparse_int8(m, k, n, epilogue, quantize_input=not layer.in_transposed,
                           x_transposed=layer.in_transposed,
                           y_transposed=layer.out_quant is not None or layer.out_transposed,
                           x_swizzled=layer.in_transposed and swizzles(m),
                           y_swizzled=layer.out_quant is not None and layer.out_swizzled and swizzles(m))
        consts = [] if layer.in_transposed else [qin]
        consts += [p.indptr, p.indices, p.values, scale, corr, bias]
        if qout is not None:
            consts.append(qout)
        return func, consts
    dense = dense_amx if amx and amx_fits(m, k, n) else dense_int8
    return dense(m, k, n, epilogue, quantize_input=True), [qin, pack_dense(wq), scale, corr, bias]


def build_linear(
    layer: LinearLayer, m: int, target: tvm.target.Target, database: str | Path | None = None
) -> tuple[tirx.PrimFunc, list[np.ndarray]] | None:
    """A scheduled kernel ``func(X, *consts, Y)`` (X fp32 [m, K], Y fp32 [m, N]) and its constants.

    Schedules come from ``database`` (if given), ``tuning_logs/`` and the shipped ``schedules/``. A dense int8
    layer runs on AMX tiles where the target has them (4.4x the tuned VNNI kernel at 128x768x3072 on a
    Sapphire Rapids core); that kernel is written scheduled.
    """
    from ..tune.apply import database_roots, schedule

    built = linear_func(layer, m, amx=targets_amx(target))
    if built is None:
        return None
    func, consts = built
    if func.attrs is not None and func.attrs.get("tvm_sparse.amx", False):
        return func, consts
    scheduled, _source = schedule(func, kernel_key(layer, m), target, database_roots([database] if database else []))
    return scheduled, consts

"""One Linear layer as the graph hands it to a kernel kind, and the int8 constants every int8 kind shares.

Weights are quantized here (s8, symmetric, per output channel); activations arrive as fp32 and the
kernel quantizes them itself with the calibrated (u8, per-tensor) parameters, so the graph only
swaps ``matmul + add (+ gelu)`` for one call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernels.epilogue import Epilogue


@dataclass
class LinearLayer:
    weight: np.ndarray  # float32 [N, K]
    bias: np.ndarray | None  # float32 [N]
    gelu: bool
    precision: str  # "int8" | "fp32"
    sparse: bool
    act_scale: float = 1.0  # int8: u8 quantization of the input activation
    act_zero_point: int = 0
    # int8 chains (BERT's FFN): the output leaves as u8, quantized with out_quant = (scale, zero point)
    # for the next layer: [N, mp] from a sparse kernel, [M, N] (row-major) from a dense one. The next
    # reads it as is: u8 [K, mp] (in_transposed, sparse only) or u8 [M, K] (in_u8)
    in_transposed: bool = False
    out_quant: tuple[float | np.ndarray, int] | None = None
    in_u8: bool = False
    # the u8 [N, mp] output's token order: swizzled 64-token tiles (a chain's hand-over), or
    # natural (the attention kernel reads Q, K and V so); a scale array is per output channel
    # (Q, K and V's per-head scales), folded into the dequantization
    out_swizzled: bool = True
    # the graph folds what follows the layer into it: a constant factor (attention's 1/sqrt(d) on
    # Q and K) and, for K, the transpose to [N, mp] fp32 that Q @ K^T wants
    out_scale: float = 1.0
    out_transposed: bool = False
    # the kind measured fastest for this layer's shape and sparsity on the target (graph/policy.py), taken
    # where it supports the layer as the graph finally lays it out; None: the registry's priority decides
    kind: str | None = None

    @property
    def quantizes_input(self) -> bool:
        """The kernel quantizes its fp32 input itself (it is not handed u8)."""
        return not (self.in_transposed or self.in_u8)

    def __post_init__(self) -> None:
        if self.precision not in ("int8", "fp32"):
            raise ValueError(f"precision must be 'int8' or 'fp32', got {self.precision!r}")
        if self.weight.ndim != 2:
            raise ValueError(f"weight must be [N, K], got shape {self.weight.shape}")
        if not (self.act_scale > 0 and 0 <= self.act_zero_point <= 255):
            raise ValueError(f"bad activation quantization: scale={self.act_scale}, zp={self.act_zero_point}")
        if (self.in_transposed or self.out_transposed) and not (self.sparse and self.precision == "int8"):
            raise ValueError("only sparse int8 layers chain in the [K, M] layout")
        if (self.out_quant or self.in_u8) and self.precision != "int8":
            raise ValueError("only int8 layers hand over u8 activations")
        if self.in_u8 and self.in_transposed:
            raise ValueError("a u8 input is [K, mp] (in_transposed) or [M, K] (in_u8), not both")
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


@dataclass
class Int8Constants:
    """What an int8 kernel's prologue and epilogue read: ``y = (acc - corr) * scale + bias`` (then GELU,
    requantization)."""

    weight: np.ndarray  # s8 [N, K]
    epilogue: Epilogue
    qin: np.ndarray  # [1 / act_scale, act_zero_point]: the kernel's own input quantization
    scale: np.ndarray  # per output channel
    corr: np.ndarray  # zero-point correction, per output channel
    bias: np.ndarray
    qout: np.ndarray | None  # [1 / out_scale, out_zero_point] where the output leaves as u8


def int8_constants(layer: LinearLayer) -> Int8Constants:
    """Quantize ``layer``'s weight and fold its quantization parameters into one epilogue."""
    n = layer.weight.shape[0]
    bias = np.zeros(n, np.float32) if layer.bias is None else layer.bias.astype(np.float32)
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
    return Int8Constants(wq, epilogue, qin, scale, corr, bias, qout)

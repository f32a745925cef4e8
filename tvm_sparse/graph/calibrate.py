"""Static int8 calibration: u8 per-tensor parameters of every Linear's input activation.

Method: onnxruntime runs the fixed-shape fp32 model with every Linear's input added as a graph output.
Range per batch is min/max or a percentile (default 99.99 of |values| on each side); the final range
is the mean over batches of the per-batch ranges. Why the percentile: with a handful of calibration
sentences, one extreme token otherwise sets the scale for everyone (wasting u8 levels); BERT's
systematic outlier features occupy far more than 0.01% of a LayerNorm output, so they are kept.
Averaging per-batch ranges (rather than a global max) follows the same reasoning and keeps memory
flat. The range always contains 0, so zero padding and ReLU-like zeros quantize exactly.

Outputs: the largest ``|y|`` of every output channel over all samples (bias included). Attention
quantizes Q, K and V with it, per head (symmetric, ``max / 127``): the sparse QKV projection then
writes them as u8, and the attention kernel skips a pass for the maxima over 1.2 MB of fp32.

Weights: s8 symmetric per output channel, ``scale[n] = max|W[n, :]| / 127``, quantized by the kernel
library (``kinds.layer.quantize_weight``) from the fp32 weight.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import onnx

from .errors import GraphError, require
from .linears import find_linears

METHODS = ("percentile", "minmax")
DEFAULT_METHOD = "percentile"
DEFAULT_PERCENTILE = 99.99


@dataclass(frozen=True)
class ActQuant:
    """u8 affine quantization ``q = clip(round(x / scale) + zero_point, 0, 255)``."""

    scale: float
    zero_point: int
    lo: float
    hi: float
    out_absmax: tuple[float, ...] | None = None  # the layer's output: max |y| per output channel

    @classmethod
    def from_range(cls, lo: float, hi: float) -> ActQuant:
        lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
        if hi - lo < 1e-12:  # an all-zero activation: any scale represents it
            return cls(1.0, 0, lo, hi)
        scale = (hi - lo) / 255.0
        return cls(scale, int(np.clip(round(-lo / scale), 0, 255)), lo, hi)


def weight_key(w_nk: np.ndarray) -> str:
    """Identifies a Linear across ONNX and Relax by its weight's content (``W[N, K]`` float32)."""
    w = np.ascontiguousarray(w_nk, dtype=np.float32)
    return f"{w.shape[0]}x{w.shape[1]}:" + hashlib.sha1(w.tobytes()).hexdigest()[:16]


def _batch_range(x: np.ndarray, method: str, percentile: float) -> tuple[float, float]:
    if method == "minmax":
        return float(x.min()), float(x.max())
    lo, hi = np.percentile(x, [100.0 - percentile, percentile])
    return float(lo), float(hi)


def calibrate(model: onnx.ModelProto, samples: list[dict[str, np.ndarray]], method: str = DEFAULT_METHOD,
              percentile: float = DEFAULT_PERCENTILE) -> dict[str, ActQuant]:
    """Quantization parameters per Linear (keyed by ``weight_key``) from fixed-shape ``samples``.

    ``model`` must be the static model that gets compiled (``importer.static_model``).
    """
    if method not in METHODS:
        raise GraphError(f"unknown calibration method {method!r}; choose one of {METHODS}")
    if not samples:
        raise GraphError("calibration needs at least one sample batch")
    ort = require("onnxruntime", "compare", "int8 calibration")
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = {i.name: i for i in model.graph.initializer}
    linears = find_linears(model)
    if not linears:
        raise GraphError("the model has no Linear layer (MatMul or Gemm with a constant weight): int8 has "
                         "nothing to quantize; compile it with --fp32")
    inputs = {n.name: n.input[0] for n in model.graph.node}
    acts = sorted({inputs[lin.node] for lin in linears})
    outputs = {lin.node: _linear_output(model, lin, inits) for lin in linears}
    have = {o.name for o in model.graph.output}
    fetch = sorted(set(acts) | set(outputs.values()))
    model.graph.output.extend(onnx.ValueInfoProto(name=a) for a in fetch if a not in have)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed_names = [i.name for i in sess.get_inputs()]
    ranges: dict[str, list[tuple[float, float]]] = {a: [] for a in acts}
    absmax: dict[str, np.ndarray] = {}
    for sample in samples:
        missing = [n for n in feed_names if n not in sample]
        if missing:
            raise GraphError(f"calibration sample lacks inputs {missing}")
        outs = dict(zip(fetch, sess.run(fetch, {n: np.asarray(sample[n], np.int64) for n in feed_names}),
                        strict=True))
        for name in acts:
            ranges[name].append(_batch_range(outs[name], method, percentile))
        for name in set(outputs.values()):
            y = np.abs(outs[name]).reshape(-1, outs[name].shape[-1]).max(axis=0)
            absmax[name] = np.maximum(absmax[name], y) if name in absmax else y
    result: dict[str, ActQuant] = {}
    for lin in linears:
        lo, hi = np.mean(ranges[inputs[lin.node]], axis=0)
        key = weight_key(lin.read(inits))
        out = absmax[outputs[lin.node]]
        if key in result:  # the same weight used twice: cover both inputs and both outputs
            lo, hi = min(lo, result[key].lo), max(hi, result[key].hi)
            out = np.maximum(out, result[key].out_absmax)
        result[key] = replace(ActQuant.from_range(lo, hi), out_absmax=tuple(float(v) for v in out))
    return result


def without_output_ranges(params: dict[str, ActQuant]) -> dict[str, ActQuant]:
    """``params`` without the output maxima: attention then quantizes Q, K and V per head with each
    input's own maxima (dynamic), as with a calibration saved before they were recorded."""
    return {k: replace(v, out_absmax=None) for k, v in params.items()}


def _linear_output(model: onnx.ModelProto, lin, inits: dict) -> str:
    """The Linear's output as the graph rewrite sees it: after its bias ``Add`` where it has one."""
    out = next(n.output[0] for n in model.graph.node if n.name == lin.node)
    users = [n for n in model.graph.node if out in n.input]
    if len(users) == 1 and users[0].op_type == "Add":
        other = next((i for i in users[0].input if i != out), None)
        if other in inits and int(np.prod(inits[other].dims)) == lin.read(inits).shape[0]:
            return users[0].output[0]
    return out


def save(params: dict[str, ActQuant], path: str | Path) -> None:
    Path(path).write_text(json.dumps({k: asdict(v) for k, v in params.items()}, indent=1))


def load(path: str | Path) -> dict[str, ActQuant]:
    try:
        params = {k: ActQuant(**v) for k, v in json.loads(Path(path).read_text()).items()}
        return {k: replace(v, out_absmax=tuple(v.out_absmax)) if v.out_absmax is not None else v
                for k, v in params.items()}
    except (OSError, ValueError, TypeError) as err:
        raise GraphError(f"cannot read calibration file {path}: {err}") from err


def random_samples(model: onnx.ModelProto, batch: int, seq_len: int, n: int = 4,
                   vocab_size: int | None = None, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Random token ids: a last resort when no real text is given (ranges will be rougher)."""
    from .importer import graph_input_names
    from .vocab import input_limits

    limits = input_limits(model)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        s = {"input_ids": rng.integers(0, vocab_size or limits.get("input_ids", 1000), (batch, seq_len)),
             "attention_mask": np.ones((batch, seq_len), np.int64),
             "token_type_ids": np.zeros((batch, seq_len), np.int64)}
        out.append({k: v.astype(np.int64) for k, v in s.items() if k in graph_input_names(model)})
    return out

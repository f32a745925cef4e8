"""The swap: every Linear of the Relax graph becomes ``call_tir`` to a sparse or dense kernel. It runs as
passes, one file each, in ``PASSES`` order (all but the first for int8 only).

Matched (what TVM's ONNX frontend emits for a BERT exported by torch's dynamo exporter):
  ``add(matmul(x, W), b)``            W constant ``[K, N]``, or ``permute_dims(W[N, K])`` (torch frontend)
  ``matmul(x, W)``                    a Linear without bias
  ``gelu(L)`` / ``gelu(reshape(L))``  fused GELU (ONNX ``Gelu``, opset 20)
  ``L * (erf(L / c) + 1) * 0.5``      GELU decomposed by older exporters
Activations enter and leave the kernel as ``[B*L, H]`` (reshapes around the call).
"""

from __future__ import annotations

from dataclasses import asdict

import tvm
from tvm import relax

from ..calibrate import ActQuant, weight_key
from ..errors import GraphError
from .attention import fuse_attention
from .context import PRECISIONS, LayerChoice, SwapContext
from .ffn_chain import chain_ffn
from .fold_layouts import fold_layouts
from .linears import swap_each_linear
from .prefer_measured import prefer_measured

PASSES = (swap_each_linear, fuse_attention, chain_ffn, fold_layouts, prefer_measured)

__all__ = ["PRECISIONS", "LayerChoice", "layer_dicts", "names_from_onnx", "swap_linears"]


def swap_linears(mod: tvm.IRModule, precision: str, target: tvm.target.Target,
                 calib: dict[str, ActQuant] | None = None, names: dict[str, str] | None = None,
                 threshold: float | None = None, database=None, choose: str = "auto", log=None
                 ) -> tuple[tvm.IRModule, list[LayerChoice]]:
    """Rewrite every Linear of ``mod["main"]``; returns the new module and one record per layer.

    ``names`` maps ``weight_key`` to a readable layer name (``names_from_onnx``), ``calib`` maps it to
    the u8 parameters of the layer's input (required for int8). ``database``: the kernel library's
    record directory. ``choose``: how each int8 Linear's kernel is picked (``graph/policy.py``'s modes).
    """
    names = names or {}
    rw = SwapContext(mod, precision, target, calib, names, threshold, database, choose, log)
    new_main = mod["main"]
    for swap_pass in PASSES if precision == "int8" else PASSES[:1]:
        new_main = swap_pass(rw, new_main)
    if not rw.layers:
        raise GraphError("found no Linear layer (matmul with a constant weight) in the graph")
    order = {key: i for i, key in enumerate(names.values())}
    rw.layers.sort(key=lambda x: order.get(x.name, len(order)))  # graph order, not match order
    out = rw.bb.get()
    out["main"] = new_main
    if rw.attention:  # the head merge is now reshape chains around the kernel: collapse them to views
        out = relax.transform.RemoveRedundantReshape()(out)
    return relax.transform.DeadCodeElimination(["main"])(out), rw.layers


def names_from_onnx(model) -> dict[str, str]:
    """``weight_key`` -> layer name (the torch module path when the exporter recorded it)."""
    from ..linears import find_linears

    inits = {i.name: i for i in model.graph.initializer}
    return {weight_key(lin.read(inits)): lin.name for lin in find_linears(model)}


def layer_dicts(layers: list[LayerChoice]) -> list[dict]:
    return [{k: v for k, v in asdict(x).items() if k != "key"} for x in layers]

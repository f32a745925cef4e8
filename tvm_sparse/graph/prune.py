"""One-shot magnitude pruning of every encoder Linear of an ONNX model to 4x1 blocks.

Blocks are ranked by L2 norm within each layer (``bsr4x1.prune``): uniform per-layer sparsity, so
every layer gets the same speed-up and no layer is emptied. A weight shared by several MatMuls is
pruned once.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx

from ..format import bsr4x1
from .errors import GraphError
from .importer import load_onnx
from .linears import find_linears


def prune_model(model: onnx.ModelProto, sparsity: float) -> tuple[onnx.ModelProto, list[dict]]:
    """A copy of ``model`` with every Linear pruned; returns it and the per-layer report."""
    if not 0.0 <= sparsity < 1.0:
        raise GraphError(f"sparsity must be within [0, 1), got {sparsity}")
    model = onnx.ModelProto.FromString(model.SerializeToString())
    linears = find_linears(model)
    if not linears:
        raise GraphError("found no Linear layer (MatMul/Gemm with a constant 2-D weight) to prune")
    inits = {i.name: i for i in model.graph.initializer}
    report, done = [], set()
    for lin in linears:
        if lin.weight in done:
            continue
        done.add(lin.weight)
        w = lin.read(inits)
        before = bsr4x1.block_sparsity(w)
        pruned = bsr4x1.prune(w, sparsity)
        inits[lin.weight].CopyFrom(lin.to_initializer(pruned, inits[lin.weight]))
        report.append({"layer": lin.name, "node": lin.node, "weight": lin.weight,
                       "block_sparsity_before": before, **bsr4x1.stats(pruned)})
    return model, report


def report_path(onnx_path: str | Path) -> Path:
    return Path(onnx_path).with_suffix(".prune.json")


def prune_file(src: str | Path, dst: str | Path, sparsity: float) -> list[dict]:
    """Prune ``src`` into ``dst`` and write the report beside it as ``<dst>.prune.json``."""
    model, report = prune_model(load_onnx(src), sparsity)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    report_path(dst).write_text(json.dumps({"target_sparsity": sparsity, "layers": report}, indent=1))
    return report


def format_report(report: list[dict]) -> str:
    """A table for the terminal: one line per layer, then the weighted total."""
    lines = [f"{'layer':48s} {'N x K':>11s} {'block sp.':>9s} {'elem sp.':>8s} {'tiles':>7s} {'fill':>5s}"]
    for r in report:
        n, k = r["shape"]
        lines.append(f"{r['layer'][-48:]:48s} {f'{n}x{k}':>11s} {r['block_sparsity']:9.3f} "
                     f"{r['element_sparsity']:8.3f} {r['n_tiles']:7d} {r['tile_fill']:5.2f}")
    total = sum(r["shape"][0] * r["shape"][1] for r in report)
    zero = sum(r["shape"][0] * r["shape"][1] * r["element_sparsity"] for r in report)
    lines.append(f"{len(report)} layers, {total:,} weights, {zero / max(total, 1):.3f} zero")
    return "\n".join(lines)

"""The front half every consumer of a model shares: import at a fixed shape, swap each Linear for its
kernel, fuse. ``compile``, ``tune`` and the benchmarks all call ``lower``, so what is tuned is what is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx
import tvm

from ..target import resolve
from . import fuse_norm, importer
from . import swap as rewrite
from .errors import GraphError
from .options import CompileOptions


@dataclass
class Lowered:
    mod: tvm.IRModule  # Relax, kernels swapped in and scheduled, residual adds fused into LayerNorms
    static: onnx.ModelProto  # the model at the fixed (batch, seq_len)
    input_names: list[str]
    layers: list[rewrite.LayerChoice]  # one per Linear, in graph order
    norms_fused: int
    # (batch, seq_len) -> how many Linears run sparse there: the choice can differ by bucket (dense AMX
    # needs 32-token blocks); set by compile.lower_buckets for every bucket
    sparse_by_bucket: dict = field(default_factory=dict)


def lower(model: onnx.ModelProto, opts: CompileOptions, target: tvm.target.Target | None = None,
          log=print) -> Lowered:
    """``model`` as the Relax module a library is built from, for ``opts`` (target: ``opts.target``)."""
    target = resolve(opts.target) if target is None else target
    static = importer.static_model(model, opts.batch, opts.seq_len)
    mod, names = importer.to_relax(static, opts.batch, opts.seq_len)
    if opts.precision == "int8" and opts.calibration is None:
        raise GraphError("int8 needs calibration: pass calibration parameters (or use fp32)")
    mod, layers = rewrite.swap_linears(mod, opts.precision, target, calib=opts.calibration,
                                       names=rewrite.names_from_onnx(static), threshold=opts.threshold,
                                       database=str(opts.work_dir), choose=opts.choose, log=log)
    log(f"{len(layers)} Linear layers: {sum(x.sparse for x in layers)} sparse, "
        f"{sum(not x.sparse for x in layers)} dense, {opts.precision}")
    for why in sorted({x.why for x in layers}):
        log(f"  {sum(x.why == why for x in layers)} decided by {why}")
    mod, norms = fuse_norm.fuse_add_layer_norm(mod)
    log(f"{norms} residual adds fused into their LayerNorm")
    return Lowered(mod, static, names, layers, norms)

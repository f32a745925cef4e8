"""Whole model -> ONE shared library (``.so``) plus a JSON metadata file beside it.

Pipeline: import (fixed B, L) -> swap Linears for kernels -> tune the rest (MetaSchedule) -> legalize,
fuse, apply the records (this CPU's, else the nearest CPU's) -> hand or default schedules for what none
covers, with a warning -> build -> ``export_library``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import tvm
from tvm import relax
from tvm.s_tir import meta_schedule as ms

from .. import __version__, pipeline
from ..runtime.metadata import Metadata, metadata_path
from ..runtime.model import _sha256
from ..target import codegen_target, isa, mcpu_of, resolve, to_json
from ..tune import records
from ..tune.apply import UntunedWarning
from . import calibrate, fuse_norm, importer, rewrite, tune
from .errors import GraphError
from .linear import is_scheduled
from .policy import sparse_threshold
from .vocab import input_limits


@dataclass
class CompileOptions:
    batch: int = 1
    seq_len: int = 128
    precision: str = "int8"
    target: str | dict | tvm.target.Target | None = None  # anything target.resolve takes; None: host
    trials: int = 8  # per task; or a function of the task (tune.budget(heavy, light))
    work_dir: str | Path = "tuning_logs/default"
    calibration: dict[str, calibrate.ActQuant] | None = None
    threshold: float | None = None
    allow_untuned: bool = False  # tests only: leave functions with no record as naive loops (100x slower)


def _untuned(mod: tvm.IRModule) -> list[str]:
    """Functions that would run as naive loops. Pure reshapes are exempt: the lowering turns them
    into views of their input (RewriteDataflowReshape), so no code of theirs runs."""
    return [gv.name_hint for gv, f in mod.functions.items()
            if isinstance(f, tvm.tirx.PrimFunc) and not is_scheduled(f)
            and not relax.analysis.has_reshape_pattern(f)]


def build(mod: tvm.IRModule, target: tvm.target.Target, database: ms.database.Database | None,
          allow_untuned: bool = False) -> relax.VMExecutable:
    """Legalize/fuse as tuning did, apply the database, schedule what no record covers, lower, build."""
    # tvm.relax.pipeline's dispatcher cannot find these in 0.27 (AttributeError): import them directly
    from tvm.relax.backend.cpu_generic import pipeline as rp

    with target, tvm.transform.PassContext(opt_level=3):
        mod = tune.lower_for_tuning(mod)
        if database is not None:
            with database:
                mod = relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(mod)
        mod = tune.apply_hand_schedules(mod)
        missing = _untuned(mod)
        if missing and not allow_untuned:
            mod = tune.apply_default_schedules(mod, target, missing)
        if missing:
            warnings.warn(
                f"{len(missing)} functions have no tuned schedule for {mcpu_of(target)} "
                f"({', '.join(sorted(missing)[:6])}{', ...' if len(missing) > 6 else ''}): "
                f"{'naive loops' if allow_untuned else 'MetaSchedule default schedules, untimed'}; tune "
                "with --trials N for speed", UntunedWarning, stacklevel=2)
        seq = tvm.transform.Sequential(rp.dataflow_lower_passes(target) + rp.finalize_passes(target))
        mod = seq(mod)
        return relax.build(mod, target=codegen_target(target), relax_pipeline=None, tir_pipeline=pipeline.NAME)


def compile_model(model: onnx.ModelProto, out: str | Path, opts: CompileOptions, log=print) -> Metadata:
    """Compile ``model`` into ``out`` (.so) and ``out``'s metadata; returns the metadata."""
    target = resolve(opts.target)
    static = importer.static_model(model, opts.batch, opts.seq_len)
    mod, names = importer.to_relax(static, opts.batch, opts.seq_len)
    calib = opts.calibration
    if opts.precision == "int8" and calib is None:
        raise GraphError("int8 needs calibration: pass calibration parameters (or use fp32)")
    mod, layers = rewrite.swap_linears(mod, opts.precision, target, calib=calib,
                                       names=rewrite.names_from_onnx(static), threshold=opts.threshold,
                                       database=str(opts.work_dir))
    log(f"{len(layers)} Linear layers: {sum(x.sparse for x in layers)} sparse, "
        f"{sum(not x.sparse for x in layers)} dense, {opts.precision}")
    mod, norms = fuse_norm.fuse_add_layer_norm(mod)
    log(f"{norms} residual adds fused into their LayerNorm")
    if callable(opts.trials) or opts.trials > 0:  # an int, or a per-task budget (tune.budget)
        os.environ["TVM_NUM_THREADS"] = str(target.attrs.get("num-cores", 1))
        tune.tune(mod, target, records.cpu_dir(opts.work_dir, target, records.GRAPH), opts.trials, log=log)
    executable = build(mod, target, tune.database(target, opts.work_dir), opts.allow_untuned)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    executable.export_library(str(out))
    hidden = int(static.graph.output[0].type.tensor_type.shape.dim[-1].dim_value) or None
    meta = Metadata(
        version=__version__,
        inputs=[{"name": n, "shape": [opts.batch, opts.seq_len], "dtype": importer.INPUT_DTYPE}
                for n in names],
        output={"name": importer.HIDDEN_OUTPUT, "shape": [opts.batch, opts.seq_len, hidden or
                                                          layers[-1].shape[0]], "dtype": "float32"},
        input_limits=input_limits(static),
        target=to_json(target),
        target_features=sorted(isa(target)),
        precision=opts.precision,
        threshold=opts.threshold if opts.threshold is not None else sparse_threshold(target),
        layers=rewrite.layer_dicts(layers),
        library=out.name,
        sha256=_sha256(out),
    )
    meta.save(metadata_path(out))
    log(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {metadata_path(out).name}")
    return meta


def ort_reference(model: onnx.ModelProto, batch: int, seq_len: int,
                  feeds: dict[str, np.ndarray]) -> np.ndarray:
    """onnxruntime on the exact model that gets compiled (fixed shapes, hidden state only)."""
    from .errors import require

    ort = require("onnxruntime", "compare", "the onnxruntime reference")
    static = importer.static_model(model, batch, seq_len)
    sess = ort.InferenceSession(static.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, {n: np.asarray(feeds[n], np.int64) for n in names})[0]

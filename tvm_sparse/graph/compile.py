"""Whole model -> ONE shared library (``.so``) plus a JSON metadata file beside it.

Pipeline: ``lower`` (import at fixed B, L; swap Linears for kernels; fuse) -> tune the rest (MetaSchedule) -> legalize,
fuse, apply the records (this CPU's, else the nearest CPU's) -> hand or default schedules for what none
covers, with a warning -> build -> ``export_library``.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import tvm
from tvm import relax
from tvm.s_tir import meta_schedule as ms

from .. import __version__, pipeline
from ..runtime.metadata import Metadata, metadata_path
from ..runtime.model import _sha256
from ..schedule.hand import apply_hand_schedules
from ..schedule.scheduled import is_scheduled
from ..target import codegen_target, isa, mcpu_of, relax_backend_passes, resolve, to_json
from ..tune import graph as graph_tune
from ..tune import records
from ..tune.apply import UntunedWarning
from . import buckets, importer
from . import swap as rewrite
from .lower import Lowered, lower
from .options import CompileOptions  # noqa: F401  (the public name: tvm_sparse.graph.compile.CompileOptions)
from .policy import sparse_threshold
from .vocab import input_limits


def _untuned(mod: tvm.IRModule) -> list[str]:
    """Functions that would run as naive loops. Pure reshapes are exempt: the lowering turns them
    into views of their input (RewriteDataflowReshape), so no code of theirs runs."""
    return [gv.name_hint for gv, f in mod.functions.items()
            if isinstance(f, tvm.tirx.PrimFunc) and not is_scheduled(f)
            and not relax.analysis.has_reshape_pattern(f)]


def build(mod: tvm.IRModule, target: tvm.target.Target, database: ms.database.Database | None,
          allow_untuned: bool = False) -> relax.VMExecutable:
    """Legalize/fuse as tuning did, apply the database, schedule what no record covers, lower, build."""
    with target, tvm.transform.PassContext(opt_level=3):
        mod = graph_tune.lower_for_tuning(mod)
        if database is not None:
            with database:
                mod = relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(mod)
        mod = apply_hand_schedules(mod)
        missing = _untuned(mod)
        if missing and not allow_untuned:
            mod = graph_tune.apply_default_schedules(mod, target, missing)
        if missing:
            warnings.warn(
                f"{len(missing)} functions have no tuned schedule for {mcpu_of(target)} "
                f"({', '.join(sorted(missing)[:6])}{', ...' if len(missing) > 6 else ''}): "
                f"{'naive loops' if allow_untuned else 'MetaSchedule default schedules, untimed'}; tune "
                "with --trials N for speed", UntunedWarning, stacklevel=2)
        mod = tvm.transform.Sequential(relax_backend_passes(target))(mod)
        return relax.build(mod, target=codegen_target(target), relax_pipeline=None, tir_pipeline=pipeline.NAME)


def lower_buckets(model: onnx.ModelProto, opts: CompileOptions, target: tvm.target.Target,
                  log=print) -> tuple[tvm.IRModule, Lowered]:
    """The module to build: one ``main`` for one shape, else one function per bucket (``buckets.merge``);
    and the largest bucket's ``Lowered`` (its layers and static model describe the library)."""
    if not opts.bucketed:
        low = lower(model, opts, target, log=log)
        low.sparse_by_bucket = {(opts.batch, opts.seq_len): sum(x.sparse for x in low.layers)}
        return low.mod, low
    parts, todo, t0, sparse = [], opts.buckets(), time.time(), {}
    for i, (b, n) in enumerate(todo, 1):
        one = replace(opts, batch=b, seq_len=n, seq_lens=(), batches=())
        low = lower(model, one, target, log=log if i == len(todo) else (lambda *_: None))
        parts.append((b, n, low.mod))
        sparse[b, n] = sum(x.sparse for x in low.layers)
        took = time.time() - t0
        log(f"[bucket {i}/{len(todo)}] batch {b}, length {n} lowered ({took:.0f} s, "
            f"ETA {took / i * (len(todo) - i):.0f} s)")
    low.sparse_by_bucket = sparse
    if len(set(sparse.values())) > 1:
        log("sparse Linears by bucket (batch x length): "
            + ", ".join(f"{b}x{n} {k}/{len(low.layers)}" for (b, n), k in sparse.items()))
    return buckets.merge(parts), low  # buckets() ends with the largest


def compile_model(model: onnx.ModelProto, out: str | Path, opts: CompileOptions, log=print,
                  task: dict | None = None, tokenizer: dict[str, str] | None = None) -> Metadata:
    """Compile ``model`` into ``out`` (.so) and ``out``'s metadata; returns the metadata.

    ``task`` (``graph.hf.read_task``) and ``tokenizer`` (``graph.hf.tokenizer_files``) travel in the
    metadata so that ``load(out).encode(...)`` / ``.classify(...)`` need nothing else."""
    target = resolve(opts.target)
    mod, low = lower_buckets(model, opts, target, log=log)
    static, layers, names = low.static, low.layers, low.input_names
    if callable(opts.trials) or opts.trials > 0:  # an int, or a per-task budget (graph_tune.budget)
        os.environ["TVM_NUM_THREADS"] = str(target.attrs.get("num-cores", 1))
        graph_tune.tune(mod, target, records.cpu_dir(opts.work_dir, target, records.GRAPH), opts.trials,
                        log=log)
    t0 = time.time()
    log(f"building {len(opts.buckets())} function(s) into one library ...")
    executable = build(mod, target, graph_tune.database(target, opts.work_dir), opts.allow_untuned)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    executable.export_library(str(out))
    log(f"built in {time.time() - t0:.0f} s")
    out_dims = [int(d.dim_value) for d in static.graph.output[0].type.tensor_type.shape.dim]
    if len(out_dims) == 3:  # [B, L, H]
        out_shape = [opts.batch, opts.seq_len, out_dims[-1] or layers[-1].shape[0]]
    else:  # [B, C]: a classification head's logits
        out_shape = [opts.batch, out_dims[-1]]
    meta = Metadata(
        version=__version__,
        inputs=[{"name": n, "shape": [opts.batch, opts.seq_len], "dtype": importer.INPUT_DTYPE}
                for n in names],
        output={"name": static.graph.output[0].name, "shape": out_shape, "dtype": "float32"},
        buckets=[{"batch": b, "seq_len": n, "function": buckets.function_name(b, n) if opts.bucketed else "main",
                  "sparse_linears": low.sparse_by_bucket.get((b, n))} for b, n in opts.buckets()],
        task=task or {},
        tokenizer=tokenizer or {},
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

"""Prepare a bundle to measure on a Xeon that has no TVM compiler: cross-compile kernels and models
here, pack TVM's runtime (without the 100 MB compiler library) and the ffi wheel beside them.

    python tools/xeon_prepare.py --out .xeon                 # here
    # there (Python 3.12, numpy, onnxruntime, torch, transformers), everything in one go:
    pip install --no-index --no-deps --target /tmp/site .xeon/wheels/*.whl && tar xJf .xeon/tvm_rt.tar.xz -C /tmp/site
    PYTHONPATH=/tmp/site python .xeon/xeon_export_onnx.py .xeon                         # ORT's models
    PYTHONPATH=/tmp/site python .xeon/xeon_remote.py .xeon --sweep 1,4,16 --out $OUT   # JSON + markdown

Kernels take the best records for the target CPU, else records tuned on another CPU (a schedule is
valid on any x86 with the instructions; its speed is what is measured there). Models take the graph
records of ``--graph-db``; functions none of them covers (the embedding gather at the bundle's small
vocabulary, say) are tuned here for the target with ``--graph-trials`` trials each into the bundle's
own work database, never left untuned. Each model ships with a fidelity reference: onnxruntime fp32's
output on the exact pruned model compiled, for fixed inputs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import tvm

from tvm_sparse import pipeline
from tvm_sparse.format import bsr4x1
from tvm_sparse.kernels.dense_int8 import dense_int8, pack_dense
from tvm_sparse.kernels.epilogue import Epilogue
from tvm_sparse.kernels.sparse_fp32 import sparse_fp32
from tvm_sparse.kernels.sparse_int8 import padded_m, sparse_int8
from tvm_sparse.kinds import KernelKey, sparsity_bucket
from tvm_sparse.runtime import cpu as cpu_module
from tvm_sparse.target import resolve
from tvm_sparse.tune import records
from tvm_sparse.tune.apply import schedule
from tvm_sparse.tune.tuner import tune

SHAPES = [(768, 768), (768, 3072), (3072, 768)]  # (K, N): bert-base's Linears
SPARSITIES = (0.7, 0.8, 0.9)
M = 128
MODELS = [("bert-mini", 0.9), ("bert-base", 0.9), ("bert-mini", 0.0)]
VOCAB = 2048  # the embedding table is a gather: its size changes nothing but the bundle's size
TRIM = ("lib/libtvm_compiler.so", "3rdparty", "include", "src")


def pack_runtime(out: Path) -> None:
    root = Path(tvm.__file__).parent
    with tarfile.open(out / "tvm_rt.tar.xz", "w:xz") as tar:
        tar.add(root, arcname="tvm", filter=lambda t: None if any(
            t.name.startswith(f"tvm/{x}") for x in TRIM) or "__pycache__" in t.name else t)
    wheels = out / "wheels"
    wheels.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
                    "--platform", "manylinux_2_17_x86_64", "-d", str(wheels), "apache-tvm-ffi==0.1.14.post1"],
                   check=True)


def _export(func, key, target, arrays, expect, path: Path, host) -> None:
    if not key.sparse:
        tune(key, host, 32, quiet=True)  # measured here: the records' schedules are what is shipped
    sched, _ = schedule(func, key, target)
    lib = pipeline.build(sched, target)
    lib.export_library(str(path.with_suffix(".so")))
    np.savez(path.with_suffix(".npz"), nargs=len(arrays), expect=expect,
             **{f"arg{i}": a for i, a in enumerate(arrays)})


def build_kernels(out: Path, target: tvm.target.Target) -> None:
    kdir = out / "kernels"
    kdir.mkdir(exist_ok=True)
    host = resolve("host", 1)
    rng = np.random.default_rng(0)
    mp = padded_m(M)
    for k, n in SHAPES:
        w = rng.integers(-127, 128, (n, k), dtype=np.int8)
        x = rng.integers(0, 256, (M, k), dtype=np.uint8)
        _export(dense_int8(M, k, n), KernelKey("dense_int8", M, k, n), target,
                [x, pack_dense(w), np.zeros((M, n), np.int32)], x.astype(np.int32) @ w.astype(np.int32).T,
                kdir / f"dense_int8_k{k}_n{n}", host)
        for s in SPARSITIES:
            ws = bsr4x1.prune(w, s)
            p = bsr4x1.pack(ws)
            key = KernelKey("sparse_int8", M, k, n, sparsity_bucket(bsr4x1.block_sparsity(ws)), transposed=True)
            xt = np.zeros((k, mp), np.uint8)
            xt[:, :M] = x.T
            ref = np.zeros((n, mp), np.int32)
            ref[:, :M] = (x.astype(np.int32) @ ws.astype(np.int32).T).T
            ref[:, M:] = 0
            _export(sparse_int8(M, k, n, Epilogue.S32, transposed=True), key, target,
                    [xt, p.indptr, p.indices, p.values, np.zeros((n, mp), np.int32)], ref,
                    kdir / f"sparse_int8_k{k}_n{n}_s{int(s * 100)}", host)
            wf = bsr4x1.prune(rng.standard_normal((n, k)).astype(np.float32), s)
            pf = bsr4x1.pack(wf)
            xf = rng.standard_normal((k, mp)).astype(np.float32)
            bias = np.zeros(n, np.float32)
            keyf = KernelKey("sparse_fp32", M, k, n, key.bucket, transposed=True)
            _export(sparse_fp32(M, k, n, transposed=True), keyf, target,
                    [xf, pf.indptr, pf.indices, pf.values, bias, np.zeros((n, mp), np.float32)], wf @ xf,
                    kdir / f"sparse_fp32_k{k}_n{n}_s{int(s * 100)}", host)
            print(f"kernels K={k} N={n} s={s}: built", flush=True)


def missing_budget(work_dir: Path, target: tvm.target.Target, trials: int):
    """A per-task trial budget for ``compile_model``: ``trials`` for a task that no record in
    ``work_dir`` (or the records shipped for ``target``) covers, 0 (skipped) for the rest, so only
    what the build would refuse as untuned gets tuned."""
    from tvm_sparse.tune import graph as graph_tune

    db = graph_tune.database(target, work_dir)

    def per_task(task) -> int:
        if db is None:
            return trials
        return 0 if db.query_tuning_record(task.dispatched[0], target, "main") is not None else trials

    return per_task


def build_models(out: Path, target: tvm.target.Target, graph_db: Path, graph_trials: int,
                 throughput_batches: tuple[int, ...] = (), models: list[tuple[str, float]] = MODELS) -> None:
    from tvm_sparse.graph import calibrate, export, importer, prune
    from tvm_sparse.graph.compile import CompileOptions, compile_model, ort_reference

    mdir, odir = out / "models", out / "onnx"
    mdir.mkdir(exist_ok=True)
    odir.mkdir(exist_ok=True)
    work = out / "work"
    graph_dir = records.cpu_dir(work, target, records.GRAPH)
    if graph_db.exists() and not graph_dir.exists():
        shutil.copytree(graph_db, graph_dir)
    spec = target
    configs = {}
    for name, s in models:
        tag = f"{name}_s{int(s * 100)}"
        dense = export.build_bert(name, out / "build" / f"{name}.onnx", vocab_size=VOCAB)
        pruned = out / "build" / f"{tag}.onnx"
        prune.prune_file(dense, pruned, s)
        static = importer.static_model(pruned, 1, M)
        ids = np.random.default_rng(1).integers(0, VOCAB, (8, M))
        samples = [{"input_ids": ids[i:i + 1], "attention_mask": np.ones((1, M), np.int64),
                    "token_type_ids": np.zeros((1, M), np.int64)} for i in range(8)]
        params = calibrate.calibrate(static, samples)
        opts = CompileOptions(batch=1, seq_len=M, precision="int8", work_dir=str(work), calibration=params,
                              trials=missing_budget(work, target, graph_trials),
                              target=spec, threshold=None if s > 0 else 1.01)
        compile_model(importer.load_onnx(pruned), mdir / f"{tag}_int8.so", opts)
        for b in throughput_batches if s > 0 and name == "bert-base" else ():  # bench/throughput.py's libraries
            (out / "throughput").mkdir(exist_ok=True)
            static_b = importer.static_model(pruned, b, M)
            samples_b = [{k: np.repeat(v, b, axis=0) for k, v in x.items()} for x in samples[:2]]
            opts_b = CompileOptions(batch=b, seq_len=M, precision="int8", work_dir=str(work),
                                    calibration=calibrate.calibrate(static_b, samples_b),
                                    trials=missing_budget(work, target, graph_trials), target=spec)
            compile_model(importer.load_onnx(pruned), out / "throughput" / f"{tag}_b{b}_int8.so", opts_b)
        # fidelity reference: onnxruntime fp32 on the exact model compiled, inputs unseen by calibration
        feeds = {"input_ids": np.random.default_rng(2).integers(0, VOCAB, (1, M)).astype(np.int64),
                 "attention_mask": np.ones((1, M), np.int64), "token_type_ids": np.zeros((1, M), np.int64)}
        np.savez(mdir / f"{tag}_ref.npz", hidden=ort_reference(importer.load_onnx(pruned), 1, M, feeds), **feeds)
        layers, hidden, heads, inter = export.BERT_CONFIGS[name]
        configs[tag] = {"model": name, "sparsity": s, "shape": [1, M], "vocab": VOCAB, "seed": 0,
                        "layers": layers, "hidden": hidden, "heads": heads, "intermediate": inter}
        print(f"model {tag}: built", flush=True)
    (odir / "models.json").write_text(json.dumps(configs, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".xeon")
    ap.add_argument("--target", default="sapphirerapids")
    ap.add_argument("--cores", type=int, default=16)
    ap.add_argument("--what", default="runtime,kernels,models")
    ap.add_argument("--graph-db", default="schedules/sapphirerapids/graph",
                    help="graph tuning records to compile the models with")
    ap.add_argument("--throughput-batches", default="1,4",
                    help="batch sizes of the bert-base sparse libraries for bench/throughput.py (in throughput/)")
    ap.add_argument("--graph-trials", type=int, default=16,
                    help="trials for each graph function that --graph-db has no record for")
    ap.add_argument("--models", default=",".join(f"{n}:{s}" for n, s in MODELS),
                    help="NAME:SPARSITY,... (dense bert-base is 85 MB of int8 weights: a bundle of its own)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    target = resolve(a.target, a.cores)
    here = Path(__file__).parent
    for f in ("xeon_remote.py", "xeon_export_onnx.py"):
        shutil.copy(here / f, out / f)
    shutil.copy(Path(cpu_module.__file__), out / "cpu.py")
    shutil.copy(Path(cpu_module.__file__).with_name("amx.py"), out / "amx.py")
    if "runtime" in a.what:
        pack_runtime(out)
    if "kernels" in a.what:
        build_kernels(out, target)
    if "models" in a.what:
        build_models(out, target, Path(a.graph_db), a.graph_trials,
                     tuple(int(b) for b in a.throughput_batches.split(",") if b),
                     [(n, float(s)) for n, s in (m.split(":") for m in a.models.split(","))])
    print(f"bundle ready in {out}: {sum(f.stat().st_size for f in out.rglob('*') if f.is_file()) / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()

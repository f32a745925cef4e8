"""Latency of a compiled library and of onnxruntime, each in its own process.

TVM's and onnxruntime's thread pools both spin: timing them in one process skews both.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

_TVM = """
import json, os, sys, time, numpy as np
os.environ["TVM_NUM_THREADS"] = sys.argv[3]
import tvm_sparse
m = tvm_sparse.load(sys.argv[1])
ids = np.random.default_rng(0).integers(0, m.metadata.input_limits.get("input_ids", 1000), m.shape)
for _ in range(5): m(input_ids=ids)
ts = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter(); m(input_ids=ids); ts.append(time.perf_counter() - t)
print(json.dumps({"times": ts, "batch": m.shape[0], "seq_len": m.shape[1]}))
"""

_ORT = """
import json, sys, time, numpy as np, onnxruntime as ort
from tvm_sparse.graph.importer import static_model
b, L, threads = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
opts = ort.SessionOptions(); opts.intra_op_num_threads = threads; opts.inter_op_num_threads = 1
s = ort.InferenceSession(static_model(sys.argv[1], b, L).SerializeToString(), opts,
                         providers=["CPUExecutionProvider"])
feeds = {i.name: np.ones((b, L), np.int64) for i in s.get_inputs()}
for _ in range(5): s.run(None, feeds)
ts = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter(); s.run(None, feeds); ts.append(time.perf_counter() - t)
print(json.dumps({"times": ts}))
"""


def _summary(times: list[float]) -> dict:
    ms = np.asarray(times) * 1e3
    return {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)), "runs": len(ms)}


def _run(code: str, *args) -> dict:
    res = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"benchmark process failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def bench_library(path: str, runs: int = 50, threads: int | None = None) -> dict:
    from ..runtime.metadata import Metadata, metadata_path

    threads = threads or Metadata.load(metadata_path(path)).target.get("num-cores", 1)
    out = _run(_TVM, path, runs, threads)
    return {**_summary(out["times"]), "threads": threads, "batch": out["batch"], "seq_len": out["seq_len"]}


def bench_onnxruntime(onnx_path: str, batch: int, seq_len: int, runs: int = 50, threads: int = 1) -> dict:
    return {**_summary(_run(_ORT, onnx_path, runs, batch, seq_len, threads)["times"]), "threads": threads}


@contextlib.contextmanager
def ort_int8(onnx_path: str | Path):
    """``onnx_path`` quantized by onnxruntime's ``quantize_dynamic`` (u8 activations, s8 weights: what an
    onnxruntime user gets in one call), in a temporary directory: nothing is written beside the user's file."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / (Path(onnx_path).stem + "_ortint8.onnx")
        quantize_dynamic(str(onnx_path), str(out), weight_type=QuantType.QInt8)
        yield str(out)

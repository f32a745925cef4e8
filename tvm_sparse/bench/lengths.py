"""Latency against the real sequence length: a bucketed library (each input padded to its bucket) beside
onnxruntime with dynamic shapes (each input at its own length), fp32 and int8, batch 1.

Every engine runs in its own process (TVM's and onnxruntime's thread pools both spin), one after the
other in one run: ratios are measured side by side.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .model import _run, ort_int8

_TVM = """
import json, os, sys, time, numpy as np
import tvm_sparse
m = tvm_sparse.load(sys.argv[1], threads=int(sys.argv[3]))
runs, out = int(sys.argv[2]), {}
rng = np.random.default_rng(0)
for L in json.loads(sys.argv[4]):
    ids = rng.integers(1000, 2000, (1, L))
    for _ in range(3): m(input_ids=ids)
    ts = []
    for _ in range(runs):
        t = time.perf_counter(); m(input_ids=ids); ts.append(time.perf_counter() - t)
    out[L] = ts
print(json.dumps(out))
"""

_ORT = """
import json, sys, time, numpy as np, onnxruntime as ort
opts = ort.SessionOptions(); opts.intra_op_num_threads = int(sys.argv[3]); opts.inter_op_num_threads = 1
s = ort.InferenceSession(sys.argv[1], opts, providers=["CPUExecutionProvider"])
runs, out = int(sys.argv[2]), {}
rng = np.random.default_rng(0)
for L in json.loads(sys.argv[4]):
    feeds = {i.name: (rng.integers(1000, 2000, (1, L)) if i.name == "input_ids" else
                      np.ones((1, L), np.int64) if i.name == "attention_mask" else np.zeros((1, L), np.int64))
             for i in s.get_inputs()}
    for _ in range(3): s.run(None, feeds)
    ts = []
    for _ in range(runs):
        t = time.perf_counter(); s.run(None, feeds); ts.append(time.perf_counter() - t)
    out[L] = ts
print(json.dumps(out))
"""


def _medians(raw: dict) -> dict[int, float]:
    return {int(k): float(np.median(v) * 1e3) for k, v in raw.items()}


def bench_lengths(library: str, onnx_path: str | None, lengths: tuple[int, ...], runs: int = 30,
                  threads: int | None = None, plot: str | None = None, log=print) -> dict:
    """Median ms per length for the library and (with ``onnx_path``, its dynamic-shape ONNX) onnxruntime
    fp32 and int8; prints a table of ratios and optionally writes a plot."""
    from ..runtime.metadata import Metadata, metadata_path
    from ..runtime.model import InputError

    meta = Metadata.load(metadata_path(library))
    longest = max(n for _, n, _ in meta.shape_buckets())
    too_long = [n for n in lengths if n > longest]
    if too_long:
        raise InputError(f"lengths {too_long} are longer than {Path(library).name}'s longest bucket ({longest})")
    threads = threads or int(meta.target.get("num-cores", 1))
    arg = json.dumps(list(lengths))
    results = {"tvm-sparse": _medians(_run(_TVM, library, runs, threads, arg))}
    if onnx_path:
        results["onnxruntime fp32"] = _medians(_run(_ORT, onnx_path, runs, threads, arg))
        with ort_int8(onnx_path) as q:
            results["onnxruntime int8"] = _medians(_run(_ORT, q, runs, threads, arg))
    buckets = sorted({n for _, n, _ in meta.shape_buckets()})
    names = list(results)
    log(f"batch 1, {threads} thread(s), median ms of {runs} runs; buckets {buckets}")
    log("| length | bucket | " + " | ".join(names) + " |" + "".join(f" vs {n} |" for n in names[1:]))
    log("|---:|---:|" + "---:|" * (2 * len(names) - 1))
    for n in lengths:
        ours = results["tvm-sparse"][n]
        cells = " | ".join(f"{results[k][n]:.3f}" for k in names)
        ratios = "".join(f" {results[k][n] / ours:.2f}x |" for k in names[1:])
        log(f"| {n} | {min(b for b in buckets if b >= n)} | {cells} |{ratios}")
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for k in names:
            ax.plot(list(lengths), [results[k][n] for n in lengths], marker="o", label=k)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("real sequence length (tokens)")
        ax.set_ylabel("median latency, batch 1 (ms)")
        ax.set_title(f"{Path(library).name}, {threads} thread(s)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(plot, dpi=120)
        log(f"wrote {plot}")
    return results

"""Runs on the target Xeon with only TVM's runtime (no compiler): times the kernels and models that
``xeon_prepare`` cross-compiled, checks the kernels' results bit for bit, and times onnxruntime on
the same model shapes. One JSON line per figure on stdout.

    TVM_USE_RUNTIME_LIB=1 python xeon_remote.py BUNDLE_DIR --threads 16

Deliberately standalone (numpy, tvm.runtime, onnxruntime): it must not import the compiler.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def _timer(fn, runs: int) -> dict:
    for _ in range(3):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return {"median_ms": times[len(times) // 2] * 1e3, "p90_ms": times[int(len(times) * 0.9)] * 1e3}


def kernels(bundle: Path, threads: int) -> None:
    import numpy as np
    import tvm

    for npz in sorted((bundle / "kernels").glob("*.npz")):
        data = np.load(npz)
        lib = tvm.runtime.load_module(str(npz.with_suffix(".so")))
        args = [tvm.runtime.tensor(data[f"arg{i}"]) for i in range(int(data["nargs"]))]
        f = lib[lib.entry_name] if hasattr(lib, "entry_name") else lib["main"]
        f(*args)
        out = args[-1].numpy()
        ok = bool(np.array_equal(out, data["expect"])) if out.dtype.kind == "i" else bool(
            np.abs(out - data["expect"]).max() <= 1e-4 * max(1.0, float(np.abs(data["expect"]).max())))
        ev = lib.time_evaluator(lib.entry_name, tvm.cpu(), number=20, repeat=7, min_repeat_ms=40)
        us = float(np.median(ev(*args).results)) * 1e6
        print(json.dumps({"kind": "kernel", "name": npz.stem, "threads": threads, "us": us, "correct": ok}),
              flush=True)


def models(bundle: Path, threads: int, runs: int) -> None:
    import numpy as np
    import tvm
    from tvm.runtime.vm import VirtualMachine  # not imported by `import tvm` with the runtime alone

    for so in sorted((bundle / "models").glob("*.so")):
        meta = json.loads(so.with_suffix(".json").read_text())
        shape = meta["inputs"][0]["shape"]
        lib = tvm.runtime.load_module(str(so))
        vm = VirtualMachine(lib, tvm.cpu())
        feeds = [tvm.runtime.tensor(np.ones(shape, np.int64)) for _ in meta["inputs"]]
        res = _timer(lambda vm=vm, feeds=feeds: vm["main"](*feeds), runs)
        print(json.dumps({"kind": "model", "engine": "tvm-sparse", "name": so.stem, "threads": threads, **res}),
              flush=True)


def onnxruntime(bundle: Path, threads: int, runs: int) -> None:
    import numpy as np
    import onnxruntime as ort

    for onnx_file in sorted((bundle / "onnx").glob("*.onnx")):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        s = ort.InferenceSession(str(onnx_file), opts, providers=["CPUExecutionProvider"])
        feeds = {i.name: np.ones([d if isinstance(d, int) else 1 for d in i.shape], np.int64)
                 for i in s.get_inputs()}
        seq = json.loads((bundle / "onnx" / "shapes.json").read_text())[onnx_file.stem.rsplit("_", 1)[0]]
        feeds = {k: np.ones(seq, np.int64) for k in feeds}
        res = _timer(lambda s=s, feeds=feeds: s.run(None, feeds), runs)
        print(json.dumps({"kind": "model", "engine": "onnxruntime", "name": onnx_file.stem, "threads": threads,
                          **res}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--what", default="kernels,models,onnxruntime")
    ap.add_argument("--runs", type=int, default=30)
    a = ap.parse_args()
    os.environ["TVM_NUM_THREADS"] = str(a.threads)  # before the runtime's thread pool starts
    bundle = Path(a.bundle)
    what = a.what.split(",")
    if "kernels" in what:
        kernels(bundle, a.threads)
    if "models" in what:
        models(bundle, a.threads, a.runs)
    if "onnxruntime" in what:
        onnxruntime(bundle, a.threads, a.runs)


if __name__ == "__main__":
    main()

"""Per-operator time of a compiled library: the Relax VM's instrument hook times every call.

Run it in a process of its own, with ``TVM_NUM_THREADS`` set (``python -m tvm_sparse.bench.profile LIB.so``).
The hook's own overhead (a Python call before and after each op, ~2 us) is included in each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from collections import defaultdict
from pathlib import Path

import numpy as np


def op_kind(symbol: str) -> str:
    """Group layers: ``fused_softmax3`` and ``fused_softmax`` are one kind; kernels keep their shape."""
    return re.sub(r"(?<=[a-z_])\d+(?=(_|$))", "", symbol)


def profile(lib_path: str | Path, runs: int = 20, warmup: int = 3) -> dict:
    """Median per-call time per function symbol, summed per run: ``{symbol: {calls, ms_per_run}}``."""
    import tvm
    from tvm import relax

    from ..runtime.model import load

    model = load(lib_path)
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(lib_path)), model.device)
    limit = model.metadata.input_limits.get("input_ids", 1000)
    feeds = {"input_ids": np.random.default_rng(0).integers(0, limit, model.shape),
             "attention_mask": np.ones(model.shape, np.int64), "token_type_ids": np.zeros(model.shape, np.int64)}
    args = [tvm.runtime.tensor(model._prepare(n, feeds[n], model.shape), model.device) for n in model.input_names]
    main = vm[model.bucket_for(*model.shape)[2]]  # the largest bucket ("main" in a one-shape library)
    for _ in range(warmup):
        main(*args)
    per_run: list[dict[str, float]] = []
    calls: dict[str, int] = defaultdict(int)
    state = {"t": 0.0, "acc": None}

    def instrument(func, symbol, before, ret, *a):
        if before:
            state["t"] = time.perf_counter()
        else:
            state["acc"][symbol] += time.perf_counter() - state["t"]
            if len(per_run) == 0:
                calls[symbol] += 1
        return 0

    vm.set_instrument(instrument)
    totals = []
    for _ in range(runs):
        state["acc"] = defaultdict(float)
        t0 = time.perf_counter()
        main(*args)
        totals.append(time.perf_counter() - t0)
        per_run.append(dict(state["acc"]))
    symbols = sorted({s for r in per_run for s in r})
    ops = {s: {"calls": calls.get(s, 0), "ms_per_run": float(np.median([r.get(s, 0.0) for r in per_run]) * 1e3)}
           for s in symbols}
    return {"library": str(lib_path), "threads": int(os.environ.get("TVM_NUM_THREADS", "1")),
            "total_ms_instrumented": float(np.median(totals) * 1e3), "ops": ops}


def top(report: dict, n: int = 10) -> list[tuple[str, int, float]]:
    ops = sorted(report["ops"].items(), key=lambda kv: -kv[1]["ms_per_run"])
    return [(s, v["calls"], v["ms_per_run"]) for s, v in ops[:n]]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("library")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--json", default=None, help="write the whole report here")
    args = p.parse_args(argv)
    rep = profile(args.library, args.runs)
    print(f"{args.library}: {rep['total_ms_instrumented']:.3f} ms per run (instrumented), "
          f"{rep['threads']} threads")
    total = sum(v["ms_per_run"] for v in rep["ops"].values())
    for sym, calls, ms in top(rep, args.top):
        print(f"  {ms:8.3f} ms  {100 * ms / total:5.1f}%  x{calls:<3d} {sym}")
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=1))


if __name__ == "__main__":
    main()

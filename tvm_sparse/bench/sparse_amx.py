"""Sparse AMX against sparse VNNI and dense AMX: one process, one table.

For each (K, N) and sparsity: the tuned 4x1 sparse VNNI kernel (``[K, M] -> [N, M]``, records looked up
the way ``bench-kernel`` does), ``sparse_amx`` (same layout, its own packing) and ``dense_amx``, all
checked exact against numpy's int32 product before they are timed. Each kernel is timed in turn,
``rounds`` times, keeping its best: the ratios come from the same minutes on a noisy machine.

    python -m tvm_sparse.bench.sparse_amx [--m 128] [--shapes 768x768,768x3072,3072x768]
        [--sparsities 0.5,0.7,0.8,0.9,0.95] [--group similar|order|both] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import warnings

import numpy as np
import tvm

from .. import pipeline
from ..format import bsr4x1
from ..format.union16 import pack_union16, union_fraction
from ..kernels.amx import dense_amx
from ..kernels.dense_int8 import pack_dense
from ..kernels.epilogue import Epilogue
from ..kernels.sparse_amx import sparse_amx
from ..kernels.sparse_int8 import padded_m, sparse_int8
from ..kinds import KernelKey, sparsity_bucket
from ..tune.apply import database_roots
from .kernel import _run, time_alternately

SHAPES = ((768, 768), (768, 3072), (3072, 768))
SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95)


def _lib_args(func, target, arrays):
    lib = pipeline.build(tvm.IRModule({"main": func}), target)
    args = [tvm.runtime.tensor(np.ascontiguousarray(a)) for a in arrays]
    lib(*args)
    return lib, args


def bench_one(m: int, k: int, n: int, sparsity: float, target, groups=("similar",), rounds: int = 3,
              db_root: str = "tuning_logs", seed: int = 0, threads: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    w = bsr4x1.prune(rng.integers(-127, 128, (n, k), dtype=np.int8), sparsity)
    x = rng.integers(0, 256, (m, k), dtype=np.uint8)
    ref_t = w.astype(np.int32) @ x.T.astype(np.int32)  # [N, M]
    mp = padded_m(m)
    xt = np.zeros((k, mp), np.uint8)
    xt[:, :m] = x.T
    packed = bsr4x1.pack(w)
    key = KernelKey("sparse_int8", m, k, n, sparsity_bucket(bsr4x1.block_sparsity(w)), transposed=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a missing record is reported in the table (the schedule's source)
        lib_v, args_v, source = _run(sparse_int8(m, k, n, Epilogue.S32, transposed=True), key, target,
                                     [xt, packed.indptr, packed.indices, packed.values, np.zeros((n, mp), np.int32)],
                                     database_roots([db_root]))
    runs = {"vnni": (lib_v, args_v)}
    exact = {"vnni": bool(np.array_equal(args_v[-1].numpy()[:, :m], ref_t))}
    unions = {}
    for group in groups:
        pu = pack_union16(w, group)
        unions[group] = union_fraction(pu)
        runs[f"amx_{group}"] = _lib_args(sparse_amx(m, k, n, tasks=threads), target,
                                         [xt[:, :m], *pu.arrays(), np.zeros((n, m), np.int32)])
        exact[f"amx_{group}"] = bool(np.array_equal(runs[f"amx_{group}"][1][-1].numpy(), ref_t))
    runs["dense_amx"] = _lib_args(dense_amx(m, k, n), target, [x, pack_dense(w), np.zeros((m, n), np.int32)])
    exact["dense_amx"] = bool(np.array_equal(runs["dense_amx"][1][-1].numpy(), ref_t.T))
    best, best_cpu = time_alternately(runs, rounds, threads)
    return {"m": m, "k": k, "n": n, "sparsity": sparsity, "block_sparsity": bsr4x1.block_sparsity(w),
            "vnni_schedule": source, "vnni_untuned": not source.startswith("tuned"),
            "us": best, "cpu_us": best_cpu, "exact": exact, "union_fraction": unions}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=128)
    ap.add_argument("--shapes", default=",".join(f"{k}x{n}" for k, n in SHAPES), help="KxN,KxN,...")
    ap.add_argument("--sparsities", default=",".join(str(s) for s in SPARSITIES))
    ap.add_argument("--group", choices=("similar", "order", "both"), default="both",
                    help="how sparse_amx's pack forms its 16-channel groups")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--target", default="host")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    from ..runtime.amx import request_permission
    from ..target import resolve

    os.environ.setdefault("TVM_NUM_THREADS", "1")
    request_permission()
    target = resolve(a.target, int(os.environ["TVM_NUM_THREADS"]))
    groups = ("similar", "order") if a.group == "both" else (a.group,)
    threads = int(os.environ["TVM_NUM_THREADS"])
    rows = []
    print(f"M={a.m}, {threads} thread(s) (sparse AMX: as many tasks), best of {a.rounds} rounds. us: wall clock "
          "(time_evaluator median, as bench-kernel)" + ("; cpu: thread CPU time per call" if threads == 1 else ""))
    print(f"AMX = sparse AMX ({groups[0]} groups); union = its tile products / dense's; ratios > 1: sparse AMX faster")
    cols = ["VNNI", *(f"AMX-{g[:3]}" for g in groups), "dAMX"]
    head = f"{'K x N':>11} {'sparsity':>8} " + " ".join(f"{c + ' us':>10}" for c in cols)
    head += f" {'VNNI/AMX':>8} {'dAMX/AMX':>8}"
    if threads == 1:
        head += " " + " ".join(f"{c + ' cpu':>10}" for c in cols) + f" {'VNNI/AMX':>8} {'dAMX/AMX':>8}"
    print(head + f" {'union':>6} exact")
    for shape in a.shapes.split(","):
        k, n = (int(v) for v in shape.split("x"))
        for s in (float(v) for v in a.sparsities.split(",")):
            r = bench_one(a.m, k, n, s, target, groups, a.rounds, threads=threads)
            rows.append(r)
            line = f"{k:>5} x {n:<5} {s:>8.2f} "
            for key in ("us", "cpu_us") if threads == 1 else ("us",):
                t = r[key]
                amx = t[f"amx_{groups[0]}"]
                line += " ".join(f"{t[name]:>10.1f}" for name in ["vnni", *(f"amx_{g}" for g in groups), "dense_amx"])
                line += f" {t['vnni'] / amx:>8.2f} {t['dense_amx'] / amx:>8.2f} "
            line += f"{r['union_fraction'][groups[0]]:>6.3f} {all(r['exact'].values())}"
            print(line + ("  (VNNI untuned)" if r["vnni_untuned"] else ""), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()

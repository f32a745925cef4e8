"""The kernel benchmark: tuned sparse int8 vs tuned dense int8 vs sparse fp32, in one run.

Every figure comes from the same process, the same thread pool and the same inputs, so the ratios
are meaningful even on a noisy machine. Correctness is checked on the way: the sparse int8 result
must equal numpy's int32 product bit for bit.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import tvm

from .. import pipeline
from ..format import bsr4x1
from ..kernels.dense_int8 import dense_int8, pack_dense
from ..kernels.epilogue import Epilogue
from ..kernels.intrin import swizzled_position
from ..kernels.sparse_fp32 import sparse_fp32
from ..kernels.sparse_int8 import padded_m, sparse_int8, swizzles
from ..kinds import KernelKey, sparsity_bucket
from ..target import device, mcpu_of
from ..tune.apply import database_roots, schedule
from ..tune.tuner import tune
from .peak import amx_peak_macs, vnni_peak_macs

BERT_SHAPES = [(768, 768), (768, 3072), (3072, 768), (256, 256), (256, 1024), (1024, 256),
               (1024, 1024), (1024, 4096), (4096, 1024)]  # (K, N): bert-base first, then mini, large
SWEEP_SPARSITIES = (0.7, 0.8, 0.9)


@dataclass
class KernelBench:
    m: int
    k: int
    n: int
    sparsity: float
    block_sparsity: float
    threads: int
    target: str
    sparse_int8_us: float  # Intel layout: activations transposed [K, M] -> [N, M], as chained layers keep them
    sparse_int8_mk_us: float  # X[M, K] -> Y[M, N], transposes included (the dense kernel's contract)
    dense_int8_us: float
    sparse_fp32_us: float
    speedup_vs_dense: float
    speedup_mk_vs_dense: float
    exact: bool
    exact_mk: bool
    dense_exact: bool
    fp32_max_rel_err: float
    vnni_in_asm: bool
    vnni_peak_fraction: float
    peak_gmacs: float
    schedules: dict
    # AMX (None where the target or this CPU has none, or the shape does not tile whole)
    dense_amx_us: float | None = None
    dense_amx_exact: bool | None = None
    speedup_vs_dense_amx: float | None = None  # the sparse int8 [K, M] kernel against dense AMX
    amx_peak_fraction: float | None = None  # dense AMX MACs/s over the measured tdpbusd peak
    amx_peak_gmacs: float | None = None
    # the [K, M] layout as a chain hands it over (BERT's FFN: the first kernel writes u8 [N, M] in swizzled
    # 64-token tiles, the second reads them): the 4x64x4 intrinsic's in-lane unpacks, no cross-lane
    # vpermt2b. None where M does not fill whole 64-token tiles
    sparse_int8_chain_us: float | None = None
    exact_chain: bool | None = None
    vnni_peak_fraction_chain: float | None = None


def _time_us(lib: tvm.runtime.Module, args: list) -> float:
    ev = lib.time_evaluator(lib.entry_name, device(), number=10, repeat=7, min_repeat_ms=40)
    return float(np.median(ev(*args).results)) * 1e6


def _cpu_us(lib, args, seconds: float = 0.05) -> float:
    """Thread CPU time per call (1 thread: the work runs on the calling thread). Time the process was
    descheduled does not count, so on a machine other processes share it is far steadier than the
    wall clock."""
    t0 = time.thread_time_ns()
    lib(*args)
    one = max(time.thread_time_ns() - t0, 1)
    n = max(5, int(seconds * 1e9 / one))
    t0 = time.thread_time_ns()
    for _ in range(n):
        lib(*args)
    return (time.thread_time_ns() - t0) / n / 1e3


def time_alternately(runs: dict[str, tuple], rounds: int, threads: int = 1) -> tuple[dict, dict]:
    """Each ``(lib, args)`` of ``runs`` timed in turn, ``rounds`` times, keeping each one's best: ratios from
    the same minutes on a noisy machine. Returns the best wall-clock us per name and, on 1 thread, the best
    thread CPU us (empty otherwise)."""
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (lib, args) in runs.items():
            wall[name].append(_time_us(lib, args))
            if threads == 1:
                cpu[name].append(_cpu_us(lib, args))
    return {n: min(v) for n, v in wall.items()}, {n: min(v) for n, v in cpu.items() if v}


def _run(func, key, target, arrays, roots):
    sched, source = schedule(func, key, target, roots)
    lib = pipeline.build(sched, target)
    args = [tvm.runtime.tensor(a) for a in arrays]
    lib(*args)
    return lib, args, source


def bench_kernel(
    m: int, k: int, n: int, sparsity: float, target: tvm.target.Target, threads: int = 1,
    trials: int = 0, dense_trials: int | None = None, db_root: str = "tuning_logs", seed: int = 0,
    aux_trials: int = 0, log=print,
) -> KernelBench:
    """``trials`` tunes the headline kernel (sparse int8, [K, M] layout), ``dense_trials`` the dense
    baseline, ``aux_trials`` the X[M, K]-layout and fp32 variants (0: records or default knobs)."""
    rng = np.random.default_rng(seed)
    w = bsr4x1.prune(rng.integers(-127, 128, (n, k), dtype=np.int8), sparsity)
    x = rng.integers(0, 256, (m, k), dtype=np.uint8)
    ref = x.astype(np.int32) @ w.astype(np.int32).T
    packed = bsr4x1.pack(w)
    bucket = sparsity_bucket(bsr4x1.block_sparsity(w))
    keys = {
        "t": KernelKey("sparse_int8", m, k, n, bucket, transposed=True),
        "mk": KernelKey("sparse_int8", m, k, n, bucket),
        "dense": KernelKey("dense_int8", m, k, n),
        "fp32": KernelKey("sparse_fp32", m, k, n, bucket, transposed=True),
    }
    for name, key in keys.items():
        budget = {"t": trials, "dense": trials if dense_trials is None else dense_trials}.get(name, aux_trials)
        if budget:
            t0 = time.time()
            res = tune(key, target, budget, db_root=db_root)
            log(f"tuned {key.name}: {res.trials_after} trials, best {res.best_us or float('nan'):.1f} us "
                f"({time.time() - t0:.0f} s)")
    roots = database_roots([db_root])
    mp = padded_m(m)
    xt = np.zeros((k, mp), np.uint8)
    xt[:, :m] = x.T
    pk = [packed.indptr, packed.indices, packed.values]

    lib_t, args_t, src_t = _run(sparse_int8(m, k, n, Epilogue.S32, transposed=True), keys["t"], target,
                                [xt, *pk, np.zeros((n, mp), np.int32)], roots)
    exact = bool(np.array_equal(args_t[-1].numpy()[:, :m].T, ref))
    chain = None
    if swizzles(m):  # the same key: a record's knobs serve both token orders
        perm = np.array([swizzled_position(p) for p in range(mp)])
        lib_c, args_c, _ = _run(sparse_int8(m, k, n, Epilogue.S32, transposed=True, x_swizzled=True), keys["t"],
                                target, [xt[:, perm], *pk, np.zeros((n, mp), np.int32)], roots)
        chain = (lib_c, args_c, bool(np.array_equal(args_c[-1].numpy()[:, :m].T, ref)))
    lib_mk, args_mk, src_mk = _run(sparse_int8(m, k, n, Epilogue.S32), keys["mk"], target,
                                   [x, *pk, np.zeros((m, n), np.int32)], roots)
    exact_mk = bool(np.array_equal(args_mk[-1].numpy(), ref))
    lib_d, args_d, src_d = _run(dense_int8(m, k, n, Epilogue.S32), keys["dense"], target,
                                [x, pack_dense(w), np.zeros((m, n), np.int32)], roots)
    dense_exact = bool(np.array_equal(args_d[-1].numpy(), ref))

    wf = bsr4x1.prune(rng.standard_normal((n, k)).astype(np.float32), sparsity)
    pf = bsr4x1.pack(wf)
    xf = rng.standard_normal((k, mp)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    lib_f, args_f, src_f = _run(sparse_fp32(m, k, n, transposed=True), keys["fp32"], target,
                                [xf, pf.indptr, pf.indices, pf.values, bias, np.zeros((n, mp), np.float32)], roots)
    ref_f = (wf @ xf + bias[:, None])
    fp32_err = float(np.abs(args_f[-1].numpy() - ref_f).max() / max(1e-30, np.abs(ref_f).max()))

    runs = {"t": (lib_t, args_t), "mk": (lib_mk, args_mk), "dense": (lib_d, args_d), "fp32": (lib_f, args_f)}
    if chain is not None:
        runs["chain"] = chain[:2]
    amx = _dense_amx(m, k, n, x, w, ref, target)
    if amx is not None:
        runs["amx"] = amx[:2]
    # time each kernel in turn, twice, keeping the better: the ratios come from the same minutes
    times = {key: [] for key in runs}
    for _ in range(2):
        for key, (lib, args) in runs.items():
            times[key].append(_time_us(lib, args))
    best = {key: min(v) for key, v in times.items()}
    amx_fields = {}
    if amx is not None:
        amx_peak = amx_peak_macs(target, threads)
        amx_fields = {"dense_amx_us": best["amx"], "dense_amx_exact": amx[2],
                      "speedup_vs_dense_amx": best["amx"] / best["t"],
                      "amx_peak_fraction": float(m * k * n / (best["amx"] * 1e-6) / amx_peak),
                      "amx_peak_gmacs": amx_peak / 1e9}
    asm = lib_t.inspect_source("asm")
    peak = vnni_peak_macs(target, threads)
    nnz_macs = bsr4x1.block_mask(w).sum() * 4 * m
    chain_fields = {}
    if chain is not None:
        chain_fields = {"sparse_int8_chain_us": best["chain"], "exact_chain": chain[2],
                        "vnni_peak_fraction_chain": float(nnz_macs / (best["chain"] * 1e-6) / peak)}
    return KernelBench(
        m=m, k=k, n=n, sparsity=sparsity, block_sparsity=bsr4x1.block_sparsity(w), threads=threads,
        target=mcpu_of(target),
        sparse_int8_us=best["t"], sparse_int8_mk_us=best["mk"], dense_int8_us=best["dense"],
        sparse_fp32_us=best["fp32"],
        speedup_vs_dense=best["dense"] / best["t"], speedup_mk_vs_dense=best["dense"] / best["mk"],
        exact=exact, exact_mk=exact_mk, dense_exact=dense_exact, fp32_max_rel_err=fp32_err,
        vnni_in_asm="vpdpbusd" in asm,
        vnni_peak_fraction=float(nnz_macs / (best["t"] * 1e-6) / peak), peak_gmacs=peak / 1e9,
        schedules={"sparse_int8": src_t, "sparse_int8_mk": src_mk, "dense_int8": src_d, "sparse_fp32": src_f},
        **amx_fields, **chain_fields,
    )


def _dense_amx(m: int, k: int, n: int, x: np.ndarray, w: np.ndarray, ref: np.ndarray, target: tvm.target.Target):
    """(library, args, exact) of the dense AMX kernel, or None where it cannot run here."""
    from ..kernels.amx import FEATURES, dense_amx, fits, targets_amx
    from ..runtime import cpu
    from ..runtime.amx import AMXUnavailableError, request_permission

    if not targets_amx(target) or cpu.missing(list(FEATURES)) or not fits(m, k, n):
        return None
    try:
        request_permission()
    except AMXUnavailableError:
        return None
    lib = pipeline.build(tvm.IRModule({"main": dense_amx(m, k, n)}), target)
    args = [tvm.runtime.tensor(a) for a in (x, pack_dense(w), np.zeros((m, n), np.int32))]
    lib(*args)
    return lib, args, bool(np.array_equal(args[-1].numpy(), ref))


def as_dict(result: KernelBench) -> dict:
    return asdict(result)

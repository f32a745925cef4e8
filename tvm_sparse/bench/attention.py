"""Int8 attention with its matmuls on AMX against the VNNI kernel: one process, one table.

For each shape: ``attention_int8`` built twice, the same layout (``--layout``: ``rows`` for Q, K, V as
``[tokens, width]`` fp32; ``t`` for a sparse QKV projection's ``[width, tokens]`` fp32; ``u8`` for its
prequantized u8 output, what bert-base's 90% library runs), both checked bit for bit against each other
and close to numpy's fp32 attention before they are timed in turn, ``rounds`` times, keeping each one's
best: the ratio comes from the same minutes.

    python -m tvm_sparse.bench.attention [--shapes 128x12x64,128x12x32,64x12x64] [--layout u8]
        [--rounds 5] [--json out.json]

A shape is ``SEQxHEADSxDIM`` (bert-base: 128x12x64; all-MiniLM-L6-v2: 128x12x32), batch 1.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import tvm

from .. import pipeline
from ..kernels.attention_int8 import amx_supported, attention_int8, reference
from .kernel import time_alternately

SHAPES = ((128, 12, 64), (128, 12, 32), (64, 12, 64))
LAYOUTS = ("rows", "t", "u8")


def _arrays(seq: int, heads: int, dim: int, layout: str, rng) -> tuple[list[np.ndarray], np.ndarray]:
    """The kernel's inputs for one fused ``[seq, 3*heads*dim]`` QKV (as its layout passes it), and the
    fp32 reference output."""
    hd = heads * dim
    qkv = (rng.standard_normal((seq, 3 * hd)) * 2).astype(np.float32)
    mask = np.zeros((1, 1, 1, seq), np.float32)
    mask[..., seq - seq // 8:] = np.finfo(np.float32).min  # padding, as the exporter's mask writes it
    ref = reference(qkv[:, :hd], qkv[:, hd:2 * hd], qkv[:, 2 * hd:], mask, heads, 1 / np.sqrt(dim))
    if layout == "rows":
        return [qkv, qkv, qkv, mask], ref
    t = np.ascontiguousarray(qkv.T)
    if layout == "t":
        return [t, t, t, mask], ref
    per_head = t.reshape(3, heads, dim, seq)
    scales = (np.abs(per_head).max(axis=(2, 3)) / np.float32(127)).astype(np.float32)
    u8 = (np.round(per_head * (np.float32(1) / scales)[:, :, None, None]) + 128).astype(np.uint8)
    u8 = u8.reshape(3 * hd, seq)
    return [u8, u8, u8, scales, mask], ref


def bench_one(seq: int, heads: int, dim: int, layout: str, target, rounds: int = 5, seed: int = 0,
              threads: int = 1) -> dict:
    if not amx_supported(seq, dim):
        raise ValueError(f"AMX attention does not take seq {seq}, head_dim {dim}")
    hd = heads * dim
    arrays, ref = _arrays(seq, heads, dim, layout, np.random.default_rng(seed))
    runs, outs = {}, {}
    for name, amx in (("vnni", False), ("amx", True)):
        func = attention_int8(1, seq, heads, dim, 1 / np.sqrt(dim), (1, 1, 1, seq), width=3 * hd,
                              offsets=(0, hd, 2 * hd), transposed=layout != "rows", prequantized=layout == "u8",
                              amx=amx)
        lib = pipeline.build(tvm.IRModule({"main": func}), target)
        args = [tvm.runtime.tensor(a) for a in arrays] + [tvm.runtime.tensor(np.zeros((seq, hd), np.float32))]
        lib(*args)
        runs[name], outs[name] = (lib, args), args[-1].numpy()
    cos = (outs["amx"] * ref).sum(-1) / np.linalg.norm(outs["amx"], axis=-1) / np.linalg.norm(ref, axis=-1)
    best, best_cpu = time_alternately(runs, rounds, threads)
    return {"seq": seq, "heads": heads, "dim": dim, "layout": layout, "us": best, "cpu_us": best_cpu,
            "identical": bool(np.array_equal(outs["amx"], outs["vnni"])), "min_cosine_to_fp32": float(cos.min()),
            "amx_speedup": best["vnni"] / best["amx"]}


def _shape(text: str) -> tuple[int, int, int]:
    try:
        seq, heads, dim = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a shape is SEQxHEADSxDIM, got {text!r}") from None
    return seq, heads, dim


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default=",".join("x".join(map(str, s)) for s in SHAPES), help="SEQxHEADSxDIM,...")
    ap.add_argument("--layout", choices=LAYOUTS, default="u8")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--target", default="host")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    from ..kernels.amx import targets_amx
    from ..runtime.amx import request_permission
    from ..target import resolve

    os.environ.setdefault("TVM_NUM_THREADS", "1")
    threads = int(os.environ["TVM_NUM_THREADS"])
    target = resolve(a.target, threads)
    if not targets_amx(target):
        raise SystemExit(f"target {a.target} has no AMX: nothing to compare")
    request_permission()
    rows = [bench_one(*_shape(s), a.layout, target, a.rounds, threads=threads) for s in a.shapes.split(",")]
    print(f"int8 attention, batch 1, layout {a.layout}, {threads} thread(s): best of {a.rounds} rounds, us "
          "(thread CPU time in brackets)")
    print("| seq x heads x dim | VNNI | AMX | AMX speedup | identical | min cosine to fp32 |")
    print("|---|---:|---:|---:|---|---:|")
    for r in rows:
        c = r["cpu_us"]
        print(f"| {r['seq']}x{r['heads']}x{r['dim']} | {r['us']['vnni']:.1f} ({c.get('vnni', 0):.1f}) | "
              f"{r['us']['amx']:.1f} ({c.get('amx', 0):.1f}) | {r['amx_speedup']:.2f}x | {r['identical']} | "
              f"{r['min_cosine_to_fp32']:.4f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()

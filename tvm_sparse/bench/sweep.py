"""The kernel sweep: every BERT Linear shape at 70/80/90% 4x1 sparsity -> CSV, JSON and a plot of
speedup over dense int8 vs sparsity."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import tvm

from .kernel import BERT_SHAPES, SWEEP_SPARSITIES, as_dict, bench_kernel

COLUMNS = ["k", "n", "sparsity", "sparse_int8_us", "sparse_int8_mk_us", "dense_int8_us", "sparse_fp32_us",
           "speedup_vs_dense", "speedup_mk_vs_dense", "vnni_peak_fraction", "exact", "exact_mk"]


def run_sweep(target: tvm.target.Target, threads: int, trials: int, dense_trials: int | None, db: str,
              out: Path, m: int = 128) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, n in BERT_SHAPES:
        for s in SWEEP_SPARSITIES:
            try:
                d = as_dict(bench_kernel(m, k, n, s, target, threads, trials, dense_trials, db))
            except Exception as err:  # one failed point must not lose the others
                print(f"K={k} N={n} s={s:.0%}: FAILED: {type(err).__name__}: {err}", flush=True)
                continue
            rows.append(d)
            print(f"K={k} N={n} s={s:.0%}: sparse {d['sparse_int8_us']:.1f} us, dense {d['dense_int8_us']:.1f} us, "
                  f"{d['speedup_vs_dense']:.2f}x (X[M,K] layout {d['speedup_mk_vs_dense']:.2f}x), "
                  f"exact={d['exact']}", flush=True)
            _write(rows, out)  # after every point: an interrupted sweep keeps what it measured
    _plot(rows, out / "speedup_vs_sparsity.png", m, threads)
    return rows


def _write(rows: list[dict], out: Path) -> None:
    with (out / "kernel_sweep.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    (out / "kernel_sweep.json").write_text(json.dumps(rows, indent=1) + "\n")


def _plot(rows: list[dict], path: Path, m: int, threads: int) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install 'tvm-sparse[compare]'): no plot")
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for k, n in BERT_SHAPES:
        pts = sorted((r["sparsity"], r["speedup_vs_dense"]) for r in rows if (r["k"], r["n"]) == (k, n))
        if pts:
            ax.plot([p[0] * 100 for p in pts], [p[1] for p in pts], marker="o", label=f"{k}x{n}")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xlabel("4x1 block sparsity (%)")
    ax.set_ylabel("speedup over tuned dense int8 VNNI")
    ax.set_title(f"sparse int8 VNNI kernel, M={m}, {threads} thread(s)")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)

"""Runs on the target Xeon with only TVM's runtime (no compiler): times the kernels and models that
``xeon_prepare`` cross-compiled, checks the kernels' results bit for bit and the models' outputs
against the fidelity reference computed at prepare time, and times onnxruntime (fp32 and int8) on
the same models. One JSON line per figure on stdout.

    TVM_USE_RUNTIME_LIB=1 python xeon_remote.py BUNDLE_DIR --threads 16            # one process
    TVM_USE_RUNTIME_LIB=1 python xeon_remote.py BUNDLE_DIR --sweep 1,4,16 --out DIR

``--sweep`` runs every (engine, model, thread count) in its own process (TVM's and onnxruntime's
thread pools both spin: never two runtimes in one process), then writes ``DIR/xeon_e2e.json`` (the
machine, every figure and check) and ``DIR/xeon_e2e.md`` (the table with ratios). Every figure is
appended to ``DIR/xeon_e2e.jsonl`` as it comes, so a run cut short keeps what it measured.

Deliberately standalone (numpy, tvm.runtime, onnxruntime): it must not import the compiler.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _timer(fn, seconds: float, min_runs: int = 20, max_runs: int = 200) -> dict:
    for _ in range(3):
        fn()
    t = time.perf_counter()
    fn()
    one = time.perf_counter() - t
    runs = max(min_runs, min(max_runs, int(seconds / max(one, 1e-6))))
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return {"median_ms": times[len(times) // 2] * 1e3, "p90_ms": times[int(len(times) * 0.9)] * 1e3,
            "min_ms": times[0] * 1e3, "runs": runs}


def _fidelity(out, ref) -> dict:
    """Against the reference hidden state [1, L, H]: per-token cosine, max abs and relative error."""
    import numpy as np

    a, b = out.reshape(-1, out.shape[-1]).astype(np.float64), ref.reshape(-1, ref.shape[-1]).astype(np.float64)
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return {"cos_min": float(cos.min()), "cos_mean": float(cos.mean()), "max_abs_err": float(np.abs(a - b).max()),
            "rel_err": float(np.linalg.norm(a - b) / np.linalg.norm(b)), "ref_max_abs": float(np.abs(b).max())}


def _ref(bundle: Path, tag: str):
    import numpy as np

    path = bundle / "models" / f"{tag}_ref.npz"
    return np.load(path) if path.is_file() else None


def kernels(bundle: Path, threads: int, only: str | None = None) -> None:
    import numpy as np
    import tvm

    for npz in sorted((bundle / "kernels").glob("*.npz")):
        if only and only not in npz.stem:
            continue
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


def candidates(bundle: Path, threads: int, out: Path) -> None:
    """Time every schedule candidate ``tune.offline`` built (1 thread: per-core efficiency decides);
    writes ``out/candidates.json``, the index with ``run_secs`` added, for ``offline commit``."""
    import numpy as np
    import tvm

    cdir = bundle / "candidates"
    index = json.loads((cdir / "index.json").read_text())
    inputs = {}
    for entry in index:
        if entry["inputs"] not in inputs:
            data = np.load(cdir / entry["inputs"])
            inputs[entry["inputs"]] = [tvm.runtime.tensor(data[f"arg{i}"]) for i in range(int(data["nargs"]))]
        lib = tvm.runtime.load_module(str(cdir / entry["lib"]))
        ev = lib.time_evaluator(lib.entry_name, tvm.cpu(), number=10, repeat=5, min_repeat_ms=20)
        entry["run_secs"] = [float(t) for t in ev(*inputs[entry["inputs"]]).results]
        entry["threads"] = threads
        print(json.dumps({"kind": "candidate", "lib": entry["lib"], "us": min(entry["run_secs"]) * 1e6}), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "candidates.json").write_text(json.dumps(index, indent=1))


def models(bundle: Path, threads: int, seconds: float, only: str | None = None) -> None:
    import numpy as np
    import tvm
    from tvm.runtime.vm import VirtualMachine  # not imported by `import tvm` with the runtime alone

    for so in sorted((bundle / "models").glob("*.so")):
        if only and only != so.stem:
            continue
        meta = json.loads(so.with_suffix(".json").read_text())
        if "amx-tile" in meta.get("target_features", []):  # the package's own request, copied into the bundle
            sys.path.insert(0, str(bundle))
            import amx  # noqa: PLC0415

            amx.request_permission()  # without it the first tile instruction faults (SIGILL, no message)
        tag = so.stem.rsplit("_", 1)[0]
        ref = _ref(bundle, tag)
        sha_ok = hashlib.sha256(so.read_bytes()).hexdigest() == meta.get("sha256")
        lib = tvm.runtime.load_module(str(so))
        vm = VirtualMachine(lib, tvm.cpu())
        arrays = [ref[i["name"]] if ref is not None else np.ones(i["shape"], np.int64) for i in meta["inputs"]]
        feeds = [tvm.runtime.tensor(np.ascontiguousarray(a, np.int64)) for a in arrays]
        row = {"kind": "model", "engine": "tvm-sparse int8", "name": so.stem, "tag": tag, "threads": threads,
               "sha256_ok": sha_ok}
        if ref is not None:
            row["fidelity"] = _fidelity(vm["main"](*feeds).numpy(), ref["hidden"])
        row.update(_timer(lambda vm=vm, feeds=feeds: vm["main"](*feeds), seconds))
        print(json.dumps(row), flush=True)


def onnxruntime(bundle: Path, threads: int, seconds: float, only: str | None = None) -> None:
    import numpy as np
    import onnxruntime as ort

    configs = json.loads((bundle / "onnx" / "models.json").read_text())
    for onnx_file in sorted((bundle / "onnx").glob("*.onnx")):
        if only and only != onnx_file.stem:
            continue
        tag, precision = onnx_file.stem.rsplit("_", 1)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        s = ort.InferenceSession(str(onnx_file), opts, providers=["CPUExecutionProvider"])
        ref = _ref(bundle, tag)
        shape = configs[tag]["shape"]
        feeds = {i.name: (ref[i.name] if ref is not None else np.ones(shape, np.int64)).astype(np.int64)
                 for i in s.get_inputs()}
        row = {"kind": "model", "engine": f"onnxruntime {precision}", "name": onnx_file.stem, "tag": tag,
               "threads": threads, "ort": ort.__version__}
        if ref is not None:
            row["fidelity"] = _fidelity(s.run(None, feeds)[0], ref["hidden"])
        row.update(_timer(lambda s=s, feeds=feeds: s.run(None, feeds), seconds))
        print(json.dumps(row), flush=True)


def machine() -> dict:
    """The CPU as the kernel reports it (model, flags, topology) and the software versions."""
    info: dict = {"python": platform.python_version(), "nproc": os.cpu_count()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        first = text.split("\n\n")[0]
        fields = dict(line.split(":", 1) for line in first.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        info["model_name"] = fields.get("model name")
        info["flags"] = fields.get("flags", "")
        info["processors"] = text.count("processor\t:")
    except OSError:
        pass
    try:
        info["lscpu"] = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib import metadata

    for name in ("numpy", "onnxruntime", "torch", "transformers", "apache-tvm-ffi"):
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = None
    return info


def _jobs(bundle: Path, what: list[str]) -> list[tuple[str, str]]:
    jobs = []
    if "models" in what:
        jobs += [("models", so.stem) for so in sorted((bundle / "models").glob("*.so"))]
    if "onnxruntime" in what:
        jobs += [("onnxruntime", f.stem) for f in sorted((bundle / "onnx").glob("*.onnx"))]
    if "kernels" in what and any((bundle / "kernels").glob("*.npz")):
        jobs.append(("kernels", ""))
    return jobs


def sweep(bundle: Path, threads: list[int], what: list[str], seconds: float, out: Path,
          deadline_s: float) -> None:
    """Every job in its own process at every thread count; the results as JSON and a markdown table."""
    out.mkdir(parents=True, exist_ok=True)
    log = out / "xeon_e2e.jsonl"
    info = machine()
    print(json.dumps({"kind": "machine", **{k: v for k, v in info.items() if k != "lscpu"}}), flush=True)
    rows, failures, t0 = [], [], time.time()
    for t in threads:
        for engine, only in _jobs(bundle, what):
            if time.time() - t0 > deadline_s:
                failures.append({"engine": engine, "name": only, "threads": t, "error": "deadline: not run"})
                continue
            env = dict(os.environ, TVM_NUM_THREADS=str(t), OMP_NUM_THREADS=str(t))
            cmd = [sys.executable, __file__, str(bundle), "--threads", str(t), "--what", engine,
                   "--seconds", str(seconds)] + (["--only", only] if only else [])
            p = subprocess.run(cmd, env=env, capture_output=True, text=True)
            for line in p.stdout.splitlines():
                if line.startswith("{"):
                    rows.append(json.loads(line))
                    with log.open("a") as f:
                        f.write(line + "\n")
                    print(line, flush=True)
            if p.returncode != 0:
                failures.append({"engine": engine, "name": only, "threads": t, "rc": p.returncode,
                                 "stderr": p.stderr[-2000:]})
                print(f"FAILED {engine} {only} threads={t} rc={p.returncode}\n{p.stderr[-2000:]}", flush=True)
    export_info = bundle / "onnx" / "export.json"
    result = {"machine": info, "results": rows, "failures": failures, "seconds_per_figure": seconds,
              "onnx_export": json.loads(export_info.read_text()) if export_info.is_file() else None,
              "isa_check": _isa_check(bundle, info.get("flags", "")), "wall_s": time.time() - t0}
    (out / "xeon_e2e.json").write_text(json.dumps(result, indent=1))
    (out / "xeon_e2e.md").write_text(table(result))
    print(table(result), flush=True)


def _isa_check(bundle: Path, flags: str) -> dict:
    """The CPU features each library's metadata requires, against this CPU's flags (the package's own
    check, ``runtime/cpu.py``, copied into the bundle: this machine has no tvm_sparse)."""
    sys.path.insert(0, str(bundle))
    import cpu  # noqa: PLC0415

    out = {}
    for meta in sorted((bundle / "models").glob("*.json")):
        req = json.loads(meta.read_text()).get("target_features", [])
        out[meta.stem] = {"required": len(req), "missing": cpu.missing(req, cpu.Host(frozenset(flags.split())))}
    return out


def table(result: dict) -> str:
    """Markdown: one line per (model, threads) with TVM int8 beside onnxruntime fp32 and int8."""
    by = {}
    for r in result["results"]:
        if r.get("kind") == "model":
            by[(r["tag"], r["threads"], r["engine"])] = r
    tags = sorted({k[0] for k in by}, key=lambda t: (t.split("_s")[0] != "bert-mini", t))
    threads = sorted({k[1] for k in by})
    m = result["machine"]
    lines = [f"CPU: {m.get('model_name')} ({m.get('processors')} logical CPUs); onnxruntime {m.get('onnxruntime')}",
             "", "Batch 1, sequence 128; median / p90 ms. Ratios: onnxruntime median / tvm-sparse median.", "",
             "| model | sparsity | threads | tvm-sparse int8 | ort fp32 | ort int8 | vs fp32 | vs int8 |",
             "|---|---|---|---|---|---|---|---|"]

    def cell(r):
        return f"{r['median_ms']:.2f} / {r['p90_ms']:.2f}" if r else "-"

    for tag in tags:
        name, sp = tag.rsplit("_s", 1)
        for t in threads:
            tv, f32, i8 = (by.get((tag, t, e)) for e in ("tvm-sparse int8", "onnxruntime fp32", "onnxruntime int8"))
            if not (tv or f32 or i8):
                continue
            r32 = f"{f32['median_ms'] / tv['median_ms']:.2f}x" if tv and f32 else "-"
            r8 = f"{i8['median_ms'] / tv['median_ms']:.2f}x" if tv and i8 else "-"
            lines.append(f"| {name} | {sp}% | {t} | {cell(tv)} | {cell(f32)} | {cell(i8)} | {r32} | {r8} |")
    lines += ["", "Fidelity against onnxruntime fp32 run at prepare time on the exact pruned model compiled "
              "(per-token cosine min / mean, max abs error, relative L2 error):", "",
              "| model | engine | threads | cos min | cos mean | max abs err | rel err |",
              "|---|---|---|---|---|---|---|"]
    for (tag, t, e), r in sorted(by.items()):
        f = r.get("fidelity")
        if f:
            lines.append(f"| {tag} | {e} | {t} | {f['cos_min']:.5f} | {f['cos_mean']:.5f} | "
                         f"{f['max_abs_err']:.3g} | {f['rel_err']:.3g} |")
    kern = [r for r in result["results"] if r.get("kind") == "kernel"]
    if kern:
        lines += ["", f"Kernels: {sum(r['correct'] for r in kern)}/{len(kern)} bit-exact / within tolerance."]
    if result.get("failures"):
        lines += ["", "Failures:"] + [f"- {f['engine']} {f['name']} threads={f['threads']}: "
                                      f"{f.get('error') or f.get('stderr', '')[-300:]}" for f in result["failures"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--sweep", help="thread counts, comma separated: each job in its own process")
    ap.add_argument("--out", default="xeon_results", help="with --sweep: where the JSON and markdown go")
    ap.add_argument("--what", default="kernels,models,onnxruntime")
    ap.add_argument("--only", help="one library / ONNX file (its stem)")
    ap.add_argument("--seconds", type=float, default=4.0, help="timed seconds per figure (20 to 200 runs)")
    ap.add_argument("--deadline", type=float, default=1e9, help="with --sweep: start no job after this many s")
    a = ap.parse_args()
    bundle = Path(a.bundle).resolve()
    what = a.what.split(",")
    if a.sweep:
        sweep(bundle, [int(t) for t in a.sweep.split(",")], what, a.seconds, Path(a.out), a.deadline)
        return
    if a.threads is None:
        ap.error("--threads or --sweep")
    os.environ["TVM_NUM_THREADS"] = str(a.threads)  # before the runtime's thread pool starts
    if "kernels" in what:
        kernels(bundle, a.threads, a.only)
    if "candidates" in what:
        candidates(bundle, a.threads, Path(a.out))
    if "models" in what:
        models(bundle, a.threads, a.seconds, a.only)
    if "onnxruntime" in what:
        onnxruntime(bundle, a.threads, a.seconds, a.only)


if __name__ == "__main__":
    main()

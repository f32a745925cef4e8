"""``tvm-sparse prune | tune | compile | run | bench | bench-e2e``: the graph-side subcommands.

``add_commands(subparsers)`` registers them on the top-level parser (``cli/__init__.py``).
"""

from __future__ import annotations

import argparse
import time
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


def _lengths(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of token counts, e.g. 16,32,64,128; got {text!r}") \
            from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"lengths must be positive integers, got {text!r}")
    return tuple(sorted(set(values)))


def _add_shape(p: argparse.ArgumentParser, buckets: bool = False) -> None:
    if not buckets:
        p.add_argument("--seq-len", type=int, default=128, help="fixed sequence length L (default 128)")
        p.add_argument("--batch", type=int, default=1, help="fixed batch size B (default 1)")
        return
    p.add_argument("--seq-len", type=_lengths, default=(128,),
                   help="sequence length buckets, a comma list (default 128), e.g. 16,32,64,128: the library "
                        "takes any length up to the longest, run in the smallest bucket that holds it (multiples "
                        "of 16 keep int8 attention on its VNNI kernel)")
    p.add_argument("--batch", type=_positive, default=1,
                   help="the largest batch (default 1); batches 1, 2, 4, ... up to it are compiled, any batch "
                        "runs (padded to a bucket, or split)")
    p.add_argument("--batches", type=_lengths, default=None,
                   help="exact batch buckets instead, a comma list (e.g. 1,8)")


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
    p.add_argument("--tokenizer", default=None,
                   help="Hugging Face model directory whose tokenizer reads --calib and travels in the library "
                        "(for encode/classify and run --text; default: MODEL itself when it is a directory)")
    p.add_argument("--calib-method", default="auto", choices=["auto", "percentile", "minmax"],
                   help="activation range: 99.99th percentile or min/max; auto (default): min/max for a "
                        "'tvm-sparse sparsify' output (distillation leaves a few outlier channels the "
                        "percentile clips: 0.854 against 0.896 for MiniLM at 80%%), percentile otherwise")
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
    p.add_argument("model", help="ONNX model, or a Hugging Face model directory (exported to the cache first)")
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
    p.add_argument("model", help="ONNX model, or a Hugging Face model directory")
    _add_shape(p, buckets=True)
    _add_precision(p)
    _add_tuning(p, default_trials=32)
    p.add_argument("--kernel-trials", type=int, default=0,
                   help="first tune every sparse and dense kernel the graph uses up to this many trials each "
                        "(the sparse design space has 6 points; default 0: kernels keep their records)")
    _add_calibration(p)
    p.set_defaults(func=_cmd_tune)

    p = subparsers.add_parser(
        "compile", help="compile an ONNX model to one shared library (.so + .json)",
        description="Import at each (batch, length) bucket, swap every Linear for the sparse or dense "
                    "kernel, tune the rest, build every bucket into one library, and write OUT.so plus "
                    "OUT.json (metadata: shapes, task, pooling, tokenizer). Load it with "
                    "tvm_sparse.load('OUT.so') and call .encode(sentences) / .classify(texts) or the model "
                    "itself on token ids. Example: tvm-sparse compile bert90.onnx -o bert.so "
                    "--seq-len 16,32,64,128 --batch 4 --int8 --tokenizer HF_DIR")
    p.add_argument("model", help="ONNX model, or a Hugging Face model directory (exported to a cache "
                                 "directory, never into it; $TVM_SPARSE_CACHE, default ~/.cache/tvm-sparse)")
    p.add_argument("-o", "--output", required=True, help="shared library to write (metadata goes beside it)")
    _add_shape(p, buckets=True)
    _add_precision(p)
    _add_tuning(p, default_trials=8)
    _add_calibration(p)
    p.add_argument("--threshold", type=float, default=None,
                   help="block sparsity at which a Linear goes sparse, whatever was measured (default: per layer, "
                        "the kernel measured fastest on this CPU where the records have it, else 0.6, or 0.84 "
                        "where the dense kernel runs on AMX)")
    p.add_argument("--choose", choices=("auto", "measure", "threshold"), default="auto",
                   help="how each int8 Linear gets its kernel: auto = measurements in the records (tuning_logs/, "
                        "shipped schedules/) else the threshold; measure = also time the kinds for shapes not "
                        "measured yet (on this CPU; kept in --work-dir); threshold = the threshold alone")
    sparsify_report.add_arguments(p, dense=True)
    p.set_defaults(func=_cmd_compile)

    p = subparsers.add_parser(
        "run", help="run a compiled library: embeddings or labels of text, or the output of token ids",
        description="Loads OUT.so and runs it. --text (repeatable): an embedding model prints each text's "
                    "embedding (pooled and normalized as the model's configuration says), a classifier its "
                    "label and logits, with the tokenizer the library carries. --npz: input_ids (and "
                    "optionally attention_mask, token_type_ids). Neither: random ids. "
                    "Example: tvm-sparse run minilm.so --text 'hello world' --text 'good morning'")
    p.add_argument("library", help="compiled .so")
    p.add_argument("--npz", default=None, help=".npz with the input arrays")
    p.add_argument("--text", default=None, action="append", help="a text to encode or classify (repeatable)")
    p.add_argument("--tokenizer", default=None,
                   help="Hugging Face model directory with the tokenizer (only for a library that carries none)")
    p.add_argument("--threads", type=_positive, default=None, help="threads (default: the library's num-cores)")
    p.add_argument("--save", default=None, help="write the output (embeddings, logits or hidden state) to this .npy")
    p.set_defaults(func=_cmd_run)

    p = subparsers.add_parser(
        "bench", help="time a compiled library (and onnxruntime fp32 and int8 on the same ONNX)",
        description="Median and p90 latency of a compiled library on random ids at its largest bucket; with "
                    "--onnx, onnxruntime on that model as it is (fp32) and quantized by its quantize_dynamic "
                    "(int8, into a temporary directory), each in a separate process (thread pools must not "
                    "compete). --lengths times every length of a comma list instead, batch 1, against "
                    "onnxruntime with dynamic shapes, and --plot draws latency against length.")
    p.add_argument("library", help="compiled .so")
    p.add_argument("--onnx", default=None, help="ONNX model to compare against with onnxruntime")
    p.add_argument("--runs", type=_positive, default=50, help="timed runs (default 50)")
    p.add_argument("--threads", type=int, default=None, help="threads (default: the library's num-cores)")
    p.add_argument("--lengths", type=_lengths, default=None,
                   help="time these real lengths (e.g. 8,16,32,64,128,256,512), batch 1, the library "
                        "padding each to its bucket; onnxruntime runs each at its own length")
    p.add_argument("--plot", default=None, help="with --lengths: write latency against length to this .png")
    p.set_defaults(func=_cmd_bench)


    p = subparsers.add_parser(
        "bench-e2e", help="end-to-end benchmark: BERTs x sparsities x threads against onnxruntime",
        description="Builds (or reuses, under --out) bert-mini, the real all-MiniLM-L6-v2 and bert-base at each "
                    "4x1 sparsity, compiles this project's int8 library and its all-dense int8 path, "
                    "quantizes the same pruned ONNX with onnxruntime's quantize_dynamic, and times each "
                    "engine in its own process: median and p90 ms and ratios, in OUT/results.json and "
                    "OUT/results.md. --throughput adds the paper's metric: the highest sequences/s whose p90 "
                    "latency stays under a bound (bert-base: 50 ms), over instance counts (each pinned to its own "
                    "cores, all at once) and --batches, for this project and onnxruntime int8. Compiles use the "
                    "shipped graph records (schedules/<mcpu>/graph) and --work-dir. Example: "
                    "tvm-sparse bench-e2e --models bert-base --sparsities 0.9 --threads 1")
    p.add_argument("--out", default="out/e2e", help="cache and results directory (default out/e2e)")
    p.add_argument("--models", default=",".join(_e2e().MODELS),
                   help="comma list of bert-mini, minilm (the real all-MiniLM-L6-v2), bert-base")
    p.add_argument("--sparsities", default="0,0.8,0.9", help="comma list of 4x1 sparsities (default 0,0.8,0.9)")
    p.add_argument("--threads", default="1,2", help="comma list of thread counts (default 1,2)")
    p.add_argument("--engines", default=",".join(_e2e().ENGINES),
                   help="comma list of tvm_int8, tvm_dense, ort_fp32, ort_int8 (default: all four), itrex, "
                        "ov_int8, ov_bf16 (OpenVINO: pip install openvino)")
    p.add_argument("--runs", type=_positive, default=50, help="timed runs per engine (default 50)")
    p.add_argument("--seq-len", type=int, default=128, help="sequence length (default 128)")
    p.add_argument("--trials", type=int, default=0,
                   help="graph tuning trials per task at compile (default 0: shipped and --work-dir records)")
    p.add_argument("--work-dir", default="tuning_logs/e2e", help="tuning database directory for compiles")
    p.add_argument("--target", default="host", help=TARGET_HELP + "; compiled for 1 core")
    p.add_argument("--dense-per-sparsity", action="store_true",
                   help="compile the dense path from each pruned model (default: once per model, from 0%%)")
    p.add_argument("--choose", choices=("auto", "measure", "threshold"), default="auto",
                   help="how the int8 libraries pick each Linear's kernel (compile --choose; default auto)")
    p.add_argument("--throughput", default="",
                   help="comma list of models for the throughput metric (tvm int8 vs onnxruntime int8)")
    p.add_argument("--throughput-sparsity", type=float, default=0.9)
    p.add_argument("--batches", default="1,2,4,8", help="batch sizes for --throughput (default 1,2,4,8)")
    p.add_argument("--build-only", action="store_true", help="compile and cache everything, time nothing")
    p.add_argument("--itrex-python", default="",
                   help="python of an environment with Intel Extension for Transformers 1.4.2: adds the paper's "
                        "Intel engine with --engines ...,itrex (setup: tvm_sparse/bench/peers/itrex_run.py)")
    p.add_argument("--throughput-cores", type=int, default=0,
                   help="cores the throughput instances share (default: every core this process may use)")
    p.add_argument("--throughput-seconds", type=float, default=5.0, help="timed window per configuration")
    p.add_argument("--throughput-trials", default="0,0",
                   help="HEAVY,LIGHT graph tuning trials per task for batch sizes other than 1, whose "
                        "operators have no shipped records (default 0,0: shipped records only)")
    p.set_defaults(func=_cmd_bench_e2e)


def _e2e():
    from ..bench import e2e as bench_e2e

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
    for e in _csv(args.engines):
        peer = e2e.PEERS.get(e)
        if peer is not None and peer.needs and not getattr(args, peer.needs):
            raise SystemExit(f"--engines {e} needs {peer.needs_flag} (see tvm_sparse/bench/peers/{e}.py)")
        if peer is not None and (why := peer.unavailable()):
            raise SystemExit(f"--engines {e}: {why}")
    cfg = e2e.Config(out_dir=Path(args.out), models=_csv(args.models), sparsities=_csv(args.sparsities, float),
                     threads=_csv(args.threads, int), seq_len=args.seq_len, runs=args.runs, target=args.target,
                     work_dir=Path(args.work_dir), trials=args.trials, dense_per_sparsity=args.dense_per_sparsity,
                     choose=args.choose,
                     throughput_models=_csv(args.throughput), throughput_sparsity=args.throughput_sparsity,
                     throughput_batches=_csv(args.batches, int), throughput_cores=args.throughput_cores,
                     throughput_seconds=args.throughput_seconds,
                     throughput_trials=_csv(args.throughput_trials, int),
                     engines=_csv(args.engines), build_only=args.build_only, itrex_python=args.itrex_python)
    e2e.run(cfg, log=lambda *a: print(*a, flush=True))


def _onnx_path(model: str, seq_len: int = 128) -> Path:
    """The ONNX file for MODEL: a Hugging Face directory is exported into the cache, never into itself."""
    from ..graph.hf import model_source

    return model_source(model, seq_len=seq_len, log=lambda *a: print(*a, flush=True))[0]


def _cmd_prune(args) -> None:
    from ..graph.outputs import refuse_clashes
    from ..graph.prune import format_report, prune_file, report_path

    refuse_clashes({"input model": args.model}, {"pruned model": args.output,
                                                 "pruning report": report_path(args.output)})
    if Path(args.model).is_dir():  # the export would be the input too: nothing may land in the directory
        refuse_clashes({"input model": Path(args.model) / "model.onnx"}, {"pruned model": args.output})
        if Path(args.output).resolve().parent == Path(args.model).resolve():
            from ..graph.errors import GraphError

            raise GraphError(f"{args.output} is inside the Hugging Face directory {args.model}: write the pruned "
                             "model elsewhere (a model directory is never written to)")
    src = _onnx_path(args.model)
    report = prune_file(src, args.output, args.sparsity)
    print(format_report(report))
    print(f"wrote {args.output} and {report_path(args.output)}")
    sparsify_report.after_prune(args, src)


def _samples(args, static, batch: int, seq_len: int) -> list[dict]:
    from ..graph.calibrate import random_samples

    if args.calib is None:
        print("calibrating on random token ids (pass --calib for real text)")
        return random_samples(static, batch, seq_len)
    if args.calib.endswith(".npz"):
        data = np.load(args.calib)
        n = data["input_ids"].shape[0]
        return [{k: data[k][i:i + batch] for k in data.files} for i in range(0, n - batch + 1, batch)]
    from ..graph.text import tokenize

    lines = [x.strip() for x in Path(args.calib).read_text().splitlines() if x.strip()]
    enc = tokenize(args.tokenizer, lines, seq_len)
    return [{k: v[i:i + batch] for k, v in enc.items()} for i in range(0, len(lines) - batch + 1, batch)]


def calib_method(requested: str, model: str | Path) -> str:
    """``auto`` -> ``minmax`` for a directory ``tvm-sparse sparsify`` wrote (it has ``sparsify.json``),
    ``percentile`` for anything else; an explicit method as given."""
    if requested != "auto":
        return requested
    from ..sparsify.output import SUMMARY

    return "minmax" if (Path(model) / SUMMARY).is_file() else "percentile"


def _options(args):
    from ..graph import calibrate, importer
    from ..graph.compile import CompileOptions
    from ..graph.options import batch_buckets
    from ..target import resolve

    target = resolve(args.target)  # a bad target is refused before the model is read
    lengths = args.seq_len if isinstance(args.seq_len, tuple) else (args.seq_len,)
    batches = getattr(args, "batches", None) or batch_buckets(args.batch)
    model = importer.load_onnx(args.model)
    importer.static_model(model, 1, max(lengths))  # a length past the position table: refused before work
    calib = None
    if args.precision == "int8":
        # one calibration serves every bucket: activation ranges do not depend on the batch, and the
        # longest length sees every position (padding is masked out in the shorter ones)
        t0 = time.time()
        print(f"calibrating at length {max(lengths)} ...", flush=True)
        static = importer.static_model(model, 1, max(lengths))
        method = calib_method(args.calib_method, args.model)
        print(f"activation ranges: {method}" + (" (a sparsify output)" if method != args.calib_method else ""),
              flush=True)
        calib = calibrate.calibrate(static, _samples(args, static, 1, max(lengths)), method=method)
        if args.attention_scales == "dynamic":
            calib = calibrate.without_output_ranges(calib)
        print(f"calibrated {len(calib)} Linear inputs ({time.time() - t0:.0f} s)", flush=True)
    opts = CompileOptions(seq_lens=lengths, batches=tuple(batches), precision=args.precision,
                          target=target, trials=args.trials,
                          work_dir=args.work_dir, calibration=calib,
                          threshold=getattr(args, "threshold", None), choose=getattr(args, "choose", "auto"))
    return model, opts


def _cmd_tune(args) -> None:
    from ..graph.compile import lower_buckets
    from ..target import resolve
    from ..tune import graph as graph_tune
    from ..tune import records
    from ..tune.apply import requested_kernels
    from ..tune.tuner import tune as tune_kernel

    resolve(args.target)  # a bad target is refused before the model is read (or exported)
    args.model = str(_onnx_path(args.model, max(args.seq_len)))
    model, opts = _options(args)
    target = opts.target
    if args.kernel_trials > 0:  # the kernels this graph uses first: the graph's own swap says which
        with requested_kernels() as keys:
            lower_buckets(model, opts, target, log=lambda *_: None)
        keys = list(dict.fromkeys(keys))
        for i, key in enumerate(keys, 1):
            res = tune_kernel(key, target, args.kernel_trials, db_root=args.work_dir, quiet=True)
            print(f"[kernel {i}/{len(keys)}] {key.name}: {res.trials_after} trials, best {res.best_us or 0:.1f} us",
                  flush=True)
    if args.trials > 0:  # what compile builds, kernels scheduled from their (new) records
        mod, _ = lower_buckets(model, opts, target)
        graph_tune.tune(mod, target, records.cpu_dir(args.work_dir, target, records.GRAPH), args.trials)


def _cmd_compile(args) -> None:
    from ..graph import hf
    from ..graph.compile import compile_model
    from ..graph.errors import GraphError
    from ..graph.outputs import refuse_clashes
    from ..runtime.metadata import metadata_path
    from ..target import resolve

    resolve(args.target)  # a bad target is refused before the model is read (or exported)
    refuse_clashes({"input model": args.model, "calibration file": args.calib},
                   {"library": args.output, "library's metadata": metadata_path(args.output)})
    source = Path(args.model)
    args.model = str(_onnx_path(args.model, max(args.seq_len)))
    text_dir = args.tokenizer or (str(source) if source.is_dir() else None)
    if args.tokenizer is None and text_dir:
        args.tokenizer = text_dir  # --calib sentences read with the model's own tokenizer
    task, tokenizer = ({"kind": "hidden"}, {})
    if text_dir:
        task = hf.read_task(text_dir)
        try:
            tokenizer = hf.tokenizer_files(text_dir)
        except GraphError:
            if args.tokenizer != str(source):  # named with --tokenizer: it must hold one
                raise
            args.tokenizer = None
    if not tokenizer:
        print("no tokenizer given (--tokenizer HF_DIR): the library takes token ids only, no encode()/--text")
    model, opts = _options(args)
    compile_model(model, args.output, opts, log=lambda *a: print(*a, flush=True), task=task, tokenizer=tokenizer)
    sparsify_report.after_compile(args, str(source))


def _inputs(model, npz: str | None) -> dict:
    if npz:
        from ..runtime.metadata import InputError

        try:
            return dict(np.load(npz))
        except (ValueError, OSError) as err:
            if isinstance(err, FileNotFoundError):
                raise InputError(f"--npz {npz}: no such file") from None
            raise InputError(f"--npz {npz} is not a .npz of input arrays: {err}") from None
    limit = model.metadata.input_limits.get("input_ids", 1000)
    return {"input_ids": np.random.default_rng(0).integers(0, limit, model.shape)}


def _cmd_run(args) -> None:
    from ..graph.outputs import refuse_clashes
    from ..runtime.metadata import metadata_path
    from ..runtime.model import load

    if args.save:  # np.save appends .npy to a name without it
        save = args.save if str(args.save).endswith(".npy") else f"{args.save}.npy"
        refuse_clashes({"library": args.library, "library's metadata": metadata_path(args.library),
                        "input file": args.npz}, {"--save file": save})
    model = load(args.library, threads=args.threads)
    print(model)
    if args.text:
        if args.tokenizer and not model.metadata.tokenizer:  # an older library: the tokenizer given here
            from ..graph.hf import tokenizer_files

            model.metadata.tokenizer = tokenizer_files(args.tokenizer)
        if model.metadata.task.get("kind") == "classification":
            logits, labels = model.classify(args.text)
            for text, label, row in zip(args.text, labels, logits, strict=True):
                print(f"{label}\t{np.array2string(row, precision=4)}\t{text}")
            out = logits
        else:
            out = model.encode(args.text)
            for text, row in zip(args.text, out, strict=True):
                print(f"[{', '.join(f'{v:.4f}' for v in row[:6])}, ...] ({row.shape[0]} dims)\t{text}")
            if len(args.text) > 1:
                unit = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
                print("cosine similarities:\n" + np.array2string(unit @ unit.T, precision=3))
    else:
        out = model(**_inputs(model, args.npz))
        print(f"output {out.shape} {out.dtype}: mean {out.mean():.5f} std {out.std():.5f}")
        print(out[0, :2, :6] if out.ndim == 3 else out[:2])
    if args.save:
        np.save(args.save, out)


def _cmd_bench(args) -> None:
    from ..bench.model import bench_library, bench_onnxruntime, ort_int8

    if args.lengths:
        from ..bench.lengths import bench_lengths

        bench_lengths(args.library, args.onnx, args.lengths, runs=args.runs, threads=args.threads,
                      plot=args.plot, log=lambda *a: print(*a, flush=True))
        return
    lib = bench_library(args.library, runs=args.runs, threads=args.threads)
    print(f"tvm-sparse       {args.library}: median {lib['median_ms']:.3f} ms, p90 {lib['p90_ms']:.3f} ms "
          f"(batch {lib['batch']}, length {lib['seq_len']}, {lib['threads']} threads)", flush=True)
    if args.onnx:
        ort = bench_onnxruntime(args.onnx, lib["batch"], lib["seq_len"], runs=args.runs, threads=lib["threads"])
        print(f"onnxruntime fp32 {args.onnx}: median {ort['median_ms']:.3f} ms, p90 {ort['p90_ms']:.3f} ms; "
              f"tvm-sparse is {ort['median_ms'] / lib['median_ms']:.2f}x faster", flush=True)
        with ort_int8(args.onnx) as quantized:
            q = bench_onnxruntime(quantized, lib["batch"], lib["seq_len"], runs=args.runs, threads=lib["threads"])
        print(f"onnxruntime int8 (quantize_dynamic): median {q['median_ms']:.3f} ms, p90 {q['p90_ms']:.3f} ms; "
              f"tvm-sparse is {q['median_ms'] / lib['median_ms']:.2f}x faster")

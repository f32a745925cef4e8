"""``tvm-sparse bench-kernel | tune-kernel | tune-choices``: one kernel, tuned and timed; which kind is fastest."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..target import TARGET_HELP


def _threads(args: argparse.Namespace) -> None:
    os.environ["TVM_NUM_THREADS"] = str(args.threads)


def _cmd_bench_kernel(args: argparse.Namespace) -> int:
    _threads(args)
    from ..bench import kernel as kb
    from ..target import resolve

    target = resolve(args.target, args.threads)
    if args.sweep:
        from ..bench.sweep import run_sweep

        run_sweep(target, args.threads, args.trials, args.dense_trials, args.db, Path(args.out), m=args.m)
        return 0
    for name in ("k", "n", "sparsity"):
        if getattr(args, name) is None:
            sys.exit(f"bench-kernel: --{name} is required (or use --sweep)")
    res = kb.bench_kernel(args.m, args.k, args.n, args.sparsity, target, args.threads, args.trials,
                          args.dense_trials, args.db)
    d = kb.as_dict(res)
    print(json.dumps(d, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(d, indent=2) + "\n")
    return 0 if res.exact and res.vnni_in_asm and res.dense_amx_exact is not False else 1


def _cmd_tune_kernel(args: argparse.Namespace) -> int:
    _threads(args)
    from .. import kinds
    from ..kinds import KernelKey, sparsity_bucket
    from ..target import resolve
    from ..tune.tuner import tune

    if args.kind not in kinds.tunable():
        sys.exit(f"tune-kernel: --kind must be one of {', '.join(kinds.tunable())}, got {args.kind!r}")
    bucket = sparsity_bucket(args.sparsity) if kinds.get(args.kind).sparse else 0
    key = KernelKey(args.kind, args.m, args.k, args.n, bucket, transposed=args.transposed)
    rpc = (args.rpc_tracker, args.rpc_key) if args.rpc_tracker else None
    res = tune(key, resolve(args.target, args.threads), args.trials, db_root=args.db, rpc=rpc)
    print(f"{key.name}: {res.trials_after} trials in {res.db_path}, best {res.best_us} us")
    return 0


def _shape(text: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected KxN (input x output channels), got {text!r}") from None
    if k < 1 or n < 1:
        raise argparse.ArgumentTypeError(f"channels must be positive, got {text!r}")
    return k, n


def _cmd_tune_choices(args: argparse.Namespace) -> int:
    _threads(args)
    from ..kinds import sparsity_bucket
    from ..target import resolve
    from ..tune import choices
    from ..tune.apply import database_roots

    target = resolve(args.target, args.threads)
    why = choices.cannot_measure(target)
    if why:
        print(f"tune-choices: cannot measure {target.attrs.get('mcpu')} kernels here: {why}", file=sys.stderr)
        return 2
    roots = database_roots([args.db])
    try:
        choices.read(choices.path_for(args.db, target), target)  # refuse before measuring, not after
        for k, n in args.shapes:
            for s in args.sparsities:
                key = choices.ChoiceKey(args.m, k, n, sparsity_bucket(s))
                if not args.again and choices.lookup(key, target, [Path(args.db)]):
                    print(f"{key.name}: measured already in {args.db} (--again to measure it anew)")
                    continue
                times = choices.measure(key, target, roots, log=print)
                choices.store(args.db, target, key, times)
    except choices.ChoicesError as err:
        print(f"tune-choices: {err}", file=sys.stderr)
        return 2
    print(f"kept in {choices.path_for(args.db, target)}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register bench-kernel, tune-kernel and tune-choices."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--m", type=int, default=128, help="tokens (batch x sequence); default 128")
    common.add_argument("--threads", type=int, default=1, help="worker threads (default 1)")
    common.add_argument("--target", default="host", help=TARGET_HELP)
    common.add_argument("--db", default="tuning_logs", help="tuning database root (default tuning_logs/)")

    b = sub.add_parser("bench-kernel", parents=[common],
                       help="time tuned sparse int8 vs dense int8 vs sparse fp32 kernels in one run")
    b.add_argument("--k", type=int, help="input channels")
    b.add_argument("--n", type=int, help="output channels")
    b.add_argument("--sparsity", type=float, help="fraction of 4x1 blocks pruned, e.g. 0.9")
    b.add_argument("--trials", type=int, default=0,
                   help="tune each sparse kernel up to this many trials first (resumes; 0 = use records)")
    b.add_argument("--dense-trials", type=int, default=None, help="trials for the dense kernel (default: --trials)")
    b.add_argument("--json", help="write the result here")
    b.add_argument("--sweep", action="store_true", help="all BERT shapes at 70/80/90%% -> CSV + plot")
    b.add_argument("--out", default="bench_out", help="sweep output folder (CSV, PNG, JSON)")
    b.set_defaults(func=_cmd_bench_kernel)

    t = sub.add_parser("tune-kernel", parents=[common], help="tune one kernel workload into the database")
    t.add_argument("--kind", default="sparse_int8", help="a tunable kernel kind (tvm_sparse/kinds/): sparse_int8 "
                   "(default), sparse_fp32, dense_int8, ...")
    t.add_argument("--k", type=int, required=True)
    t.add_argument("--n", type=int, required=True)
    t.add_argument("--sparsity", type=float, default=0.9)
    t.add_argument("--transposed", action="store_true", help="the [K, M] activation layout")
    t.add_argument("--trials", type=int, default=64)
    t.add_argument("--rpc-tracker", help="HOST:PORT of a TVM RPC tracker: measure on its servers")
    t.add_argument("--rpc-key", default="xeon", help="device key the servers registered under (default xeon)")
    t.set_defaults(func=_cmd_tune_kernel)

    c = sub.add_parser(
        "tune-choices", parents=[common],
        help="time every kernel kind this CPU runs for Linear shapes and sparsities: what compile picks per layer",
        description="For each --shapes KxN and --sparsities level: builds every kernel kind that can run such a "
                    "Linear on the target (sparse VNNI, dense VNNI, dense AMX where the CPU has it) with its "
                    "records, times them side by side on synthetic weights (row-major fp32 in and out, as a "
                    "graph's stand-alone Linears are), and keeps the times in --db/<cpu>/[cores-N/]choices.json. "
                    "compile then gives each row-major Linear the fastest kind (--choose). Example: "
                    "tvm-sparse tune-choices --shapes 768x768,384x384 --sparsities 0.5,0.6,0.7,0.8,0.9")
    c.add_argument("--shapes", type=lambda t: [_shape(v) for v in t.split(",")], required=True,
                   help="comma-separated KxN (input x output channels), e.g. 768x768,768x3072")
    c.add_argument("--sparsities", type=lambda t: [float(v) for v in t.split(",")], default=[0.5, 0.6, 0.7, 0.8, 0.9],
                   help="comma-separated block sparsities (default 0.5,...,0.9; each measured at its bucket)")
    c.add_argument("--again", action="store_true", help="measure entries --db has already")
    c.set_defaults(func=_cmd_tune_choices)

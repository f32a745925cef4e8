"""Tuning a CPU the compiler cannot run on: build every candidate here, measure them there, commit.

The sparse kernels' design space is small (2 loop orders x 3 unroll depths: 6 points), so on a
machine that can only carry TVM's runtime (the lent Xeon) it is measured whole rather than searched:
``build`` cross-compiles each candidate of each key into a bundle, ``xeon_remote.py --what
candidates`` times them there, and ``commit`` turns the measured times into
ordinary records for the target's CPU (``schedules/<mcpu>/``). A record's trace is rebuilt here from
the candidate's knobs, which replay deterministically; the workload is the key's canonical one, so
``apply.schedule`` finds these records exactly like tuned ones.

    python -m tvm_sparse.tune.offline build --target sapphirerapids --out .xeon/candidates
    # there: python xeon_remote.py .xeon --what candidates --out $OUT
    python -m tvm_sparse.tune.offline commit OUT/candidates.json --target sapphirerapids --root schedules
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import tvm
from tvm import s_tir
from tvm.s_tir import meta_schedule as ms

from .. import pipeline
from ..kernels import intrin  # noqa: F401  (registers the tensor intrinsics the schedules name)
from ..kinds import KernelKey, get
from ..schedule import sparse as sparse_schedules
from ..schedule.narrow import finalize
from ..schedule.sparse import UNROLLS
from ..target import resolve
from .database import exclusive, open_database
from .tuner import db_path

# BERT's Linears (K, N) as the graph uses them: row-major in (QKV, attention out, FFN up) and the FFN
# down projection reading the up projection's [K, M] output
BERT_KEYS = [KernelKey("sparse_int8", 128, k, n, s, transposed=t)
             for s in (90, 80) for k, n, t in ((768, 768, False), (768, 3072, False), (3072, 768, True))]


def candidates(key: KernelKey) -> list[dict]:
    """Every point of the sparse design space for ``key``: sketch name and knobs."""
    return [{"sketch": sk.__name__, "knobs": {"unroll": u}} for sk in sparse_schedules.SKETCHES for u in UNROLLS]


def _schedule(key: KernelKey, cand: dict) -> s_tir.Schedule:
    sch = s_tir.Schedule(get(key.kind).canonical(key)[0])
    getattr(sparse_schedules, cand["sketch"])(sch, cand["knobs"])
    return sch


def build(keys: list[KernelKey], target: tvm.target.Target, out: Path, log=print) -> Path:
    """Cross-compile every candidate of ``keys`` for ``target`` into ``out`` with its inputs;
    writes ``out/index.json`` for the remote timer."""
    out.mkdir(parents=True, exist_ok=True)
    index = []
    for key in keys:
        _, arrays = get(key.kind).canonical(key)
        np.savez(out / f"{key.name}.npz", nargs=len(arrays), **{f"arg{i}": a for i, a in enumerate(arrays)})
        cands = candidates(key)
        for i, cand in enumerate(cands):
            lib = f"{key.name}__{i}.so"
            sch = _schedule(key, cand)
            pipeline.build(finalize(sch.mod["main"]), target).export_library(str(out / lib))
            index.append({"key": asdict(key), "candidate": cand, "lib": lib, "inputs": f"{key.name}.npz"})
        log(f"{key.name}: {len(cands)} candidates built")
    (out / "index.json").write_text(json.dumps(index, indent=1))
    return out / "index.json"


def commit(results: list[dict], target: tvm.target.Target, root: Path, log=print) -> int:
    """Measured candidates (``index.json`` entries with ``run_secs``) -> records for ``target``'s CPU."""
    path = db_path(root, target)
    n = 0
    with exclusive(path):
        db = open_database(path, target)
        for res in results:
            secs = res.get("run_secs")
            if not secs:
                continue
            key = KernelKey(**res["key"])
            mod = tvm.IRModule({"main": get(key.kind).canonical(key)[0]})
            db.commit_tuning_record(ms.database.TuningRecord(
                _schedule(key, res["candidate"]).trace, db.commit_workload(mod), [float(s) for s in secs],
                target, ms.arg_info.ArgInfo.from_prim_func(mod["main"])))
            n += 1
    log(f"{n} records for {target.attrs['mcpu']} in {path}")
    return n


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="cross-compile every candidate of BERT's sparse kernels")
    b.add_argument("--target", default="sapphirerapids")
    b.add_argument("--out", required=True)
    c = sub.add_parser("commit", help="turn the remote timings into records")
    c.add_argument("results")
    c.add_argument("--target", default="sapphirerapids")
    c.add_argument("--root", default="schedules")
    a = p.parse_args(argv)
    target = resolve(a.target, 1)
    if a.cmd == "build":
        build(BERT_KEYS, target, Path(a.out))
    else:
        commit(json.loads(Path(a.results).read_text()), target, Path(a.root))


if __name__ == "__main__":
    main()

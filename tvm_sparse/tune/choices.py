"""Which kernel kind is fastest for a Linear of one shape and sparsity, measured on the CPU itself.

The sparse/dense crossover is a property of the CPU: on a Zen 5 the sparse VNNI kernel beats dense VNNI
from about 60%; on a Sapphire Rapids dense int8 runs on AMX and the crossover moves up, by how much
depends on the shape. So the swap asks this table first (``graph/policy.py``), one entry per
``(M, K, N, sparsity bucket)``: the time of every kernel kind that can run such a Linear on the target,
row-major fp32 in and out as the graph's Linears are (each kernel built with its records, exactly as
``graph/linear.py`` builds it, and timed on synthetic weights pruned to the bucket's level).

Tables live beside the kernel records, per CPU and core count (``tune/records.py``):
``<root>/<mcpu>[/cores-<N>]/choices.json``. The user's ``tuning_logs/`` is read first, then the shipped
``schedules/``; only ``tuning_logs/`` is written. Another CPU's table is never used: a crossover measured
elsewhere says nothing here (the policy falls back to its threshold). A table that does not parse, or
that names another CPU, is refused with its path, and never overwritten.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tvm

from .. import kinds, pipeline
from ..format import bsr4x1
from ..kinds import LinearLayer
from ..target import device, mcpu_of
from .apply import schedule
from .records import cores_of, cores_sub, cpu_dir

FILE = "choices.json"
FORMAT = "tvm-sparse kernel choices"
VERSION = 1


class ChoicesError(ValueError):
    """A choices table that cannot be used: it does not parse, or it was measured on another CPU."""


@dataclass(frozen=True)
class ChoiceKey:
    m: int
    k: int
    n: int
    bucket: int  # sparsity in whole tens of percent (kinds.sparsity_bucket)

    @property
    def name(self) -> str:
        return f"m{self.m}_k{self.k}_n{self.n}_s{self.bucket}"


def path_for(root: str | Path, target: tvm.target.Target) -> Path:
    return cpu_dir(root, target, cores_sub(target)) / FILE


def read(path: Path, target: tvm.target.Target) -> dict[str, dict]:
    """``{entry name: {"times_us": {kind: us}, ...}}`` of the table at ``path`` ({} if there is none)."""
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ChoicesError(f"{path}: not a kernel choices table ({err}); move it away or delete it") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("entries"), dict):
        raise ChoicesError(f"{path}: not a kernel choices table (no '{FORMAT}' format tag); move it away")
    if doc.get("version") != VERSION:
        raise ChoicesError(f"{path}: choices table version {doc.get('version')!r}, this tvm-sparse reads {VERSION}")
    if doc.get("cpu") != mcpu_of(target) or doc.get("cores") != cores_of(target):
        raise ChoicesError(f"{path}: measured on {doc.get('cpu')!r} with {doc.get('cores')!r} threads, not on "
                           f"{mcpu_of(target)!r} with {cores_of(target)}: a crossover is a property of its CPU")
    for name, entry in doc["entries"].items():
        times = entry.get("times_us") if isinstance(entry, dict) else None
        if not isinstance(times, dict) or not times or not all(
                isinstance(v, (int, float)) and v > 0 for v in times.values()):
            raise ChoicesError(f"{path}: entry {name!r} has no positive kernel times")
    return doc["entries"]


def lookup(key: ChoiceKey, target: tvm.target.Target, roots: list[Path]) -> tuple[dict[str, float], Path] | None:
    """The measured times for ``key`` from the first table in ``roots`` that has it, and that table's
    path. A table that cannot be used is skipped with a warning (it is not this lookup's to repair)."""
    for root in roots:
        path = path_for(root, target)
        try:
            entries = read(path, target)
        except ChoicesError as err:
            warnings.warn(f"{err}; ignored", stacklevel=2)
            continue
        if key.name in entries:
            return dict(entries[key.name]["times_us"]), path
    return None


def store(root: str | Path, target: tvm.target.Target, key: ChoiceKey, times_us: dict[str, float]) -> Path:
    """Add (or replace) ``key``'s entry in ``root``'s table for ``target``, atomically. Raises
    ``ChoicesError`` rather than overwrite a file that is not such a table."""
    path = path_for(root, target)
    entries = read(path, target)
    entries[key.name] = {"times_us": {k: round(v, 2) for k, v in times_us.items()},
                         "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    doc = {"format": FORMAT, "version": VERSION, "cpu": mcpu_of(target), "cores": cores_of(target),
           "layout": "row-major fp32 in and out, synthetic weights at the bucket's sparsity",
           "entries": dict(sorted(entries.items()))}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=FILE + ".")
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, path)
    return path


def candidates(layer_dense: LinearLayer, layer_sparse: LinearLayer, m: int, target: tvm.target.Target
               ) -> list[tuple[str, LinearLayer]]:
    """Every kind the target can run that takes one of the two layers, with the layer it takes."""
    out = []
    for name in kinds.names():
        kind = kinds.get(name)
        for layer in (layer_sparse, layer_dense):
            if kind.available(target) and kind.supports(layer, m):
                out.append((name, layer))
                break
    return out


def synthetic_layers(key: ChoiceKey, seed: int = 0) -> tuple[LinearLayer, LinearLayer]:
    """(dense, sparse) int8 layers of ``key``'s shape, weights pruned to its bucket."""
    rng = np.random.default_rng(seed)
    w = bsr4x1.prune(rng.standard_normal((key.n, key.k)).astype(np.float32), key.bucket / 100)
    bias = rng.standard_normal(key.n).astype(np.float32)
    common = dict(weight=w, bias=bias, gelu=False, precision="int8", act_scale=0.05, act_zero_point=128)
    return LinearLayer(sparse=False, **common), LinearLayer(sparse=True, **common)


def cannot_measure(target: tvm.target.Target) -> str | None:
    """Why this machine cannot time ``target``'s kernels (None: it can)."""
    from ..runtime import cpu
    from ..runtime.amx import AMXUnavailableError, request_permission
    from ..target import isa

    lacking = cpu.missing(sorted(isa(target)))
    if lacking:
        return f"this CPU lacks {', '.join(lacking)}, which {mcpu_of(target)} code uses"
    if {"amx-tile", "amx-int8"} <= isa(target):
        try:
            request_permission()
        except AMXUnavailableError as err:
            return str(err)
    return None


_EVICT = "tvm_sparse.choices.evict_l2"
_EVICT_BYTES = 8 << 20  # several L2s: a core's L2 is 1-2 MB on the CPUs this project targets


@tvm.register_global_func(_EVICT, override=True)
def _evict_l2(*args) -> None:
    """Before each timed call (outside the timer): stream through more memory than L2 holds, then read the
    input back in."""
    global _evict_buffer
    if _evict_buffer is None:
        _evict_buffer = np.ones(_EVICT_BYTES // 8, np.int64)
    _evict_buffer.sum()
    args[0].numpy().sum()


_evict_buffer = None


def measure(key: ChoiceKey, target: tvm.target.Target, roots: list[Path], repeat: int = 5,
            log=None) -> dict[str, float]:
    """Median microseconds of each candidate kind for ``key`` on this machine, interleaved so that a
    change in the machine's speed hits every candidate alike. Raises ``ChoicesError`` where this machine
    cannot run the target's code (``cannot_measure``, which also asks Linux for the AMX tile state)."""
    why = cannot_measure(target)
    if why:
        raise ChoicesError(f"cannot measure kernel choices for {mcpu_of(target)} here: {why}")
    dense, sparse = synthetic_layers(key)
    x = np.random.default_rng(1).standard_normal((key.m, key.k)).astype(np.float32)
    dev = device(target)
    runs = {}
    for name, layer in candidates(dense, sparse, key.m, target):
        kind = kinds.get(name)
        func, consts = kind.build(layer, key.m)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no record: default schedule" is what the graph would build too
            scheduled, _ = schedule(func, kind.key(layer, key.m), target, roots)
        lib = pipeline.build(tvm.IRModule({"main": scheduled}), target)
        args = [tvm.runtime.tensor(a, dev) for a in (x, *consts, np.zeros((key.m, key.n), np.float32))]
        lib(*args)
        runs[name] = (lib, args, [])
    for _ in range(repeat):
        for lib, args, times in runs.values():
            # the weights out of L2 but in L3, as inside a model whose weights fit L3 (each layer's are used
            # once a call: a dense 768 x 768 int8 weight kept in L2 timed 59 us against 76 for the 90% sparse
            # kernel, and lost to it inside bert-base); the input in L2, as the previous operator leaves it
            ev = lib.time_evaluator(lib.entry_name, dev, number=1, repeat=20, f_preproc=_EVICT)
            times.append(float(np.median(ev(*args).results)) * 1e6)
    result = {name: float(np.median(times)) for name, (_, _, times) in runs.items()}
    if log:
        log(f"{key.name}: " + ", ".join(f"{k} {v:.1f} us" for k, v in sorted(result.items(), key=lambda kv: kv[1])))
    return result

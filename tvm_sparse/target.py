"""Every ``--target`` becomes one TVM target here: a preset name, any mcpu LLVM knows, TVM target JSON, or
``host`` (the default everywhere).

``host`` is this CPU's real features. LLVM names a CPU by its family and model, which a hypervisor may
misreport: a Sapphire Rapids KVM guest is ``rocketlake``, a CPU without AMX, AVX512-FP16 or AVX-VNNI. So
``host`` takes the LLVM CPU whose instruction sets are nearest to what the CPU shows (/proc/cpuinfo, read
by ``runtime.cpu``), and corrects the difference with ``mattr``: that guest resolves to ``sapphirerapids``
minus the few features its hypervisor hides. Records are keyed by that ``mcpu``.

Every target is checked before anything is built: it must be an x86 CPU with AVX-512 VNNI (the kernels'
``vpdpbusd``), or ``TargetError`` says why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING

from .runtime import cpu

if TYPE_CHECKING:  # TVM is imported when a target is made, not with this module: the CLI imports it first
    import tvm


@dataclass(frozen=True)
class Preset:
    mcpu: str
    note: str


PRESETS: dict[str, Preset] = {
    "cascadelake": Preset("cascadelake", "Xeon 2nd gen: AVX512-VNNI, no VBMI"),
    "icelake-server": Preset("icelake-server", "Xeon 3rd gen"),
    "sapphirerapids": Preset("sapphirerapids", "Xeon 4th/5th gen: AMX"),
    "znver4": Preset("znver4", "EPYC Genoa"),
    "znver5": Preset("znver5", "EPYC Turin"),
}
HOST_NAMES = ("host", "native", "")
REQUIRED = ("avx512f", "avx512bw", "avx512vnni")  # what every kernel of this project executes
TARGET_HELP = ("host (default: this CPU), a preset (" + ", ".join(PRESETS) + "), any x86 mcpu LLVM knows, "
               'or TVM target JSON such as \'{"kind": "llvm", "mcpu": "sapphirerapids", "num-cores": 1}\'')


class TargetError(ValueError):
    """An unknown target, or one whose CPU cannot run this project's kernels."""


def _llvm_cpu(name: str) -> frozenset[str]:
    import tvm

    return features(tvm.target.Target({"kind": "llvm", "mcpu": name}))


def features(target: tvm.target.Target) -> frozenset[str]:
    """Every LLVM feature ``target`` enables (its mcpu's, as its mattr amends them)."""
    from tvm.target import codegen

    return frozenset(str(f) for f in codegen.llvm_get_cpu_features(target))


def isa(target: tvm.target.Target) -> frozenset[str]:
    """The features of ``target`` that enable instructions: what a library built for it requires."""
    return frozenset(f for f in features(target) if cpu.is_isa(f))


@lru_cache(maxsize=1)
def _x86_cpus() -> tuple[str, ...]:
    import tvm
    from tvm.target import codegen

    names = [str(n) for n in codegen.llvm_get_cpu_archlist(tvm.target.Target({"kind": "llvm"}))]
    return tuple(n for n in names if "_" not in n)  # "icelake_server" etc. are aliases


def is_cpu(name: str) -> bool:
    """Whether LLVM knows ``name`` as an x86 CPU."""
    return name in _x86_cpus()


@cache
def _cpu_isa(name: str) -> frozenset[str]:
    return frozenset(f for f in _llvm_cpu(name) if cpu.is_isa(f))


@lru_cache(maxsize=8)
def host_spec(flags: frozenset[str] | None = None, system: str | None = None) -> tuple[str, tuple[str, ...]]:
    """(mcpu, mattr) describing this CPU, or one whose /proc/cpuinfo shows ``flags`` and LLVM names
    ``system``."""
    from tvm.target import codegen

    system = system or str(codegen.llvm_get_system_cpu())
    flags = cpu.cpu_flags() if flags is None else flags
    host = cpu.Host(None if flags is None else frozenset(flags), _cpu_isa(system) if is_cpu(system) else frozenset())
    universe = set().union(*(_cpu_isa(n) for n in _x86_cpus()))
    have = {f for f in universe if host.has(f)}
    candidates = dict.fromkeys([system, *PRESETS, *_x86_cpus()])  # ties go to LLVM's own name
    best = min((n for n in candidates if is_cpu(n)), key=lambda n: len(_cpu_isa(n) ^ have))
    mattr = sorted(f"+{f}" for f in have - _cpu_isa(best)) + sorted(f"-{f}" for f in _cpu_isa(best) - have)
    return best, tuple(mattr)


def resolve(spec: str | dict | tvm.target.Target | None = "host", num_cores: int | None = None
            ) -> tvm.target.Target:
    """A checked TVM target for ``spec``; ``num_cores`` overrides the spec's ``num-cores`` (default 1)."""
    import tvm

    if isinstance(spec, tvm.target.Target):
        out = dict(to_json(spec))
    elif isinstance(spec, dict):
        out = dict(spec)
    elif spec is None or str(spec).strip() in HOST_NAMES:
        mcpu, mattr = host_spec()
        out = {"kind": "llvm", "mcpu": mcpu, **({"mattr": list(mattr)} if mattr else {})}
    elif str(spec).lstrip().startswith("{"):
        try:
            out = json.loads(spec)
        except json.JSONDecodeError as err:
            raise TargetError(f"target {spec!r} is not valid JSON: {err}") from None
        if not isinstance(out, dict):
            raise TargetError(f"target JSON must be an object, got {spec!r}")
    else:
        out = {"kind": "llvm", "mcpu": str(spec).strip()}
    if out.get("kind") != "llvm":
        raise TargetError(f"target {spec!r}: only LLVM CPU targets are supported (kind 'llvm')")
    mcpu = out.get("mcpu")
    if mcpu in (None, "", "native"):  # JSON without a CPU: this one's
        host, mattr = host_spec()
        out["mcpu"], out["mattr"] = host, list(mattr) + list(out.get("mattr", []))
    elif not is_cpu(str(mcpu)):
        raise TargetError(f"unknown CPU {mcpu!r} in target {spec!r}: {TARGET_HELP}")
    cores = num_cores if num_cores is not None else out.get("num-cores", 1)
    if not (isinstance(cores, int) and cores >= 1):
        raise TargetError(f"num-cores must be a whole number of at least 1, got {cores!r}")
    out["num-cores"] = cores
    try:
        target = tvm.target.Target(out)
    except Exception as err:  # noqa: BLE001  (TVM's own error types)
        raise TargetError(f"TVM refuses target {out}: {str(err).splitlines()[-1]}") from None
    lacking = [f for f in REQUIRED if f not in features(target)]
    if lacking:
        raise TargetError(f"target {out['mcpu']!r} lacks {', '.join(lacking)}: the int8 kernels need AVX-512 "
                          "VNNI (Cascade Lake or newer Xeon, Zen 4 or newer EPYC)")
    return target


def to_json(target: tvm.target.Target) -> dict:
    """The target as the JSON dict records and metadata keep (``resolve`` takes it back)."""
    out = {"kind": str(target.kind.name)}
    for k in ("mcpu", "mtriple", "mattr", "num-cores"):
        v = target.attrs.get(k)
        if v is not None and v != "" and not (k == "mattr" and len(v) == 0):
            out[k] = int(v) if k == "num-cores" else (str(v) if isinstance(v, str) else [str(x) for x in v])
    return out


def mcpu_of(target: tvm.target.Target) -> str:
    return str(target.attrs.get("mcpu", "generic"))


def nearest_cpu(target: tvm.target.Target, names: list[str]) -> str | None:
    """Of CPUs ``names`` (mcpu values, e.g. the ones records exist for), the one whose instruction sets
    are nearest ``target``'s: fewest features one has and the other lacks. Unknown names are skipped."""
    mine = isa(target)
    known = [n for n in names if is_cpu(n)]
    return min(known, key=lambda n: (len(_cpu_isa(n) ^ mine), n)) if known else None


# LLVM's SLP vectorizer packs the 4 gathered row indices of a sparse tile into one vector, then
# pulls each back out with vpextrd: 6 vector-pipe instructions per tile beside its 8 vpdpbusd.
# A high threshold keeps them scalar (address arithmetic on the integer pipes): 13% faster sparse
# kernels. Our vector code is explicit (vectorize, intrinsics), so SLP has little else to do.
CODEGEN_OPTIONS = ("-slp-threshold:int=100",)


def codegen_target(target: tvm.target.Target) -> tvm.target.Target:
    """``target`` with this project's LLVM options: what every build uses. Records and metadata
    keep the plain target (the options change code generation, not what a schedule is)."""
    import tvm

    spec = {k: v for k, v in target.export().items() if v is not None}
    if list(spec.get("cl-opt", [])) == list(CODEGEN_OPTIONS):
        return target
    spec["cl-opt"] = list(CODEGEN_OPTIONS)
    return tvm.target.Target(spec)


# ------------------------------------------------------------------ the device seam
# Everything that runs or builds code asks the target where: a new device is a branch here, not an edit
# in every benchmark, runner and loader.


def device(target: tvm.target.Target | None = None) -> tvm.runtime.Device:
    """The device ``target``'s code runs on (None: this process's CPU)."""
    import tvm

    return tvm.cpu(0) if target is None or target.kind.name == "llvm" else tvm.device(target.kind.name, 0)


def relax_backend_passes(target: tvm.target.Target) -> list:
    """Relax's lowering for ``target``'s backend (after legalize/fuse and the schedules): dataflow lowering
    then the VM finalization. TVM 0.27's ``relax.pipeline`` dispatcher cannot find the CPU one
    (AttributeError), so it is imported directly."""
    if target.kind.name != "llvm":
        raise TargetError(f"no Relax backend for {target.kind.name} targets in this project")
    from tvm.relax.backend.cpu_generic import pipeline as cpu_pipeline

    return list(cpu_pipeline.dataflow_lower_passes(target)) + list(cpu_pipeline.finalize_passes(target))

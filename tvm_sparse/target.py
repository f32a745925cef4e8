"""Named CPU targets: what to compile for, and which instructions a library built for it needs.

TVM 0.27 takes targets as JSON dicts only. A preset names an LLVM ``mcpu``; ``host`` asks LLVM
what this machine is. ``required_isa`` lists the /proc/cpuinfo flags the kernels' instructions need
(vpdpbusd: avx512_vnni; the lane interleave: avx512vbmi's vpermb where the CPU has it), checked when
a library is loaded on another machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import tvm

BASE_ISA = ("avx512f", "avx512bw", "avx512vl", "avx512_vnni")


@dataclass(frozen=True)
class Preset:
    mcpu: str
    isa: tuple[str, ...]
    note: str


PRESETS: dict[str, Preset] = {
    "cascadelake": Preset("cascadelake", BASE_ISA, "Xeon 2nd gen: AVX512-VNNI, no VBMI"),
    "icelake-server": Preset("icelake-server", BASE_ISA + ("avx512vbmi",), "Xeon 3rd gen"),
    "sapphirerapids": Preset("sapphirerapids", BASE_ISA + ("avx512vbmi", "amx_int8"), "Xeon 4th/5th gen: AMX"),
    "znver4": Preset("znver4", BASE_ISA + ("avx512vbmi",), "EPYC Genoa"),
    "znver5": Preset("znver5", BASE_ISA + ("avx512vbmi",), "EPYC Turin"),
}


class TargetError(ValueError):
    """An unknown target name, or a CPU that cannot run what was asked."""


def host_mcpu() -> str:
    return tvm.target.codegen.llvm_get_system_cpu()


def physical_cores() -> int:
    try:
        import psutil

        return psutil.cpu_count(logical=False) or os.cpu_count() or 1
    except ImportError:
        return os.cpu_count() or 1


def resolve(name: str = "host", num_cores: int | None = None) -> tvm.target.Target:
    """A TVM target for a preset name, ``host``, or any mcpu LLVM knows."""
    mcpu = host_mcpu() if name in ("host", "native", "") else name
    if mcpu not in PRESETS and not tvm.target.codegen.llvm_is_valid_cpu(mcpu):
        raise TargetError(f"unknown target {name!r}; presets: host, {', '.join(PRESETS)}")
    cores = num_cores or (physical_cores() if name in ("host", "native", "") else 1)
    return tvm.target.Target({"kind": "llvm", "mcpu": mcpu, "num-cores": int(cores)})


# LLVM's SLP vectorizer packs the 4 gathered row indices of a sparse tile into one vector, then
# pulls each back out with vpextrd: 6 vector-pipe instructions per tile beside its 8 vpdpbusd.
# A high threshold keeps them scalar (address arithmetic on the integer pipes): 13% faster sparse
# kernels. Our vector code is explicit (vectorize, intrinsics), so SLP has little else to do.
CODEGEN_OPTIONS = ("-slp-threshold:int=100",)


def codegen_target(target: tvm.target.Target) -> tvm.target.Target:
    """``target`` with this project's LLVM options: what every build uses. Records and metadata
    keep the plain target (the options change code generation, not what a schedule is)."""
    spec = {k: v for k, v in target.export().items() if v is not None}
    if list(spec.get("cl-opt", [])) == list(CODEGEN_OPTIONS):
        return target
    spec["cl-opt"] = list(CODEGEN_OPTIONS)
    return tvm.target.Target(spec)


def mcpu_of(target: tvm.target.Target) -> str:
    return str(target.attrs.get("mcpu", "generic"))


def required_isa(target: tvm.target.Target) -> list[str]:
    preset = PRESETS.get(mcpu_of(target))
    return list(preset.isa if preset else BASE_ISA)


def cpu_flags() -> set[str]:
    """This CPU's flags from /proc/cpuinfo (empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def missing_isa(required: list[str], flags: set[str] | None = None) -> list[str]:
    flags = cpu_flags() if flags is None else flags
    return [f for f in required if f not in flags]


def check_host_supports(required: list[str], what: str = "this library") -> None:
    missing = missing_isa(required)
    if missing:
        raise TargetError(
            f"{what} needs CPU instructions this machine lacks: {', '.join(missing)} "
            f"(has AVX-512 VNNI: {'avx512_vnni' in cpu_flags()}). Rebuild for this CPU's target."
        )

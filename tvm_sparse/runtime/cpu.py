"""Which instruction sets a compiled library needs, and whether this CPU has them.

LLVM may emit any instruction its ``mcpu`` (plus ``mattr``) enables, so the library requires every
vector/ISA extension of that CPU model, not only the VNNI the int8 kernels were written for.
Names are Linux ``/proc/cpuinfo`` flag names.
"""

from __future__ import annotations

from pathlib import Path

# LLVM feature name -> /proc/cpuinfo flag. Scalar tuning flags ("fast-*", "macrofusion") are not ISA.
LLVM_TO_CPUINFO = {
    "sse4.1": "sse4_1", "sse4.2": "sse4_2", "ssse3": "ssse3", "popcnt": "popcnt",
    "avx": "avx", "avx2": "avx2", "fma": "fma", "f16c": "f16c", "bmi": "bmi1", "bmi2": "bmi2",
    "avxvnni": "avx_vnni",
    "avx512f": "avx512f", "avx512bw": "avx512bw", "avx512cd": "avx512cd", "avx512dq": "avx512dq",
    "avx512vl": "avx512vl", "avx512vnni": "avx512_vnni", "avx512vbmi": "avx512vbmi",
    "avx512vbmi2": "avx512_vbmi2", "avx512bf16": "avx512_bf16", "avx512bitalg": "avx512_bitalg",
    "avx512vpopcntdq": "avx512_vpopcntdq", "avx512ifma": "avx512ifma", "avx512fp16": "avx512_fp16",
    "gfni": "gfni", "vaes": "vaes", "vpclmulqdq": "vpclmulqdq",
    "amx-tile": "amx_tile", "amx-int8": "amx_int8", "amx-bf16": "amx_bf16",
}


class UnsupportedCPUError(RuntimeError):
    """This CPU lacks instructions the compiled library uses."""


def required_isa(target: dict) -> list[str]:
    """cpuinfo flags a library built for ``target`` (a TVM target JSON dict) may execute."""
    import tvm
    from tvm.target import codegen

    features = {str(f) for f in codegen.llvm_get_cpu_features(tvm.target.Target(dict(target)))}
    return sorted({LLVM_TO_CPUINFO[f] for f in features if f in LLVM_TO_CPUINFO})


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str] | None:
    """Flags common to every core listed in ``cpuinfo`` (None where it cannot be read: not Linux)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    sets = [set(line.split(":", 1)[1].split()) for line in text.splitlines()
            if line.startswith("flags") and ":" in line]
    return set.intersection(*sets) if sets else None


def check(required: list[str], cpuinfo: str | Path = "/proc/cpuinfo") -> None:
    """Raise ``UnsupportedCPUError`` naming the missing instruction sets; silent when all present."""
    flags = cpu_flags(cpuinfo)
    if flags is None:
        return  # cannot tell (no /proc/cpuinfo): running is the user's call
    missing = [f for f in required if f not in flags]
    if missing:
        raise UnsupportedCPUError(
            f"this CPU lacks instruction sets the library was compiled for: {', '.join(missing)}. "
            "Recompile for this machine (tvm-sparse compile --target '{\"kind\": \"llvm\", \"mcpu\": "
            "\"<this cpu>\"}') or run on a CPU that has them."
        )

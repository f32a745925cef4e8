"""What this CPU can execute, in LLVM's feature names, and whether a library's features are all there.

A library records the full LLVM feature set of the target it was compiled for (``llvm_get_cpu_features``:
``mcpu`` plus ``mattr``). LLVM may emit any instruction those features enable (code for ``znver4`` holds
SSE4a's ``insertq``, which faults on an Intel Xeon), so loading checks every one of them. The check fails
closed: a feature this module cannot find on the host counts as missing, whatever its name.

The host's features come from ``/proc/cpuinfo`` (Linux's names, read from CPUID as the hypervisor passes it
through), matched to LLVM's names by spelling, with the few renames below. Where it cannot be read, from
LLVM's own name for this CPU (needs TVM's compiler); with neither, nothing is run.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CPUINFO = "/proc/cpuinfo"

# LLVM feature -> the /proc/cpuinfo flag that shows it, where the two are not spelled alike
# (spellings differing only in "_", "-" or "." match without an entry)
CPUINFO_NAME = {
    "64bit": "lm", "x87": "fpu", "sse3": "pni", "sahf": "lahf_lm", "bmi": "bmi1", "lzcnt": "abm",
    "prfchw": "3dnowprefetch", "rdrnd": "rdrand", "pclmul": "pclmulqdq", "sha": "sha_ni",
    "crc32": "sse4_2", "shstk": "user_shstk", "avx10.1": "avx10",
}

# Features that tune code generation (cost models, instruction choice) but enable no instruction:
# a library built with one runs on a CPU without it. Prefix rules, so an unknown name is required.
_TUNING_PREFIXES = ("fast-", "slow-", "false-deps-", "prefer-", "no-bypass-delay", "tuning-", "use-",
                    "idiv", "lea-")
_TUNING = {"64bit-mode", "allow-light-256-bit", "branchfusion", "macrofusion", "ermsb", "fsrm",
           "faster-shift-than-shuffle", "pad-short-functions", "sbb-dep-breaking", "vzeroupper"}


class UnsupportedCPUError(RuntimeError):
    """This CPU lacks instructions the compiled library uses."""


def is_isa(feature: str) -> bool:
    """True for a feature that enables instructions (everything but LLVM's tuning flags)."""
    return feature not in _TUNING and not feature.startswith(_TUNING_PREFIXES)


def _spelling(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "").replace(".", "")


def cpu_flags(cpuinfo: str | Path = CPUINFO) -> set[str] | None:
    """Flags common to every core listed in ``cpuinfo`` (None where it cannot be read: not Linux)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    sets = [set(line.split(":", 1)[1].split()) for line in text.splitlines()
            if line.startswith("flags") and ":" in line]
    return set.intersection(*sets) if sets else None


def in_cpuinfo(feature: str, flags: set[str] | frozenset[str]) -> bool:
    """Whether /proc/cpuinfo's ``flags`` show the LLVM ``feature``."""
    spelled = {_spelling(f) for f in flags}
    return _spelling(CPUINFO_NAME.get(feature, feature)) in spelled


@lru_cache(maxsize=1)
def llvm_host_features() -> frozenset[str]:
    """The features of LLVM's name for this CPU; empty without TVM's compiler (runtime-only installs).

    Under a hypervisor the name may be wrong either way (a Sapphire Rapids KVM guest is ``rocketlake``,
    no AMX; a hidden feature is still in the name's list): the fallback where /proc/cpuinfo is unreadable."""
    try:
        import tvm
        from tvm.target import codegen

        name = codegen.llvm_get_system_cpu()
        return frozenset(str(f) for f in codegen.llvm_get_cpu_features(
            tvm.target.Target({"kind": "llvm", "mcpu": str(name)})))
    except Exception:  # noqa: BLE001  (no compiler library, or an LLVM that does not know this CPU)
        return frozenset()


@dataclass(frozen=True)
class Host:
    """What a CPU shows: its /proc/cpuinfo flags (None where unreadable) and the features of LLVM's name
    for it (empty without TVM's compiler)."""

    flags: frozenset[str] | None
    llvm: frozenset[str] = frozenset()

    @classmethod
    def this(cls) -> Host:
        flags = cpu_flags()
        return cls(None if flags is None else frozenset(flags), llvm_host_features())

    @property
    def known(self) -> bool:
        return self.flags is not None or bool(self.llvm)

    def has(self, feature: str) -> bool:
        """/proc/cpuinfo decides where it can be read (it shows what the hypervisor passes through);
        LLVM's name for the CPU only where it cannot."""
        if not is_isa(feature):
            return True
        return in_cpuinfo(feature, self.flags) if self.flags is not None else feature in self.llvm


def missing(required: list[str], host: Host | None = None) -> list[str]:
    """The features of ``required`` that ``host`` (default: this machine) does not show."""
    host = Host.this() if host is None else host
    return [f for f in required if not host.has(f)]


def check(required: list[str], host: Host | None = None, what: str = "this library") -> None:
    """Raise ``UnsupportedCPUError`` naming every LLVM feature of ``required`` the host lacks."""
    host = Host.this() if host is None else host
    if not host.known:
        raise UnsupportedCPUError(
            f"cannot tell which instructions this CPU has (no {CPUINFO}, no LLVM): refusing to run {what}. "
            "Pass check_cpu=False to tvm_sparse.load() if you know the CPU matches.")
    lacking = missing(required, host)
    if lacking:
        raise UnsupportedCPUError(
            f"{what} was compiled for CPU features this machine lacks: {', '.join(lacking)}. Running it "
            "would die on an illegal instruction. Recompile it here (tvm-sparse compile ... --target host, "
            "the default) or run it on a CPU that has them.")

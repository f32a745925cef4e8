"""Where tuning records live, per CPU, and which CPU's records serve a target that has none of its own.

Layout of every records root (the user's ``tuning_logs/``, a ``--work-dir``, the shipped ``schedules/``):
``<root>/<mcpu>/`` holds kernel records measured on one core, ``<root>/<mcpu>/cores-<N>/`` those measured
with N threads (``cores_sub``), ``<root>/<mcpu>/graph/`` the graph functions'. Kernel records are kept apart
by core count: a schedule's speed on N threads says little about it on one (the parallel split, the share
of each thread's cache), MetaSchedule skips any candidate its database has measured already whatever the
target, and the fastest record would win every lookup. A target with N cores takes its own count's records,
else the one-core records. A schedule is
valid on any CPU with the instructions it uses; only its speed is CPU-specific. So a target whose CPU has
no records anywhere takes those of the CPU nearest to it in instruction sets (``target.nearest_cpu``),
and says so once.
"""

from __future__ import annotations

import warnings
from importlib import resources
from pathlib import Path

import tvm

from ..target import mcpu_of, nearest_cpu

GRAPH = "graph"
MARKER = "database_workload.json"


class ForeignRecordsWarning(UserWarning):
    """A target's CPU had no records of its own: another CPU's records were used."""


def shipped_root() -> Path:
    """The records shipped with the package (``schedules/``, installed as ``tvm_sparse.schedules``)."""
    return Path(str(resources.files("tvm_sparse.schedules")))


def _dir(root: str | Path, mcpu: str, sub: str) -> Path:
    return Path(root) / mcpu / sub if sub else Path(root) / mcpu


def cores_of(target: tvm.target.Target) -> int:
    return int(target.attrs.get("num-cores", 1) or 1)


CORES_PREFIX = "cores-"


def cores_sub(target: tvm.target.Target) -> str:
    """The kernel records' subdirectory for ``target``'s core count: "" (one core) or ``cores-<N>``."""
    cores = cores_of(target)
    return "" if cores == 1 else f"{CORES_PREFIX}{cores}"


def cores_of_dir(path: Path) -> int | None:
    """N for a ``cores-<N>`` folder (records measured with N threads), else None."""
    n = path.name.removeprefix(CORES_PREFIX)
    return int(n) if n != path.name and n.isdigit() else None


def cpu_dir(root: str | Path, target: tvm.target.Target, sub: str = "") -> Path:
    """``root/<mcpu>[/sub]``: where records for ``target``'s CPU are written and read."""
    return _dir(root, mcpu_of(target), sub)


def _has_records(path: Path) -> bool:
    marker = path / MARKER
    return marker.is_file() and marker.stat().st_size > 0


def _existing(roots: list[Path], mcpu: str, sub: str) -> list[Path]:
    return [d for r in roots if _has_records(d := _dir(r, mcpu, sub))]


def _cpus_with_records(roots: list[Path], sub: str) -> list[str]:
    return sorted({c.name for r in roots if r.is_dir() for c in r.iterdir() if _existing([r], c.name, sub)})


def lookup_dirs(roots: list[str | Path], target: tvm.target.Target, sub: str = "", foreign: bool = False
                ) -> tuple[str | None, list[Path]]:
    """(CPU, its record directories in ``roots`` order) for ``target``: its own CPU's, or with ``foreign``
    the nearest other CPU's that has records (None, [] where there is none)."""
    roots = [Path(r) for r in roots]
    if not foreign:
        return mcpu_of(target), _existing(roots, mcpu_of(target), sub)
    other = nearest_cpu(target, [c for c in _cpus_with_records(roots, sub) if c != mcpu_of(target)])
    return other, (_existing(roots, other, sub) if other else [])


_warned: set[tuple[str, str, str]] = set()


def warn_foreign(target: tvm.target.Target, other: str, what: str) -> None:
    """Say once per process that ``target`` runs on ``other``'s records for ``what``."""
    if (mcpu_of(target), other, what) not in _warned:
        _warned.add((mcpu_of(target), other, what))
        warnings.warn(f"no {what} records for {mcpu_of(target)}: using {other}'s, the nearest CPU in instruction "
                      "sets (tune on this CPU for its own)", ForeignRecordsWarning, stacklevel=3)

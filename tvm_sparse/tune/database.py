"""Tuning databases: one JSON database per target, checked before MetaSchedule reads it.

A record file damaged by an interrupted write, edited by hand or copied from another project must
not crash tuning or compilation, and must not be silently thrown away: bad lines move to a
``.rejected`` file beside the database and are reported; good lines stay.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import tvm
from tvm.s_tir import meta_schedule as ms

from .records import cores_of_dir

WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"


class RecordWarning(UserWarning):
    """A tuning record was rejected (it stays in the ``.rejected`` file)."""


@dataclass
class CheckReport:
    path: Path
    kept: int = 0
    rejected: list[str] = field(default_factory=list)  # "file:line: why"

    def __str__(self) -> str:
        head = f"{self.path}: {self.kept} records kept"
        return head + "".join(f"\n  rejected {r}" for r in self.rejected)


def _check_lines(path: Path, check) -> tuple[list[str], list[tuple[int, str, str]]]:
    good, bad = [], []
    if not path.exists():
        return good, bad
    for i, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            why = check(json.loads(line))
        except (json.JSONDecodeError, ValueError) as err:
            why = f"not JSON ({err.msg if hasattr(err, 'msg') else err})"
        (bad.append((i, line, why)) if why else good.append(line))
    return good, bad


def _workload_check(obj) -> str | None:
    if not (isinstance(obj, list) and len(obj) == 2 and isinstance(obj[0], str)):
        return "not a MetaSchedule workload entry [hash, module]"
    return None


def _record_check(target_kind: str, n_workloads: int, cpu: str | None, cores: int | None = None):
    def check(obj) -> str | None:
        if not (isinstance(obj, list) and len(obj) == 2 and isinstance(obj[0], int)):
            return "not a MetaSchedule tuning record [workload, record]"
        if not 0 <= obj[0] < n_workloads:
            return f"refers to workload #{obj[0]}, which this database does not have"
        rec = obj[1]
        if not (isinstance(rec, list) and len(rec) >= 4):
            return "malformed record body"
        target = rec[2] if isinstance(rec[2], dict) else {}
        if target.get("kind") not in (None, target_kind):
            return f"foreign record: tuned for target kind {target.get('kind')!r}, not {target_kind!r}"
        if cpu is not None and target.get("mcpu") not in (None, cpu):
            return f"foreign record: tuned for CPU {target.get('mcpu')!r}, in the records of {cpu!r}"
        if cores is not None and target.get("num-cores", 1) != cores:
            return f"foreign record: measured on {target.get('num-cores', 1)} core(s), in the records of {cores}"
        return None

    return check


def _deserialize_check(wl_lines: list[str]):
    """A record MetaSchedule cannot load (a trace naming a schedule primitive or tensor intrinsic
    this version does not have) would abort the whole database: find it by loading each alone."""
    workloads: dict[int, object] = {}

    def check(obj) -> str | None:
        try:
            if obj[0] not in workloads:
                workloads[obj[0]] = ms.database.Workload.from_json(json.loads(wl_lines[obj[0]]))
            ms.database.TuningRecord.from_json(obj[1], workloads[obj[0]])
        except Exception as err:  # noqa: BLE001  (any failure means: this record cannot be used)
            return f"cannot be loaded by this TVM/tvm-sparse: {str(err).splitlines()[-1][:160]}"
        return None

    return check


def _state(path: Path) -> tuple:
    return tuple((f.stat().st_size, f.stat().st_mtime_ns) if f.exists() else None
                 for f in (path / WORKLOADS, path / RECORDS))


# a database is checked once per process and file state: loading every record replays its trace
_checked: dict[tuple, CheckReport] = {}
_opened: dict[tuple, ms.database.JSONDatabase] = {}


def check(path: str | Path, target: tvm.target.Target) -> CheckReport:
    """Validate a database directory in place; move bad lines aside. Returns what happened."""
    path = Path(path)
    key = (str(path.resolve()), str(target.kind.name), _state(path))
    if key not in _checked:
        _checked[key] = _check(path, target)
    return _checked[key]


def _check(path: Path, target: tvm.target.Target) -> CheckReport:
    from ..kernels import intrin  # noqa: F401  (records name our tensor intrinsics)

    report = CheckReport(path)
    wl_file, rec_file = path / WORKLOADS, path / RECORDS
    wl_good, wl_bad = _check_lines(wl_file, _workload_check)
    if wl_bad:
        # record lines index workloads by position: a bad workload line invalidates the numbering,
        # so the whole database is set aside rather than mis-attributing schedules
        _quarantine(wl_file, wl_bad, keep=[])
        _quarantine(rec_file, [(0, line, "its workload file was damaged") for line in _lines(rec_file)], keep=[])
        report.rejected += [f"{wl_file.name}:{i}: {why}" for i, _, why in wl_bad]
        report.rejected.append(f"{rec_file.name}: all records set aside (workload numbering unreliable)")
    else:
        structural = _record_check(target.kind.name, len(wl_good), _cpu_of(path), cores_of_dir(path))
        loadable = _deserialize_check(wl_good)
        rec_good, rec_bad = _check_lines(rec_file, lambda obj: structural(obj) or loadable(obj))
        if rec_bad:
            _quarantine(rec_file, rec_bad, keep=rec_good)
            report.rejected += [f"{rec_file.name}:{i}: {why}" for i, _, why in rec_bad]
        report.kept = len(rec_good)
    for r in report.rejected:
        warnings.warn(f"{path}: rejected {r}", RecordWarning, stacklevel=2)
    return report


def _cpu_of(path: Path) -> str | None:
    """The CPU a database's folder is named for (``<root>/<mcpu>/``, ``<root>/<mcpu>/graph/``,
    ``<root>/<mcpu>/cores-<N>/``); None for a folder named otherwise. A record timed on another CPU does not
    belong there: its speed says nothing."""
    from ..target import is_cpu

    nested = path.name == "graph" or cores_of_dir(path) is not None
    name = path.resolve().parent.name if nested else path.resolve().name
    return name if is_cpu(name) else None


def _lines(path: Path) -> list[str]:
    return [x for x in path.read_text(errors="replace").splitlines() if x.strip()] if path.exists() else []


def _quarantine(path: Path, bad: list[tuple[int, str, str]], keep: list[str]) -> None:
    rejected = path.with_name(path.name + ".rejected")
    with rejected.open("a") as f:
        for _, line, why in bad:
            f.write(json.dumps({"why": why, "line": line}) + "\n")
    path.write_text("".join(line + "\n" for line in keep))


@contextlib.contextmanager
def exclusive(path: str | Path, wait_message: str = ""):
    """One writer per database: MetaSchedule numbers workloads by their line in the file, so two
    processes appending at once attach records to the wrong workloads (seen here, and caught by
    ``check`` as records that no longer load). A second tuner waits for the first."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(wait_message or f"waiting for another process tuning into {path}", file=sys.stderr, flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def open_database(path: str | Path, target: tvm.target.Target) -> ms.database.JSONDatabase:
    """A checked JSON database at ``path`` (created if missing)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    check(path, target)
    key = (str(path.resolve()), _state(path))
    if key not in _opened:  # reopened only when the files changed (another process tuned)
        _opened[key] = ms.database.JSONDatabase(
            path_workload=str(path / WORKLOADS), path_tuning_record=str(path / RECORDS), allow_missing=True
        )
    return _opened[key]

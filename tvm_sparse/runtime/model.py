"""Load a compiled model and run it on numpy arrays: ``tvm_sparse.load("model.so")(input_ids=...)``.

Needs only TVM's runtime. Everything that could crash the process is checked first: the library's
checksum and ELF header (a truncated .so can segfault inside dlopen), the CPU's instruction sets,
input names, shapes, dtypes and token id ranges (TVM's embedding lookup has no bounds check).
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import numpy as np

from . import cpu
from .metadata import LibraryError, Metadata, metadata_path

# inputs a caller may leave out, and what they default to
_DEFAULTS = {"attention_mask": 1, "token_type_ids": 0}
_KNOWN = ("input_ids", "attention_mask", "token_type_ids")


class InputError(ValueError):
    """An input the compiled model cannot take (name, shape, dtype or value)."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_library(path: Path, meta: Metadata) -> None:
    if not path.is_file():
        raise LibraryError(f"no compiled library at {path}")
    with path.open("rb") as f:
        head = f.read(4)
    if head != b"\x7fELF":
        raise LibraryError(f"{path} is not a shared library (no ELF header): the file is corrupt")
    if _sha256(path) != meta.sha256:
        raise LibraryError(f"{path} does not match its metadata checksum: the file is corrupt or "
                           "truncated (or the metadata belongs to another library); recompile or copy again")


class Model:
    """A compiled BERT-family encoder: call it with numpy arrays, get the last hidden state.

    Calls from several threads are serialized (one VM, one set of input buffers): for parallel
    requests, load one Model per thread."""

    def __init__(self, path: str | Path, check_cpu: bool = True) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise LibraryError(f"no compiled library at {self.path}")
        self.metadata = Metadata.load(metadata_path(self.path))
        _check_library(self.path, self.metadata)
        if check_cpu:
            cpu.check(self.metadata.target_features,
                      what=f"{self.path.name} (compiled for {self.metadata.target.get('mcpu', '?')})")
        if "amx-tile" in self.metadata.target_features:  # AMX code faults until Linux grants the tiles
            from .amx import AMXUnavailableError, request_permission

            try:
                request_permission()
            except AMXUnavailableError as err:
                raise LibraryError(f"{self.path.name} was compiled for AMX: {err}") from None
        # TVM's pool defaults to 1 thread on some machines: use what the library was tuned for
        os.environ.setdefault("TVM_NUM_THREADS", str(self.metadata.target.get("num-cores", 1)))
        # TVM pins its pool to CPUs 0..n-1 (its main thread to CPU 0) whatever this process's affinity mask:
        # instances started on their own cores with taskset all piled onto the first ones (the 16-core Xeon,
        # 8 instances x 2 threads: 84 ms a call, against 22 ms at 16 x 1). Inside a mask, leave placement
        # to the OS, which keeps the threads within it.
        if hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) < (os.cpu_count() or 1):
            os.environ.setdefault("TVM_BIND_THREADS", "0")
        import tvm
        from tvm.runtime.vm import VirtualMachine  # not tvm.relax: a machine may have TVM's runtime alone

        try:
            lib = tvm.runtime.load_module(str(self.path))
            self.device = _device(self.metadata.target)
            self._vm = VirtualMachine(lib, self.device)
        except Exception as err:  # TVM raises its own error types for a bad library
            raise LibraryError(f"cannot load {self.path}: {err}") from err
        self._tvm = tvm
        self.input_names = [i["name"] for i in self.metadata.inputs]
        self.shape = tuple(self.metadata.inputs[0]["shape"])  # (batch, seq_len)
        # inputs are copied into these each call, not into new tensors (allocations cost ~1%)
        self._args = [tvm.runtime.tensor(np.zeros(self.shape, np.int64), self.device) for _ in self.input_names]
        self._lock = threading.Lock()

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(self.metadata.output["shape"])

    def _prepare(self, name: str, value) -> np.ndarray:
        arr = np.asarray(value)
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
            raise InputError(f"{name} must be an integer array (int32 or int64), got dtype {arr.dtype}: "
                             "token ids and masks are integers, never floats")
        if arr.shape != self.shape:
            b, seq = self.shape
            raise InputError(
                f"{name} has shape {arr.shape}, but this library was compiled for [batch={b}, "
                f"seq_len={seq}]: pad or truncate to {seq} tokens (mask the padding) or recompile "
                "with --batch/--seq-len")
        limit = self.metadata.input_limits.get(name)
        if arr.size and ((arr < 0).any() or (limit is not None and (arr >= limit).any())):
            bad = arr[(arr < 0) | (arr >= (limit if limit is not None else np.iinfo(np.int64).max))]
            raise InputError(f"{name} holds values outside [0, {limit}): e.g. {bad.flat[0]} "
                             "(wrong tokenizer for this model?)")
        return np.ascontiguousarray(arr, dtype=np.int64)

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, **unknown) -> np.ndarray:
        """The last hidden state ``[batch, seq_len, hidden]`` float32."""
        if unknown:
            raise InputError(f"unknown inputs {sorted(unknown)}; the model takes {list(_KNOWN)}")
        if input_ids is None:
            raise InputError("input_ids is required")
        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        arrays = {}
        for name in _KNOWN:
            value = given[name]
            if value is None:
                value = np.full(self.shape, _DEFAULTS.get(name, 0), np.int64)
            arrays[name] = self._prepare(name, value)  # validated even when the graph ignores it
        with self._lock:
            for arg, name in zip(self._args, self.input_names, strict=True):
                arg.copyfrom(arrays[name])
            # the VM's fresh output tensor, shared rather than copied: the array keeps it alive
            return np.from_dlpack(self._vm["main"](*self._args))

    def __repr__(self) -> str:
        m = self.metadata
        n_sparse = sum(layer["sparse"] for layer in m.layers)
        return (f"Model({self.path.name}: {m.precision}, inputs {list(self.shape)}, output "
                f"{m.output['shape']}, {n_sparse}/{len(m.layers)} sparse Linears, target {m.target})")


def load(path: str | Path, check_cpu: bool = True) -> Model:
    """Load a library written by ``tvm-sparse compile`` (its ``.json`` metadata must sit beside it)."""
    return Model(path, check_cpu=check_cpu)


def _device(target: dict):
    """Where a library built for ``target`` (its metadata's JSON) runs: the runtime's one device seam."""
    import tvm

    kind = target.get("kind", "llvm")
    return tvm.cpu(0) if kind == "llvm" else tvm.device(kind, 0)

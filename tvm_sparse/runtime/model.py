"""Load a compiled model and run it on numpy arrays: ``tvm_sparse.load("model.so")(input_ids=...)``.

Needs only TVM's runtime. Everything that could crash the process is checked first: the library's
checksum and ELF header (a truncated .so can segfault inside dlopen), the CPU's instruction sets,
input names, shapes, dtypes and token id ranges (TVM's embedding lookup has no bounds check).

Any (batch, length) up to the compiled buckets runs: the smallest length bucket that holds the input
is picked, the tokens are padded (and masked) to it, a batch is padded to the smallest batch bucket
that holds it or split into the largest, and outputs come back at the caller's own batch and length.
The text tasks (``encode``, ``classify``) are in ``tasks.py``.
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from pathlib import Path

import numpy as np

from . import cpu
from .metadata import InputError, LibraryError, Metadata, metadata_path

__all__ = ["InputError", "LibraryError", "Model", "load"]

_POOL = threading.local()  # the worker count this thread's TVM pool was last given
# the caller's own setting, read once: load(threads=N) raises the variable for TVM's pools, and a later
# model without threads= must not take that as its default
_USER_THREADS = int(os.environ.get("TVM_NUM_THREADS", 0) or 0)

# inputs a caller may leave out, and what they default to
_DEFAULTS = {"attention_mask": 1, "token_type_ids": 0}
_KNOWN = ("input_ids", "attention_mask", "token_type_ids")


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

    def __init__(self, path: str | Path, check_cpu: bool = True, threads: int | None = None) -> None:
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
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        # TVM's pool defaults to 1 thread on some machines: use what the library was tuned for
        env = int(os.environ.get("TVM_NUM_THREADS", 0) or 0)
        self.threads = threads or _USER_THREADS or int(self.metadata.target.get("num-cores", 1))
        # a pool holds at most the TVM_NUM_THREADS it was created with (config_threadpool can lower the
        # count, not raise it): make room for this model in the pools still to be created
        os.environ["TVM_NUM_THREADS"] = str(max(env, self.threads))
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
        self.buckets = self.metadata.shape_buckets()  # [(batch, seq_len, function)], smallest first
        self.shape = tuple(self.metadata.inputs[0]["shape"])  # the largest (batch, seq_len)
        self.max_batch, self.max_length = max(b for b, _, _ in self.buckets), max(n for _, n, _ in self.buckets)
        # inputs are copied into these each call, not into new tensors (allocations cost ~1%); per bucket,
        # made on first use
        self._args: dict[str, list] = {}
        self._lock = threading.Lock()
        self._tokenizer = None
        self._config_threads = tvm.get_global_func("runtime.config_threadpool")

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(self.metadata.output["shape"])

    def _prepare(self, name: str, value, shape: tuple[int, int] | None) -> np.ndarray:
        arr = np.asarray(value)
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
            raise InputError(f"{name} must be an integer array (int32 or int64), got dtype {arr.dtype}: "
                             "token ids and masks are integers, never floats")
        if arr.ndim == 1:  # one sequence
            arr = arr[None, :]
        if arr.ndim != 2 or (shape is not None and arr.shape != shape):
            raise InputError(f"{name} has shape {arr.shape}: expected [batch, seq_len]"
                             + (f" = {list(shape)}, the shape of input_ids" if shape is not None else ""))
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise InputError(f"{name} has shape {arr.shape}: an empty batch or sequence")
        limit = self.metadata.input_limits.get(name)
        if arr.size and ((arr < 0).any() or (limit is not None and (arr >= limit).any())):
            bad = arr[(arr < 0) | (arr >= (limit if limit is not None else np.iinfo(np.int64).max))]
            raise InputError(f"{name} holds values outside [0, {limit}): e.g. {bad.flat[0]} "
                             "(wrong tokenizer for this model?)")
        return np.ascontiguousarray(arr, dtype=np.int64)

    def bucket_for(self, batch: int, seq_len: int) -> tuple[int, int, str]:
        """The bucket a ``[batch, seq_len]`` input runs in (a larger batch: this bucket, several times)."""
        fits = [b for b in self.buckets if b[1] >= seq_len]
        if not fits:
            raise InputError(
                f"a sequence of {seq_len} tokens is longer than this library's longest bucket "
                f"({self.max_length}; compiled lengths {sorted({n for _, n, _ in self.buckets})}): "
                "pass truncate=True to cut it, or recompile with a longer --seq-len")
        length = min(n for _, n, _ in fits)
        sizes = [b for b in fits if b[1] == length]
        holding = [b for b in sizes if b[0] >= batch]
        return min(holding) if holding else max(sizes)

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, truncate: bool = False,
                 **unknown) -> np.ndarray:
        """The model's output for ``[batch, seq_len]`` inputs of any batch and any length up to the
        longest bucket: the last hidden state ``[batch, seq_len, hidden]`` float32 (or a classifier's
        logits ``[batch, labels]``). A 1-D input is one sequence (batch 1). ``truncate``: cut sequences
        longer than the longest bucket (their tail is lost) instead of refusing them."""
        if unknown:
            raise InputError(f"unknown inputs {sorted(unknown)}; the model takes {list(_KNOWN)}")
        if input_ids is None:
            raise InputError("input_ids is required")
        ids = self._prepare("input_ids", input_ids, None)
        given = {"attention_mask": attention_mask, "token_type_ids": token_type_ids}
        arrays = {"input_ids": ids}
        for name in _KNOWN[1:]:
            value = given[name]
            if value is None:
                value = np.full(ids.shape, _DEFAULTS.get(name, 0), np.int64)
            arrays[name] = self._prepare(name, value, ids.shape)  # validated even when the graph ignores it
        n, length = ids.shape
        if length > self.max_length and truncate:
            arrays = {k: v[:, :self.max_length] for k, v in arrays.items()}
            length = self.max_length
        big, bucket_len, big_fn = self.bucket_for(n, length)
        outs = []
        for start in range(0, n, big):  # a batch larger than every bucket: in pieces of the largest
            rows = min(big, n - start)
            # the last piece in the smallest bucket that holds it (fewer padded rows to compute)
            b, _, fn = (big, bucket_len, big_fn) if rows == big else self.bucket_for(rows, length)
            outs.append(self._run({k: v[start:start + rows] for k, v in arrays.items()}, rows, b, bucket_len, fn))
        out = outs[0] if len(outs) == 1 else np.concatenate(outs)
        return out[:, :length] if out.ndim == 3 else out

    def _run(self, chunk: dict[str, np.ndarray], rows: int, batch: int, seq_len: int, fn: str) -> np.ndarray:
        """One call of bucket function ``fn`` on ``chunk`` padded to ``[batch, seq_len]``."""
        length = chunk["input_ids"].shape[1]
        padded = {}
        for name, v in chunk.items():
            if v.shape != (batch, seq_len):
                full = np.zeros((batch, seq_len), np.int64)  # pad id 0, mask 0, type 0: masked out
                full[:rows, :length] = v
                full[rows:, :length] = v[:1]
                v = full
            padded[name] = v
        with self._lock:
            # TVM's pool is per calling thread: size it when this thread last ran another thread count
            if getattr(_POOL, "threads", None) != self.threads:
                self._config_threads(1, self.threads)  # 1: all (big) cores, self.threads workers
                _POOL.threads = self.threads
                got = int(self._tvm.get_global_func("runtime.NumThreads")())
                if got < self.threads:
                    warnings.warn(f"{self.path.name}: runs on {got} thread(s), not {self.threads}: TVM's thread "
                                  f"pool was started with TVM_NUM_THREADS={got} before this model was loaded; "
                                  f"load it (or set TVM_NUM_THREADS={self.threads}) before anything runs on TVM",
                                  RuntimeWarning, stacklevel=3)
            args = self._args.get(fn)
            if args is None:
                args = self._args[fn] = [self._tvm.runtime.tensor(np.zeros((batch, seq_len), np.int64), self.device)
                                         for _ in self.input_names]
            for arg, name in zip(args, self.input_names, strict=True):
                arg.copyfrom(padded[name])
            # the VM's fresh output tensor, shared rather than copied: the array keeps it alive
            out = np.from_dlpack(self._vm[fn](*args))
        return out if rows == batch else out[:rows]

    def encode(self, sentences, batch_size: int = 32, normalize: bool | None = None,
               truncate: bool = False) -> np.ndarray:
        """Sentence embeddings ``[n, hidden]`` float32, pooled as the model's own configuration says
        (sentence-transformers' ``1_Pooling``: mean, CLS, max, ...); ``normalize`` None: as the model's
        pipeline does (a ``Normalize`` module), True/False: L2-normalize or not. Needs ``transformers``
        for the tokenizer the library carries."""
        from .tasks import encode

        return encode(self, sentences, batch_size=batch_size, normalize=normalize, truncate=truncate)

    def classify(self, texts, batch_size: int = 32, truncate: bool = False):
        """``(logits [n, labels] float32, labels [n] str)`` for a sequence-classification model."""
        from .tasks import classify

        return classify(self, texts, batch_size=batch_size, truncate=truncate)

    def __repr__(self) -> str:
        m = self.metadata
        # per bucket where the library says (the choice can differ: dense AMX needs 32-token blocks)
        counts = sorted({x["sparse_linears"] for x in m.buckets if x.get("sparse_linears") is not None}) or [
            sum(layer["sparse"] for layer in m.layers)]
        n_sparse = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        lengths = sorted({n for _, n, _ in self.buckets})
        batches = sorted({b for b, _, _ in self.buckets})
        task = m.task.get("kind", "hidden")
        return (f"Model({self.path.name}: {task}, {m.precision}, lengths {lengths}, batches {batches}, output "
                f"{m.output['shape']}, {n_sparse}/{len(m.layers)} sparse Linears"
                f"{' (by bucket)' if len(counts) > 1 else ''}, {self.threads} threads, "
                f"target {m.target.get('mcpu', m.target)})")


def load(path: str | Path, check_cpu: bool = True, threads: int | None = None) -> Model:
    """Load a library written by ``tvm-sparse compile`` (its ``.json`` metadata must sit beside it).

    ``threads``: TVM's worker threads for this model's calls (default: ``TVM_NUM_THREADS``, else the
    cores the library was compiled for)."""
    return Model(path, check_cpu=check_cpu, threads=threads)


def _device(target: dict):
    """Where a library built for ``target`` (its metadata's JSON) runs: the runtime's one device seam."""
    import tvm

    kind = target.get("kind", "llvm")
    return tvm.cpu(0) if kind == "llvm" else tvm.device(kind, 0)

"""The JSON file that travels beside a compiled library: what it takes, returns and needs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

# 2: target_features (LLVM names, checked in full) replaced required_isa (cpuinfo flags)
# 3: buckets (one function per (batch, length)), task (pooling, labels), tokenizer (its files)
FORMAT = 3
READABLE = (2, 3)  # a format-2 library is one bucket, "main", with no task or tokenizer
_NEW_IN_3 = ("buckets", "task", "tokenizer")


class LibraryError(RuntimeError):
    """A compiled library or its metadata is missing, corrupt or from an incompatible version."""


class InputError(ValueError):
    """An input the compiled model cannot take (name, shape, dtype or value)."""


def metadata_path(library: str | Path) -> Path:
    """``model.so`` -> ``model.json``."""
    return Path(library).with_suffix(".json")


@dataclass
class Metadata:
    version: str  # tvm_sparse.__version__ that compiled it
    inputs: list[dict]  # [{"name", "shape", "dtype"}] in call order
    output: dict  # {"name", "shape", "dtype"}
    target: dict  # TVM target JSON
    target_features: list[str]  # every LLVM feature the target enables that enables instructions
    precision: str  # "int8" | "fp32"
    layers: list[dict] = field(default_factory=list)  # per Linear: name, shape, sparsity, kernel
    input_limits: dict[str, int] = field(default_factory=dict)  # input -> embedding table rows
    threshold: float = 0.0  # the sparse/dense crossover used
    library: str = ""  # the .so file name
    sha256: str = ""  # of the .so: a corrupt or truncated library is refused before dlopen
    format: int = FORMAT
    # [{"batch", "seq_len", "function"}]: every compiled shape and the VM function that runs it
    buckets: list[dict] = field(default_factory=list)
    # {"kind": "embedding" | "classification" | "hidden", "pooling", "normalize", "max_length", "labels"}
    task: dict = field(default_factory=dict)
    tokenizer: dict[str, str] = field(default_factory=dict)  # file name -> contents (base64: prefixed)
    # of every field above: the limits and shapes the runtime checks inputs against are what compile
    # wrote (a hand-edited vocabulary limit let out-of-range ids read past the embedding table)
    checksum: str = ""

    def digest(self) -> str:
        # a format-2 file was signed before the format-3 fields existed
        skip = ("checksum", *_NEW_IN_3) if self.format == 2 else ("checksum",)
        fields = {k: v for k, v in asdict(self).items() if k not in skip}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()

    def save(self, path: str | Path) -> None:
        self.checksum = self.digest()
        Path(path).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Metadata:
        path = Path(path)
        if not path.is_file():
            raise LibraryError(f"metadata file {path} is missing: it is written beside the .so by "
                               "'tvm-sparse compile'; copy both files together")
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise LibraryError(f"metadata file {path} is corrupt: {err}") from err
        fmt = raw.get("format") if isinstance(raw, dict) else None
        if fmt not in READABLE:
            raise LibraryError(f"metadata format {fmt} of {path} is not supported (this version reads "
                               f"{', '.join(map(str, READABLE))}): recompile the model with this version of "
                               "tvm-sparse")
        try:
            meta = cls(**raw)
        except TypeError as err:
            raise LibraryError(f"metadata file {path} is corrupt: {err}") from err
        if meta.checksum != meta.digest():
            raise LibraryError(f"metadata file {path} does not match its checksum: it was edited or damaged "
                               "after compile. Recompile the model (or copy its .json again)")
        problem = meta.problem()
        if problem:
            raise LibraryError(f"metadata file {path} is invalid: {problem}; recompile the model")
        return meta

    def problem(self) -> str | None:
        """What makes this metadata unusable (None when it is sound)."""
        if not (isinstance(self.sha256, str) and len(self.sha256) == 64):
            return "no checksum of the library (sha256)"
        if not (isinstance(self.inputs, list) and self.inputs):
            return "it lists no inputs"
        shapes = {tuple(i.get("shape", ())) if isinstance(i, dict) else () for i in self.inputs}
        if len(shapes) != 1 or not _positive_ints(next(iter(shapes)), 2):
            return f"input shapes {sorted(shapes)} are not one [batch, seq_len] of positive sizes"
        if not all(isinstance(k, str) and _positive_ints([v], 1) for k, v in self.input_limits.items()):
            return f"input limits {self.input_limits} are not positive integers"
        for b in self.buckets:
            if not (isinstance(b, dict) and _positive_ints([b.get("batch"), b.get("seq_len")], 2)
                    and isinstance(b.get("function"), str)):
                return f"bucket {b} is not a batch, a length and a function name"
        return None

    def shape_buckets(self) -> list[tuple[int, int, str]]:
        """``(batch, seq_len, function)`` of every compiled shape (a format-2 library: its one shape)."""
        if not self.buckets:
            b, n = self.inputs[0]["shape"]
            return [(b, n, "main")]
        return sorted((b["batch"], b["seq_len"], b["function"]) for b in self.buckets)


def _positive_ints(values, n: int) -> bool:
    return len(values) == n and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)

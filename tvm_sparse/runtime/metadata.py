"""The JSON file that travels beside a compiled library: what it takes, returns and needs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

FORMAT = 2  # 2: target_features (LLVM names, checked in full) replaced required_isa (cpuinfo flags)


class LibraryError(RuntimeError):
    """A compiled library or its metadata is missing, corrupt or from an incompatible version."""


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

    def save(self, path: str | Path) -> None:
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
        if fmt != FORMAT:
            raise LibraryError(f"metadata format {fmt} of {path} is not supported (expected {FORMAT}): "
                               "recompile the model with this version of tvm-sparse")
        try:
            return cls(**raw)
        except TypeError as err:
            raise LibraryError(f"metadata file {path} is corrupt: {err}") from err

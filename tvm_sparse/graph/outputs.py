"""Output paths are checked before any work: no command writes over one of its own inputs, and no two
of its outputs land on one file (``compile a.onnx -o a.onnx`` once turned the model into an ELF file;
``-o lib.json`` wrote the metadata over the library just written)."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import GraphError


def _same(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)  # links and hard links too
    return a.resolve() == b.resolve()


def refuse_clashes(inputs: dict[str, str | Path | None], outputs: dict[str, str | Path]) -> None:
    """Raise ``GraphError`` naming the clash where an output is an input, a directory, or another output."""
    ins = {k: Path(v) for k, v in inputs.items() if v is not None}
    outs = {k: Path(v) for k, v in outputs.items()}
    for name, out in outs.items():
        if out.is_dir():
            raise GraphError(f"{name} {out} is a directory: give a file path")
        for what, src in ins.items():
            if src.is_file() and _same(out, src):
                raise GraphError(f"{name} {out} is the {what}: writing it would destroy the {what}; "
                                 "choose another output path")
    names = list(outs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if _same(outs[a], outs[b]):
                raise GraphError(f"{a} and {b} would both be written to {outs[a]}: choose another output path")

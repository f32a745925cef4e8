"""The directory sparsify writes: a Hugging Face model that ``tvm-sparse compile`` takes as it is.

``OUT/config.json`` + ``model.safetensors`` (the sparse weights), the teacher's tokenizer files and
sentence-transformers files (so the output embeds the same way), ``sparsify.json`` (sparsity, steps,
teacher, fidelity, per-layer statistics) and ``sparsify.history.json`` (the loss per step).

What it refuses: writing into (or above) the input directory, and a non-empty ``-o`` that is not a
checkpoint of this same run. Nothing it refuses has been touched.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .deps import SparsifyError

SUMMARY = "sparsify.json"
HISTORY = "sparsify.history.json"
# sentence-transformers' description of the pipeline (pooling etc.): copied when the teacher has them
EXTRA_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling")


def _inside(a: Path, b: Path) -> bool:
    try:
        a.relative_to(b)
        return True
    except ValueError:
        return False


def prepare(model_dir: Path, out_dir: Path, identity: dict, resume: bool, checkpoint: dict | None) -> bool:
    """Check the input and the output directory; True when this call resumes a checkpoint."""
    if not (model_dir / "config.json").is_file():
        raise SparsifyError(f"{model_dir} is not a Hugging Face model directory (no config.json)")
    src, dst = model_dir.resolve(), out_dir.resolve()
    if _inside(dst, src) or _inside(src, dst):
        raise SparsifyError(f"-o {out_dir} must not be the input directory {model_dir}, inside it or above it")
    if dst.exists() and not dst.is_dir():
        raise SparsifyError(f"-o {out_dir} exists and is not a directory")
    if not dst.exists() or not any(dst.iterdir()):
        return False
    if checkpoint is None:
        done = " (it holds a finished sparsify output)" if (dst / SUMMARY).is_file() else ""
        raise SparsifyError(f"-o {out_dir} is not empty{done} and holds no checkpoint of this run: "
                            "choose an empty or new directory")
    if checkpoint != identity:
        diff = sorted(k for k in set(checkpoint) | set(identity) if checkpoint.get(k) != identity.get(k))
        raise SparsifyError(f"-o {out_dir} holds a checkpoint of a different run (differs in: {', '.join(diff)}): "
                            "choose another directory, or repeat that run's arguments with --resume")
    if not resume:
        raise SparsifyError(f"-o {out_dir} holds a checkpoint of this run: pass --resume to continue it, "
                            "or choose another directory")
    return True


def write(student, tokenizer, teacher_dir: Path, out_dir: Path, summary: dict, history: list) -> None:
    """Write the model, the tokenizer, the teacher's sentence-transformers files and the summary; then
    remove the checkpoint (the output is complete)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    student.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    for name in EXTRA_FILES:
        src = teacher_dir / name
        if src.is_dir():
            shutil.copytree(src, out_dir / name, dirs_exist_ok=True)
        elif src.is_file():
            shutil.copy2(src, out_dir / name)
    (out_dir / HISTORY).write_text(json.dumps({"columns": ["step", "sparsity", "loss", "hidden", "one_minus_cos"],
                                               "rows": history}))
    (out_dir / SUMMARY).write_text(json.dumps(summary, indent=1))
    shutil.rmtree(out_dir / "checkpoint", ignore_errors=True)

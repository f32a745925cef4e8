"""Fidelity lines for ``prune`` and ``compile``: what the whole path costs against the original dense model.

``prune``: the pruned fp32 model against the dense one it came from (onnxruntime on both), and, when that
is poor, how to get an accurate model. ``compile``: the int8 (or fp32) library against the fp32 model it
was compiled from (what quantization costs), and against the original dense model (what everything
costs): named with ``--dense``, or found in ``sparsify.json`` when the model is a sparsify output.

Sentences: ``--fidelity-text FILE`` (one per line), else the first 64 of the built-in held-out text.
A measurement that cannot run (no tokenizer, no onnxruntime) prints why and never fails the command.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from . import corpus, fidelity
from .deps import MissingExtraError, SparsifyError, require

DEFAULT_SENTENCES = 64
ONE_SHOT_HINT = ("one-shot pruning without training loses accuracy: for an accurate 4x1 model run "
                 "'tvm-sparse sparsify HF_DIR -o OUT --sparsity S' (distillation from the dense model), or "
                 "bring a model already sparsified in 4x1 blocks (Neural Compressor's '4x1' pattern) and "
                 "compile it as is")
SPARSIFY_HINT = ("to keep more of the dense model's accuracy: sparsify again with more --steps (more "
                 "text if it repeats), or a lower --sparsity")
POOR = 0.95  # below this mean cosine to the dense model, say how to do better


def add_arguments(p: argparse.ArgumentParser, tokenizer: bool = False, dense: bool = False) -> None:
    p.add_argument("--fidelity-text", default=None,
                   help=f"sentences (one per line) to measure fidelity to the dense model on (default: "
                        f"{DEFAULT_SENTENCES} built-in held-out sentences)")
    if tokenizer:
        p.add_argument("--tokenizer", default=None,
                       help="Hugging Face directory whose tokenizer reads the fidelity sentences (default: "
                            "the model, when it is a Hugging Face directory)")
    if dense:
        p.add_argument("--dense", default=None,
                       help="the original dense model (Hugging Face directory or ONNX) to report fidelity to "
                            "(default: the teacher named in MODEL/sparsify.json, if any)")


def _sentences(path: str | None) -> list[str]:
    if path:
        return corpus.read_text(path)
    return corpus.builtin("heldout")[:DEFAULT_SENTENCES]


def _tokenizer(tokenizer_dir: str | Path):
    transformers = require("transformers", "measuring fidelity")
    return transformers.AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)


def _onnx_embed(onnx_path: str | Path, tok, sentences: list[str], seq_len: int) -> np.ndarray:
    ort = require("onnxruntime", "measuring fidelity (the compare extra)")
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return fidelity.embed_fixed(lambda feeds: sess.run(None, {n: feeds[n] for n in names})[0], tok, sentences,
                                batch=16, seq_len=seq_len)


def _dense_embed(dense: str | Path, tok, sentences: list[str], seq_len: int) -> np.ndarray:
    dense = Path(dense)
    if dense.is_dir():
        transformers = require("transformers", "measuring fidelity")
        model = transformers.AutoModel.from_pretrained(str(dense), local_files_only=True).eval()
        return fidelity.embed_torch(model, tok, sentences, max_len=seq_len)
    return _onnx_embed(dense, tok, sentences, seq_len)


def _guard(what: str, fn) -> None:
    try:
        fn()
    except (SparsifyError, MissingExtraError, ImportError, OSError, ValueError) as err:
        print(f"fidelity ({what}) not measured: {err}")


def after_prune(args: argparse.Namespace, dense_onnx: str | Path, seq_len: int = 128) -> None:
    """Print the pruned model's fidelity to the dense one (onnxruntime fp32 on both)."""
    tok_dir = getattr(args, "tokenizer", None) or (args.model if Path(args.model).is_dir() else None)

    def measure() -> None:
        if not tok_dir:
            raise SparsifyError("pass --tokenizer HF_DIR (the model's tokenizer) to measure it")
        tok, sentences = _tokenizer(tok_dir), _sentences(args.fidelity_text)
        fid = fidelity.compare(_onnx_embed(args.output, tok, sentences, seq_len),
                               _onnx_embed(dense_onnx, tok, sentences, seq_len))
        print(fidelity.describe("pruned fp32 vs the dense model", fid))
        if fid["mean_cosine"] < POOR:
            print(ONE_SHOT_HINT)

    _guard("pruned vs dense", measure)


def after_compile(args: argparse.Namespace, source: str | Path) -> None:
    """Print the library's fidelity to the fp32 model it was compiled from and to the original dense model."""
    source = Path(source)
    tok_dir = getattr(args, "tokenizer", None) or (source if source.is_dir() else None)
    dense = getattr(args, "dense", None)
    summary = source / "sparsify.json" if source.is_dir() else None
    if not dense and summary is not None and summary.is_file():
        dense = json.loads(summary.read_text()).get("teacher")

    def measure() -> None:
        if not tok_dir:
            raise SparsifyError("pass --tokenizer HF_DIR to measure it")
        from ..runtime.model import load

        lib = load(args.output)
        batch, seq_len = lib.shape
        tok, sentences = _tokenizer(tok_dir), _sentences(args.fidelity_text)
        emb = fidelity.embed_fixed(lambda feeds: lib(**feeds), tok, sentences, batch=batch, seq_len=seq_len)
        label = lib.metadata.precision
        print(fidelity.describe(f"{label} library vs its fp32 model", fidelity.compare(
            emb, _onnx_embed(args.model, tok, sentences, seq_len))))
        if dense:
            fid = fidelity.compare(emb, _dense_embed(dense, tok, sentences, seq_len))
            print(fidelity.describe(f"{label} library vs the original dense model ({dense})", fid))
            if fid["mean_cosine"] < POOR:
                print(SPARSIFY_HINT if summary is not None and summary.is_file() else ONE_SHOT_HINT)
        else:
            print("fidelity to the original dense model: pass --dense DENSE_MODEL to measure it")

    _guard("compiled library", measure)

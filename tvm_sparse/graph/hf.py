"""A Hugging Face model directory as a source: what task it does, its tokenizer, where its export goes.

- ``read_task``: sentence-transformers' own pipeline (``modules.json``, ``1_Pooling/config.json``,
  ``2_Normalize``, ``sentence_bert_config.json``) or a ``...ForSequenceClassification`` head (labels from
  ``config.json``), as the dict the library's metadata carries (``runtime/tasks.py`` reads it).
- ``tokenizer_files``: the tokenizer's files, carried in the metadata (one artifact: no ``--tokenizer``
  at run time).
- ``model_source``: a path given on the command line -> an ONNX file to read. A directory is exported
  into a cache directory (never into the user's directory); a Hub id gets how to pass a local copy.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path

from .errors import GraphError
from .export import export_hf, is_classifier

# sentence-transformers' Pooling modes, in the order it concatenates them
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len", "weightedmean", "lasttoken")
_ST_KEYS = {"cls": "pooling_mode_cls_token", "max": "pooling_mode_max_tokens", "mean": "pooling_mode_mean_tokens",
            "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens", "weightedmean": "pooling_mode_weightedmean_tokens",
            "lasttoken": "pooling_mode_lasttoken"}
# what a tokenizer is made of (AutoTokenizer reads whichever are there); binary ones travel base64-encoded
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
                   "merges.txt", "added_tokens.json", "spiece.model", "sentencepiece.bpe.model")
BASE64 = "base64:"


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise GraphError(f"cannot read {path}: {err}") from err


def read_task(model_dir: str | Path) -> dict:
    """``{"kind": "embedding", "pooling": [...], "normalize", "max_length"}``, ``{"kind":
    "classification", "labels": [...]}`` or ``{"kind": "hidden"}`` (a plain encoder: ``encode`` mean-pools,
    as sentence-transformers does for a model without its configuration)."""
    d = Path(model_dir)
    config = _json(d / "config.json") if (d / "config.json").is_file() else {}
    if is_classifier(d):
        id2label = config.get("id2label") or {}
        n = len(id2label) or int(config.get("num_labels", 2))
        return {"kind": "classification",
                "labels": [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(n)]}
    modules = d / "modules.json"
    if not modules.is_file():
        return {"kind": "hidden"}
    task: dict = {"kind": "embedding", "pooling": ["mean"], "normalize": False}
    for module in _json(modules):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind == "Pooling":
            cfg = _json(d / module.get("path", "1_Pooling") / "config.json")
            if isinstance(cfg.get("pooling_mode"), str):  # newer files name one mode
                modes = [cfg["pooling_mode"].replace("mean_sqrt_len_tokens", "mean_sqrt_len")
                         .replace("_tokens", "").replace("_token", "")]
            else:
                modes = [m for m in POOLING_MODES if cfg.get(_ST_KEYS[m])]
            unknown = [m for m in modes if m not in POOLING_MODES]
            if not modes or unknown:
                raise GraphError(f"{d / module.get('path', '')}/config.json: pooling {unknown or 'none'} is not "
                                 f"supported (supported: {', '.join(POOLING_MODES)})")
            task["pooling"] = modes
        elif kind == "Normalize":
            task["normalize"] = True
        elif kind not in ("Transformer", ""):
            raise GraphError(f"{modules}: the sentence-transformers module {module.get('type')} (e.g. a Dense "
                             "projection after pooling) is not supported; only Transformer, Pooling, Normalize")
    st = d / "sentence_bert_config.json"
    if st.is_file():
        cfg = _json(st)
        if cfg.get("max_seq_length"):
            task["max_length"] = int(cfg["max_seq_length"])
        if cfg.get("do_lower_case"):
            task["do_lower_case"] = True
    return task


def tokenizer_files(model_dir: str | Path) -> dict[str, str]:
    """The tokenizer's files by name (binary ones base64 with a prefix); refuses a directory with none."""
    d = Path(model_dir)
    out = {}
    for name in TOKENIZER_FILES:
        path = d / name
        if path.is_file():
            data = path.read_bytes()
            try:
                out[name] = data.decode("utf-8")
            except UnicodeDecodeError:
                out[name] = BASE64 + base64.b64encode(data).decode()
    if not ({"tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model"} & set(out)):
        raise GraphError(f"{d} holds no tokenizer (tokenizer.json or vocab.txt): pass the model's own "
                         "Hugging Face directory as --tokenizer")
    return out


def cache_dir() -> Path:
    """Where exports of Hugging Face directories go: $TVM_SPARSE_CACHE, else ~/.cache/tvm-sparse."""
    root = os.environ.get("TVM_SPARSE_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"),
                                                       "tvm-sparse")
    return Path(root) / "exports"


def _fingerprint(model_dir: Path) -> str:
    """The directory's config and weights (names, sizes, times): a changed model is exported again."""
    h = hashlib.sha256(str(model_dir.resolve()).encode())
    for p in sorted(model_dir.iterdir()):
        if p.is_file() and (p.suffix in (".json", ".safetensors", ".bin") or p.name.startswith("pytorch_model")):
            st = p.stat()
            h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def looks_like_hub_id(text: str) -> bool:
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not text.startswith((".", "~")) and not text.endswith(".onnx")


def model_source(model: str | Path, seq_len: int = 128, log=print) -> tuple[Path, Path | None]:
    """``(ONNX file, Hugging Face directory or None)`` for a command's MODEL argument.

    A directory is exported once into ``cache_dir()`` (keyed by its contents) and read from there: the
    user's directory is never written to. A missing path shaped like ``org/name`` is a Hub id."""
    path = Path(model)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise GraphError(f"{path} is a directory but not a Hugging Face model (no config.json)")
        out = cache_dir() / _fingerprint(path) / "model.onnx"
        if out.is_file():
            log(f"using the export of {path} cached at {out}")
        else:
            log(f"exporting the Hugging Face model {path} to {out} (the directory itself is not written to; "
                "about a minute for a BERT-base) ...")
            t0 = time.time()
            tmp = out.with_name("model.partial.onnx")  # a killed export leaves no half file under the real name
            export_hf(path, tmp, seq_len=seq_len)
            tmp.replace(out)
            log(f"exported in {time.time() - t0:.0f} s")
        return out, path
    if not path.exists():
        if looks_like_hub_id(str(model)):
            raise GraphError(
                f"{model!r} looks like a Hugging Face Hub id: tvm-sparse reads local files only. Download it "
                f"first (e.g. `huggingface-cli download {model} --local-dir DIR`, or "
                f"`huggingface_hub.snapshot_download('{model}')` in Python) and pass that directory")
        raise GraphError(f"no ONNX model or Hugging Face directory at {path}")
    return path, None

"""Text in, answers out: ``Model.encode`` (sentence embeddings) and ``Model.classify`` (labels).

The library's metadata carries its tokenizer's files and its task: the pooling sentence-transformers'
configuration names (``1_Pooling/config.json``: mean, CLS, max, ...), whether its pipeline normalizes,
its maximum length, or a classifier's labels. Tokenizing needs ``transformers`` (the ``text`` extra);
running needs only TVM's runtime. Pooling follows sentence-transformers' own code, mode by mode.
"""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

import numpy as np

from .metadata import InputError, LibraryError  # not from .model: it imports this module

_BASE64 = "base64:"


def tokenizer(model):
    """The Hugging Face tokenizer the library carries (loaded once per Model)."""
    if model._tokenizer is not None:
        return model._tokenizer
    files = model.metadata.tokenizer
    if not files:
        raise LibraryError(f"{model.path.name} carries no tokenizer: compile it from a Hugging Face directory, "
                           "or pass --tokenizer DIR to compile; or call the model on token ids")
    try:
        import transformers
    except ImportError as err:
        raise LibraryError("text input needs the optional package 'transformers' for the tokenizer: "
                           "pip install 'tvm-sparse[text]'") from err
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            path = Path(tmp) / name
            if text.startswith(_BASE64):
                path.write_bytes(base64.b64decode(text[len(_BASE64):]))
            else:
                path.write_text(text)
        model._tokenizer = transformers.AutoTokenizer.from_pretrained(tmp, local_files_only=True)
    return model._tokenizer


def _texts(texts, what: str) -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise InputError(f"{what} takes strings; item {bad[0]} is {type(texts[bad[0]]).__name__}")
    return texts


def tokenize(model, texts: list[str], truncate: bool) -> dict[str, np.ndarray]:
    """Token ids ``[n, longest]`` padded to the longest text (the bucket pads further), cut at the model's
    own maximum length (as sentence-transformers does); refused past the library's longest bucket unless
    ``truncate``."""
    tok = tokenizer(model)
    task = model.metadata.task
    own = int(task.get("max_length") or min(getattr(tok, "model_max_length", 512) or 512, 512))
    if task.get("do_lower_case"):
        texts = [t.lower() for t in texts]
    limit = min(own, model.max_length) if truncate else own
    enc = tok(texts, padding=True, truncation=True, max_length=limit, return_tensors="np")
    ids = np.asarray(enc["input_ids"], np.int64)
    mask = np.asarray(enc["attention_mask"], np.int64)
    if ids.shape[1] > model.max_length:
        lengths = mask.sum(1)
        i = int(np.argmax(lengths))
        raise InputError(f"text {i} is {int(lengths[i])} tokens long, longer than this library's longest bucket "
                         f"({model.max_length}): pass truncate=True to cut it, or recompile with a longer "
                         "--seq-len")
    types = enc.get("token_type_ids")
    return {"input_ids": ids, "attention_mask": mask,
            "token_type_ids": np.asarray(types, np.int64) if types is not None else np.zeros_like(ids)}


def pool(hidden: np.ndarray, mask: np.ndarray, modes: list[str]) -> np.ndarray:
    """sentence-transformers' ``Pooling.forward`` in numpy: each mode ``[n, H]``, concatenated in order."""
    m = mask[..., None].astype(np.float32)
    out = []
    for mode in modes:
        if mode == "cls":
            out.append(hidden[:, 0])
        elif mode == "max":
            out.append(np.where(m > 0, hidden, np.float32(-1e9)).max(axis=1))
        elif mode in ("mean", "mean_sqrt_len"):
            total, count = (hidden * m).sum(axis=1), np.maximum(m.sum(axis=1), 1e-9)
            out.append(total / count if mode == "mean" else total / np.sqrt(count))
        elif mode == "weightedmean":
            w = m * np.arange(1, hidden.shape[1] + 1, dtype=np.float32)[None, :, None]
            out.append((hidden * w).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-9))
        elif mode == "lasttoken":  # the last real token of each row (right padding)
            last = np.maximum(mask.sum(axis=1) - 1, 0)
            out.append(hidden[np.arange(hidden.shape[0]), last])
        else:
            raise LibraryError(f"pooling mode {mode!r} in the library's metadata is not supported")
    return np.concatenate(out, axis=1).astype(np.float32)


def _batches(model, texts: list[str], batch_size: int, truncate: bool):
    """``(indices, tokenized)`` batches, sorted by length as sentence-transformers does: each batch pads to
    its own longest text, so similar lengths share a bucket."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    tok = tokenizer(model)
    lengths = [len(x) for x in tok(texts, add_special_tokens=True, truncation=False)["input_ids"]] if texts else []
    order = np.argsort([-n for n in lengths], kind="stable")
    for start in range(0, len(texts), batch_size):
        idx = order[start:start + batch_size]
        yield idx, tokenize(model, [texts[i] for i in idx], truncate)


def encode(model, sentences, batch_size: int = 32, normalize: bool | None = None,
           truncate: bool = False) -> np.ndarray:
    texts = [t.strip() for t in _texts(sentences, "encode")]  # sentence-transformers strips too
    task = model.metadata.task
    if task.get("kind") == "classification":
        raise InputError(f"{model.path.name} is a sequence classifier: use classify(), not encode()")
    modes = task.get("pooling") or ["mean"]  # a plain encoder: mean, sentence-transformers' default
    normalize = bool(task.get("normalize", False)) if normalize is None else bool(normalize)
    if not texts:
        return np.zeros((0, model.metadata.output["shape"][-1] * len(modes)), np.float32)
    out: np.ndarray | None = None
    for idx, enc in _batches(model, texts, batch_size, truncate):
        emb = pool(model(**enc), enc["attention_mask"], modes)
        if out is None:
            out = np.empty((len(texts), emb.shape[1]), np.float32)
        out[idx] = emb
    if normalize:  # torch.nn.functional.normalize: x / max(||x||, 1e-12)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out


def classify(model, texts, batch_size: int = 32, truncate: bool = False) -> tuple[np.ndarray, list[str]]:
    texts = _texts(texts, "classify")
    task = model.metadata.task
    if task.get("kind") != "classification":
        raise InputError(f"{model.path.name} is not a sequence classifier ({task.get('kind', 'hidden')} model): "
                         "use encode() or call it on token ids")
    labels = task.get("labels") or []
    logits = np.zeros((len(texts), len(labels)), np.float32)
    for idx, enc in _batches(model, texts, batch_size, truncate):
        logits[idx] = model(**enc)
    names = [labels[i] for i in logits.argmax(axis=1)] if len(texts) else []
    return logits, names

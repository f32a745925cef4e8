"""How close a sparse (and int8) model's sentence embeddings stay to the dense model's.

Two numbers, both on sentence embeddings as sentence-transformers computes them (masked mean of the
last hidden state, L2-normalized):

- ``mean_cosine``: mean over sentences of cos(embedding, dense embedding). 1.0 = the same vectors.
- ``spearman``: rank correlation between the pairwise similarities of the sentences under each model
  (upper triangle of ``E @ E.T``). What a search or clustering would see: 1.0 = same neighbours.

Comparing int8 with the *pruned* fp32 model says only what quantization costs; this module is how every
command says what the whole path costs against the original dense model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .deps import require


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Masked mean over tokens, L2-normalized: ``[B, L, H], [B, L] -> [B, H]``."""
    m = mask[..., None].astype(np.float64)
    emb = (hidden.astype(np.float64) * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def _ranks(x: np.ndarray) -> np.ndarray:
    r = np.empty(len(x), dtype=np.float64)
    r[np.argsort(x, kind="stable")] = np.arange(len(x))
    return r


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two 1-D arrays (ties ranked by position; floats rarely tie)."""
    ra, rb = _ranks(np.asarray(a)), _ranks(np.asarray(b))
    ra -= ra.mean()
    rb -= rb.mean()
    denom = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def compare(emb: np.ndarray, ref: np.ndarray) -> dict:
    """Fidelity of embeddings ``emb`` to ``ref`` (same sentences, rows L2-normalized)."""
    emb, ref = np.asarray(emb, np.float64), np.asarray(ref, np.float64)
    if emb.shape != ref.shape:
        raise ValueError(f"embeddings of different shapes: {emb.shape} vs {ref.shape}")
    cos = (emb * ref).sum(axis=1)
    iu = np.triu_indices(len(emb), k=1)
    rho = spearman((emb @ emb.T)[iu], (ref @ ref.T)[iu]) if len(emb) > 2 else float("nan")
    return {"mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()), "spearman": rho,
            "sentences": int(len(emb))}


def describe(name: str, fid: dict) -> str:
    """One line for the terminal."""
    return (f"{name}: mean cosine {fid['mean_cosine']:.4f} (min {fid['min_cosine']:.4f}), Spearman of "
            f"pairwise similarities {fid['spearman']:.4f}, on {fid['sentences']} sentences")


def tokenize(tokenizer, sentences: list[str], max_len: int, pad_to: int | None = None) -> dict[str, np.ndarray]:
    """int64 ``input_ids``, ``attention_mask``, ``token_type_ids``; padded to the longest or to ``pad_to``."""
    padding = "max_length" if pad_to else "longest"
    enc = tokenizer(sentences, padding=padding, truncation=True, max_length=pad_to or max_len, return_tensors="np")
    out = {k: np.asarray(enc[k], np.int64) for k in ("input_ids", "attention_mask")}
    out["token_type_ids"] = np.asarray(enc.get("token_type_ids", np.zeros_like(out["input_ids"])), np.int64)
    return out


def embed_torch(model, tokenizer, sentences: list[str], max_len: int = 128, batch: int = 64) -> np.ndarray:
    """Sentence embeddings of a transformers encoder (fp32, no grad), ``[len(sentences), H]``."""
    torch = require("torch")
    out = []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(sentences), batch):
            enc = tokenize(tokenizer, sentences[i:i + batch], max_len)
            hidden = model(**{k: torch.from_numpy(v) for k, v in enc.items()}).last_hidden_state
            out.append(mean_pool(hidden.float().numpy(), enc["attention_mask"]))
    return np.concatenate(out)


def embed_fixed(run: Callable[[dict], np.ndarray], tokenizer, sentences: list[str], batch: int,
                seq_len: int) -> np.ndarray:
    """Sentence embeddings from a fixed-shape runner (a compiled library, an ONNX session):
    ``run(feeds) -> hidden [batch, seq_len, H]``. The last batch is padded with repeats, then dropped."""
    out = []
    for i in range(0, len(sentences), batch):
        chunk = sentences[i:i + batch]
        padded = chunk + [chunk[-1]] * (batch - len(chunk))
        enc = tokenize(tokenizer, padded, seq_len, pad_to=seq_len)
        out.append(mean_pool(np.asarray(run(enc)), enc["attention_mask"])[: len(chunk)])
    return np.concatenate(out)


def load_hf(model_dir: str):
    """``(model, tokenizer)`` of a Hugging Face directory, offline, in eval mode."""
    transformers = require("transformers")
    model = transformers.AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    return model, tok

"""Sentences -> fixed-length model inputs with a Hugging Face tokenizer (optional ``export`` extra)."""

from __future__ import annotations

import numpy as np

from .errors import GraphError, require


def tokenize(tokenizer_dir: str | None, sentences: list[str], seq_len: int) -> dict[str, np.ndarray]:
    """``{input_ids, attention_mask, token_type_ids}`` int64 ``[len(sentences), seq_len]``, padded."""
    if not tokenizer_dir:
        raise GraphError("text input needs --tokenizer DIR (the Hugging Face model directory)")
    transformers = require("transformers", "export", "tokenizing text")
    tok = transformers.AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    enc = tok(sentences, padding="max_length", truncation=True, max_length=seq_len, return_tensors="np")
    out = {k: np.asarray(enc[k], np.int64) for k in ("input_ids", "attention_mask")}
    out["token_type_ids"] = np.asarray(enc.get("token_type_ids", np.zeros_like(out["input_ids"])), np.int64)
    return out

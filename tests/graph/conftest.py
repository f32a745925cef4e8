"""Shared fixtures: a tiny random BERT exported to ONNX and pruned (needs torch + transformers)."""

from __future__ import annotations

import numpy as np
import pytest

SEQ = 32
VOCAB = 1000


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tvm_sparse.graph.export import build_bert

    path = tmp_path_factory.mktemp("tiny") / "bert_tiny.onnx"
    return build_bert("bert-tiny", path, seed=0, seq_len=SEQ, vocab_size=VOCAB)


@pytest.fixture(scope="session")
def tiny_pruned(tiny_onnx):
    from tvm_sparse.graph.prune import prune_file

    out = tiny_onnx.with_name("bert_tiny_s90.onnx")
    prune_file(tiny_onnx, out, 0.9)
    return out


def tiny_feeds(seed: int = 0, batch: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, SEQ), np.int64)
    mask[:, SEQ * 3 // 4:] = 0  # padded tail: the attention mask must matter
    return {"input_ids": rng.integers(0, VOCAB, (batch, SEQ)), "attention_mask": mask,
            "token_type_ids": rng.integers(0, 2, (batch, SEQ))}

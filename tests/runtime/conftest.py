"""A tiny compiled library (fp32, untuned: correctness only) shared by the runtime tests."""

from __future__ import annotations

import numpy as np
import pytest

SEQ = 16
VOCAB = 500


@pytest.fixture(scope="session")
def tiny_lib(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tvm_sparse.graph import importer
    from tvm_sparse.graph.compile import CompileOptions, compile_model
    from tvm_sparse.graph.export import build_bert

    d = tmp_path_factory.mktemp("rt")
    onnx_path = build_bert("bert-tiny", d / "tiny.onnx", seq_len=SEQ, vocab_size=VOCAB)
    out = d / "tiny.so"
    compile_model(importer.load_onnx(onnx_path), out,
                  CompileOptions(batch=2, seq_len=SEQ, precision="fp32", trials=0, allow_untuned=True,
                                 work_dir=d / "db"), log=lambda *_: None)
    return out


def feeds(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"input_ids": rng.integers(0, VOCAB, (2, SEQ)), "attention_mask": np.ones((2, SEQ), np.int64),
            "token_type_ids": np.zeros((2, SEQ), np.int64)}

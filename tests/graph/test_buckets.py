"""Length buckets and any batch in one library: outputs on the real tokens equal the single-shape library's."""

from __future__ import annotations

import numpy as np
import pytest

from tvm_sparse.graph import calibrate, importer
from tvm_sparse.graph.compile import CompileOptions, compile_model
from tvm_sparse.graph.options import batch_buckets
from tvm_sparse.runtime.metadata import InputError

from .conftest import SEQ, VOCAB

UNTUNED = {"trials": 0, "allow_untuned": True}
LENGTHS = (16, SEQ)  # multiples of 16: int8 attention stays on its kernel in every bucket


def _feeds(rng, batch: int, length: int) -> dict[str, np.ndarray]:
    return {"input_ids": rng.integers(0, VOCAB, (batch, length)),
            "attention_mask": np.ones((batch, length), np.int64),
            "token_type_ids": rng.integers(0, 2, (batch, length))}


def _padded(feeds: dict[str, np.ndarray], length: int) -> dict[str, np.ndarray]:
    out = {}
    for k, v in feeds.items():
        full = np.zeros((v.shape[0], length), np.int64)
        full[:, :v.shape[1]] = v
        out[k] = full
    return out


@pytest.fixture(scope="module")
def int8_libs(tmp_path_factory):
    """The same model and calibration, int8: one library with every bucket (lengths 16 and 32, batches 1, 2
    and 4) and the single-shape library of its largest bucket. Weights at std 0.5, so that attention decides
    the output: at BERT's 0.02 a bucket that left its padding unmasked still passed cosine 0.999 (0.9998)."""
    pytest.importorskip("torch")
    from tvm_sparse.graph.export import build_bert
    from tvm_sparse.graph.prune import prune_file

    d = tmp_path_factory.mktemp("buckets")
    tiny_pruned = d / "attn_s90.onnx"
    prune_file(build_bert("bert-tiny", d / "attn.onnx", seed=1, seq_len=SEQ, vocab_size=VOCAB, init_std=0.5),
               tiny_pruned, 0.9)
    static = importer.static_model(tiny_pruned, 1, SEQ)
    rng = np.random.default_rng(0)
    calib = calibrate.calibrate(static, [_feeds(rng, 1, SEQ) for _ in range(4)])  # once, at the longest
    common = {"precision": "int8", "calibration": calib, "work_dir": d / "db", **UNTUNED}
    bucketed, single = d / "bucketed.so", d / "single.so"
    compile_model(importer.load_onnx(tiny_pruned), bucketed,
                  CompileOptions(seq_lens=LENGTHS, batches=batch_buckets(4), **common), log=lambda *_: None)
    compile_model(importer.load_onnx(tiny_pruned), single, CompileOptions(batch=4, seq_len=SEQ, **common),
                  log=lambda *_: None)
    return bucketed, single


def test_batch_buckets():
    assert batch_buckets(1) == (1,) and batch_buckets(4) == (1, 2, 4) and batch_buckets(6) == (1, 2, 4, 6)


def test_any_batch_and_length_equals_the_single_shape_library(int8_libs):
    import tvm_sparse

    bucketed, single = (tvm_sparse.load(p) for p in int8_libs)
    assert bucketed.buckets == [(1, 16, "main_b1_l16"), (1, 32, "main_b1_l32"), (2, 16, "main_b2_l16"),
                                (2, 32, "main_b2_l32"), (4, 16, "main_b4_l16"), (4, 32, "main_b4_l32")]
    assert single.buckets == [(4, SEQ, "main")]
    rng = np.random.default_rng(1)
    same_bucket = 0
    for batch in range(1, 5):
        for length in range(1, SEQ + 1):
            feeds = _feeds(rng, batch, length)
            got = bucketed(**feeds)
            assert got.shape == (batch, length, 64)
            ref = single(**_padded(feeds, SEQ))[:, :length]  # by hand: padded to 32, masked
            if bucketed.bucket_for(batch, length)[:2] == (4, SEQ):  # the same function on the same input
                np.testing.assert_array_equal(got, ref)
                same_bucket += 1
            else:  # another bucket: the padding differs, the real tokens' states agree
                a, b = got.reshape(-1, 64), ref.reshape(-1, 64)
                cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
                assert cos.min() >= 0.999, (batch, length, cos.min())
    assert same_bucket == 2 * 16  # batches 3 and 4 at lengths 17..32


def test_larger_batches_split_and_keep_their_order(int8_libs):
    import tvm_sparse

    model = tvm_sparse.load(int8_libs[0])
    feeds = _feeds(np.random.default_rng(2), 11, 20)  # 4 + 4 + 3 rows
    got = model(**feeds)
    one_by_one = np.concatenate([model(**{k: v[i:i + 4] for k, v in feeds.items()}) for i in range(0, 11, 4)])
    np.testing.assert_array_equal(got, one_by_one)
    assert got.shape == (11, 20, 64)


def test_longer_than_the_longest_bucket_is_refused_or_truncated(int8_libs):
    import tvm_sparse

    model = tvm_sparse.load(int8_libs[0])
    feeds = _feeds(np.random.default_rng(3), 2, SEQ + 5)
    with pytest.raises(InputError, match=r"37 tokens is longer than this library's longest bucket \(32"):
        model(**feeds)
    cut = model(**feeds, truncate=True)
    assert cut.shape == (2, SEQ, 64)
    np.testing.assert_array_equal(cut, model(**{k: v[:, :SEQ] for k, v in feeds.items()}))


def test_metadata_lists_the_buckets(int8_libs):
    import tvm_sparse

    model = tvm_sparse.load(int8_libs[0])
    meta = model.metadata
    assert meta.format == 3 and len(meta.buckets) == 6
    # each bucket says how many of its Linears run sparse (the choice can differ by bucket: dense AMX needs
    # 32-token blocks); at 90% every one, in every bucket
    assert [b["sparse_linears"] for b in meta.buckets] == [len(meta.layers)] * 6
    assert f" {len(meta.layers)}/{len(meta.layers)} sparse Linears," in repr(model)
    assert meta.inputs[0]["shape"] == [4, SEQ] and meta.output["shape"] == [4, SEQ, 64]


def test_the_summary_line_counts_sparse_linears_by_bucket():
    """Where buckets differ (an 80% model on AMX: 16 tokens sparse, 32 and up dense) the line says so; a
    library from before the per-bucket count falls back to its layer list."""
    from pathlib import Path
    from types import SimpleNamespace

    from tvm_sparse.runtime.model import Model

    def line(buckets, layers):
        meta = SimpleNamespace(buckets=buckets, layers=layers, task={}, precision="int8", output={"shape": [1, 32, 64]},
                               target={"mcpu": "sapphirerapids"})
        shapes = [(b["batch"], b["seq_len"], "f") for b in buckets]
        return Model.__repr__(SimpleNamespace(metadata=meta, buckets=shapes, path=Path("m.so"), threads=1))

    layers = [{"sparse": False}] * 12
    mixed = [{"batch": 1, "seq_len": 16, "sparse_linears": 12}, {"batch": 1, "seq_len": 32, "sparse_linears": 0}]
    assert "0-12/12 sparse Linears (by bucket)" in line(mixed, layers)
    old = [{"batch": 1, "seq_len": 16}, {"batch": 1, "seq_len": 32}]
    assert "0/12 sparse Linears," in line(old, layers)

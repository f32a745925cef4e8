"""The swap and the whole-model build: fp32 matches onnxruntime on the same pruned model."""

from __future__ import annotations

import numpy as np
import pytest

from tvm_sparse.graph import calibrate, importer
from tvm_sparse.graph import swap as rewrite
from tvm_sparse.graph.compile import CompileOptions, compile_model, ort_reference
from tvm_sparse.target import resolve

from .conftest import SEQ, tiny_feeds

# correctness does not depend on schedules: skip tuning here (the slow tests tune)
UNTUNED = {"trials": 0, "allow_untuned": True}


@pytest.fixture(scope="module")
def fp32_lib(tiny_pruned, tmp_path_factory):
    out = tmp_path_factory.mktemp("fp32") / "tiny_fp32.so"
    meta = compile_model(importer.load_onnx(tiny_pruned), out,
                         CompileOptions(batch=1, seq_len=SEQ, precision="fp32", work_dir=out.parent / "db",
                                        **UNTUNED), log=lambda *_: None)
    return out, meta


def test_fp32_matches_onnxruntime(fp32_lib, tiny_pruned):
    import tvm_sparse

    model = tvm_sparse.load(fp32_lib[0])
    for seed in range(2):
        feeds = tiny_feeds(seed)
        got = model(**feeds)
        ref = ort_reference(importer.load_onnx(tiny_pruned), 1, SEQ, feeds)
        assert got.shape == ref.shape == (1, SEQ, 64)
        assert np.abs(got - ref).max() <= 1e-4


def test_metadata_records_every_layer(fp32_lib):
    _, meta = fp32_lib
    assert len(meta.layers) == 12
    assert all(x["sparse"] and x["block_sparsity"] == pytest.approx(0.9, abs=0.01) for x in meta.layers)
    assert sum(x["gelu"] for x in meta.layers) == 2  # one fused GELU per encoder layer
    assert meta.layers[0]["name"] == "encoder.layer.0.attention.self.query"
    assert meta.inputs[0] == {"name": "input_ids", "shape": [1, SEQ], "dtype": "int64"}
    assert meta.output["shape"] == [1, SEQ, 64]
    assert {"avx512f", "avx512bw", "avx512vnni"} <= set(meta.target_features)
    assert meta.input_limits["input_ids"] == 1000


def test_threshold_sends_layers_dense(tiny_pruned, tmp_path):
    from tvm_sparse.graph import swap as rewrite
    from tvm_sparse.target import resolve

    static = importer.static_model(tiny_pruned, 1, SEQ)
    mod, _ = importer.to_relax(static, 1, SEQ)
    _, layers = rewrite.swap_linears(mod, "fp32", resolve(), threshold=0.95)
    assert len(layers) == 12 and not any(x.sparse for x in layers)


def test_int8_close_to_fp32_on_tiny(tiny_pruned, tmp_path):
    import tvm_sparse

    static = importer.static_model(tiny_pruned, 1, SEQ)
    calib = calibrate.calibrate(static, [tiny_feeds(s) for s in range(4)])
    out = tmp_path / "tiny_int8.so"
    compile_model(importer.load_onnx(tiny_pruned), out,
                  CompileOptions(batch=1, seq_len=SEQ, precision="int8", calibration=calib,
                                 work_dir=tmp_path / "db", **UNTUNED), log=lambda *_: None)
    feeds = tiny_feeds(7)
    got = tvm_sparse.load(out)(**feeds).reshape(SEQ, -1)
    ref = ort_reference(static, 1, SEQ, feeds).reshape(SEQ, -1)
    cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.99
    # each FFN is one chain: the up projection hands u8 [N, M] straight to the down projection
    kernels = [x["kernel"] for x in tvm_sparse.load(out).metadata.layers]
    assert sum(k.endswith("_to_nm_u8") for k in kernels) == 2 and sum(k.endswith("_from_km") for k in kernels) == 2
    # each attention core (both matmuls, mask, softmax, head split and merge) is one int8 kernel
    mod, _ = importer.to_relax(static, 1, SEQ)
    swapped, _ = rewrite.swap_linears(mod, "int8", resolve(), calib=calib)
    text = swapped["main"].script()
    assert text.count("attention_int8_") == 2 and "R.nn.softmax" not in text
    assert text.count("_qkv") == 2  # Q, K and V projected by one kernel, read in place by the attention
    # ... in the sparse projection's own [3*H*D, M] layout: no untranspose pass between them
    assert text.count("_qkv_t") == 2
    # ... as u8 with the per-head scales calibration measured (Q, K, V: 3 layer entries a layer)
    assert text.count("_qkv_t_u8") == 2 and sum(k.endswith("_to_nm_u8_natural") for k in kernels) == 2 * 3
    # a calibration without output ranges (saved by an earlier version): fp32 hand-over, dynamic scales
    old = calibrate.without_output_ranges(calib)  # as `--attention-scales dynamic` passes it
    swapped, layers = rewrite.swap_linears(mod, "int8", resolve(), calib=old)
    text = swapped["main"].script()
    assert text.count("_qkv_t") == 2 and "_qkv_t_u8" not in text
    assert sum(x.kernel.endswith("_to_nm") for x in layers) == 2 * 3


def test_dense_int8_ffn_hands_over_u8_rows(tiny_pruned, tmp_path):
    """All dense (threshold 0.95): each FFN's up projection writes u8 [M, N] (GELU and the down projection's
    quantization in its epilogue), the down projection reads it as is; still close to fp32. On AMX both run
    on the tile units, elsewhere on VNNI."""
    import tvm_sparse

    static = importer.static_model(tiny_pruned, 1, SEQ)
    calib = calibrate.calibrate(static, [tiny_feeds(s) for s in range(4)])
    out = tmp_path / "tiny_dense_int8.so"
    compile_model(importer.load_onnx(tiny_pruned), out,
                  CompileOptions(batch=1, seq_len=SEQ, precision="int8", calibration=calib, threshold=0.95,
                                 work_dir=tmp_path / "db", **UNTUNED), log=lambda *_: None)
    model = tvm_sparse.load(out)
    layers = model.metadata.layers
    assert not any(x["sparse"] for x in layers)
    ups = [x for x in layers if x["kernel"].endswith("_to_u8") and x["gelu"]]
    downs = [x for x in layers if x["kernel"].endswith("_from_u8")]
    assert len(ups) == len(downs) == 2
    # Q, K, V: one dense kernel a layer writing u8 rows with the calibrated per-head scales, which the
    # attention kernel reads as is
    qkv = [x for x in layers if x["kernel"].endswith("_to_u8") and not x["gelu"]]
    assert len(qkv) == 2 * 3 and len({x["kernel"] for x in qkv}) == 1
    feeds = tiny_feeds(7)
    got = model(**feeds).reshape(SEQ, -1)
    ref = ort_reference(static, 1, SEQ, feeds).reshape(SEQ, -1)
    cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    # tight: here int8 stays within 1e-3 of fp32; a hand-over scale 4x too small gives 0.08
    assert cos.min() >= 0.9999 and np.abs(got - ref).max() <= 0.01


def test_int8_without_calibration_is_refused(tiny_pruned, tmp_path):
    from tvm_sparse.graph.errors import GraphError

    with pytest.raises(GraphError, match="calibration"):
        compile_model(importer.load_onnx(tiny_pruned), tmp_path / "x.so",
                      CompileOptions(seq_len=SEQ, precision="int8", **UNTUNED))


def test_no_records_anywhere_still_builds_on_default_schedules(tiny_pruned, tmp_path, monkeypatch):
    """--trials 0 never fails: what no record covers (here: nothing is shipped either) runs on
    MetaSchedule's default schedule, with a warning, and still matches onnxruntime."""
    import tvm_sparse
    from tvm_sparse.tune import records

    monkeypatch.setattr(records, "shipped_root", lambda: tmp_path / "nothing-shipped")
    out = tmp_path / "x.so"
    with pytest.warns(UserWarning, match="no tuned schedule .* MetaSchedule default schedules"):
        compile_model(importer.load_onnx(tiny_pruned), out,
                      CompileOptions(seq_len=SEQ, precision="fp32", trials=0, work_dir=tmp_path / "db"),
                      log=lambda *_: None)
    feeds = tiny_feeds(0)
    ref = ort_reference(importer.load_onnx(tiny_pruned), 1, SEQ, feeds)
    assert np.abs(tvm_sparse.load(out)(**feeds) - ref).max() <= 1e-4


def test_default_schedule_parallelizes_and_vectorizes():
    from tvm import te

    from tvm_sparse.tune.graph import default_schedule

    table = te.placeholder((1000, 256), name="table")
    ids = te.placeholder((1, 128), dtype="int64", name="ids")
    gather = te.compute((1, 128, 256), lambda b, i, j: table[ids[b, i], j], name="gather")
    func = default_schedule(te.create_prim_func([table, ids, gather]), resolve())
    text = func.script()
    assert "T.parallel" in text and "T.vectorized" in text
    assert func.attrs["tirx.is_scheduled"]


def _half_padded(seed: int) -> dict[str, np.ndarray]:
    feeds = tiny_feeds(seed)
    feeds["attention_mask"][:, SEQ // 2:] = 0
    return feeds


@pytest.mark.parametrize("scales", ["static", "dynamic"])
def test_int8_follows_the_attention_mask(tmp_path, scales):
    """On a model whose attention decides its output (weights at std 0.5, half the tokens padding),
    ignoring the mask moves the real tokens' states far beyond the tolerance (cosine 0.69, checked
    against onnxruntime itself), so the int8 library matching the masked reference (0.993 and 0.997
    here) proves the mask is applied. With BERT's usual init, ignoring the mask gave cosine 0.9999993:
    the other tests' tolerance could not catch a mask bug."""
    import tvm_sparse
    from tvm_sparse.graph.export import build_bert
    from tvm_sparse.graph.prune import prune_file

    dense = build_bert("bert-tiny", tmp_path / "attn.onnx", seed=1, seq_len=SEQ, vocab_size=1000, init_std=0.5)
    pruned = tmp_path / "attn_s90.onnx"
    prune_file(dense, pruned, 0.9)
    static = importer.static_model(pruned, 1, SEQ)
    calib = calibrate.calibrate(static, [_half_padded(s) for s in range(8)])
    if scales == "dynamic":
        calib = calibrate.without_output_ranges(calib)
    out = tmp_path / "attn_int8.so"
    compile_model(importer.load_onnx(pruned), out,
                  CompileOptions(batch=1, seq_len=SEQ, precision="int8", calibration=calib,
                                 work_dir=tmp_path / "db", **UNTUNED), log=lambda *_: None)
    feeds = _half_padded(7)
    real = feeds["attention_mask"][0] == 1

    def cos(a, b):
        a, b = a.reshape(SEQ, -1)[real], b.reshape(SEQ, -1)[real]
        return ((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min()

    ref = ort_reference(static, 1, SEQ, feeds)
    unmasked = {**feeds, "attention_mask": np.ones_like(feeds["attention_mask"])}
    assert cos(ort_reference(static, 1, SEQ, unmasked), ref) < 0.8  # the mask matters here
    model = tvm_sparse.load(out)
    assert cos(model(**feeds), ref) >= 0.985
    assert cos(model(**unmasked), ref) < 0.8  # a library that ignored the mask fails the line above


def test_dense_linears_run_on_amx_where_the_cpu_has_it(tiny_onnx, tmp_path):
    """A dense int8 model on an AMX target: every Linear on the AMX kernel, the result as close to fp32 as
    the VNNI path's, and the library runs in a fresh process through load() alone (which asks Linux for
    the tiles)."""
    import subprocess
    import sys

    from tvm_sparse.kernels.amx import FEATURES
    from tvm_sparse.runtime import cpu

    if cpu.missing(list(FEATURES)):
        pytest.skip("this CPU has no AMX (amx_tile, amx_int8 in /proc/cpuinfo)")
    static = importer.static_model(tiny_onnx, 1, SEQ)
    calib = calibrate.calibrate(static, [tiny_feeds(s) for s in range(4)])
    out = tmp_path / "dense_amx.so"
    meta = compile_model(importer.load_onnx(tiny_onnx), out,
                         CompileOptions(batch=1, seq_len=SEQ, precision="int8", calibration=calib, threshold=2.0,
                                        work_dir=tmp_path / "db", **UNTUNED), log=lambda *_: None)
    assert meta.layers and all("_amx_" in x["kernel"] for x in meta.layers)
    feeds = tiny_feeds(7)
    np.savez(tmp_path / "feeds.npz", **feeds)
    code = ("import sys, numpy as np, tvm_sparse; f = dict(np.load(sys.argv[2])); "
            "np.save(sys.argv[3], tvm_sparse.load(sys.argv[1])(**f))")
    subprocess.run([sys.executable, "-c", code, str(out), str(tmp_path / "feeds.npz"), str(tmp_path / "y.npy")],
                   check=True, capture_output=True)
    got = np.load(tmp_path / "y.npy").reshape(SEQ, -1)
    ref = ort_reference(static, 1, SEQ, feeds).reshape(SEQ, -1)
    cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.99


def test_attention_runs_on_amx_from_64_tokens(tiny_pruned, tmp_path):
    """On an AMX target the attention kernel takes its AMX path where it measured faster (64 tokens and up;
    bert-tiny's heads are 64 wide) and stays on VNNI below; the library still matches onnxruntime fp32."""
    import re

    import tvm_sparse
    from tvm_sparse.kernels.amx import FEATURES
    from tvm_sparse.runtime import cpu

    if cpu.missing(list(FEATURES)):
        pytest.skip("this CPU has no AMX (amx_tile, amx_int8 in /proc/cpuinfo)")
    seq = 64
    rng = np.random.default_rng(0)

    def feeds(seed):
        r = np.random.default_rng(seed)
        mask = np.ones((1, seq), np.int64)
        mask[:, seq - 9:] = 0
        return {"input_ids": r.integers(0, 1000, (1, seq)), "attention_mask": mask,
                "token_type_ids": r.integers(0, 2, (1, seq))}

    static = importer.static_model(tiny_pruned, 1, seq)
    calib = calibrate.calibrate(static, [feeds(s) for s in range(4)])
    mod, _ = importer.to_relax(static, 1, seq)
    names = re.findall(r"attention_int8_\w+", rewrite.swap_linears(mod, "int8", resolve(), calib=calib)[0].script())
    assert names and all(n.endswith("_amx") for n in names)
    short = importer.static_model(tiny_pruned, 1, SEQ)
    short_calib = calibrate.calibrate(short, [tiny_feeds(s) for s in range(2)])
    text = rewrite.swap_linears(importer.to_relax(short, 1, SEQ)[0], "int8", resolve(), calib=short_calib)[0].script()
    assert re.findall(r"attention_int8_\w+", text) and not re.findall(r"attention_int8_\w+_amx", text)
    out = tmp_path / "attn_amx.so"
    compile_model(importer.load_onnx(tiny_pruned), out,
                  CompileOptions(batch=1, seq_len=seq, precision="int8", calibration=calib,
                                 work_dir=tmp_path / "db", **UNTUNED), log=lambda *_: None)
    f = feeds(int(rng.integers(10, 100)))
    got = tvm_sparse.load(out)(**f).reshape(seq, -1)
    ref = ort_reference(static, 1, seq, f).reshape(seq, -1)
    cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.99

"""tvm_sparse.load: fresh-process reproducibility and clear errors for every kind of bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import tvm_sparse
from tvm_sparse.runtime import cpu
from tvm_sparse.runtime.metadata import LibraryError, Metadata, metadata_path
from tvm_sparse.runtime.model import InputError

from .conftest import SEQ, VOCAB, feeds


def test_fresh_process_gives_identical_results(tiny_lib, tmp_path):
    model = tvm_sparse.load(tiny_lib)
    here = model(**feeds(3))
    assert here.shape == (2, SEQ, 64) and here.dtype == np.float32
    np.savez(tmp_path / "in.npz", **feeds(3))
    code = ("import sys, numpy as np, tvm_sparse; m = tvm_sparse.load(sys.argv[1]); "
            "np.save(sys.argv[3], m(**dict(np.load(sys.argv[2]))))")
    subprocess.run([sys.executable, "-c", code, str(tiny_lib), str(tmp_path / "in.npz"),
                    str(tmp_path / "out.npy")], check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), here)


def test_int32_and_defaults_accepted(tiny_lib):
    model = tvm_sparse.load(tiny_lib)
    f = feeds(1)
    ref = model(**f)
    np.testing.assert_array_equal(model(**{k: v.astype(np.int32) for k, v in f.items()}), ref)
    np.testing.assert_array_equal(model(input_ids=f["input_ids"]), ref)  # mask 1, types 0


@pytest.mark.parametrize("bad,match", [
    ({"input_ids": np.zeros((2, SEQ + 1), np.int64)}, r"17 tokens is longer than this library's longest bucket"),
    ({"input_ids": np.zeros((2, SEQ), np.int64), "attention_mask": np.ones((2, SEQ - 1), np.int64)},
     r"attention_mask has shape \(2, 15\).*the shape of input_ids"),
    ({"input_ids": np.zeros((2, 0), np.int64)}, "empty"),
    ({"input_ids": np.zeros((2, 3, 4), np.int64)}, r"expected \[batch, seq_len\]"),
    ({"input_ids": np.zeros((2, SEQ), np.float32)}, "integer array.*float32"),
    ({"input_ids": np.zeros((2, SEQ), np.int64), "attention_mask": np.ones((2, SEQ))}, "attention_mask"),
    ({"input_ids": np.full((2, SEQ), VOCAB)}, r"outside \[0, 500\)"),
    ({"input_ids": np.full((2, SEQ), -1)}, "outside"),
    ({"input_ids": np.zeros((2, SEQ), np.int64), "position_ids": 0}, "unknown inputs"),
    ({}, "input_ids is required"),
])
def test_bad_inputs_are_refused(tiny_lib, bad, match):
    model = tvm_sparse.load(tiny_lib)
    with pytest.raises(InputError, match=match):
        model(**bad)


def test_any_batch_and_shorter_inputs_run_in_a_single_shape_library(tiny_lib):
    """A batch-2 library takes 1 or 5 sequences, and fewer tokens (padded and masked, cut back after)."""
    model = tvm_sparse.load(tiny_lib)
    f = feeds(4)
    both = model(**f)
    np.testing.assert_array_equal(model(**{k: v[1:] for k, v in f.items()}), both[1:])  # a copied row pads
    five = model(**{k: np.concatenate([v, v, v[:1]]) for k, v in f.items()})
    np.testing.assert_array_equal(five, np.concatenate([both, both, both[:1]]))
    short = model(**{k: v[:, :5] for k, v in f.items()})
    padded = {k: np.where(np.arange(SEQ) < 5, v, 0) for k, v in f.items()}
    padded["attention_mask"] = (np.arange(SEQ) < 5).astype(np.int64)[None].repeat(2, 0)
    assert short.shape == (2, 5, 64)
    np.testing.assert_array_equal(short, model(**padded)[:, :5])
    np.testing.assert_array_equal(model(input_ids=f["input_ids"][0]), both[:1])  # 1-D: one sequence


def test_a_format_2_library_still_loads(tiny_lib, tmp_path):
    """Written before buckets (format 2: one shape, function "main", no task): loads and runs as before."""
    lib = _copy(tiny_lib, tmp_path)
    raw = json.loads(metadata_path(lib).read_text())
    for key in ("buckets", "task", "tokenizer"):
        raw.pop(key)
    raw["format"] = 2
    meta = Metadata(**raw)
    meta.save(metadata_path(lib))  # signed as format 2 signed it: without the new fields
    saved = json.loads(metadata_path(lib).read_text())
    for key in ("buckets", "task", "tokenizer"):
        saved.pop(key)
    metadata_path(lib).write_text(json.dumps(saved))
    model = tvm_sparse.load(lib)
    assert model.buckets == [(2, SEQ, "main")]
    np.testing.assert_array_equal(model(**feeds(5)), tvm_sparse.load(tiny_lib)(**feeds(5)))


def test_threads_are_set_per_model(tiny_lib, monkeypatch):
    """load(threads=N) in a fresh process: TVM's pool runs N workers (TVM_NUM_THREADS says 1 there); a
    second model with fewer threads lowers it for its own calls; a pool already started with fewer
    workers than asked cannot grow, and says so."""
    code = ("import sys, warnings, numpy as np, tvm, tvm_sparse; n = tvm.get_global_func('runtime.NumThreads'); "
            "ids = np.zeros((2, 16), np.int64); "
            "a = tvm_sparse.load(sys.argv[1], threads=2); a(input_ids=ids); print(n()); "
            "b = tvm_sparse.load(sys.argv[1], threads=1); b(input_ids=ids); print(n()); "
            "a(input_ids=ids); print(n())")
    env = {**os.environ, "TVM_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code, str(tiny_lib)], check=True, capture_output=True, text=True,
                         env=env).stdout.split()
    assert out == ["2", "1", "2"]
    monkeypatch.setenv("TVM_NUM_THREADS", "1")  # restored afterwards: load(threads=64) raises it
    model = tvm_sparse.load(tiny_lib, threads=64)  # this process's pool started with 1 worker
    with pytest.warns(RuntimeWarning, match="runs on 1 thread.*TVM_NUM_THREADS"):
        model(**feeds(0))
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        tvm_sparse.load(tiny_lib, threads=0)


def _copy(lib, tmp_path):
    dst = tmp_path / lib.name
    shutil.copy(lib, dst)
    shutil.copy(metadata_path(lib), metadata_path(dst))
    return dst


def test_truncated_library(tiny_lib, tmp_path):
    lib = _copy(tiny_lib, tmp_path)
    data = lib.read_bytes()
    lib.write_bytes(data[: len(data) // 2])
    with pytest.raises(LibraryError, match="corrupt or truncated"):
        tvm_sparse.load(lib)


def test_garbage_library(tiny_lib, tmp_path):
    lib = _copy(tiny_lib, tmp_path)
    lib.write_bytes(b"garbage" * 100)
    with pytest.raises(LibraryError, match="not a shared library"):
        tvm_sparse.load(lib)


def test_missing_or_corrupt_metadata(tiny_lib, tmp_path):
    lib = _copy(tiny_lib, tmp_path)
    metadata_path(lib).write_text("{not json")
    with pytest.raises(LibraryError, match="corrupt"):
        tvm_sparse.load(lib)
    metadata_path(lib).unlink()
    with pytest.raises(LibraryError, match="missing"):
        tvm_sparse.load(lib)
    with pytest.raises(LibraryError, match="no compiled library"):
        tvm_sparse.load(tmp_path / "absent.so")


def test_cpu_without_a_feature_of_the_library_is_refused(tiny_lib, tmp_path):
    lib = _copy(tiny_lib, tmp_path)
    meta = Metadata.load(metadata_path(lib))
    assert {"avx512f", "avx512bw", "avx512vnni"} <= set(meta.target_features)  # LLVM's names, all of them
    meta.target_features.append("avx1024-imaginary")  # unknown to any table: still required
    meta.save(metadata_path(lib))  # re-signed, as a compile for such a CPU would write it
    with pytest.raises(cpu.UnsupportedCPUError, match="avx1024-imaginary"):
        tvm_sparse.load(lib)


def test_metadata_of_another_format_asks_for_a_recompile(tiny_lib, tmp_path):
    lib = _copy(tiny_lib, tmp_path)
    meta = json.loads(metadata_path(lib).read_text())
    meta["format"] = 1
    meta["required_isa"] = meta.pop("target_features")
    metadata_path(lib).write_text(json.dumps(meta))
    with pytest.raises(LibraryError, match="recompile"):
        tvm_sparse.load(lib)


@pytest.mark.parametrize("edit", [
    lambda m: m["input_limits"].update(input_ids=10**6),  # would let ids read past the embedding table
    lambda m: m["inputs"].clear(),
    lambda m: m.update(sha256=""),
])
def test_edited_metadata_is_refused_before_the_library_is_mapped(tiny_lib, tmp_path, edit):
    lib = _copy(tiny_lib, tmp_path)
    raw = json.loads(metadata_path(lib).read_text())
    edit(raw)
    metadata_path(lib).write_text(json.dumps(raw))
    with pytest.raises(LibraryError, match="does not match its checksum"):
        tvm_sparse.load(lib)
    meta = Metadata(**raw)  # re-signed by hand: the contents are still validated
    meta.save(metadata_path(lib))
    if meta.input_limits.get("input_ids") != 10**6:
        with pytest.raises(LibraryError, match="invalid"):
            tvm_sparse.load(lib)
        return
    # a signed limit passes the runtime's check, and the compiled lookup itself clamps: no read past the
    # table (an id of 100000 was a SIGSEGV), the last row's state instead
    model = tvm_sparse.load(lib)
    ids = feeds(0)
    last = model(**{**ids, "input_ids": np.full_like(ids["input_ids"], VOCAB - 1)})
    far = model(**{**ids, "input_ids": np.full_like(ids["input_ids"], 100000)})
    np.testing.assert_array_equal(far, last)


def test_cpu_check_reads_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu lm avx2 avx512f\n\nprocessor\t: 1\nflags\t\t: fpu lm avx2\n")
    flags = cpu.cpu_flags(info)
    assert flags == {"fpu", "lm", "avx2"}  # a flag counts only when every core has it
    host = cpu.Host(frozenset(flags))
    cpu.check(["avx2", "x87", "64bit", "fast-gather", "macrofusion"], host)  # renames, tuning flags
    with pytest.raises(cpu.UnsupportedCPUError, match="avx512f, avx512vnni"):
        cpu.check(["avx2", "avx512f", "avx512vnni"], host)
    with pytest.raises(cpu.UnsupportedCPUError, match="cannot tell"):  # fails closed
        cpu.check(["avx2"], cpu.Host(cpu.cpu_flags(tmp_path / "absent")))


def test_results_are_independent_arrays(tiny_lib):
    """The output is the VM's own tensor, not a copy: a later call must not write into an earlier
    result, and a caller may modify a result freely."""
    import tvm_sparse

    model = tvm_sparse.load(tiny_lib)
    first = model(**feeds(0))
    kept = first.copy()
    second = model(**feeds(1))
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, kept)
    first[...] = 0
    np.testing.assert_array_equal(model(**feeds(1)), second)


def test_concurrent_calls_match_sequential_ones(tiny_lib):
    from concurrent.futures import ThreadPoolExecutor

    import tvm_sparse

    model = tvm_sparse.load(tiny_lib)
    expected = [model(**feeds(s)) for s in range(4)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda s: model(**feeds(s)), [0, 1, 2, 3] * 3))
    for i, g in enumerate(got):
        np.testing.assert_array_equal(g, expected[i % 4])


def test_a_library_for_another_cpu_is_refused_before_it_runs(tmp_path, monkeypatch):
    """Built for znver4 (SSE4a's insertq and friends) and loaded on a Sapphire Rapids-class host: refused
    with the missing features named, never a SIGILL. The host is synthetic, so this holds on any machine."""
    pytest.importorskip("torch")
    from tvm_sparse.graph import importer
    from tvm_sparse.graph.compile import CompileOptions, compile_model
    from tvm_sparse.graph.export import build_bert

    from ..test_target import SPR_GUEST

    onnx_path = build_bert("bert-tiny", tmp_path / "tiny.onnx", seq_len=SEQ, vocab_size=VOCAB)
    lib = tmp_path / "zen.so"
    compile_model(importer.load_onnx(onnx_path), lib,
                  CompileOptions(batch=2, seq_len=SEQ, precision="fp32", trials=0, allow_untuned=True,
                                 work_dir=tmp_path / "db", target="znver4"), log=lambda *_: None)
    monkeypatch.setattr(cpu.Host, "this", classmethod(lambda cls: cpu.Host(SPR_GUEST)))
    with pytest.raises(cpu.UnsupportedCPUError, match=r"zen\.so \(compiled for znver4\).*sse4a"):
        tvm_sparse.load(lib)

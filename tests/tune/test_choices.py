"""Kernel choices measured on the CPU: the table's format and refusals, the measurement itself, and the
policy that reads them (a table never brings AMX to a CPU without it; a Linear left row-major in a graph
takes the kind measured fastest)."""

import json
import warnings

import numpy as np
import pytest
import tvm
from tvm import relax

from tvm_sparse import kinds
from tvm_sparse.format import bsr4x1
from tvm_sparse.graph import swap as rewrite
from tvm_sparse.graph.calibrate import ActQuant, weight_key
from tvm_sparse.graph.compile import build
from tvm_sparse.graph.policy import KernelPolicy
from tvm_sparse.target import resolve
from tvm_sparse.tune import choices

M, K, N = 32, 64, 64
KEY = choices.ChoiceKey(M, K, N, 90)


def _weight(sparsity=0.9, seed=0):
    rng = np.random.default_rng(seed)
    return bsr4x1.prune(rng.standard_normal((N, K)).astype(np.float32), sparsity)


def test_store_and_lookup_first_root_wins(tmp_path):
    target = resolve("host", 1)
    user, shipped = tmp_path / "user", tmp_path / "shipped"
    choices.store(shipped, target, KEY, {"sparse_int8": 10.0, "dense_int8": 20.0})
    assert choices.lookup(KEY, target, [user, shipped])[0] == {"sparse_int8": 10.0, "dense_int8": 20.0}
    choices.store(user, target, KEY, {"sparse_int8": 30.0, "dense_int8": 20.0})
    times, path = choices.lookup(KEY, target, [user, shipped])
    assert times["sparse_int8"] == 30.0 and path.is_relative_to(user)
    assert choices.lookup(choices.ChoiceKey(M, K, N, 80), target, [user, shipped]) is None
    # kept per core count, like the records
    assert choices.lookup(KEY, resolve("host", 2), [user, shipped]) is None


def test_a_corrupt_table_is_skipped_by_lookups_and_never_overwritten(tmp_path):
    target = resolve("host", 1)
    path = choices.path_for(tmp_path, target)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.warns(UserWarning, match="not a kernel choices table"):
        assert choices.lookup(KEY, target, [tmp_path]) is None
    with pytest.raises(choices.ChoicesError, match="move it away"):
        choices.store(tmp_path, target, KEY, {"sparse_int8": 1.0})
    assert path.read_text() == "{not json"


def test_another_cpus_table_is_refused(tmp_path):
    here, other = resolve("host", 1), resolve("cascadelake", 1)
    choices.store(tmp_path, here, KEY, {"sparse_int8": 1.0, "dense_int8": 2.0})
    # the same file read for another CPU (as if copied across)
    foreign = choices.path_for(tmp_path, other)
    foreign.parent.mkdir(parents=True, exist_ok=True)
    foreign.write_text(choices.path_for(tmp_path, here).read_text())
    if foreign != choices.path_for(tmp_path, here):
        with pytest.raises(choices.ChoicesError, match="a crossover is a property of its CPU"):
            choices.read(foreign, other)


def _forge(root, target, times):
    path = choices.path_for(root, target)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"format": choices.FORMAT, "version": choices.VERSION, "cpu": target.attrs["mcpu"],
           "cores": 1, "entries": {KEY.name: {"times_us": times}}}
    path.write_text(json.dumps(doc))


def test_the_policy_takes_the_fastest_measured_kind(tmp_path):
    target = resolve("host", 1)
    dense_kind = "dense_amx" if kinds.get("dense_amx").available(target) else "dense_int8"
    _forge(tmp_path, target, {"sparse_int8": 50.0, dense_kind: 20.0})
    d = KernelPolicy(target, roots=[tmp_path]).decide(_weight(), M)
    assert (d.sparse, d.kind) == (False, dense_kind) and "measured" in d.reason
    _forge(tmp_path, target, {"sparse_int8": 10.0, dense_kind: 20.0})
    d = KernelPolicy(target, roots=[tmp_path]).decide(_weight(), M)
    assert (d.sparse, d.kind) == (True, "sparse_int8")
    # threshold mode, or an explicit threshold, ignores the table
    assert KernelPolicy(target, mode="threshold", roots=[tmp_path]).decide(_weight(), M).kind is None
    assert KernelPolicy(target, threshold=0.95, roots=[tmp_path]).decide(_weight(), M).sparse is False
    # nothing measured for this sparsity: the threshold
    assert KernelPolicy(target, roots=[tmp_path]).decide(_weight(0.7), M).kind is None


def test_a_table_never_brings_amx_to_a_cpu_without_it(tmp_path):
    target = resolve("cascadelake", 1)  # VNNI, no AMX
    _forge(tmp_path, target, {"sparse_int8": 50.0, "dense_amx": 1.0, "dense_int8": 80.0})
    d = KernelPolicy(target, roots=[tmp_path]).decide(_weight(), M)
    assert d.kind == "sparse_int8" and d.sparse


def test_measure_times_every_kind_the_target_runs(tmp_path):
    target = resolve("host", 1)
    why = choices.cannot_measure(target)
    if why:
        pytest.skip(why)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        times = choices.measure(KEY, target, [tmp_path], repeat=1)
    expected = {"sparse_int8", "dense_int8"} | ({"dense_amx"} if kinds.get("dense_amx").available(target) else set())
    assert set(times) == expected and all(t > 0 for t in times.values())


def _linear(w, b):
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((M, K), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            out = bb.emit_output(relax.op.add(relax.op.matmul(x, relax.op.permute_dims(relax.const(w))),
                                              relax.const(b)))
        bb.emit_func_output(out)
    return bb.get()


def test_a_row_major_linear_takes_the_measured_kind_and_stays_right(tmp_path):
    """A row-major Linear at 90%: with a table saying dense is faster at this shape it runs dense (the
    threshold alone makes it sparse), and its output still matches the fp32 reference. (Two Linears in a
    row would chain in the sparse u8 layout, which the row-major measurement does not describe.)"""
    rng = np.random.default_rng(3)
    w = _weight(0.9, 1) * 0.3
    b = rng.standard_normal(N).astype(np.float32)
    calib = {weight_key(w): ActQuant.from_range(-2.0, 2.0)}
    target = resolve("host", 1)
    dense_kind = "dense_amx" if kinds.get("dense_amx").available(target) else "dense_int8"
    _forge(tmp_path, target, {"sparse_int8": 50.0, dense_kind: 20.0})
    _, by_threshold = rewrite.swap_linears(_linear(w, b), "int8", target, calib=calib, database=str(tmp_path),
                                           choose="threshold")
    mod, layers = rewrite.swap_linears(_linear(w, b), "int8", target, calib=calib, database=str(tmp_path))
    assert [(x.sparse, x.kind) for x in by_threshold] == [(True, "sparse_int8")]
    assert [(x.sparse, x.kind) for x in layers] == [(False, dense_kind)] and "measured" in layers[0].why
    x = rng.uniform(-2, 2, (M, K)).astype(np.float32)
    ref = x @ w.T + b
    if choices.cannot_measure(target):
        return  # built for this CPU but cannot run here
    vm = relax.VirtualMachine(build(mod, target, None, allow_untuned=True), tvm.cpu())
    got = vm["main"](tvm.runtime.tensor(x)).numpy()
    assert np.abs(got - ref).max() < 0.03 * np.abs(ref).max()


def test_tune_choices_refuses_a_corrupt_table_before_measuring(tmp_path, capsys):
    from tvm_sparse.cli import main

    target = resolve("host", 1)
    path = choices.path_for(tmp_path, target)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert main(["tune-choices", "--db", str(tmp_path), "--shapes", "64x64", "--sparsities", "0.9"]) == 2
    assert "not a kernel choices table" in capsys.readouterr().err
    assert path.read_text() == "{not json"

"""Throughput under a latency bound: the search picks by measurement, and real instances run pinned."""

import os

import pytest

from tvm_sparse.bench import throughput


def _point(instances, batch, seq_per_s, p90, error=""):
    return throughput.Point("e", 16, instances, 16 // instances, batch, seq_per_s, p90 * 0.8, p90, 100, error)


def test_instances_split_the_cores_evenly():
    assert throughput.instance_counts(16) == [1, 2, 4, 8, 16]
    assert throughput.instance_counts(2) == [1, 2]
    assert throughput.core_sets(list(range(8)), 4) == [[0, 1], [2, 3], [4, 5], [6, 7]]


def test_search_takes_the_fastest_point_within_the_bound(monkeypatch):
    table = {(1, 1): _point(1, 1, 100, 12), (2, 1): _point(2, 1, 180, 20), (4, 1): _point(4, 1, 300, 45),
             (8, 1): _point(8, 1, 400, 60), (16, 1): _point(16, 1, 0, 0, error="boom"),
             (1, 4): _point(1, 4, 150, 30), (2, 4): _point(2, 4, 250, 170)}  # 170 > 3 x bound: stop there
    seen = []

    def fake(engine, kind, path, batch, seq, cores, inst, seconds):
        seen.append((inst, batch))
        return table[(inst, batch)]

    monkeypatch.setattr(throughput, "measure", fake)
    best, points = throughput.search("e", "onnx", {1: "m.onnx", 4: "m.onnx"}, 128, list(range(16)), 50.0,
                                     log=lambda *_: None)
    assert (best.instances, best.batch, best.seq_per_s) == (4, 1, 300)  # 400 seq/s breaks the bound
    assert (4, 4) not in seen and len(points) == 7


def test_real_instances_run_pinned_at_once(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Cast", ["input_ids"], ["y"], to=TensorProto.FLOAT)], "g",
                              [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "l"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "l"])])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    cores = sorted(os.sched_getaffinity(0))[:2]
    p = throughput.measure("ort", "onnx", str(path), 2, 16, cores, len(cores), seconds=0.3)
    assert not p.error, p.error
    assert p.instances == len(cores) and p.threads == 1 and p.batch == 2
    assert p.calls > 10 and p.seq_per_s > 0 and p.p90_ms >= p.median_ms > 0
    bad = throughput.measure("ort", "onnx", str(tmp_path / "absent.onnx"), 1, 16, cores, 1, seconds=0.3)
    assert "instance failed to start" in bad.error  # a configuration that cannot run is reported, not raised

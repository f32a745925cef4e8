"""Calibration: what it measures of each Linear, checked against the layer recomputed in numpy."""

from __future__ import annotations

import numpy as np
import onnx

from tvm_sparse.graph import calibrate, importer
from tvm_sparse.graph.linears import find_linears

from .conftest import SEQ, tiny_feeds


def test_output_absmax_is_each_channels_largest_output(tiny_pruned, tmp_path):
    """``out_absmax`` (the attention's per-head Q, K, V scales come from it) is max |x W^T + b| per
    output channel over every sample, recomputed here from each layer's input."""
    import onnxruntime as ort

    static = importer.static_model(tiny_pruned, 1, SEQ)
    samples = [tiny_feeds(s) for s in range(3)]
    params = calibrate.calibrate(static, samples)
    inits = {i.name: i for i in static.graph.initializer}
    node = {n.name: n for n in static.graph.node}
    query = find_linears(static)[0]  # encoder.layer.0.attention.self.query: MatMul + bias Add
    x_name = node[query.node].input[0]
    bias_add = next(n for n in static.graph.node if node[query.node].output[0] in n.input)
    bias = next(onnx.numpy_helper.to_array(inits[i]) for i in bias_add.input if i in inits)
    model = onnx.ModelProto.FromString(static.SerializeToString())
    model.graph.output.extend([onnx.ValueInfoProto(name=x_name)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    w = query.read(inits)
    ys = [sess.run([x_name], {k: v.astype(np.int64) for k, v in s.items()})[0].reshape(-1, w.shape[1]) @ w.T + bias
          for s in samples]
    expected = np.abs(np.concatenate(ys)).max(axis=0)
    got = params[calibrate.weight_key(w)].out_absmax
    assert len(got) == w.shape[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # a saved calibration keeps them
    calibrate.save(params, tmp_path / "calib.json")
    assert calibrate.load(tmp_path / "calib.json") == params

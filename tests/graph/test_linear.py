import numpy as np
import pytest
import tvm

from tvm_sparse.format import bsr4x1
from tvm_sparse.graph.linear import build as build_linear
from tvm_sparse.kinds import LinearLayer


def _layer(precision, sparse, gelu, seed=0, n=64, k=96):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n, k)).astype(np.float32) * 0.1
    if sparse:
        w = bsr4x1.prune(w, 0.8)
    return LinearLayer(w, rng.standard_normal(n).astype(np.float32), gelu, precision, sparse,
                       act_scale=4.0 / 255, act_zero_point=128)


def _gelu(v):
    import math

    return np.vectorize(lambda a: 0.5 * a * (1 + math.erf(a / math.sqrt(2))))(v)


@pytest.mark.parametrize("precision,sparse", [("int8", True), ("int8", False), ("fp32", True)])
@pytest.mark.parametrize("gelu", [False, True])
def test_linear_matches_fp32_reference(precision, sparse, gelu, target, tmp_path):
    layer = _layer(precision, sparse, gelu)
    m = 20
    x = np.random.default_rng(1).uniform(-2, 2, (m, layer.weight.shape[1])).astype(np.float32)
    func, consts = build_linear(layer, m, target, database=tmp_path)
    lib = tvm.tirx.build(func, target=target)
    args = [tvm.runtime.tensor(a) for a in [x, *consts, np.zeros((m, layer.weight.shape[0]), np.float32)]]
    lib(*args)
    ref = x @ layer.weight.T + layer.bias
    if gelu:
        ref = _gelu(ref)
    out = args[-1].numpy()
    if precision == "fp32":
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    else:  # int8: quantization error only (u8 step 4/255 on inputs, s8 per-channel weights)
        cos = (out * ref).sum() / np.linalg.norm(out) / np.linalg.norm(ref)
        assert cos > 0.999 and np.abs(out - ref).max() < 0.1


def test_dense_fp32_stays_in_the_graph(target):
    assert build_linear(_layer("fp32", False, False), 8, target) is None


def test_bad_layer_is_refused():
    with pytest.raises(ValueError, match="precision"):
        LinearLayer(np.zeros((4, 4), np.float32), None, False, "int4", True)
    with pytest.raises(ValueError, match="quantization"):
        LinearLayer(np.zeros((4, 4), np.float32), None, False, "int8", True, act_scale=0.0)


@pytest.mark.parametrize("sparse", [True, False])
def test_folded_scale_and_transposed_output(sparse, target, tmp_path):
    """What the graph folds into a layer: a factor on its output (exactly c times the plain layer's
    result) and, for sparse layers, the [N, M] output layout (exactly its transpose)."""
    from dataclasses import replace

    layer, m = _layer("int8", sparse, False), 32
    x = np.random.default_rng(1).uniform(-2, 2, (m, layer.weight.shape[1])).astype(np.float32)
    n = layer.weight.shape[0]

    def run(lay, out_shape):
        func, consts = build_linear(lay, m, target, database=tmp_path)
        args = [tvm.runtime.tensor(a) for a in [x, *consts, np.zeros(out_shape, np.float32)]]
        tvm.tirx.build(func, target=target)(*args)
        return args[-1].numpy()

    plain = run(layer, (m, n))
    np.testing.assert_allclose(run(replace(layer, out_scale=0.125), (m, n)), plain * 0.125, rtol=1e-6, atol=1e-6)
    if sparse:
        np.testing.assert_allclose(run(replace(layer, out_transposed=True), (n, m)), plain.T, rtol=1e-6, atol=1e-6)
    else:
        with pytest.raises(ValueError, match="sparse int8"):
            replace(layer, out_transposed=True)
    with pytest.raises(ValueError, match="GELU"):
        replace(layer, gelu=True, out_scale=0.5)


def test_per_channel_u8_output_in_token_order(target, tmp_path):
    """The QKV projection's hand-over to attention: u8 [N, M], tokens in their own order, each
    channel quantized with its own scale (zero point 128): round(y / s[n]) + 128 of the fp32 layer
    (within one step: the two round at different points), saturating at both ends."""
    from dataclasses import replace

    layer, m = _layer("int8", True, False), 64  # 64 tokens: whole swizzled tiles, which must not be used
    x = np.random.default_rng(2).uniform(-2, 2, (m, layer.weight.shape[1])).astype(np.float32)
    n = layer.weight.shape[0]

    def run(lay, out_shape, dtype):
        func, consts = build_linear(lay, m, target, database=tmp_path)
        args = [tvm.runtime.tensor(a) for a in [x, *consts, np.zeros(out_shape, dtype)]]
        tvm.tirx.build(func, target=target)(*args)
        return args[-1].numpy()

    y = run(layer, (m, n), np.float32)
    s_out = (np.abs(y).max(axis=0) / 127 * np.linspace(0.5, 1.5, n)).astype(np.float32)  # some channels clip
    got = run(replace(layer, out_quant=(s_out, 128), out_swizzled=False), (n, m), np.uint8).astype(np.int32)
    expected = np.clip(np.round(y / s_out) + 128, 0, 255).T
    assert np.abs(got - expected).max() <= 1 and (got == 255).any() and (got == 0).any()
    with pytest.raises(ValueError, match="per-channel"):
        replace(layer, out_quant=(s_out[:-1], 128))

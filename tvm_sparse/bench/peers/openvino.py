"""OpenVINO on the same pruned ONNX, on CPU: ``ov_int8`` (a static QDQ int8 ONNX) and ``ov_bf16`` (the fp32 ONNX
at OpenVINO's default CPU precision). Optional: ``pip install openvino`` (or tvm-sparse's ``compare`` extra).

``ov_int8``: onnxruntime's ``quantize_static`` writes QuantizeLinear/DequantizeLinear pairs around every
MatMul (s8 weights per output channel, u8 activations from a min/max calibration on random token ids);
OpenVINO's low-precision transformations turn them into int8 matmuls (AMX or VNNI kernels). OpenVINO also
quantizes through NNCF, but that is one more heavy dependency; a QDQ ONNX is what any ONNX user can hand it.

``ov_bf16``: the fp32 ONNX as exported. OpenVINO's CPU plugin computes in bf16 by default where the CPU has
AMX or AVX512-BF16 (the CPUs this project targets) and in f32 elsewhere; every timing records the precision
it actually ran in (``precision``), and how many matmul layers ran in which (``matmul_precisions``).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ..model import _run, _summary
from .base import PeerEngine

CALIBRATION_BATCHES = 8  # random-id batches for the activation ranges: min/max settles within a few

_OV = """
import json, sys, time, numpy as np, openvino as ov
from collections import Counter
path, runs, b, L, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
core = ov.Core()
model = core.read_model(path)
model.reshape({i.get_any_name(): [b, L] for i in model.inputs})  # static shapes, as the other engines run
compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                                             "NUM_STREAMS": 1, "ENABLE_CPU_PINNING": True})
req = compiled.create_infer_request()
feeds = {i.get_any_name(): np.ones((b, L), np.int64) for i in compiled.inputs}
for _ in range(5): req.infer(feeds)
ts = []
for _ in range(runs):
    t = time.perf_counter(); req.infer(feeds); ts.append(time.perf_counter() - t)
layers = Counter()  # what the plugin actually built: int8 matmuls show as u8/i8 FullyConnected layers
for op in compiled.get_runtime_model().get_ordered_ops():
    info = op.get_rt_info()
    if info["layerType"].astype(str) in ("FullyConnected", "MatMul"):
        layers[info["runtimePrecision"].astype(str)] += 1
print(json.dumps({"times": ts, "precision": compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name(),
                  "matmul_precisions": dict(layers), "version": ov.get_version()}))
"""


def _require(engine: str) -> None:
    if importlib.util.find_spec("openvino") is None:
        raise RuntimeError(f"the {engine} engine needs OpenVINO: pip install openvino "
                           "(or tvm-sparse's compare extra: pip install -e '.[compare]')")


def calibration_samples(src: str | Path, batch: int, seq_len: int, n: int = CALIBRATION_BATCHES) -> list[dict]:
    """``n`` feeds of random token ids within the vocabulary, attention_mask ones, token_type_ids zeros, for
    the ONNX's own inputs; a dimension the ONNX fixes wins over ``batch`` / ``seq_len``."""
    import onnx

    from ...graph.calibrate import random_samples

    model = onnx.load(str(src), load_external_data=False)  # names, dims and the vocabulary's row count only
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    b, L = (dims[0] or batch, dims[1] or seq_len) if len(dims) == 2 else (batch, seq_len)
    return random_samples(model, b, L, n=n)


def quantize_qdq(src: str | Path, out: str | Path, samples: list[dict]) -> Path:
    """The static QDQ int8 ONNX of ``src``: s8 per-channel weights, u8 activations, MatMul/Gemm inputs only."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(samples)

        def get_next(self) -> dict | None:
            return next(self.it, None)

    quantize_static(str(src), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                    op_types_to_quantize=["MatMul", "Gemm"],
                    # OpenVINO wants the inputs of a matmul quantized; a Q/DQ pair on its output would only
                    # round the fp32 result to u8 before the bias Add (more error, no int8 work saved)
                    extra_options={"OpTypesToExcludeOutputQuantization": ["MatMul", "Gemm"]})
    return Path(out)


class OpenvinoBf16(PeerEngine):
    name = "ov_bf16"
    default = False  # openvino is not a runtime dependency

    def unavailable(self) -> str:
        try:
            _require(self.name)
        except RuntimeError as err:
            return str(err)
        return ""

    def build(self, cfg, src: Path, log=print) -> Path:
        _require(self.name)
        return src

    def time(self, cfg, artifact: Path, batch: int, threads: int, runs: int) -> dict:
        _require(self.name)
        res = _run(_OV, artifact, runs, batch, cfg.seq_len, threads)
        return {**_summary(res.pop("times")), "threads": threads, **res}


class OpenvinoInt8(OpenvinoBf16):
    name = "ov_int8"

    def build(self, cfg, src: Path, log=print) -> Path:
        _require(self.name)
        out = src.with_name(src.stem + "_ovqdq.onnx")
        if out.is_file():
            return out
        part = out.with_name(out.stem + ".part.onnx")  # an interrupted run leaves no half file to reuse
        quantize_qdq(src, part, calibration_samples(src, cfg.batch, cfg.seq_len))
        os.replace(part, out)
        log(f"quantize_static (QDQ) {src.name} -> {out.name}")
        return out


BF16, INT8 = OpenvinoBf16(), OpenvinoInt8()

"""onnxruntime on the same pruned ONNX: fp32 as exported, and int8 by its ``quantize_dynamic``."""

from __future__ import annotations

from pathlib import Path

from ..model import bench_onnxruntime
from .base import PeerEngine


class OnnxruntimeFp32(PeerEngine):
    name = "ort_fp32"

    def build(self, cfg, src: Path, log=print) -> Path:
        return src

    def time(self, cfg, artifact: Path, batch: int, threads: int, runs: int) -> dict:
        return bench_onnxruntime(str(artifact), batch, cfg.seq_len, runs=runs, threads=threads)


class OnnxruntimeInt8(OnnxruntimeFp32):
    """u8 activations, s8 weights, quantized per run (dynamic): what an onnxruntime user gets in one call."""

    name = "ort_int8"

    def build(self, cfg, src: Path, log=print) -> Path:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        out = src.with_name(src.stem + "_ortint8.onnx")
        if not out.is_file():
            quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8)
            log(f"quantize_dynamic {src.name} -> {out.name}")
        return out


FP32, INT8 = OnnxruntimeFp32(), OnnxruntimeInt8()

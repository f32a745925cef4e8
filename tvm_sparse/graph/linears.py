"""Find the Linear layers of an ONNX encoder: MatMul (or Gemm) nodes with a constant 2-D weight.

ONNX MatMul stores ``B`` as ``[K, N]`` (in x out); this project's format is ``W[N_out, K_in]``. A
``Linear`` records which initializer holds the weight and how to read it as ``W[N, K]``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper


@dataclass(frozen=True)
class Linear:
    name: str  # the torch module path when the exporter recorded it, else the node name
    node: str  # ONNX node name
    weight: str  # initializer name
    transposed: bool  # True: the initializer is [N, K] already (Gemm transB=1)

    def read(self, inits: dict[str, onnx.TensorProto]) -> np.ndarray:
        """The weight as ``W[N, K]`` float32."""
        b = numpy_helper.to_array(inits[self.weight]).astype(np.float32)
        return b if self.transposed else b.T

    def to_initializer(self, w: np.ndarray, like: onnx.TensorProto) -> onnx.TensorProto:
        """``W[N, K]`` back in the initializer's own layout and dtype."""
        b = w if self.transposed else w.T
        dtype = numpy_helper.to_array(like).dtype
        return numpy_helper.from_array(np.ascontiguousarray(b).astype(dtype), like.name)


def _module_name(node: onnx.NodeProto) -> str:
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                break
            # the last entry is the op ("linear"), the one before the module path
            modules = [str(x) for x in scopes if "." in str(x)]
            if modules:
                name = modules[-1]
                return name[3:] if name.startswith("hf.") else name  # our export wrapper's prefix
    return node.name


def _gemm_trans_b(node: onnx.NodeProto) -> bool:
    return any(a.name == "transB" and a.i for a in node.attribute)


def find_linears(model: onnx.ModelProto) -> list[Linear]:
    """Every MatMul/Gemm whose weight operand is a 2-D float initializer, in graph order."""
    inits = {i.name: i for i in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm") or node.domain not in ("", "ai.onnx"):
            continue
        if len(node.input) < 2 or node.input[1] not in inits:
            continue
        init = inits[node.input[1]]
        if len(init.dims) != 2 or init.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
            continue
        transposed = node.op_type == "Gemm" and _gemm_trans_b(node)
        found.append(Linear(_module_name(node), node.name, init.name, transposed))
    return found

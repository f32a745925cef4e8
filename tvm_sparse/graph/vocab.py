"""Valid ranges of the integer inputs, read from the embedding tables they index.

TVM's ``take`` runs in fast mode (no bounds check): an out-of-range token id reads out of bounds.
The runtime refuses such ids with a clear error instead, using these limits.
"""

from __future__ import annotations

import onnx

from .importer import INPUT_NAMES


def input_limits(model: onnx.ModelProto) -> dict[str, int]:
    """``{input name: table rows}`` for inputs that index an embedding table (Gather on an initializer)."""
    dims = {i.name: list(i.dims) for i in model.graph.initializer}
    limits: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type != "Gather" or len(node.input) < 2:
            continue
        table, idx = node.input[0], node.input[1]
        if idx in INPUT_NAMES and table in dims and dims[table]:
            limits[idx] = min(limits.get(idx, dims[table][0]), dims[table][0])
    return limits

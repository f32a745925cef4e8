"""Valid ranges of the integer inputs, read from the embedding tables they index.

TVM's ``take`` runs in fast mode (no bounds check): an out-of-range token id reads out of bounds.
The runtime refuses such ids with a clear error instead, using these limits.
"""

from __future__ import annotations

import onnx

# ops that pass index values through unchanged: an exporter may put them between an input and its
# Gather (a Cast to int32 hid the vocabulary bound, and id = vocab read out of bounds)
PASS_THROUGH = ("Cast", "Identity", "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Expand")


def input_limits(model: onnx.ModelProto) -> dict[str, int]:
    """``{input name: table rows}`` for inputs that index an embedding table (Gather on an initializer),
    directly or through value-preserving ops."""
    dims = {i.name: list(i.dims) for i in model.graph.initializer}
    source = {i.name: i.name for i in model.graph.input}
    limits: dict[str, int] = {}
    for node in model.graph.node:  # ONNX nodes are topologically sorted
        if node.op_type in PASS_THROUGH and node.input and node.input[0] in source:
            for out in node.output:
                source[out] = source[node.input[0]]
        if node.op_type != "Gather" or len(node.input) < 2:
            continue
        table, idx = node.input[0], source.get(node.input[1])
        if idx is not None and table in dims and dims[table]:
            limits[idx] = min(limits.get(idx, dims[table][0]), dims[table][0])
    return limits


def max_positions(model: onnx.ModelProto) -> int | None:
    """Rows of the model's position-embedding table (the longest sequence it can take), if it has one:
    a 2-D initializer named like BERT's ``position_embeddings`` that a Gather reads."""
    gathered = {n.input[0] for n in model.graph.node if n.op_type == "Gather" and n.input}
    rows = [int(i.dims[0]) for i in model.graph.initializer
            if "position_embeddings" in i.name and len(i.dims) == 2 and i.name in gathered]
    return min(rows) if rows else None

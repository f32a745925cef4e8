"""ONNX BERT-family encoder -> Relax IRModule with a fixed batch and sequence length.

The model must take ``input_ids`` (and optionally ``attention_mask``, ``token_type_ids``) and produce the
last hidden state ``[B, L, H]`` or a classifier's ``logits [B, C]``. Other outputs (a pooler) are dropped.
Symbolic input dimensions are fixed, then shape arithmetic is constant-folded: TVM's ONNX frontend cannot
import the ``Shape`` -> ``Reshape`` chains a dynamic-shape export contains (see docs/TVM-0.27-NOTES).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import tvm

from .errors import GraphError, UnsupportedModelError

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
INPUT_DTYPE = "int64"
HIDDEN_OUTPUT = "last_hidden_state"
LOGITS_OUTPUT = "logits"  # a sequence classifier's [B, C]
_ONNX_DOMAINS = ("", "ai.onnx")


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """Read an ONNX file (with external data if any) and check it is a well-formed model."""
    path = Path(path)
    if not path.is_file():
        raise GraphError(f"no ONNX model at {path}")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as err:  # onnx raises several unrelated types for a bad file
        raise GraphError(f"{path} is not a valid ONNX model: {err}") from err
    return model


def supported_ops() -> set[str]:
    from tvm.relax.frontend.onnx.onnx_frontend import _get_convert_map

    return set(_get_convert_map())


def check_supported(model: onnx.ModelProto) -> None:
    """Raise ``UnsupportedModelError`` naming every operator, input or output we cannot import."""
    known = supported_ops()
    bad = sorted(
        {f"{n.domain}::{n.op_type}" if n.domain not in _ONNX_DOMAINS else n.op_type for n in model.graph.node
         if n.domain not in _ONNX_DOMAINS or n.op_type not in known}
    )
    if bad:
        raise UnsupportedModelError(
            f"the model uses operators that TVM's ONNX importer does not support: {', '.join(bad)}. "
            "Export it again with standard ONNX operators only (no onnxruntime-fused com.microsoft ops)."
        )
    names = graph_input_names(model)
    if "input_ids" not in names:
        raise UnsupportedModelError(
            f"not a BERT-family encoder: it has no 'input_ids' input (inputs: {names})"
        )
    extra = [n for n in names if n not in INPUT_NAMES]
    if extra:
        raise UnsupportedModelError(
            f"unsupported model inputs {extra}: only {list(INPUT_NAMES)} are supported"
        )
    hidden_output(model)


def graph_input_names(model: onnx.ModelProto) -> list[str]:
    inits = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


def hidden_output(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    """The output the library returns: the last hidden state (named so, else the only rank-3 output), or
    a classifier's 2-D ``logits``."""
    outs = list(model.graph.output)
    for name, rank in ((HIDDEN_OUTPUT, 3), (LOGITS_OUTPUT, 2)):
        for o in outs:
            if o.name == name:
                if len(o.type.tensor_type.shape.dim) not in (0, rank):
                    raise UnsupportedModelError(f"output {name!r} has rank {len(o.type.tensor_type.shape.dim)}, "
                                                f"expected {rank}")
                return o
    rank3 = [o for o in outs if len(o.type.tensor_type.shape.dim) == 3]
    if len(rank3) != 1:
        raise UnsupportedModelError(
            f"cannot tell which output is the last hidden state [B, L, H] or the logits [B, C]: outputs "
            f"{[o.name for o in outs]}; name it {HIDDEN_OUTPUT!r} (or {LOGITS_OUTPUT!r})"
        )
    return rank3[0]


def _drop_other_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    keep = hidden_output(model).name
    if len(model.graph.output) == 1:
        return model
    model = onnx.ModelProto.FromString(model.SerializeToString())
    kept = [o for o in model.graph.output if o.name == keep]
    del model.graph.output[:]
    model.graph.output.extend(kept)
    return _prune_dead_nodes(model)


def _prune_dead_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove nodes (and initializers) the outputs do not depend on."""
    needed = {o.name for o in model.graph.output}
    live = []
    for node in reversed(model.graph.node):
        if any(o in needed for o in node.output):
            live.append(node)
            needed.update(node.input)
    live.reverse()
    del model.graph.node[:]
    model.graph.node.extend(live)
    inits = [i for i in model.graph.initializer if i.name in needed]
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)
    return model


def make_static(model: onnx.ModelProto, batch: int, seq_len: int) -> onnx.ModelProto:
    """Fix every input to ``[batch, seq_len]`` and fold the shape arithmetic that depended on it."""
    if batch < 1 or seq_len < 1:
        raise GraphError(f"batch and sequence length must be positive, got batch={batch} seq_len={seq_len}")
    model = _drop_other_outputs(model)
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for inp in model.graph.input:
        if inp.name not in INPUT_NAMES:
            continue
        dims = inp.type.tensor_type.shape.dim
        if len(dims) != 2:
            raise UnsupportedModelError(f"input {inp.name!r} must be 2-D [batch, seq], has rank {len(dims)}")
        for dim, value in zip(dims, (batch, seq_len), strict=True):
            if dim.HasField("dim_value") and dim.dim_value != value:
                raise GraphError(
                    f"the model fixes {inp.name!r} to {[d.dim_value for d in dims]}; asked for "
                    f"[{batch}, {seq_len}]: export it with dynamic axes or use its own shape"
                )
            dim.ClearField("dim_param")
            dim.dim_value = value
    if any(n.op_type in ("Shape", "ConstantOfShape") for n in model.graph.node):
        model = fold_static_shapes(fold_constants(model))
    return model


# evaluated here when every input is a constant: the shape arithmetic and mask code exporters emit
_FOLDABLE = {"Shape", "ConstantOfShape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "Equal", "Where",
             "Expand", "Reshape", "Slice", "Range", "Mul", "Add", "Sub", "Div", "Not", "And", "Or", "IsNaN",
             "Less", "Greater", "Identity", "Constant", "Neg", "Abs", "Min", "Max", "ReduceProd"}
_FOLD_LIMIT = 1 << 16  # elements: fold shape-sized tensors, not weights or [L, L] masks of a long model


def fold_static_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """What a general folder leaves of the shape code once every input shape is fixed: ``Shape`` of a
    tensor whose shape inference knows, and small all-constant nodes (``ConstantOfShape`` of a constant
    shape, ...). The classic TorchScript exporter's BERTs (opset 14 to 17) keep a ``ConstantOfShape`` of
    an empty shape there, a 0-d tensor TVM's importer turns into a failing ``broadcast_to``."""
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    for _ in range(8):  # each round exposes the next layer of constants
        inferred = onnx.shape_inference.infer_shapes(model)
        shapes = {v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
                  for v in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)
                  if v.type.tensor_type.HasField("shape")}
        consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        kept, changed = [], False
        for node in model.graph.node:
            value = None
            if node.domain in _ONNX_DOMAINS and node.op_type in _FOLDABLE:
                if node.op_type == "Shape" and node.input[0] not in consts and not node.attribute:
                    dims = shapes.get(node.input[0])
                    if dims is not None and all(d for d in dims):
                        value = [np.asarray(dims, np.int64)]
                elif all(i in consts or not i for i in node.input) and node.op_type != "Constant":
                    try:
                        sub = onnx.helper.make_model(
                            onnx.helper.make_graph([node], "fold", [], [onnx.helper.make_tensor_value_info(
                                o, onnx.TensorProto.UNDEFINED, None) for o in node.output],
                                [numpy_helper.from_array(consts[i], i) for i in node.input if i]),
                            opset_imports=model.opset_import)
                        value = ReferenceEvaluator(sub).run(None, {})
                    except Exception:  # an op the reference evaluator cannot run: leave it to TVM
                        value = None
            if value is not None and all(np.asarray(v).size <= _FOLD_LIMIT for v in value):
                for name, v in zip(node.output, value, strict=False):
                    model.graph.initializer.append(numpy_helper.from_array(np.asarray(v), name))
                    consts[name] = np.asarray(v)
                changed = True
            else:
                kept.append(node)
        if not changed:
            return model
        del model.graph.node[:]
        model.graph.node.extend(kept)
        model = _prune_dead_nodes(model)
    return model


def fold_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """Constant-fold with onnxscript's optimizer (ships with torch's exporter) or onnxruntime."""
    try:
        import onnxscript.optimizer as oso

        return oso.optimize(model)
    except ImportError:
        pass
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise GraphError(
            "the model has dynamic shape arithmetic (Shape ops) that must be constant-folded for TVM: "
            "pip install onnxscript (or onnxruntime), or export the model with static shapes"
        ) from err
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        # BASIC = constant folding and standard-op rewrites only: no com.microsoft fused ops
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = f"{tmp}/folded.onnx"
        ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return onnx.load(f"{tmp}/folded.onnx")


def to_relax(model: onnx.ModelProto, batch: int, seq_len: int) -> tuple[tvm.IRModule, list[str]]:
    """Import into Relax; returns the module (weights bound as constants) and its input names in order."""
    from tvm.relax.frontend.onnx import from_onnx

    check_supported(model)
    static = make_static(model, batch, seq_len)
    names = graph_input_names(static)
    try:
        mod = from_onnx(
            static,
            shape_dict={n: (batch, seq_len) for n in names},
            dtype_dict={n: INPUT_DTYPE for n in names},
            keep_params_in_input=False,
        )
    except Exception as err:
        raise UnsupportedModelError(f"TVM's ONNX importer failed on this model: {err}") from err
    return clip_table_lookups(mod), names


def clip_table_lookups(mod: tvm.IRModule) -> tvm.IRModule:
    """Every lookup in a constant table (embeddings) clamps its index: ONNX's Gather imports as
    ``take(mode="fast")``, which reads out of bounds on an out-of-range id. The runtime refuses such ids
    with a clear error where it knows the table's size (``vocab.input_limits``); this makes the compiled
    code safe whatever the exporter put before the Gather and whatever the metadata says. One clamp per
    token: free."""
    from tvm import relax

    take = tvm.ir.Op.get("relax.take")

    @relax.expr_functor.mutator
    class Clip(relax.PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            if call.op.same_as(take) and call.attrs.mode == "fast" and isinstance(call.args[0], tvm.ir.expr.Constant):
                return relax.op.take(call.args[0], call.args[1], axis=call.attrs.axis, mode="clip")
            return call

    for gv, func in list(mod.functions.items()):
        if isinstance(func, relax.Function):
            mod[gv] = Clip().visit_expr(func)
    return mod


def static_model(path_or_model: str | Path | onnx.ModelProto, batch: int, seq_len: int) -> onnx.ModelProto:
    """The ONNX model exactly as compiled (fixed shapes, folded, hidden state only), e.g. for onnxruntime."""
    from .vocab import max_positions

    model = path_or_model if isinstance(path_or_model, onnx.ModelProto) else load_onnx(path_or_model)
    check_supported(model)
    limit = max_positions(model)
    if limit is not None and seq_len > limit:
        raise GraphError(f"--seq-len {seq_len} is longer than this model's {limit} position embeddings: "
                         f"use --seq-len {limit} or less")
    return make_static(model, batch, seq_len)

"""The swap: every Linear of the Relax graph becomes ``call_tir`` to a sparse or dense kernel.

Matched (what TVM's ONNX frontend emits for a BERT exported by torch's dynamo exporter):
  ``add(matmul(x, W), b)``            W constant ``[K, N]``, or ``permute_dims(W[N, K])`` (torch frontend)
  ``matmul(x, W)``                    a Linear without bias
  ``gelu(L)`` / ``gelu(reshape(L))``  fused GELU (ONNX ``Gelu``, opset 20)
  ``L * (erf(L / c) + 1) * 0.5``      GELU decomposed by older exporters
Activations enter and leave the kernel as ``[B*L, H]`` (reshapes around the call).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import tvm
from tvm import relax
from tvm.relax.dpl import is_const, is_op, is_tuple, rewrite_call, wildcard

from ..format import bsr4x1
from ..kernels import attention_int8
from ..kernels.library import LinearLayer
from ..kernels.sparse_int8 import padded_m
from .calibrate import ActQuant, weight_key
from .errors import GraphError
from .linear import build
from .policy import sparse_threshold, use_sparse

PRECISIONS = ("int8", "fp32")


@dataclass
class LayerChoice:
    """One rewritten Linear, for the metadata and the report."""

    name: str
    shape: list[int]  # [N, K]
    block_sparsity: float
    sparse: bool
    gelu: bool
    precision: str
    kernel: str  # the PrimFunc's name in the module
    key: str = field(default="", repr=False)  # weight_key: which weight this is


def _linear_patterns():
    x = wildcard()
    w = is_const()
    weight = w | is_op("relax.permute_dims")(w)
    mm = is_op("relax.matmul")(x, weight)
    b = is_const()
    lin = is_op("relax.add")(mm, b) | is_op("relax.add")(b, mm)
    return x, w, b, mm, lin


def _array(const: relax.Expr) -> np.ndarray:
    return const.value.numpy()


def _shape(expr: relax.Expr) -> list[int]:
    return [int(d) for d in expr.ty.shape]


class _Rewriter:
    def __init__(self, mod: tvm.IRModule, precision: str, target: tvm.target.Target,
                 calib: dict[str, ActQuant] | None, names: dict[str, str], threshold: float | None,
                 database) -> None:
        if precision not in PRECISIONS:
            raise GraphError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if precision == "int8" and calib is None:
            raise GraphError("int8 needs calibration parameters (calibrate.calibrate)")
        self.bb = relax.BlockBuilder(mod)
        self.precision, self.target, self.calib = precision, target, calib or {}
        self.names, self.database = names, database
        self.threshold = sparse_threshold(target) if threshold is None else threshold
        self.layers: list[LayerChoice] = []
        self.calls: list[tuple[tvm.ir.expr.Constant, LinearLayer, LayerChoice]] = []
        self.attention = 0  # attention cores fused into the int8 kernel

    def weight_nk(self, matched: relax.Expr, w_const: relax.Expr) -> np.ndarray:
        data = _array(w_const).astype(np.float32)
        # matmul(x, W[K, N]) vs matmul(x, permute_dims(W[N, K]))
        return np.ascontiguousarray(data.T) if matched.same_as(w_const) else data

    def emit(self, x: relax.Expr, w_nk: np.ndarray, bias: np.ndarray | None, gelu: bool,
             out_shape: list[int]) -> relax.Expr:
        n, k = w_nk.shape
        x_shape = _shape(x)
        if x_shape[-1] != k:
            raise GraphError(f"Linear input {x_shape} does not match its weight [N={n}, K={k}]")
        m = int(np.prod(x_shape[:-1]))
        key = weight_key(w_nk)
        sparse = use_sparse(w_nk, self.threshold)
        act = self.calib.get(key) if self.precision == "int8" else None
        if self.precision == "int8" and act is None:
            raise GraphError(f"no calibration for the Linear {self.names.get(key, key)}: calibrate this "
                             "exact model (the weights must match)")
        layer = LinearLayer(weight=w_nk, bias=bias, gelu=gelu, precision=self.precision, sparse=sparse,
                            act_scale=act.scale if act else 1.0, act_zero_point=act.zero_point if act else 0)
        choice = self._record(key, w_nk, sparse, gelu)
        x2 = x if len(x_shape) == 2 else relax.op.reshape(x, (m, k))
        y = self._call(layer, m, x2, choice)
        if y is None:  # the library leaves this one to Relax (dense fp32): MetaSchedule tunes it
            choice.kernel, choice.sparse = "relax (MetaSchedule)", False
            return None
        return y if list(out_shape) == [m, n] else relax.op.reshape(y, out_shape)

    def _call(self, layer: LinearLayer, m: int, x2: relax.Expr, choice: LayerChoice) -> relax.Expr | None:
        """``call_tir`` of ``layer``'s kernel on ``x2`` (None: left to Relax)."""
        built = build(layer, m, self.target, self.database)
        if built is None:
            return None
        func, consts = built
        n, k = layer.weight.shape
        # opaque: FuseOps must not merge the kernel with its neighbours
        func = func.with_attr("op_pattern", 8)
        layout = ("_from_km" if layer.in_transposed else "") + ("_to_nm_u8" if layer.out_quant else "")
        layout += "_natural" if layer.out_quant and not layer.out_swizzled else ""
        layout += "_to_nm" if layer.out_transposed else ""
        unit = "_amx" if func.attrs.get("tvm_sparse.amx", False) else ""
        tag = (f"{'sparse' if layer.sparse else 'dense'}_{self.precision}{unit}{'_gelu' if layer.gelu else ''}"
               f"_m{m}_n{n}_k{k}{layout}")
        # the module symbol must be unique: a TE func is called "main"; same-shape kernels share one
        gv = self.bb.add_func(func.with_attr("global_symbol", f"linear_{tag}"), f"linear_{tag}")
        args = [relax.const(c) for c in consts]
        if layer.out_quant:
            out = relax.TensorType((n, padded_m(m)), "uint8")
        else:
            out = relax.TensorType((n, padded_m(m)) if layer.out_transposed else (m, n), "float32")
        choice.kernel = gv.name_hint
        if layer.precision == "int8" and not layer.in_transposed:
            self.calls.append((args[0], layer, choice))  # its Qin constant identifies the call
        return relax.call_tir(gv, [x2, *args], out)

    def chain(self, func: relax.Function) -> relax.Function:
        """Sparse int8 Linear -> sparse int8 Linear (BERT's FFN: up, GELU, down): the first leaves
        its output as u8 ``[N, mp]``, quantized for the second, which reads it as is. The
        intermediate activation skips an fp32 round trip and both transposes."""
        first = is_op("relax.call_tir")(wildcard(), wildcard())
        into = first | is_op("relax.reshape")(first, wildcard())
        into = into | is_op("relax.reshape")(into, wildcard())
        fields = [into] + [wildcard() for _ in range(7)]  # X, Qin, Indptr, Indices, Values, Scale, Corr, Bias
        second = is_op("relax.call_tir")(wildcard(), is_tuple(fields))

        def rewrite(expr, m):
            (l1, c1), (l2, c2) = self._layer_of(m[first]) or (None, None), self._layer_of(expr) or (None, None)
            if l1 is None or l2 is None or not (l1.sparse and l2.sparse) or l1.out_quant or l2.in_transposed:
                return expr
            rows = int(m[first].ty.shape[0])
            hidden = self._call(replace(l1, out_quant=(l2.act_scale, l2.act_zero_point)), rows,
                                m[first].args[1].fields[0], c1)
            return self._call(replace(l2, in_transposed=True), rows, hidden, c2)

        return rewrite_call(second, rewrite, func)

    def fuse_attention(self, func: relax.Function) -> relax.Function:
        """BERT's attention core (head split, ``Q @ K^T`` x scale + mask, softmax, ``P @ V``, head merge)
        -> one call of the int8 VNNI attention kernel on the 2-D Q, K, V the Linears produce."""
        var2val = relax.analysis.get_var2val(func)
        qk = is_op("relax.matmul")(wildcard(), wildcard())
        mask = wildcard()
        probs = is_op("relax.nn.softmax")(is_op("relax.add")(qk, mask))
        guarded = is_op("relax.where")(is_op("relax.isnan")(probs), is_const(), probs)
        pv = is_op("relax.matmul")(guarded | probs, wildcard())
        merged = is_op("relax.permute_dims")(pv)

        def rewrite(expr, m):
            b, h, seq, d = _shape(m[pv])
            if list(expr.attrs.axes or []) != [0, 2, 1, 3] or _shape(m[probs])[-1] != seq \
                    or not attention_int8.supported(seq, d) or m[mask].ty.dtype != "float32":
                return expr
            split = np.arange(b * seq * h * d).reshape(b, seq, h, d)
            q, q_scale = _layout_source(m[qk].args[0], var2val, split.transpose(0, 2, 1, 3))
            k, k_scale = _layout_source(m[qk].args[1], var2val, split.transpose(0, 2, 3, 1))
            v, v_scale = _layout_source(m[pv].args[1], var2val, split.transpose(0, 2, 1, 3))
            mask_shape = _shape(m[mask])
            if q is None or k is None or v is None or v_scale != 1.0 or len(mask_shape) != 4:
                return expr
            qkv, qkv_transposed, scales = self._fuse_qkv([q, k, v], var2val, h) or (None, False, None)
            width, offsets = (3 * h * d, (0, h * d, 2 * h * d)) if qkv is not None else (None, (0, 0, 0))
            try:
                kernel = attention_int8.attention_int8(b, seq, h, d, q_scale * k_scale, tuple(mask_shape),
                                                       width, offsets, transposed=qkv_transposed,
                                                       prequantized=scales is not None)
            except ValueError:
                return expr
            kernel = kernel.with_attr("op_pattern", 8).with_attr("tirx.is_scheduled", True)
            layout = ("_qkv" if qkv is not None else "") + ("_t" if qkv_transposed else "")
            layout += "_u8" if scales is not None else ""
            name = f"attention_int8_b{b}_l{seq}_h{h}_d{d}{layout}"
            gv = self.bb.add_func(kernel.with_attr("global_symbol", name), name)
            flat = [qkv] * 3 if qkv is not None else [relax.op.reshape(x, (b * seq, h * d)) for x in (q, k, v)]
            if scales is not None:
                flat.append(relax.const(scales))
            out = relax.call_tir(gv, [*flat, m[mask]], relax.TensorType((b * seq, h * d), "float32"))
            self.attention += 1
            return relax.op.reshape(out, (b, seq, h, d))

        return rewrite_call(merged, rewrite, func)

    def _fuse_qkv(self, sources: list, var2val: dict, heads: int
                  ) -> tuple[relax.Expr, bool, np.ndarray | None] | None:
        """Q, K and V projected from one input by int8 kernels of one kind -> one kernel of three times
        the width: the input is quantized and transposed once, not three times. None if they are not.
        A sparse one keeps its natural ``[3*H*D, M]`` output (True), which the attention kernel reads
        as is: no untranspose pass (45 us per bert-base layer). Where calibration measured the three
        outputs, that output is u8, quantized with per-head scales (returned, ``[3, heads]``)."""
        calls = [var2val.get(x, x) if isinstance(x, relax.Var) else x for x in sources]
        found = [self._kernel_of(c) for c in calls]
        if any(f is None for f in found):
            return None
        layers = [f[0] for f in found]
        inputs = [c.args[1].fields[0] for c in calls]
        first = layers[0]
        if not all(x.same_as(inputs[0]) for x in inputs) or any(
                (lay.sparse, lay.act_scale, lay.act_zero_point, lay.gelu, lay.out_scale, lay.in_transposed)
                != (first.sparse, first.act_scale, first.act_zero_point, False, 1.0, False) for lay in layers):
            return None
        weight = np.concatenate([lay.weight for lay in layers])
        bias = np.concatenate([lay.bias if lay.bias is not None else np.zeros(lay.weight.shape[0], np.float32)
                               for lay in layers])
        m = int(np.prod(_shape(calls[0])[:-1]))
        transposed = first.sparse and padded_m(m) == m
        absmax = [self.calib[choice.key].out_absmax for _, choice in found]
        scales = None
        if transposed and all(a is not None and len(a) % heads == 0 for a in absmax):
            # symmetric per head, zero point 128: the attention kernel's own quantization
            scales = np.stack([np.asarray(a, np.float32).reshape(heads, -1).max(axis=1) for a in absmax])
            scales = (np.maximum(scales, 1e-12) / 127.0).astype(np.float32)
            per_channel = np.repeat(scales.reshape(-1), weight.shape[0] // (3 * heads)).astype(np.float32)
            fused = replace(first, weight=weight, bias=bias, out_quant=(per_channel, 128), out_swizzled=False)
        else:
            fused = replace(first, weight=weight, bias=bias, out_transposed=transposed)
        y = self._call(fused, m, inputs[0], found[0][1])
        for _, choice in found[1:]:
            choice.kernel = found[0][1].kernel
        return y, transposed, scales

    def fold_layouts(self, func: relax.Function) -> relax.Function:
        """Fold what attention does to an int8 Linear's fp32 output into the kernel: a scalar factor
        (the 1/sqrt(d) torch applies to Q and K) into its scale and bias, and a chain of reshapes
        and permutes that amounts to a transpose (K's head split into [heads, d, tokens], ready for
        Q @ K^T) into a sparse kernel's natural [N, M] output: one transposing pass less per layer."""
        var2val = relax.analysis.get_var2val(func)
        uses: dict[relax.Var, int] = {}
        for value in var2val.values():
            for v in relax.analysis.free_vars(value):
                uses[v] = uses.get(v, 0) + 1
        for v in relax.analysis.free_vars(func.body.body):  # the function's result
            uses[v] = uses.get(v, 0) + 1
        chains = {}  # the last Call of each chain -> (kernel call, its layer, ops in order)
        for value in var2val.values():
            layer = self._kernel_of(value)
            if layer is None:
                continue
            ops, cur = [], value
            while True:
                var = self._bound_var(var2val, cur)
                users = [(v, e) for v, e in var2val.items()
                         if isinstance(e, relax.Call) and e.args and e.args[0].same_as(var)]
                if len(users) != 1 or uses.get(var, 0) != 1 or not _layout_op(users[0][1]):
                    break
                cur = users[0][1]
                ops.append(cur)
            if ops:
                chains[cur] = (value, layer, ops)

        def rewrite(expr, _m):
            hit = next((k for k in chains if k.same_as(expr)), None)
            if hit is None:
                return expr
            call, (layer, choice), ops = chains[hit]
            factor = float(np.prod([_scalar(op) for op in ops if op.op.name == "relax.multiply"]))
            layout = [op for op in ops if op.op.name != "relax.multiply"]
            if factor != 1.0 and (layer.gelu or layer.out_quant):
                return expr
            m, n = _shape(call)
            final = _shape(expr)
            moved = _apply_layout(np.arange(m * n).reshape(m, n), layout)
            transposed = (layer.sparse and padded_m(m) == m
                          and np.array_equal(moved.ravel(), np.arange(m * n).reshape(m, n).T.ravel()))
            permutes = sum(op.op.name == "relax.permute_dims" for op in layout)
            if (factor == 1.0 or permutes > 1) and not transposed:  # > 1: a new function, no record
                return expr
            y = self._call(replace(layer, out_scale=factor * layer.out_scale, out_transposed=transposed), m,
                           call.args[1].fields[0], choice)
            if transposed:
                return relax.op.reshape(y, final)
            for op in layout:  # the same layout ops, on the scaled output
                y = relax.Call(op.op, [y, *op.args[1:]], op.attrs)
            return y

        if not chains:
            return func
        return rewrite_call(is_op("relax.reshape")(wildcard(), wildcard()) | is_op("relax.permute_dims")(wildcard())
                            | is_op("relax.multiply")(wildcard(), is_const()), rewrite, func)

    def _layer_of(self, call: relax.Call):
        """(layer, choice) of an int8 kernel call made by ``_call`` (its Qin constant says which)."""
        fields = call.args[1].fields
        return next(((lay, ch) for q, lay, ch in self.calls if len(fields) > 1 and fields[1].same_as(q)), None)

    def _kernel_of(self, value: relax.Expr):
        """(layer, choice) when ``value`` calls an int8 kernel with an fp32 row-major output."""
        if not (isinstance(value, relax.Call) and value.op.name == "relax.call_tir"):
            return None
        found = self._layer_of(value)
        return found if found and not found[0].out_quant and not found[0].out_transposed else None

    @staticmethod
    def _bound_var(var2val: dict, value: relax.Expr):
        return next((v for v, e in var2val.items() if e.same_as(value)), None)

    def _record(self, key: str, w_nk: np.ndarray, sparse: bool, gelu: bool) -> LayerChoice:
        """The report entry of this weight's Linear: one per weight (a Linear left to Relax is seen
        again by the no-bias pattern)."""
        for choice in self.layers:
            if choice.key == key:
                return choice
        choice = LayerChoice(name=self.names.get(key, f"linear_{len(self.layers)}"), shape=list(w_nk.shape),
                             block_sparsity=bsr4x1.block_sparsity(w_nk), sparse=sparse, gelu=gelu,
                             precision=self.precision, kernel="", key=key)
        self.layers.append(choice)
        return choice

    def run(self, func: relax.Function) -> relax.Function:
        x, w, b, mm, lin = _linear_patterns()
        reshaped = is_op("relax.reshape")(lin, wildcard())
        gelu_op = is_op("relax.nn.gelu")(lin) | is_op("relax.nn.gelu")(reshaped)
        c1, c2, c3 = is_const(), is_const(), is_const()
        erf = is_op("relax.erf")(is_op("relax.divide")(lin, c1))
        gelu_erf = is_op("relax.multiply")(is_op("relax.multiply")(lin, is_op("relax.add")(erf, c2)), c3)

        def linear(expr, m, gelu=False):
            bias = _array(m[b]).astype(np.float32).reshape(-1)
            w_nk = self.weight_nk(m[mm].args[1], m[w])
            if bias.shape[0] != w_nk.shape[0]:
                return expr  # an add that is not a per-channel bias
            y = self.emit(m[x], w_nk, bias, gelu, _shape(expr))
            return expr if y is None else y

        def on_gelu_erf(expr, m):
            consts = [float(_array(m[c])) if _array(m[c]).size == 1 else None for c in (c1, c2, c3)]
            if None in consts or not np.allclose(consts, [math.sqrt(2.0), 1.0, 0.5], rtol=1e-3):
                return expr
            return linear(expr, m, gelu=True)

        func = rewrite_call(gelu_op, lambda e, m: linear(e, m, gelu=True), func)
        func = rewrite_call(gelu_erf, on_gelu_erf, func)
        func = rewrite_call(lin, linear, func)
        xb, wb = wildcard(), is_const()
        mm_only = is_op("relax.matmul")(xb, wb | is_op("relax.permute_dims")(wb))

        def no_bias(expr, m):
            if len(_array(m[wb]).shape) != 2:
                return expr
            w_nk = self.weight_nk(m[mm_only].args[1], m[wb])
            y = self.emit(m[xb], w_nk, None, False, _shape(expr))
            return expr if y is None else y

        func = rewrite_call(mm_only, no_bias, func)
        if self.precision != "int8":
            return func
        return self.fold_layouts(self.chain(self.fuse_attention(func)))


def _layout_op(call: relax.Call) -> bool:
    name = call.op.name if isinstance(call.op, tvm.ir.Op) else ""
    if name in ("relax.reshape", "relax.permute_dims"):
        return True
    return name == "relax.multiply" and isinstance(call.args[1], tvm.ir.expr.Constant) and _scalar(call) is not None


def _scalar(call: relax.Call) -> float | None:
    value = _array(call.args[1])
    return float(value.reshape(-1)[0]) if value.size == 1 and value.dtype == np.float32 else None


def _layout_source(expr: relax.Expr, var2val: dict, expected: np.ndarray) -> tuple[relax.Expr | None, float]:
    """Walk back from ``expr`` through reshapes, permutes and scalar multiplies to the tensor they
    rearrange; returns it and the product of the factors if the rearrangement maps its elements
    (in row-major order) exactly as ``expected`` does, else (None, 1)."""
    ops, factor = [], 1.0
    while True:
        value = var2val.get(expr, expr) if isinstance(expr, relax.Var) else expr
        if not (isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op) and _layout_op(value)):
            break
        if value.op.name == "relax.multiply":
            factor *= _scalar(value)
        else:
            ops.append(value)
        expr = value.args[0]
    shape = _shape(expr)
    if int(np.prod(shape)) != expected.size or expr.ty.dtype != "float32":
        return None, 1.0
    moved = _apply_layout(np.arange(expected.size).reshape(shape), ops[::-1])
    return (expr, factor) if moved.shape == expected.shape and np.array_equal(moved, expected) else (None, 1.0)


def _apply_layout(index: np.ndarray, ops: list[relax.Call]) -> np.ndarray:
    """Where each element of a kernel's output ends up after ``ops`` (reshapes and permutes)."""
    for op in ops:
        if op.op.name == "relax.reshape":
            index = index.reshape(_shape(op))
        else:
            axes = op.attrs.axes
            index = index.transpose(None if axes is None else [int(a) for a in axes])
    return index


def swap_linears(mod: tvm.IRModule, precision: str, target: tvm.target.Target,
                 calib: dict[str, ActQuant] | None = None, names: dict[str, str] | None = None,
                 threshold: float | None = None, database=None
                 ) -> tuple[tvm.IRModule, list[LayerChoice]]:
    """Rewrite every Linear of ``mod["main"]``; returns the new module and one record per layer.

    ``names`` maps ``weight_key`` to a readable layer name (``names_from_onnx``), ``calib`` maps it to
    the u8 parameters of the layer's input (required for int8). ``database``: the kernel library's
    record directory.
    """
    names = names or {}
    rw = _Rewriter(mod, precision, target, calib, names, threshold, database)
    new_main = rw.run(mod["main"])
    if not rw.layers:
        raise GraphError("found no Linear layer (matmul with a constant weight) in the graph")
    order = {key: i for i, key in enumerate(names.values())}
    rw.layers.sort(key=lambda x: order.get(x.name, len(order)))  # graph order, not match order
    out = rw.bb.get()
    out["main"] = new_main
    if rw.attention:  # the head merge is now reshape chains around the kernel: collapse them to views
        out = relax.transform.RemoveRedundantReshape()(out)
    return relax.transform.DeadCodeElimination(["main"])(out), rw.layers


def names_from_onnx(model) -> dict[str, str]:
    """``weight_key`` -> layer name (the torch module path when the exporter recorded it)."""
    from .linears import find_linears

    inits = {i.name: i for i in model.graph.initializer}
    return {weight_key(lin.read(inits)): lin.name for lin in find_linears(model)}


def layer_dicts(layers: list[LayerChoice]) -> list[dict]:
    return [{k: v for k, v in asdict(x).items() if k != "key"} for x in layers]

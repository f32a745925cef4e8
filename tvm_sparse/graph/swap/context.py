"""The state the swap's passes share: the module being built, the layers found so far, and how one
Linear becomes one ``call_tir`` of its kernel (``call``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax

from ...format import bsr4x1
from ...kernels.sparse_int8 import padded_m
from ...kinds import LinearLayer
from ...tune.apply import database_roots
from ..calibrate import ActQuant, weight_key
from ..errors import GraphError
from ..linear import build, kind_of
from ..policy import KernelPolicy

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
    why: str = ""  # what decided sparse or dense (graph/policy.py)
    kind: str = ""  # the kernel kind (kinds/) that runs it


def _array(const: relax.Expr) -> np.ndarray:
    return const.value.numpy()


def _shape(expr: relax.Expr) -> list[int]:
    return [int(d) for d in expr.ty.shape]


def bound_var(var2val: dict, value: relax.Expr):
    return next((v for v, e in var2val.items() if e.same_as(value)), None)


class SwapContext:
    def __init__(self, mod: tvm.IRModule, precision: str, target: tvm.target.Target,
                 calib: dict[str, ActQuant] | None, names: dict[str, str], threshold: float | None,
                 database, choose: str = "auto", log=None) -> None:
        if precision not in PRECISIONS:
            raise GraphError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if precision == "int8" and calib is None:
            raise GraphError("int8 needs calibration parameters (calibrate.calibrate)")
        self.bb = relax.BlockBuilder(mod)
        self.precision, self.target, self.calib = precision, target, calib or {}
        self.names, self.database = names, database
        self.policy = KernelPolicy(target, choose, threshold, database_roots([database] if database else []),
                                   log=log)
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
        # the threshold first: the passes after this one give sparse layers the layouts they are fastest in
        # (chains, the attention kernel's inputs); a Linear left row-major takes what was measured fastest
        # at the end (prefer_measured.py)
        decision = self.policy.by_threshold(w_nk, m)
        sparse = decision.sparse
        act = self.calib.get(key) if self.precision == "int8" else None
        if self.precision == "int8" and act is None:
            raise GraphError(f"no calibration for the Linear {self.names.get(key, key)}: calibrate this "
                             "exact model (the weights must match)")
        layer = LinearLayer(weight=w_nk, bias=bias, gelu=gelu, precision=self.precision, sparse=sparse,
                            act_scale=act.scale if act else 1.0, act_zero_point=act.zero_point if act else 0)
        choice = self.record(key, w_nk, sparse, gelu)
        choice.why = decision.reason
        x2 = x if len(x_shape) == 2 else relax.op.reshape(x, (m, k))
        y = self.call(layer, m, x2, choice)
        if y is None:  # the library leaves this one to Relax (dense fp32): MetaSchedule tunes it
            choice.kernel, choice.sparse = "relax (MetaSchedule)", False
            return None
        return y if list(out_shape) == [m, n] else relax.op.reshape(y, out_shape)

    def call(self, layer: LinearLayer, m: int, x2: relax.Expr, choice: LayerChoice) -> relax.Expr | None:
        """``call_tir`` of ``layer``'s kernel on ``x2`` (None: left to Relax)."""
        built = build(layer, m, self.target, self.database)
        if built is None:
            return None
        func, consts = built
        n, k = layer.weight.shape
        # opaque: FuseOps must not merge the kernel with its neighbours
        func = func.with_attr("op_pattern", 8)
        layout = "_from_km" if layer.in_transposed else "_from_u8" if layer.in_u8 else ""
        layout += ("_to_nm_u8" if layer.sparse else "_to_u8") if layer.out_quant else ""
        layout += "_natural" if layer.out_quant and layer.sparse and not layer.out_swizzled else ""
        layout += "_to_nm" if layer.out_transposed else ""
        unit = "_amx" if func.attrs.get("tvm_sparse.amx", False) else ""
        tag = (f"{'sparse' if layer.sparse else 'dense'}_{self.precision}{unit}{'_gelu' if layer.gelu else ''}"
               f"_m{m}_n{n}_k{k}{layout}")
        # the module symbol must be unique: a TE func is called "main"; same-shape kernels share one
        gv = self.bb.add_func(func.with_attr("global_symbol", f"linear_{tag}"), f"linear_{tag}")
        args = [relax.const(c) for c in consts]
        if layer.out_quant:
            out = relax.TensorType((n, padded_m(m)) if layer.sparse else (m, n), "uint8")
        else:
            out = relax.TensorType((n, padded_m(m)) if layer.out_transposed else (m, n), "float32")
        choice.kernel = gv.name_hint
        choice.kind = kind_of(layer, m, self.target).name
        if layer.precision == "int8" and layer.quantizes_input:
            self.calls.append((args[0], layer, choice))  # its Qin constant identifies the call
        return relax.call_tir(gv, [x2, *args], out)

    def layer_of(self, call: relax.Call):
        """(layer, choice) of an int8 kernel call made by ``_call`` (its Qin constant says which)."""
        fields = call.args[1].fields
        return next(((lay, ch) for q, lay, ch in self.calls if len(fields) > 1 and fields[1].same_as(q)), None)

    def kernel_of(self, value: relax.Expr):
        """(layer, choice) when ``value`` calls an int8 kernel with an fp32 row-major output."""
        if not (isinstance(value, relax.Call) and value.op.name == "relax.call_tir"):
            return None
        found = self.layer_of(value)
        return found if found and not found[0].out_quant and not found[0].out_transposed else None

    def record(self, key: str, w_nk: np.ndarray, sparse: bool, gelu: bool) -> LayerChoice:
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


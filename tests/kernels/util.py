import numpy as np
import tvm
from tvm import s_tir

from tvm_sparse.schedule.narrow import finalize
from tvm_sparse.schedule.sparse import schedule_layout_stages
from tvm_sparse.target import codegen_target


def build(func, sketch, knobs, target, narrow=True):
    sch = s_tir.Schedule(func)
    sketch(sch, knobs)
    f = sch.mod["main"]
    if narrow:
        return tvm.tirx.build(finalize(f), target=codegen_target(target))
    schedule_layout_stages(sch)  # everything but the narrowing
    return tvm.tirx.build(sch.mod["main"], target=codegen_target(target))


def run(lib, *arrays):
    args = [tvm.runtime.tensor(np.ascontiguousarray(a)) for a in arrays]
    lib(*args)
    return args[-1].numpy()

import numpy as np
import tvm
from tvm import s_tir

from tvm_sparse.schedule.narrow import narrow_tile_loops


def build(func, sketch, knobs, target, narrow=True):
    sch = s_tir.Schedule(func)
    sketch(sch, knobs)
    f = sch.mod["main"]
    return tvm.tirx.build(narrow_tile_loops(f) if narrow else f, target=target)


def run(lib, *arrays):
    args = [tvm.runtime.tensor(np.ascontiguousarray(a)) for a in arrays]
    lib(*args)
    return args[-1].numpy()

import numpy as np
import tvm
from tvm import s_tir

from tvm_sparse import pipeline
from tvm_sparse.schedule.narrow import finalize
from tvm_sparse.schedule.sparse import schedule_layout_stages


def build(func, sketch, knobs, target, narrow=True):
    sch = s_tir.Schedule(func)
    sketch(sch, knobs)
    f = sch.mod["main"]
    if narrow:
        return pipeline.build(finalize(f), target)
    schedule_layout_stages(sch)  # everything but the narrowing
    return pipeline.build(sch.mod["main"], target)


def run(lib, *arrays):
    args = [tvm.runtime.tensor(np.ascontiguousarray(a)) for a in arrays]
    lib(*args)
    return args[-1].numpy()

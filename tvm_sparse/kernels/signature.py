"""Drop the arguments a kernel variant does not use from a PrimFunc written with all of them."""

from __future__ import annotations

from tvm import tirx


def keep_params(func: tirx.PrimFunc, names: list[str]) -> tirx.PrimFunc:
    """``func`` with only the parameters named in ``names``, in that order."""
    by_name = {p.name: p for p in func.params}
    return tirx.PrimFunc([by_name[name] for name in names], func.body, func.ret_type, func.attrs)

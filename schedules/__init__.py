"""Tuning records shipped with tvm-sparse, one folder per CPU (``<mcpu>/``: kernels, ``<mcpu>/graph/``:
graph functions). Installed as the package ``tvm_sparse.schedules``; see ``tvm_sparse/tune/records.py``."""

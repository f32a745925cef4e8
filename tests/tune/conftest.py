import pytest

from tvm_sparse.kinds import KernelKey
from tvm_sparse.tune.tuner import tune

KEY = KernelKey("sparse_int8", 32, 64, 64, 80)


@pytest.fixture(scope="session")
def tuned_db(tmp_path_factory, target):
    """A tiny one-core tuning run of ``KEY`` (shared: each run costs half a minute)."""
    root = tmp_path_factory.mktemp("db")
    first = tune(KEY, target, 3, db_root=root, seed=1, quiet=True)
    return root, first

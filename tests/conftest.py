import os

import pytest

os.environ.setdefault("TVM_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def target():
    from tvm_sparse.target import resolve

    # the kernels need AVX-512 VNNI; every CI machine of this project has it
    return resolve("host", 1)

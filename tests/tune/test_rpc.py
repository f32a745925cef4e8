"""Distributed tuning through TVM's own RPC tracker and servers, all on loopback."""

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing

import numpy as np
import pytest
import tvm

from tvm_sparse.format import bsr4x1
from tvm_sparse.kernels.sparse_int8 import sparse_int8
from tvm_sparse.kinds import KernelKey
from tvm_sparse.tune.apply import schedule
from tvm_sparse.tune.rpc import parse_tracker, servers_under
from tvm_sparse.tune.tuner import tune

KEY = KernelKey("sparse_int8", 16, 32, 32, 70)
LIFETIME_S = 600  # every process we start stops by itself, whatever happens to the test


def _free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(*args) -> subprocess.Popen:
    env = dict(os.environ, TVM_NUM_THREADS="1")
    return subprocess.Popen(["timeout", str(LIFETIME_S), sys.executable, "-m", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _kill(p: subprocess.Popen) -> None:
    """The whole process group: killing only ``timeout`` would leave its Python child running."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()


def _server(tracker: str) -> subprocess.Popen:
    port = _free_port()
    return _start("tvm.exec.rpc_server", "--tracker", tracker, "--key", "loop", "--host", "127.0.0.1",
                  "--port", str(port), "--port-end", str(port + 1), "--no-fork")


@pytest.fixture
def fleet():
    port = _free_port()
    tracker = _start("tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(port), "--port-end", str(port + 1))
    address = f"127.0.0.1:{port}"
    servers = []
    try:
        deadline = time.time() + 60
        while True:  # the tracker must listen before servers register
            try:
                servers_under(address, "loop")
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        servers = [_server(address) for _ in range(2)]
        while servers_under(address, "loop") < 2:
            if time.time() > deadline:
                pytest.fail("RPC servers did not register with the tracker")
            time.sleep(0.5)
        yield address, servers
    finally:
        for p in [tracker, *servers]:
            _kill(p)


def test_parse_tracker():
    assert parse_tracker("10.0.0.5:9190") == ("10.0.0.5", 9190)
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_tracker("10.0.0.5")


def test_tuning_through_tracker_and_two_servers(fleet, target, tmp_path):
    address, servers = fleet
    res = tune(KEY, target, 4, db_root=tmp_path, rpc=(address, "loop"), quiet=True)
    assert res.trials_after >= 2 and res.best_us > 0
    # one server dies: the other keeps measuring, the run completes and resumes the database
    _kill(servers[1])
    deadline = time.time() + 30
    while servers_under(address, "loop") > 1 and time.time() < deadline:  # the tracker drops it
        time.sleep(0.5)
    assert servers_under(address, "loop") == 1
    more = tune(KEY, target, 6, db_root=tmp_path, rpc=(address, "loop"), quiet=True)
    assert more.trials_after > res.trials_after
    # records measured remotely apply here and give exact results
    rng = np.random.default_rng(3)
    w = bsr4x1.prune(rng.integers(-128, 128, (32, 32), dtype=np.int8), 0.7)
    x = rng.integers(0, 256, (16, 32), dtype=np.uint8)
    p = bsr4x1.pack(w)
    func, source = schedule(sparse_int8(16, 32, 32), KEY, target, [tmp_path])
    assert source.startswith("tuned")
    lib = tvm.tirx.build(func, target=target)
    args = [tvm.runtime.tensor(a) for a in (x, p.indptr, p.indices, p.values, np.zeros((16, 32), np.int32))]
    lib(*args)
    assert np.array_equal(args[-1].numpy(), x.astype(np.int32) @ w.astype(np.int32).T)

"""Measuring on remote Xeons through TVM's RPC tracker (``tvm.exec.rpc_tracker`` + ``rpc_server``).

Candidates are built on the tuning host (cross-compiled for the target) and measured on every
server registered under a key: MetaSchedule's ``RPCRunner`` asks the tracker for a free server per
candidate, so N servers measure N candidates at a time. A server that dies loses only the
candidate it was running: that candidate comes back as an error and the search goes on.

On each Xeon (the TVM runtime is enough there)::

    python -m tvm.exec.rpc_tracker --host 0.0.0.0 --port 9190             # once, anywhere reachable
    python -m tvm.exec.rpc_server --tracker TRACKER_HOST:9190 --key xeon   # on every Xeon
    tvm-sparse tune-kernel ... --target sapphirerapids --rpc-tracker TRACKER_HOST:9190 --rpc-key xeon
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tvm.s_tir import meta_schedule as ms

from .config import EVALUATOR, RPC_SESSION_TIMEOUT_S
from .runner import rpc_arg_allocator


def parse_tracker(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"--rpc-tracker must be HOST:PORT, got {address!r}")
    return host, int(port)


def servers_under(tracker: str, key: str) -> int:
    """How many servers are free under ``key`` (0 if the tracker answers but has none)."""
    from tvm import rpc

    host, port = parse_tracker(tracker)
    summary = rpc.connect_tracker(host, port).summary()
    for queue_key, info in summary.get("queue_info", {}).items():
        if queue_key == key:
            return int(info.get("free", 0))
    return 0


def rpc_runner(tracker: str, key: str, arrays: Sequence[np.ndarray], max_workers: int | None = None
               ) -> ms.runner.RPCRunner:
    host, port = parse_tracker(tracker)
    workers = max_workers or max(1, servers_under(tracker, key))
    config = ms.runner.RPCConfig(tracker_host=host, tracker_port=port, tracker_key=key,
                                 session_timeout_sec=RPC_SESSION_TIMEOUT_S)
    return ms.runner.RPCRunner(rpc_config=config, evaluator_config=EVALUATOR,
                               f_alloc_argument=rpc_arg_allocator(arrays), max_workers=workers)

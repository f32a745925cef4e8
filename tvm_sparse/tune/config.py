"""Measurement settings: the one place that says how candidates are built and timed, for kernels and
graph functions alike (so records of both are comparable, and a change lands everywhere at once)."""

from __future__ import annotations

from tvm.s_tir import meta_schedule as ms

# Enough repeats to average out noise, in a flush-free steady state: a BERT layer's weights stay in L2
# across calls, as they do when the model runs.
EVALUATOR = ms.runner.EvaluatorConfig(number=10, repeat=3, min_repeat_ms=40, enable_cpu_cache_flush=False)
BUILD_TIMEOUT_S = 180.0
RUN_TIMEOUT_S = 60.0
RPC_SESSION_TIMEOUT_S = 120

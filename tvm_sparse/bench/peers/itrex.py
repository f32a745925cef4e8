"""The paper's Intel engine (Intel Extension for Transformers 1.4.2) as a ``bench-e2e`` peer: ``itrex_run.py``
runs under the engine's own interpreter (``--itrex-python``; its setup is in that file's docstring)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from ..model import _summary
from .base import PeerEngine

SCRIPT = Path(__file__).with_name("itrex_run.py")
SEQ = 128  # the script's inputs are batch 1, this sequence length


class Itrex(PeerEngine):
    name = "itrex"
    default = False
    needs, needs_flag = "itrex_python", "--itrex-python"

    def _run(self, cfg, *args, threads: int | None = None) -> dict:
        """The script's last stdout line is JSON."""
        if not cfg.itrex_python:
            raise RuntimeError(f"the itrex engine needs --itrex-python (see {SCRIPT})")
        if cfg.batch != 1 or cfg.seq_len != SEQ:
            raise RuntimeError(f"the itrex script runs batch 1, sequence {SEQ} only")
        cmd = [cfg.itrex_python, str(SCRIPT), *map(str, args)]
        env = dict(os.environ, GLOG_minloglevel="2")
        if threads:  # the engine's OpenMP pool: pinned like ours, one core per thread
            env["OMP_NUM_THREADS"] = str(threads)
            cmd = ["taskset", "-c", ",".join(map(str, range(threads))), *cmd]
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if res.returncode:
            raise RuntimeError(f"itrex failed:\n{res.stderr[-2000:]}")
        return {**json.loads(res.stdout.strip().splitlines()[-1]),
                "notes": [x for x in res.stderr.splitlines() if "sparse kernels" in x]}

    def build(self, cfg, src: Path, log=print) -> Path:
        built = self._run(cfg, "build", src, Path(cfg.out_dir) / "itrex" / src.stem)
        for note in built["notes"]:  # how many layers the engine put on its sparse kernels
            log(note)
        return Path(built["ir"])

    def time(self, cfg, artifact: Path, batch: int, threads: int, runs: int) -> dict:
        return {**_summary(self._run(cfg, "time", artifact, threads, runs, threads=threads)["times"]),
                "threads": threads}


ENGINE = Itrex()

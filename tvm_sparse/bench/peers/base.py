"""What a peer engine is to ``bench-e2e``: how it builds its artifact from the pruned ONNX every engine
starts from, and how it is timed (in a process of its own: thread pools that spin must not compete)."""

from __future__ import annotations

from pathlib import Path


class PeerEngine:
    name: str = ""
    default: bool = True  # in bench-e2e's default --engines
    needs: str = ""  # a Config field that must be set to run it (e.g. "itrex_python"), with its CLI flag
    needs_flag: str = ""

    def unavailable(self) -> str:
        """Why this engine cannot run here (e.g. its package is not installed), or "": bench-e2e refuses it
        before building anything."""
        return ""

    def build(self, cfg, src: Path, log=print) -> Path:
        """The artifact timed for the pruned fp32 ONNX ``src`` (cached under ``cfg.out_dir``)."""
        raise NotImplementedError

    def time(self, cfg, artifact: Path, batch: int, threads: int, runs: int) -> dict:
        """``{median_ms, p90_ms, runs, threads}``."""
        raise NotImplementedError

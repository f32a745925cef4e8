"""Peer engines for ``bench-e2e``: a new one is a module here with a ``PeerEngine`` (``base.py``) and one
entry in ``PEERS``."""

from __future__ import annotations

from . import itrex, onnxruntime, openvino
from .base import PeerEngine

PEERS: dict[str, PeerEngine] = {e.name: e for e in (onnxruntime.FP32, onnxruntime.INT8, itrex.ENGINE,
                                                    openvino.INT8, openvino.BF16)}

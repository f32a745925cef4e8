"""tvm-sparse: fast 4x1 block-sparse int8 BERT-family encoders on x86 CPUs with Apache TVM."""

__version__ = "0.1.0"

from .runtime.model import load  # noqa: E402  (after __version__: the compiler imports it)

__all__ = ["__version__", "load"]

"""tvm-sparse: fast 4x1 block-sparse int8 BERT-family encoders on x86 CPUs with Apache TVM."""

__version__ = "0.1.0"

# after __version__: the compiler imports it
from .runtime.model import InputError, LibraryError, Model, load  # noqa: E402

__all__ = ["__version__", "InputError", "LibraryError", "Model", "load"]

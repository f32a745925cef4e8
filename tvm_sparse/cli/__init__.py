"""``tvm-sparse``: the command line (``kernel.py``: one kernel; ``model.py``: whole models).

Heavy modules are imported per command, after the thread count is fixed (TVM reads TVM_NUM_THREADS
once, when its thread pool starts)."""

from __future__ import annotations

import argparse
import sys

from . import kernel, model

# each group registers its subcommands; a new group is one module here
COMMAND_GROUPS = (kernel, model)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tvm-sparse",
        description="Fast 4x1 block-sparse int8 BERT inference on x86 CPUs with Apache TVM.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.add_commands(sub)
    return p


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that describe bad input (a target, a model, a library, this CPU): a message, not a traceback."""
    from ..format.bsr4x1 import FormatError
    from ..graph.errors import GraphError, MissingDependencyError
    from ..runtime.cpu import UnsupportedCPUError
    from ..runtime.metadata import LibraryError
    from ..runtime.model import InputError
    from ..target import TargetError

    return (TargetError, GraphError, MissingDependencyError, UnsupportedCPUError, LibraryError, InputError,
            FormatError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except _user_errors() as err:
        print(f"tvm-sparse {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

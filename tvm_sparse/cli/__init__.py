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
    p.add_argument("--debug", action="store_true",
                   help="show the full Python traceback of an error (default: one line, exit status 2)")
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

    # a file named on the command line that is missing or unreadable: its name and the reason are the message
    files = (FileNotFoundError, PermissionError, IsADirectoryError)
    return (TargetError, GraphError, MissingDependencyError, UnsupportedCPUError, LibraryError, InputError,
            FormatError, *files)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except _user_errors() as err:
        if args.debug:
            raise
        # the first line only: a message that quotes a wrapped error (TVM's) would otherwise run on
        print(f"tvm-sparse {args.command}: error: {_one_line(err)}", file=sys.stderr)
        print("(run with --debug for the traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tvm-sparse {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    return first if len(text.splitlines()) <= 1 else first + " [...]"


if __name__ == "__main__":
    sys.exit(main())

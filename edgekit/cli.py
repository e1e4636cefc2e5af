"""`edgekit` command line: each command builds a config and calls the Python API."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from edgekit import __version__
from edgekit.commands import (
    bench,
    bundle,
    check,
    devices,
    export,
    generate,
    report,
    run,
    targets,
    validate,
)
from edgekit.errors import EdgekitError


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code.

    0 ok, 1 a check failed, 2 bad input (one line, nothing written), 3 an internal error,
    130 interrupted.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args))
    except EdgekitError as exc:
        print(f"edgekit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edgekit: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in edgekit or a backend: one line, traceback on request
        if os.environ.get("EDGEKIT_DEBUG"):
            raise
        first = (str(exc).splitlines() or [""])[0][:300]
        print(f"edgekit: internal error: {type(exc).__name__}: {first} (set EDGEKIT_DEBUG=1 "
              "for the traceback, and please report it)", file=sys.stderr)
        return 3


# The commands, in help order. A new command is a module in edgekit/commands/ with a
# register(subparsers) function, listed here.
COMMANDS = (export, run, validate, check, report, targets, devices, bench, bundle, generate)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgekit",
        description="Put small distilled models on phones: export to ExecuTorch, ONNX and "
                    "Core ML, and prove parity with the student.",
    )
    parser.add_argument("--version", action="version", version=f"edgekit {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
    return parser

"""`edgekit` command line: each command builds a config and calls the Python API."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgekit import __version__
from edgekit.errors import EdgekitError


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 a check failed, 2 bad input)."""
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
        print(f"edgekit: internal error: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
              " (set EDGEKIT_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgekit",
        description="Put small distilled models on phones: export to ExecuTorch, ONNX and "
                    "Core ML, and prove parity with the student.",
    )
    parser.add_argument("--version", action="version", version=f"edgekit {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    export = commands.add_parser("export", help="export a student for one or more targets")
    export.add_argument("--model", help="built-in name (smollm2-135m), HF folder, .gguf or "
                                        ".pt2 (default: smollm2-135m)")
    export.add_argument("--target", action="append",
                        help="ios, android, web or all; repeat or comma-separate (default: ios)")
    export.add_argument("--out", help="output folder (default: edgekit-out/<model-name>)")
    export.add_argument("--task", help="text-generation, feature-extraction, fill-mask, "
                                       "text-classification or image-classification")
    export.add_argument("--quant", help="none, int8 or int4 (default: the target's recipe)")
    export.add_argument("--prune", help="pruning spec (default: the target's recipe)")
    export.add_argument("--inputs", help=".npz of real inputs for parity, keyed by input name")
    export.add_argument("--config", type=Path, help="edgekit.toml")
    export.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. model.seq_len=128")
    export.add_argument("--force", action="store_true", help="replace a non-empty --out")
    export.set_defaults(handler=_export)

    run = commands.add_parser("run", help="run one artifact in its runtime on .npz inputs")
    run.add_argument("artifact", type=Path)
    run.add_argument("--inputs", type=Path, required=True, help=".npz keyed by input name")
    run.add_argument("--out", type=Path, required=True, help=".npz to write, keyed by output")
    run.add_argument("--threads", type=int, help="intra-op threads")
    run.set_defaults(handler=_run)

    targets = commands.add_parser("targets", help="list targets and their formats")
    targets.set_defaults(handler=_targets)
    return parser


def _export_overrides(args: argparse.Namespace) -> list[str]:
    sets: list[str] = []
    if args.model:
        sets.append(f"model.path={_toml_string(args.model)}")
    if args.task:
        sets.append(f"model.task={_toml_string(args.task)}")
    if args.target:
        names = [n.strip() for item in args.target for n in item.split(",") if n.strip()]
        sets.append("export.targets=[" + ", ".join(_toml_string(n) for n in names) + "]")
    if args.out:
        sets.append(f"export.out={_toml_string(args.out)}")
    if args.force:
        sets.append("export.force=true")
    if args.quant:
        sets.append(f"compress.quant={_toml_string(args.quant)}")
    if args.prune is not None:
        sets.append(f"compress.prune={_toml_string(args.prune)}")
    if args.inputs:
        sets.append(f"validate.inputs={_toml_string(args.inputs)}")
    return sets + list(args.set)


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _export(args: argparse.Namespace) -> int:
    from edgekit.config import load_config
    from edgekit.pipeline import exit_code, run

    config = load_config(args.config, _export_overrides(args))
    report = run(config)
    _print_summary(report)
    return exit_code(report)


def _print_summary(report: dict[str, Any]) -> None:
    from edgekit.report.markdown import HEADER, artifact_rows

    rows = [HEADER, *artifact_rows(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for item in report["artifacts"]:
        if item["parity"]["verdict"] != "pass":
            print(f"{item['target']}/{item['format']}: {item['parity']['verdict']}: "
                  f"{item['parity']['reason']}")
    summary = report["summary"]
    print(f"{summary['pass']} passed, {summary['fail']} failed, {summary['not_run']} not run; "
          f"report: {Path(report['out']) / 'report.json'}")


def _run(args: argparse.Namespace) -> int:
    import numpy as np

    from edgekit.runtimes import open_session

    names = _artifact_io(args.artifact)
    session = open_session(args.artifact, *names, threads=args.threads)
    try:
        with np.load(args.inputs, allow_pickle=False) as data:
            inputs = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise EdgekitError(f"{args.inputs}: no such inputs file") from None
    except (ValueError, OSError) as exc:
        raise EdgekitError(f"{args.inputs}: not a readable .npz without pickles ({exc})") from None
    outputs = session.run(inputs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_name(f".{args.out.name}.partial.npz")
    np.savez(partial, **outputs)  # type: ignore[arg-type]
    partial.replace(args.out)
    for name, value in outputs.items():
        print(f"{name}: shape {list(value.shape)} {value.dtype}")
    return 0


def _artifact_io(artifact: Path) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """Input/output names of an artifact from the report.json of its out folder, if any.

    A .pte stores no names; edgekit's report does.
    """
    from edgekit.report import read_report

    for folder in (artifact.parent.parent, artifact.parent):
        report_file = folder / "report.json"
        if not report_file.is_file():
            continue
        try:
            report = read_report(report_file)
        except EdgekitError:
            continue
        for item in report.get("artifacts", []):
            if (folder / item["path"]).resolve() == artifact.resolve():
                return tuple(i["name"] for i in item["inputs"]), tuple(item["outputs"])
    return None, None


def _targets(args: argparse.Namespace) -> int:
    from edgekit.targets import all_targets

    for target in all_targets().values():
        print(f"{target.name:8} {', '.join(target.formats):28} device={target.device:14} "
              f"quant={target.quant}  {target.description}")
    return 0

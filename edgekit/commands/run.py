"""`edgekit run`: run one artifact in its runtime on .npz inputs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError


def register(commands: Any) -> None:
    run = commands.add_parser("run", help="run one artifact in its runtime on .npz inputs")
    run.add_argument("artifact", type=Path)
    run.add_argument("--inputs", type=Path, required=True, help=".npz keyed by input name")
    run.add_argument("--out", type=Path, required=True, help=".npz to write, keyed by output")
    run.add_argument("--threads", type=int, help="intra-op threads")
    run.set_defaults(handler=_run)


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



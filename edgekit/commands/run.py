"""`edgekit run`: run one artifact in its runtime on .npz inputs.

.pte runs in ExecuTorch, .onnx/.ort in ONNX Runtime, .mlpackage in edgekit's Core ML
emulator (fp16 as on the GPU / Neural Engine unless --precision fp32). With --device the run
takes that phone's threads and Core ML precision, and happens in a child process under its
app memory budget: passing the budget is reported as "would be killed on <device>" (exit 1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError


def register(commands: Any) -> None:
    run = commands.add_parser("run", help="run one artifact in its runtime on .npz inputs "
                                          "(Core ML in edgekit's emulator)")
    run.add_argument("artifact", type=Path, help=".pte, .onnx, .ort or .mlpackage")
    run.add_argument("--inputs", type=Path, required=True, help=".npz keyed by input name")
    run.add_argument("--out", type=Path, required=True, help=".npz to write, keyed by output")
    run.add_argument("--device", metavar="NAME|PATH.toml",
                     help="device profile (`edgekit devices`, or your own .toml): its threads, "
                          "Core ML precision and app memory budget")
    run.add_argument("--precision", choices=("fp16", "fp32"),
                     help="Core ML only: fp16 (GPU / Neural Engine; the default) or fp32 (CPU)")
    run.add_argument("--threads", type=int, help="intra-op threads (without --device)")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import numpy as np

    from edgekit.runtimes import coreml_precision, open_session, runtime_for

    if not args.artifact.exists():
        raise EdgekitError(f"{args.artifact}: no such artifact")
    coreml = runtime_for(args.artifact) == "coreml"
    if args.precision and not coreml:
        raise EdgekitError(f"{args.artifact}: --precision applies to Core ML packages only")
    names, specs = _artifact_io(args.artifact)
    inputs = read_npz(args.inputs)
    _check_inputs(args.inputs, inputs, specs)
    if args.device:
        from edgekit.devices import get_device
        from edgekit.runtimes.budget import WouldBeKilled, run_under_budget

        device = get_device(args.device)
        precision = args.precision or (coreml_precision(device) if coreml else None)
        try:
            run = run_under_budget(args.artifact, [inputs], device, *names,
                                   precision=precision)
        except WouldBeKilled as exc:
            print(f"edgekit: {args.artifact}: {exc}", file=sys.stderr)
            return exc.exit_code
        (outputs,), overflow = run.outputs, run.overflow
    else:
        session = open_session(args.artifact, *names, threads=args.threads,
                               precision=args.precision)
        outputs = session.run(inputs)
        overflow = getattr(session, "overflow_ops", ())  # the Core ML emulator's
    if overflow:
        print(f"edgekit: fp16 overflow in {', '.join(overflow)}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_name(f".{args.out.name}.partial.npz")
    np.savez(partial, **outputs)  # type: ignore[arg-type]
    partial.replace(args.out)
    for name, value in outputs.items():
        print(f"{name}: shape {list(value.shape)} {value.dtype}")
    return 0


def read_npz(path: Path) -> dict[str, Any]:
    """The arrays of an .npz file by name, read without pickles; one-line errors."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise EdgekitError(f"{path}: no such inputs file") from None
    except (ValueError, OSError) as exc:
        raise EdgekitError(f"{path}: not a readable .npz without pickles ({exc})") from None


def _check_inputs(path: Path, inputs: dict[str, Any], specs: list[dict[str, Any]]) -> None:
    """One line naming the input when the .npz misses it or holds another shape than the
    artifact's (a runtime's own message for a wrong shape names neither)."""
    for spec in specs:
        name, shape = spec["name"], list(spec["shape"])
        if name not in inputs:
            raise EdgekitError(f"{path}: no array '{name}' (the artifact takes "
                               f"{', '.join(s['name'] for s in specs)})")
        got = list(inputs[name].shape)
        if got != shape:
            raise EdgekitError(f"{path}: '{name}' has shape {got}, the artifact takes {shape} "
                               "(one sample, no leading sample axis)")


IoNames = tuple[tuple[str, ...] | None, tuple[str, ...] | None]


def _artifact_io(artifact: Path) -> tuple[IoNames, list[dict[str, Any]]]:
    """Input/output names of an artifact, and its input specs (name, shape, dtype), from the
    report.json of its out folder, if any: a .pte stores no names; edgekit's report does.
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
                names = tuple(i["name"] for i in item["inputs"]), tuple(item["outputs"])
                return names, list(item["inputs"])
    return (None, None), []

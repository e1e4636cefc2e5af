"""`edgekit bench ARTIFACT|OUT_DIR`: host latency under device limits (measured) and phone
latency ranges (estimated), printed apart."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

SUFFIX_FORMAT = {".pte": "executorch", ".onnx": "onnx", ".ort": "ort", ".mlpackage": "coreml"}
DEFAULT_DEVICES = ("iphone-15-pro", "iphone-se-3", "pixel-8", "galaxy-s24", "tecno-pova-6")


def register(commands: Any) -> None:
    bench = commands.add_parser(
        "bench", help="measure an artifact on this host and project its phone latency")
    bench.add_argument("path", metavar="ARTIFACT|OUT_DIR",
                       help="a .pte/.onnx/.ort/.mlpackage, or an `edgekit export` output folder")
    bench.add_argument("--device", action="append", metavar="D",
                       help=f"device profile (repeatable; default: {', '.join(DEFAULT_DEVICES)})")
    bench.add_argument("--iterations", type=int, default=10, metavar="N",
                       help="timed runs after warm-up (default 10)")
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> int:
    from edgekit.errors import EdgekitError
    from edgekit.runtimes.limits import limits_for, over_budget
    from edgekit.targets import get_device
    from edgekit.validate.latency import inputs_for, measure_latency
    from edgekit.validate.project import cost_for_artifact, project

    if args.iterations < 1:
        raise EdgekitError(f"--iterations must be at least 1, got {args.iterations}")
    devices = [get_device(d) for d in dict.fromkeys(args.device or DEFAULT_DEVICES)]
    results = []
    for path in _artifacts(Path(args.path)):
        fmt = SUFFIX_FORMAT[path.suffix]
        timings: dict[int, dict[str, Any]] = {}
        measured, projected = {}, {}
        for device in devices:
            limits = limits_for(device)
            if limits.threads not in timings:
                sample, names, outputs = inputs_for(path)
                timings[limits.threads] = measure_latency(path, device, sample, args.iterations,
                                                          input_names=names,
                                                          output_names=outputs)
            timing = dict(timings[limits.threads])
            if "status" not in timing:
                timing.update(device=device.key, memory_budget_mib=limits.memory_budget_mib,
                              over_memory_budget=over_budget(timing["peak_rss_mib"], limits))
            measured[device.key] = timing
        try:
            cost = cost_for_artifact(path)
            projected = {device.key: project(cost, device, fmt) for device in devices}
        except EdgekitError as exc:
            projected = {d.key: {"status": "not_run", "reason": str(exc)} for d in devices}
        results.append({"path": str(path), "format": fmt, "measured": measured,
                        "projected": projected})
    if args.json:
        print(json.dumps({"artifacts": results}, indent=2))
    else:
        for result in results:
            _print(result)
    return 0


def _artifacts(path: Path) -> list[Path]:
    from edgekit.errors import EdgekitError

    if not path.exists():
        raise EdgekitError(f"{path}: no such artifact or folder")
    if path.suffix in SUFFIX_FORMAT:
        return [path]
    if not path.is_dir():
        raise EdgekitError(f"{path}: not an artifact (known: {', '.join(SUFFIX_FORMAT)}) "
                           "or an export folder")
    found: dict[str, Path] = {}  # one per file name: a format placed under several targets
    for candidate in sorted(path.rglob("*")):
        if candidate.suffix in SUFFIX_FORMAT and not candidate.name.startswith("."):
            if ".mlpackage" not in str(candidate.parent):
                found.setdefault(candidate.name, candidate)
    if not found:
        raise EdgekitError(f"{path}: no .pte, .onnx, .ort or .mlpackage artifacts in it")
    return list(found.values())


def _print(result: dict[str, Any]) -> None:
    print(f"{result['path']} ({result['format']})")
    shown = set()
    for key, timing in result["measured"].items():
        if "status" in timing:
            print(f"  measured: not run: {timing['reason']}")
            break
        line = (f"  {timing['label']}: load {timing['load_ms']:.1f} ms, "
                f"p50 {timing['p50_ms']:.3f} ms, p90 {timing['p90_ms']:.3f} ms, "
                f"peak RSS {timing['peak_rss_mib']:.1f} MiB, {timing['iterations']} runs")
        if line not in shown:
            print(line)
            shown.add(line)
        if timing["over_memory_budget"]:
            print(f"    over {key}'s app memory budget of {timing['memory_budget_mib']:.0f} MiB")
    projected = [p for p in result["projected"].values() if "status" not in p]
    if not projected:
        reason = next(iter(result["projected"].values()))["reason"]
        print(f"  estimated: not projected: {reason}")
        return
    first = projected[0]
    print(f"  estimated on the phone (roofline range; {first['flops'] / 1e9:.3g} GFLOP, "
          f"{first['bytes'] / 1e6:.3g} MB moved per inference, from the "
          f"{first['counted_from']}):")
    for key, proj in result["projected"].items():
        if "status" in proj:
            print(f"    {key:14} not projected: {proj['reason']}")
            continue
        print(f"    {key:14} {proj['compute_unit']:3}  {proj['low_ms']:>9.3g} - "
              f"{proj['high_ms']:<9.3g} ms (mid {proj['mid_ms']:.3g})")

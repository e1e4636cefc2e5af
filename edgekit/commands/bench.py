"""`edgekit bench ARTIFACT|OUT_DIR`: host latency under device limits (measured) and phone
latency ranges (estimated), printed apart. Decode artifacts (`edgekit export --decode`: a
decode .pte, an onnxruntime-genai folder) get prefill time and decode tokens/s instead."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

SUFFIX_FORMAT = {".pte": "executorch", ".onnx": "onnx", ".ort": "ort", ".mlpackage": "coreml"}
DEFAULT_DEVICES = ("iphone-15-pro", "iphone-se-3", "pixel-8", "galaxy-s24", "tecno-pova-6")
GENAI_CONFIG = "genai_config.json"  # marks an onnxruntime-genai decode folder
DECODE_DIR = "decode"  # an export's decode artifacts, per target (edgekit.llm.stage)


def register(commands: Any) -> None:
    bench = commands.add_parser(
        "bench", help="measure an artifact on this host and project its phone latency")
    bench.add_argument("path", metavar="ARTIFACT|OUT_DIR",
                       help="a .pte/.onnx/.ort/.mlpackage, an onnxruntime-genai decode folder, "
                            "or an `edgekit export` output folder")
    bench.add_argument("--device", action="append", metavar="NAME|PATH.toml",
                       help="device profile: a built-in name (`edgekit devices`) or your own "
                            ".toml (`edgekit devices --template`); repeatable (default: "
                            f"{', '.join(DEFAULT_DEVICES)})")
    bench.add_argument("--iterations", type=int, default=10, metavar="N",
                       help="timed runs after warm-up (default 10; decode artifacts: one "
                            "generation)")
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> int:
    from edgekit.devices import resolve_devices
    from edgekit.errors import EdgekitError
    from edgekit.runtimes.limits import limits_for, over_budget
    from edgekit.validate.artifacts import cost_for_artifact
    from edgekit.validate.latency import inputs_for, measure_latency
    from edgekit.validate.project import project

    if args.iterations < 1:
        raise EdgekitError(f"--iterations must be at least 1, got {args.iterations}")
    devices = resolve_devices(args.device or DEFAULT_DEVICES)
    results = []
    for path, decode in _artifacts(Path(args.path)):
        if decode:
            results.append(_bench_decode(path, devices))
            continue
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
        results.append({"path": str(path), "format": fmt, "kind": "forward",
                        "measured": measured, "projected": projected})
    if args.json:
        print(json.dumps({"artifacts": results}, indent=2))
    else:
        for result in results:
            _print(result)
    return 0


def _bench_decode(path: Path, devices: list[Any]) -> dict[str, Any]:
    """Prefill time and decode tokens/s of a decode artifact: one greedy generation on host
    per thread count, and the projection for each device at the same prompt length."""
    from edgekit.errors import EdgekitError
    from edgekit.runtimes.limits import limits_for
    from edgekit.validate.decode_latency import (
        NEW_TOKENS,
        PROMPT_TOKENS,
        measure_generation,
        project_decode_artifact,
    )
    from edgekit.validate.latency import CORE_ML_NOT_RUN

    fmt = {".pte": "executorch", ".mlpackage": "coreml"}.get(path.suffix, "onnx")
    timings: dict[int, dict[str, Any]] = {}
    measured = {}
    for device in devices:
        threads = limits_for(device).threads
        if fmt == "coreml":
            timings[threads] = {"status": "not_run", "reason": CORE_ML_NOT_RUN}
        elif threads not in timings:
            try:
                timings[threads] = measure_generation(path, device)
            except EdgekitError as exc:
                timings[threads] = {"status": "not_run", "reason": f"run failed: {exc}"}
        measured[device.key] = {**timings[threads], "device": device.key}
    timing = next(iter(timings.values()))
    prompt = timing.get("prompt_tokens", PROMPT_TOKENS)
    context = prompt + timing.get("generated_tokens", NEW_TOKENS) // 2  # the median step's
    projected = project_decode_artifact(path, devices, fmt, prompt, context)
    return {"path": str(path), "format": fmt, "kind": "decode", "measured": measured,
            "projected": projected}


def _artifacts(path: Path) -> list[tuple[Path, bool]]:
    """The artifacts at `path`, each with whether it is a decode artifact."""
    from edgekit.errors import EdgekitError

    if not path.exists():
        raise EdgekitError(f"{path}: no such artifact or folder")
    if (path / GENAI_CONFIG).is_file():
        return [(path, True)]
    if path.suffix in SUFFIX_FORMAT:
        return [(path, _is_decode(path))]
    if not path.is_dir():
        raise EdgekitError(f"{path}: not an artifact (known: {', '.join(SUFFIX_FORMAT)}) "
                           "or an export folder")
    genai = {c.parent for c in path.rglob(GENAI_CONFIG)}
    # one per kind and file name: an artifact placed under several targets is timed once
    found: dict[tuple[bool, str], Path] = {}
    for candidate in sorted([*path.rglob("*"), *genai]):
        if candidate in genai:
            found.setdefault((True, candidate.name), candidate)
        elif (candidate.suffix in SUFFIX_FORMAT and not candidate.name.startswith(".")
              and ".mlpackage" not in str(candidate.parent)
              and not genai.intersection(candidate.parents)):
            found.setdefault((_is_decode(candidate), candidate.name), candidate)
    if not found:
        raise EdgekitError(f"{path}: no .pte, .onnx, .ort or .mlpackage artifacts in it")
    return [(artifact, decode) for (decode, _), artifact in found.items()]


def _is_decode(path: Path) -> bool:
    """Whether the artifact is a decode artifact: a .pte carrying the LLM runner's metadata
    methods, or a Core ML package in an export's decode folder."""
    if path.suffix == ".mlpackage":
        return path.parent.name == DECODE_DIR
    if path.suffix != ".pte":
        return False
    from edgekit.console import import_backend, quiet

    runtime = import_backend("executorch.runtime")
    try:
        with quiet():
            program = runtime.Runtime.get().load_program(str(path))
    except Exception:  # a bad file is reported by the timing that follows, with its reason
        return False
    return "get_max_seq_len" in program.method_names


def _print(result: dict[str, Any]) -> None:
    decode = result["kind"] == "decode"
    print(f"{result['path']} ({result['format']}{', decode' if decode else ''})")
    shown = set()
    for key, timing in result["measured"].items():
        for line in _measured_lines(key, timing, decode):
            if line not in shown:
                print(line)
                shown.add(line)
    projected = [p for p in result["projected"].values() if "status" not in p]
    if not projected:
        reason = next(iter(result["projected"].values()))["reason"]
        print(f"  estimated: not projected: {reason}")
        return
    first = projected[0]
    if decode:
        print(f"  estimated on the phone (roofline range; {first['bytes_per_token'] / 1e6:.3g} "
              f"MB read per token at {first['decode_context_tokens']} cached tokens):")
    else:
        print(f"  estimated on the phone (roofline range; {first['flops'] / 1e9:.3g} GFLOP, "
              f"{first['bytes'] / 1e6:.3g} MB moved per inference, from the "
              f"{first['counted_from']}):")
    for key, proj in result["projected"].items():
        if "status" in proj:
            print(f"    {key:14} not projected: {proj['reason']}")
        elif decode:
            rate, prefill = proj["decode_tok_s"], proj["prefill_ms"]
            print(f"    {key:14} {proj['compute_unit']:3}  decode {_num(rate['low'])} - "
                  f"{_num(rate['high'])} tok/s (mid {_num(rate['mid'])}), prefill "
                  f"{proj['prefill_tokens']} tokens {_num(prefill['low'])} - "
                  f"{_num(prefill['high'])} ms")
        else:
            print(f"    {key:14} {proj['compute_unit']:3}  {proj['low_ms']:>9.3g} - "
                  f"{proj['high_ms']:<9.3g} ms (mid {proj['mid_ms']:.3g})")


def _measured_lines(key: str, timing: dict[str, Any], decode: bool) -> list[str]:
    if "status" in timing:
        return [f"  measured: not run: {timing['reason']}"]
    if decode:
        return [f"  {timing['label']}: prefill {timing['prompt_tokens']} tokens "
                f"{timing['prefill_ms']:.1f} ms, decode {timing.get('decode_tok_s', 0):.1f} "
                f"tok/s (median of {timing.get('decode_steps', 0)} steps)"]
    lines = [f"  {timing['label']}: load {timing['load_ms']:.1f} ms, "
             f"p50 {timing['p50_ms']:.3f} ms, p90 {timing['p90_ms']:.3f} ms, "
             f"peak RSS {timing['peak_rss_mib']:.1f} MiB, {timing['iterations']} runs"]
    if timing["over_memory_budget"]:
        lines.append(f"    over {key}'s app memory budget of "
                     f"{timing['memory_budget_mib']:.0f} MiB")
    return lines


def _num(value: float) -> str:
    return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"

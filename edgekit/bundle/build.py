"""`edgekit bundle`: an export's artifacts for one app, with manifest and golden vectors."""

from __future__ import annotations

import datetime
import json
import shutil
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from edgekit import __version__
from edgekit.bundle import golden as gold
from edgekit.bundle.manifest import (
    APP_FORMATS,
    MANIFEST,
    MANIFEST_VERSION,
    app_runtime,
    check_relative,
    inside,
    manifest_paths,
    read_manifest,
    runtime_io,
)
from edgekit.bundle.processing import copy_tokenizer, postprocessing, preprocessing
from edgekit.console import stage
from edgekit.errors import ConfigError, EdgekitError
from edgekit.export._files import staged
from edgekit.report.json import read_report
from edgekit.runtimes import RuntimeUnavailable
from edgekit.targets import Tolerance, get_target

# A BundledProgram carries the program a second time: written for programs up to this size.
BUNDLED_PROGRAM_MAX_BYTES = 64 << 20
_REFERENCE_ORDER = ("onnx", "executorch", "ort", "coreml")  # host runtimes, most portable first


def make_bundle(out: Path, app: str, dest: Path, *, force: bool = False, samples: int = 2,
                seed: int = 0) -> dict[str, Any]:
    """Bundle the `app` target of the export in `out` into the folder `dest`.

    Args:
        out: the --out folder of `edgekit export` (holds report.json and <target>/ folders).
        app: ios, android or web.
        dest: the bundle folder to write; built beside it and renamed when complete.
        force: replace a non-empty `dest`.
        samples: golden input sets to record.
        seed: seed of generated golden inputs (as validate.seed).

    Returns:
        The manifest, as written to dest/manifest.json.

    Raises:
        EdgekitError: bad input (missing folder or report, target not exported, an artifact
            missing, changed since the export or failed parity); nothing is left at `dest`.
    """
    if app not in APP_FORMATS:
        raise ConfigError(f"unknown app '{app}' (known: {', '.join(APP_FORMATS)})")
    if not out.is_dir():
        raise EdgekitError(f"{out}: no such export folder (the --out of edgekit export)")
    if not (out / "report.json").is_file():
        raise EdgekitError(f"{out}: no report.json; is it the --out folder of edgekit export?")
    report = read_report(out / "report.json")
    entries = _entries(report, app, out)
    _check_dest(dest, force)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with staged(dest) as staging:  # built beside dest, renamed when complete
        staging.mkdir()
        manifest = _build(report, app, entries, out, staging, samples, seed)
        verdicts = [a["self_test"]["host"]["verdict"] for a in manifest["artifacts"]]
        manifest["summary"] = {v: verdicts.count(v) for v in ("pass", "fail", "not_run")}
        _write_manifest(staging, manifest)
    return manifest


def _entries(report: dict[str, Any], app: str, out: Path) -> list[dict[str, Any]]:
    from edgekit.export import Artifact

    formats = APP_FORMATS[app]
    entries = [a for a in report["artifacts"] if a["target"] == app and a["format"] in formats]
    if not entries:
        exported = sorted({a["target"] for a in report["artifacts"]}) or ["none"]
        raise EdgekitError(f"{out / 'report.json'}: target '{app}' was not exported (exported: "
                           f"{', '.join(exported)}); run edgekit export --target {app} --out "
                           f"{out}")
    for entry in entries:
        where = f"{out / 'report.json'}: artifact {entry['target']}/{entry['format']}"
        path = inside(out, entry["path"], where)
        if not path.exists():
            raise EdgekitError(f"{path}: artifact listed in report.json is missing")
        digest = Artifact(entry["format"], path, entry["runtime"], entry["quant"], (), ()).sha256()
        if digest != entry["sha256"]:
            raise EdgekitError(f"{path}: sha256 differs from report.json; the artifact changed "
                               "since the export (export again)")
        if entry["parity"]["verdict"] == "fail":
            raise EdgekitError(f"{path}: failed parity in the export ({entry['parity']['reason']});"
                               " edgekit does not bundle it")
    return entries


def _check_dest(dest: Path, force: bool) -> None:
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"{dest}: --dest exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise ConfigError(f"{dest}: --dest is not empty; pass --force to replace it")


def _build(report: dict[str, Any], app: str, entries: list[dict[str, Any]], out: Path,
           root: Path, samples: int, seed: int) -> dict[str, Any]:
    model = report["model"]
    artifacts = []
    for entry in entries:
        name = Path(entry["path"]).name
        src, dst = out / entry["path"], root / "model" / name
        dst.parent.mkdir(exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, dst)
        artifacts.append((entry, f"model/{name}"))

    text = "input_ids" in [s["name"] for s in model["inputs"]]
    files, tokenizer = copy_tokenizer(model["source"], root / "tokenizer") if text else ([], None)
    pre = preprocessing(model["inputs"], model["source"], files, tokenizer, "tokenizer")
    inputs = gold.golden_inputs(model["task"], model["inputs"], tokenizer,
                                int(pre.get("vocab_size", 256)), samples, seed)
    reference, label, outputs = _reference(artifacts, root, inputs)
    golden = {"reference": {"artifact": reference, "runtime": label},
              "samples": _write_golden(root, inputs, outputs)}

    items = []
    for entry, rel in artifacts:
        io_in, io_out = runtime_io(root / rel, entry["format"], entry["inputs"],
                                   [_output_spec(n, outputs[0][n]) for n in entry["outputs"]])
        tolerance, note = _tolerance(app, entry)
        items.append({
            "format": entry["format"], "path": rel, "bytes": entry["bytes"],
            "sha256": entry["sha256"], "quant": entry["quant"],
            "runtime": app_runtime(app, entry["format"], entry["notes"]),
            "inputs": io_in, "outputs": io_out, "notes": entry["notes"],
            "parity": entry["parity"],
            "self_test": {"tolerance": {k: getattr(tolerance, k) for k in
                                        ("max_rel", "cosine_min", "top1_min")}},
        })
        if note:
            items[-1]["self_test"]["note"] = note
    manifest = {
        "schema_version": MANIFEST_VERSION,
        "edgekit_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "app": app,
        "model": {k: model[k] for k in ("name", "task", "source", "parameters")},
        "export": {"created": report["created"], "edgekit_version": report["edgekit_version"],
                   "parity_inputs": report["parity_inputs"]},
        "artifacts": items,
        "preprocessing": pre,
        "postprocessing": postprocessing(model["task"], model["outputs"], model["source"]),
        "golden": golden,
    }
    bundled = _bundled_program(root, items, inputs, outputs)
    if bundled:
        manifest["bundled_program"] = bundled
    _write_manifest(root, manifest)  # the host self-test reads the bundle as an app would
    for item, result in zip(items, verify_bundle(root), strict=True):
        item["self_test"]["host"] = result
    return manifest


def _bundled_program(root: Path, items: list[dict[str, Any]], inputs: list[dict[str, np.ndarray]],
                     outputs: list[dict[str, np.ndarray]]) -> dict[str, Any] | None:
    """An ExecuTorch BundledProgram beside a .pte up to BUNDLED_PROGRAM_MAX_BYTES with an
    fp32 tolerance (max_rel); the check elementwise is |out - golden| <= atol."""
    for item in items:
        tolerance = item["self_test"]["tolerance"]["max_rel"]
        if item["format"] != "executorch" or tolerance is None \
                or item["bytes"] > BUNDLED_PROGRAM_MAX_BYTES:
            continue
        rel = str(Path(item["path"]).with_suffix(".bpte"))
        names = ([s["name"] for s in item["inputs"]], [s["name"] for s in item["outputs"]])
        with stage(f"ExecuTorch bundled program {rel}"):
            gold.write_bundled_program(root / item["path"], root / rel, inputs, outputs, *names)
            peak = max(float(np.abs(o[n]).max(initial=0.0)) for o in outputs for n in names[1])
            atol = tolerance * max(peak, 1e-12)
            try:
                gold.verify_bundled_program(root / rel, len(inputs), 0.0, atol)
                verdict, reason = "pass", f"every case within atol {atol:.3g}"
            except EdgekitError as exc:
                verdict, reason = "fail", str(exc)
        host = {"runtime": f"executorch {version('executorch')} (bundled program)",
                "verdict": verdict, "reason": reason, "metrics": {}}
        return {"path": rel, "program": item["path"], "method": "forward", "rtol": 0.0,
                "atol": atol, "host": host}
    return None


def _tolerance(app: str, entry: dict[str, Any]) -> tuple[Tolerance, str]:
    """The target's parity tolerance for the artifact, and a note when it was adapted.

    A max_rel written for fp32 compute does not hold for Core ML's fp16 compute (relative
    rounding 2^-11 per op); without a [parity.<quant>.coreml] table the self-test keeps the
    target's cosine and top-1 limits and says so.
    """
    target = get_target(app)
    tolerance = target.tolerance(entry["quant"], entry["format"])
    fp16 = entry["notes"].get("compute_precision") == "float16"
    own = f"{entry['quant']}.{entry['format']}" in target.parity
    if fp16 and not own and tolerance.max_rel is not None:
        note = (f"max_rel {tolerance.max_rel:g} not applied: {target.source.name} has no "
                f"[parity.{entry['quant']}.{entry['format']}] table and the artifact computes "
                "in float16")
        return Tolerance(None, tolerance.cosine_min, tolerance.top1_min), note
    return tolerance, ""


def _reference(artifacts: list[tuple[dict[str, Any], str]], root: Path,
               inputs: list[dict[str, np.ndarray]]) -> tuple[str, str, list[dict[str, np.ndarray]]]:
    """Golden outputs: the bundle's most portable artifact run in edgekit's host runtime."""
    ordered = sorted(artifacts, key=lambda a: _REFERENCE_ORDER.index(a[0]["format"]))
    for entry, rel in ordered:
        try:
            with stage(f"golden outputs from {rel}"):
                label, outputs = gold.run_artifact(root / rel, entry["format"],
                                                   [s["name"] for s in entry["inputs"]],
                                                   list(entry["outputs"]), inputs)
            return rel, label, outputs
        except RuntimeUnavailable:
            continue
    raise EdgekitError(f"{root}: no artifact of the bundle runs on this host; golden outputs "
                       "need one (export a format edgekit runs: executorch or onnx)")


def _write_golden(root: Path, inputs: list[dict[str, np.ndarray]],
                  outputs: list[dict[str, np.ndarray]]) -> list[dict[str, Any]]:
    written = []
    for i, (ins, outs) in enumerate(zip(inputs, outputs, strict=True)):
        written.append({
            "inputs": [{"name": n, **gold.write_tensor(root, f"golden/{i}/in-{n}.bin", a)}
                       for n, a in ins.items()],
            "outputs": [{"name": n, **gold.write_tensor(root, f"golden/{i}/out-{n}.bin", a)}
                        for n, a in outs.items()],
        })
    return written


def _output_spec(name: str, array: np.ndarray) -> dict[str, Any]:
    return {"name": name, "shape": [int(d) for d in array.shape], "dtype": "float32"}


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    for where, rel in manifest_paths(manifest):
        inside(root, check_relative(rel, where), f"manifest {where}")
    partial = root / f".{MANIFEST}.partial"
    partial.write_text(json.dumps(manifest, indent=2) + "\n")
    partial.rename(root / MANIFEST)


def verify_bundle(bundle: Path) -> list[dict[str, Any]]:
    """Re-run a bundle's golden vectors in edgekit's host runtimes, as the apps do on a phone.

    Args:
        bundle: a folder written by `edgekit bundle`.

    Returns:
        Per artifact, in manifest order: runtime, verdict (pass, fail, not_run), reason and
        metrics against the golden outputs under the manifest's tolerance.

    Raises:
        EdgekitError: an unreadable or unsafe manifest, a missing golden file, or an artifact
            whose sha256 differs from the manifest's.
    """
    from edgekit.export import Artifact

    manifest = read_manifest(bundle)
    samples = manifest["golden"]["samples"]
    inputs = [{e["name"]: gold.read_tensor(bundle, e) for e in s["inputs"]} for s in samples]
    expected = [{e["name"]: gold.read_tensor(bundle, e) for e in s["outputs"]} for s in samples]
    logits = manifest["postprocessing"].get("output") == "logits"
    results = []
    for item in manifest["artifacts"]:
        path = inside(bundle, item["path"], f"{bundle / MANIFEST}: artifact")
        if Artifact(item["format"], path, "", "", (), ()).sha256() != item["sha256"]:
            raise EdgekitError(f"{path}: sha256 differs from the manifest (damaged or replaced)")
        names = [s["name"] for s in item["outputs"]]
        try:
            label, actual = gold.run_artifact(path, item["format"],
                                              [s["name"] for s in item["inputs"]], names, inputs)
        except RuntimeUnavailable as exc:
            results.append({"runtime": item["runtime"]["name"], "verdict": "not_run",
                            "reason": str(exc), "metrics": {}})
            continue
        except EdgekitError as exc:
            results.append({"runtime": item["runtime"]["name"], "verdict": "fail",
                            "reason": f"run failed: {exc}", "metrics": {}})
            continue
        result = gold.self_test(expected, actual, item["self_test"]["tolerance"], logits)
        results.append({"runtime": label, **result})
    return results

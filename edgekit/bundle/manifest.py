"""manifest.json of an app bundle: safe relative paths, runtime versions, reading it back.

Schema: docs/bundle-manifest.schema.json; fields: docs/bundle.md.
"""

from __future__ import annotations

import json
import re
from importlib.metadata import version
from pathlib import Path, PurePosixPath
from typing import Any

from edgekit.errors import EdgekitError

MANIFEST_VERSION = 1
MANIFEST = "manifest.json"

# The formats each app loads, in the order the app tries them.
APP_FORMATS = {"ios": ("coreml", "executorch"), "android": ("executorch", "onnx", "ort"),
               "web": ("onnx",)}

# The onnxruntime-web release sample_apps/web pins (package.json) and its test runs: npm's
# newest onnxruntime-web trails the Python wheel edgekit validates with.
ONNXRUNTIME_WEB_VERSION = "1.30.0"

# One path segment: letters, digits, '.', '_', '-' and no leading dot (no '..', no hidden file).
_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")


def check_relative(path: str, where: str) -> str:
    """`path` if it is a plain relative POSIX path that stays inside the bundle.

    Raises:
        EdgekitError: absolute, '..', backslashes, empty or hidden segments.
    """
    parts = PurePosixPath(path).parts if isinstance(path, str) and path else ()
    if not parts or "\\" in path or path.startswith("/") or not all(
            _SEGMENT.match(p) for p in parts):
        raise EdgekitError(f"{where}: path {path!r} escapes the bundle or is not a plain "
                           "relative path (letters, digits, '._-' segments joined by '/')")
    return path


def inside(root: Path, rel: str, where: str) -> Path:
    """root/rel, refusing a path that leaves `root` (also through a symlink)."""
    target = (root / check_relative(rel, where)).resolve()
    if not target.is_relative_to(root.resolve()):
        raise EdgekitError(f"{where}: path {rel!r} resolves outside the bundle ({target})")
    return target


def manifest_paths(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (where, path) the manifest names, for checking on write and on read."""
    found: list[tuple[str, str]] = []
    for i, item in enumerate(manifest.get("artifacts", [])):
        found.append((f"artifacts[{i}].path", item.get("path", "")))
    for i, rel in enumerate(manifest.get("preprocessing", {}).get("files", [])):
        found.append((f"preprocessing.files[{i}]", rel))
    golden = manifest.get("golden", {})
    for s, sample in enumerate(golden.get("samples", [])):
        for side in ("inputs", "outputs"):
            for i, entry in enumerate(sample.get(side, [])):
                found.append((f"golden.samples[{s}].{side}[{i}].path", entry.get("path", "")))
    bundled = manifest.get("bundled_program")
    if bundled:
        found.append(("bundled_program.path", bundled.get("path", "")))
    return found


def read_manifest(bundle: Path) -> dict[str, Any]:
    """Read and check a bundle's manifest.json: version, and that no path leaves the bundle.

    Raises:
        EdgekitError: missing or unreadable manifest, another schema version, an unsafe path.
    """
    path = bundle / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise EdgekitError(f"{path}: no such manifest; is {bundle} an edgekit bundle?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EdgekitError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("schema_version") != MANIFEST_VERSION:
        found = manifest.get("schema_version") if isinstance(manifest, dict) else None
        raise EdgekitError(f"{path}: schema_version {found!r}, this edgekit reads "
                           f"{MANIFEST_VERSION}")
    for where, rel in manifest_paths(manifest):
        inside(bundle, rel, f"{path}: {where}")
    return manifest


def app_runtime(app: str, fmt: str, notes: dict[str, Any]) -> dict[str, str]:
    """The runtime an app runs `fmt` with: its package, the version the app must declare and
    the oldest that loads the artifact.

    ExecuTorch and ONNX Runtime read programs written by their own or older releases, so the
    minimum is the release that wrote (and checked) the artifact.
    """
    if fmt == "coreml":
        target = str(notes.get("minimum_deployment_target", "iOS18"))
        os_version = target.removeprefix("iOS") + ".0"
        return {"name": "coreml", "package": "CoreML.framework (system)",
                "version": f"iOS {os_version}", "minimum": f"iOS {os_version}"}
    if fmt == "executorch":
        release = version("executorch")
        swiftpm = f"https://github.com/pytorch/executorch (SwiftPM branch swiftpm-{release})"
        package = {"ios": swiftpm, "android": "org.pytorch:executorch-android"}[app]
        return {"name": "executorch", "package": package, "version": release, "minimum": release}
    if app == "web":
        return {"name": "onnxruntime-web", "package": "npm:onnxruntime-web",
                "version": ONNXRUNTIME_WEB_VERSION, "minimum": ONNXRUNTIME_WEB_VERSION}
    release = version("onnxruntime")
    return {"name": "onnxruntime", "package": "com.microsoft.onnxruntime:onnxruntime-android",
            "version": release, "minimum": release}


def runtime_io(path: Path, fmt: str, inputs: list[dict[str, Any]],
               outputs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Inputs and outputs as the artifact's runtime declares them.

    Core ML programs take int32 where torch had int64 and return fp16 under fp16 compute: the
    app must build those types, so they are read from the package, not assumed.
    """
    if fmt != "coreml":
        return inputs, outputs
    from edgekit.console import import_backend

    ct = import_backend("coremltools")
    spec = ct.utils.load_spec(str(path))
    array_types = ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType
    types = {"FLOAT32": "float32", "FLOAT16": "float16", "INT32": "int32", "DOUBLE": "float64"}

    def declared(features: Any, known: list[dict[str, Any]]) -> list[dict[str, Any]]:
        by_name = {item["name"]: item for item in known}
        return [{"name": f.name, "shape": by_name[f.name]["shape"],
                 "dtype": types[array_types.Name(f.type.multiArrayType.dataType)]}
                for f in features]

    return declared(spec.description.input, inputs), declared(spec.description.output, outputs)

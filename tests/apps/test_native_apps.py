"""The iOS (Swift) and Android (Kotlin) sample apps cannot be built here (no Xcode, no Android
SDK). These tests read their sources and check them against the manifests `edgekit bundle`
writes: every manifest key their decoders require exists with a matching type, the formats,
dtypes, pre/post-processing kinds and input names they handle cover the bundle's, the folder
and file names agree, and the runtime versions they declare are the manifest's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from edgekit.bundle import read_manifest

APPS = Path(__file__).parents[2] / "sample_apps"
IOS, ANDROID, WEB = APPS / "ios", APPS / "android", APPS / "web"
DOCS = Path(__file__).parents[2] / "docs" / "bundle.md"
DECODED = {"Manifest", "Artifact", "TensorSpec", "Tolerance", "Golden", "TensorFile"}


def _sources(folder: Path, suffix: str) -> str:
    return "\n".join(p.read_text() for p in sorted(folder.rglob(f"*{suffix}")))


# --- decoders: Swift Decodable structs and Kotlin @Serializable data classes -----------------

def _swift_structs(text: str) -> dict[str, list[tuple[str, str, bool]]]:
    """Decodable struct name -> [(json key, type, optional)], keys snake_cased as
    JSONDecoder's convertFromSnakeCase expects them."""
    structs: dict[str, list[tuple[str, str, bool]]] = {}
    stack: list[tuple[str | None, int]] = []
    depth = 0
    for line in text.splitlines():
        opened = re.search(r"struct (\w+): Decodable \{", line)
        if opened:
            structs[opened.group(1)] = []
            stack.append((opened.group(1), depth))
        field = re.match(r"\s*public let (\w+): ([^=/]+?)\s*(//.*)?$", line)
        if field and stack and stack[-1][1] == depth - 1:
            name, kind = field.group(1), field.group(2).strip()
            key = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)
            structs[stack[-1][0]].append((key, kind.rstrip("?"), kind.endswith("?")))
        depth += line.count("{") - line.count("}")
        while stack and depth <= stack[-1][1]:
            stack.pop()
    return structs


def _kotlin_classes(text: str) -> dict[str, list[tuple[str, str, bool]]]:
    """@Serializable data class name -> [(json key, type, optional)]."""
    classes = {}
    for match in re.finditer(r"@Serializable\s+data class (\w+)\((.*?)\)\n", text, re.S):
        fields = []
        for param in re.finditer(r'(?:@SerialName\("(\w+)"\)\s+)?val (\w+): (\w+(?:<[\w, ]+>)?\??)'
                                 r'(\s*=\s*null)?', match.group(2)):
            key = param.group(1) or param.group(2)
            kind = param.group(3).strip()
            fields.append((key, kind.rstrip("?"), kind.endswith("?") or bool(param.group(4))))
        classes[match.group(1)] = fields
    return classes


def _check(value: object, kind: str, types: dict[str, list[tuple[str, str, bool]]],
           where: str) -> None:
    kind = kind.strip().removeprefix("Manifest.")
    element = re.fullmatch(r"\[(\w+)\]|List<(\w+)>", kind)
    if element:
        assert isinstance(value, list), f"{where}: expected a list, manifest has {value!r}"
        for i, item in enumerate(value):
            _check(item, element.group(1) or element.group(2), types, f"{where}[{i}]")
        return
    if re.fullmatch(r"\[String: \w+\]|Map<String, \w+>", kind):
        assert isinstance(value, dict), f"{where}: expected an object"
        return
    if kind in types:
        assert isinstance(value, dict), f"{where}: expected an object for {kind}"
        for key, sub, optional in types[kind]:
            if key not in value:
                assert optional, f"{where}: the app requires key '{key}' ({kind}), not there"
                continue
            if value[key] is not None or not optional:
                _check(value[key], sub, types, f"{where}.{key}")
        return
    python = {"String": str, "Int": int, "Long": int, "Double": (int, float), "Bool": bool}
    assert kind in python, f"{where}: the test does not know type {kind}"
    assert isinstance(value, python[kind]) and not (kind != "Bool" and isinstance(value, bool)), \
        f"{where}: expected {kind}, manifest has {value!r}"


def test_swift_decoder_reads_the_ios_manifest(bundles):
    structs = _swift_structs((IOS / "Sources/EdgekitBundle/Manifest.swift").read_text())
    assert DECODED <= structs.keys()
    assert ("self_test", "SelfTestSpec", False) in structs["Artifact"]
    assert ("top1_min", "Double", True) in structs["Tolerance"]
    _check(json.loads((bundles["ios"] / "manifest.json").read_text()), "Manifest", structs, "ios")


def test_kotlin_decoder_reads_the_android_manifest(bundles):
    classes = _kotlin_classes(_sources(ANDROID / "app/src/main", ".kt"))
    assert DECODED <= classes.keys()
    assert ("self_test", "SelfTestSpec", False) in classes["Artifact"]
    _check(json.loads((bundles["android"] / "manifest.json").read_text()), "Manifest", classes,
           "android")


def test_a_missing_key_is_caught_by_the_check(bundles):
    """The decoder check itself: a manifest without a key the app requires fails it."""
    structs = _swift_structs((IOS / "Sources/EdgekitBundle/Manifest.swift").read_text())
    manifest = json.loads((bundles["ios"] / "manifest.json").read_text())
    del manifest["artifacts"][0]["self_test"]
    with pytest.raises(AssertionError, match="requires key 'self_test'"):
        _check(manifest, "Manifest", structs, "ios")


# --- what the code handles covers what the bundle holds ---------------------------------------

@pytest.mark.parametrize("app,folder,suffix", [("ios", IOS, ".swift"),
                                               ("android", ANDROID, ".kt")])
def test_formats_dtypes_kinds_and_names_are_handled(bundles, app, folder, suffix):
    code = _sources(folder, suffix)
    literals = set(re.findall(r'"([\w.]+)"', code))
    manifest = read_manifest(bundles[app])
    dtypes = {s["dtype"] for a in manifest["artifacts"] for s in a["inputs"] + a["outputs"]}
    samples = manifest["golden"]["samples"]
    dtypes |= {t["dtype"] for s in samples for t in s["inputs"] + s["outputs"]}
    formats = {a["format"] for a in manifest["artifacts"]}
    kinds = {manifest["preprocessing"]["kind"], manifest["preprocessing"]["tokenizer"],
             manifest["postprocessing"]["kind"], "tokenizer.json", "embedding", "next_token"}
    assert formats <= literals, formats - literals
    assert dtypes <= literals, dtypes - literals
    assert kinds <= literals, kinds - literals
    assert "manifest.json" in literals and manifest["postprocessing"]["output"] == "logits"
    # The demo builds its inputs by name: they must be the artifacts' input names, and the
    # window it pads to the manifest's seq_len must be the artifacts' shape.
    built = re.findall(r'"(input_ids|attention_mask|pixel_values)"(?: to|:)', code)
    built_names = set(built)
    for artifact in manifest["artifacts"]:
        names = {s["name"] for s in artifact["inputs"]}
        assert names <= built_names, (artifact["format"], names - built_names)
        ids = next(s for s in artifact["inputs"] if s["name"] == "input_ids")
        assert ids["shape"] == [1, manifest["preprocessing"]["seq_len"]]
        assert artifact["outputs"][0]["shape"][-1] == manifest["preprocessing"]["vocab_size"]


def test_bundle_folder_names_agree_between_code_project_and_docs():
    assert 'folderName = "EdgekitBundle"' in (IOS / "App/ContentView.swift").read_text()
    assert "- path: EdgekitBundle" in (IOS / "project.yml").read_text()
    activity = (ANDROID / "app/src/main/java/org/edgekit/demo/MainActivity.kt").read_text()
    assert 'const val BUNDLE = "bundle"' in activity
    docs = DOCS.read_text()
    assert "--dest sample_apps/ios/EdgekitBundle" in docs
    assert "--dest sample_apps/android/app/src/main/assets/bundle" in docs
    assert "--dest sample_apps/web/bundle" in docs


# --- declared runtime versions are the manifest's -----------------------------------------------

def _runtime(manifest: dict, fmt: str) -> dict:
    return next(a["runtime"] for a in manifest["artifacts"] if a["format"] == fmt)


def test_ios_declares_the_manifests_runtimes(bundles):
    manifest = read_manifest(bundles["ios"])
    package = (IOS / "Package.swift").read_text()
    executorch = _runtime(manifest, "executorch")["version"]
    assert re.findall(r'executorch\.git", branch: "swiftpm-([\d.]+)"', package) == [executorch]
    minimum = _runtime(manifest, "coreml")["minimum"]  # "iOS 18.0"
    major = minimum.removeprefix("iOS ").split(".")[0]
    assert f".iOS(.v{major})" in package
    assert f'iOS: "{minimum.removeprefix("iOS ")}"' in (IOS / "project.yml").read_text()


def test_android_declares_the_manifests_runtimes(bundles):
    manifest = read_manifest(bundles["android"])
    gradle = (ANDROID / "app/build.gradle.kts").read_text()
    declared = dict(re.findall(r'implementation\("([\w.]+:[\w.-]+):([\w.-]+)"\)', gradle))
    assert declared["org.pytorch:executorch-android"] == _runtime(manifest, "executorch")["version"]
    for fmt in ("onnx", "ort"):
        runtime = _runtime(manifest, fmt)
        assert runtime["package"] == "com.microsoft.onnxruntime:onnxruntime-android"
        assert declared[runtime["package"]] == runtime["version"]


def test_web_declares_the_manifests_runtime(bundles):
    manifest = read_manifest(bundles["web"])
    version = _runtime(manifest, "onnx")["version"]
    package = json.loads((WEB / "package.json").read_text())
    lock = json.loads((WEB / "package-lock.json").read_text())
    assert package["dependencies"]["onnxruntime-web"] == version
    assert lock["packages"]["node_modules/onnxruntime-web"]["version"] == version

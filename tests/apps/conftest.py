"""Fixtures of the app-bundle tests: one tiny Llama-style export for every app, bundled once."""

from __future__ import annotations

from pathlib import Path

import pytest

APPS = ("ios", "android", "web")
WEB_APP = Path(__file__).parents[2] / "sample_apps" / "web"


@pytest.fixture(scope="session")
def llama_export(student_dir, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama student exported for ios, android and web (in-process: one import)."""
    import edgekit

    out = tmp_path_factory.mktemp("bundle-export") / "out"
    config = edgekit.load_config(overrides=[
        f"model.path='{student_dir('llama')}'", "export.targets=['all']", f"export.out='{out}'",
        "validate.samples=1", "compress.quant='none'", "export.decode=false"])
    report = edgekit.run(config)
    assert report["summary"]["fail"] == 0
    return out


@pytest.fixture(scope="session")
def bundles(llama_export: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`edgekit bundle` of the tiny export for each app, by app name."""
    from edgekit.bundle import make_bundle

    root = tmp_path_factory.mktemp("bundles")
    made = {}
    for app in APPS:
        make_bundle(llama_export, app, root / app)
        made[app] = root / app
    return made


@pytest.fixture(scope="session")
def web_ready() -> None:
    """Chromium and the web app's npm packages, which .ci/run installs."""
    from cdp import CHROMIUM

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} missing: `apt-get install -y chromium` (.ci/run does this)")
    if not (WEB_APP / "node_modules" / "onnxruntime-web").is_dir():
        pytest.fail("sample_apps/web/node_modules missing: `npm ci` in sample_apps/web "
                    "(.ci/run does this)")

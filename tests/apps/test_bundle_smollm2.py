"""The built-in student end to end: SmolLM2-135M exported for every app, bundled, its golden
vectors re-run in edgekit's runtimes, and the web bundle run in Chromium (self-test and a
generation through its tokenizer.json). Minutes: marked slow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cdp import phone, serve

from edgekit.bundle import make_bundle, read_manifest, verify_bundle

REPO = Path(__file__).parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import edgekit

    root = tmp_path_factory.mktemp("smollm2")
    config = edgekit.load_config(overrides=["model.path='smollm2-135m'", "export.targets=['all']",
                                            f"export.out='{root / 'out'}'"])
    assert edgekit.run(config)["summary"]["fail"] == 0
    made = {}
    for app in ("ios", "android", "web"):
        manifest = make_bundle(root / "out", app, root / app)
        assert manifest["summary"]["fail"] == 0, manifest["artifacts"]
        made[app] = root / app
    return made


def test_smollm2_bundles_validate_and_reproduce(smollm2_bundles):
    import jsonschema

    schema = json.loads((REPO / "docs" / "bundle-manifest.schema.json").read_text())
    for app, bundle in smollm2_bundles.items():
        manifest = read_manifest(bundle)
        jsonschema.validate(manifest, schema)
        pre = manifest["preprocessing"]
        assert pre["tokenizer"] == "tokenizer.json" and pre["vocab_size"] == 49152
        assert pre["special_ids"]["eos"] == 2 and pre["files"][0] == "tokenizer/tokenizer.json"
        assert (bundle / "tokenizer" / "tokenizer.json").stat().st_size > 1_000_000
        for result in verify_bundle(bundle):
            assert result["verdict"] == "pass", (app, result)


def test_smollm2_runs_in_the_web_app(smollm2_bundles, tmp_path):
    app = REPO / "sample_apps" / "web"
    with serve(app, {"smol": smollm2_bundles["web"]}) as url, \
            phone(tmp_path / "profile", timeout=900) as page:
        page.call("Page.navigate", url=f"{url}index.html?bundle=smol/")
        state = page.wait_for("window.edgekit && (window.edgekit.demoReady || "
                              "window.edgekit.phase === 'error') && window.edgekit", timeout=900)
        assert state["selfTest"]["verdict"] == "PASS", state
        page.screenshot(tmp_path / "smollm2-selftest.png")
        page.evaluate("document.getElementById('prompt').value = 'The capital of France is'; "
                      "document.getElementById('run-demo').click()")
        page.wait_for("document.getElementById('demo').dataset.ids", timeout=900)
        text = page.evaluate("document.getElementById('demo-output').textContent")
        assert text.startswith("The capital of France is Paris"), text

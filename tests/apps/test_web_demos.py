"""The web app's encoder and vision demos in Chromium, checked against the same computation in
Python with ONNX Runtime: semantic search ranks sentences as mean-pooled embeddings do, and
classification of the page's canvas pixels, normalised as the manifest says, gives the same
top-5 classes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cdp import phone, serve
from test_web_app import APP, DONE

from edgekit.runtimes.onnxruntime import OnnxRuntimeSession


@pytest.fixture(scope="module")
def web_bundles(web_ready, student_dir, tmp_path_factory) -> dict[str, Path]:
    import edgekit
    from edgekit.bundle import make_bundle

    root = tmp_path_factory.mktemp("web-demos")
    made = {}
    for kind in ("bert", "resnet"):
        out = root / f"out-{kind}"
        edgekit.run(edgekit.load_config(overrides=[
            f"model.path='{student_dir(kind)}'", "export.targets=['web']", f"export.out='{out}'",
            "validate.samples=1", "compress.quant='none'"]))
        make_bundle(out, "web", root / kind)
        made[kind] = root / kind
    return made


def _session(bundle: Path) -> tuple[dict, OnnxRuntimeSession]:
    manifest = json.loads((bundle / "manifest.json").read_text())
    return manifest, OnnxRuntimeSession(bundle / manifest["artifacts"][0]["path"])


def _embed(manifest: dict, session: OnnxRuntimeSession, text: str) -> np.ndarray:
    seq = manifest["preprocessing"]["seq_len"]
    ids = list(text.encode())[:seq]
    input_ids = np.zeros((1, seq), dtype=np.int64)
    mask = np.zeros((1, seq), dtype=np.int64)
    input_ids[0, :len(ids)], mask[0, :len(ids)] = ids, 1
    states = session.run({"input_ids": input_ids, "attention_mask": mask})["last_hidden_state"]
    vector = states[0, :len(ids)].mean(axis=0)
    return vector / np.linalg.norm(vector)


@pytest.mark.slow  # two exports and two pages: about a minute
def test_search_and_classify_demos_match_python(web_bundles, tmp_path):
    with serve(APP, web_bundles) as url, phone(tmp_path / "profile") as page:
        page.call("Page.navigate", url=f"{url}index.html?bundle=bert/")
        page.wait_for(f"{DONE} && window.edgekit.demoReady", timeout=180)
        assert page.evaluate("window.edgekit.selfTest.verdict") == "PASS"
        query = "when does the museum open"
        page.evaluate(f"document.getElementById('prompt').value = '{query}'; "
                      "document.getElementById('run-demo').click()")
        ranked = page.wait_for("document.getElementById('demo').dataset.ids", timeout=60)
        sentences = page.evaluate("Array.from(document.querySelectorAll('#demo-output li'))"
                                  ".map(li => li.textContent.replace(/^\\S+\\s+/, ''))")
        manifest, session = _session(web_bundles["bert"])
        q = _embed(manifest, session, query)
        scores = {s: float(_embed(manifest, session, s) @ q) for s in sentences}
        assert sentences == sorted(sentences, key=lambda s: -scores[s]), (ranked, scores)
        page.screenshot(tmp_path / "web-search.png")

        page.call("Page.navigate", url=f"{url}index.html?bundle=resnet/")
        page.wait_for(f"{DONE} && window.edgekit.demoReady", timeout=180)
        assert page.evaluate("window.edgekit.selfTest.verdict") == "PASS"
        page.evaluate("document.getElementById('run-demo').click()")
        top = page.wait_for("document.getElementById('demo').dataset.ids", timeout=60)
        pixels = page.evaluate("Array.from(document.getElementById('image').getContext('2d')"
                               ".getImageData(0, 0, 64, 64).data)")
        manifest, session = _session(web_bundles["resnet"])
        pre = manifest["preprocessing"]
        rgb = np.asarray(pixels, dtype=np.float32).reshape(64, 64, 4)[..., :3].transpose(2, 0, 1)
        image = (rgb * pre["rescale"] - np.asarray(pre["mean"])[:, None, None]) \
            / np.asarray(pre["std"])[:, None, None]
        logits = session.run({"pixel_values": image[None].astype(np.float32)})["logits"][0]
        assert [int(i) for i in top.split(",")] == list(np.argsort(-logits)[:5])
        labels = page.evaluate("document.getElementById('demo-output').textContent")
        assert f"LABEL_{int(np.argmax(logits))}" in labels
        page.screenshot(tmp_path / "web-classify.png")

"""sample_apps/web for real: served on localhost, driven in headless Chromium through the
DevTools protocol as a phone (412x915 viewport, touch, 4x CPU throttling); the self-test
passes on a good bundle, fails visibly on damaged weights, and the demo generates the same
tokens as ONNX Runtime in Python."""

from __future__ import annotations

import json
import shutil
import struct
import time
from pathlib import Path

import numpy as np
from cdp import PHONE, phone, serve

APP = Path(__file__).parents[2] / "sample_apps" / "web"
DONE = "window.edgekit && ['done', 'error'].includes(window.edgekit.phase)"


def _png_size(path: Path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])


def _text(page) -> str:
    return page.evaluate("document.body.innerText")


def test_self_test_passes_on_a_phone_and_the_demo_generates(web_ready, bundles, tmp_path):
    with serve(APP, {"good": bundles["web"]}) as url, phone(tmp_path / "profile") as page:
        started = time.monotonic()
        page.call("Page.navigate", url=f"{url}index.html?bundle=good/")
        state = page.wait_for(f"{DONE} && window.edgekit", timeout=180)
        elapsed = time.monotonic() - started
        assert state["phase"] == "done", (state, page.console)
        result = state["selfTest"]
        assert result["verdict"] == "PASS", result
        assert result["metrics"]["max_rel"] < 1e-4 and result["metrics"]["top1_agreement"] == 1
        text = _text(page)
        assert "PASS" in text and "max error" in text and "sha256 ok" in text
        assert page.evaluate("document.body.dataset.selftest") == "PASS"
        assert page.evaluate("[innerWidth, matchMedia('(pointer: coarse)').matches]") == [
            PHONE["width"], True]
        shot = page.screenshot(tmp_path / "web-selftest-pass.png")
        assert _png_size(shot) == (round(PHONE["width"] * PHONE["deviceScaleFactor"]),
                                   round(PHONE["height"] * PHONE["deviceScaleFactor"]))

        page.evaluate("document.getElementById('prompt').value = 'The cat'; "
                      "document.getElementById('run-demo').click()")
        ids = page.wait_for("document.getElementById('demo').dataset.ids", timeout=120)
        browser_ids = [int(i) for i in ids.split(",")]
        assert browser_ids == _greedy(bundles["web"], "The cat", 16)
        print(f"web self-test PASS in {elapsed:.1f} s (Chromium, 4x CPU throttling), max_abs "
              f"{result['metrics']['max_abs']:.3g}, {result['runMs']:.0f} ms per run; "
              f"screenshot {shot}")


def _greedy(bundle: Path, prompt: str, steps: int) -> list[int]:
    """The demo's loop in Python with ONNX Runtime: bytes tokenizer, right-padded window,
    argmax at the last real position, stop at eos."""
    from edgekit.runtimes.onnxruntime import OnnxRuntimeSession

    manifest = json.loads((bundle / "manifest.json").read_text())
    pre = manifest["preprocessing"]
    session = OnnxRuntimeSession(bundle / manifest["artifacts"][0]["path"])
    ids = list(prompt.encode())
    generated = []
    for _ in range(steps):
        context = ids[-pre["seq_len"]:]
        window = np.full((1, pre["seq_len"]), pre["special_ids"].get("pad", 0), dtype=np.int64)
        window[0, :len(context)] = context
        logits = session.run({"input_ids": window})["logits"]
        token = int(logits[0, len(context) - 1].argmax())
        if token == pre["special_ids"].get("eos"):
            break
        ids.append(token)
        generated.append(token)
    return generated


def test_damaged_weights_and_unsafe_paths_fail_visibly(web_ready, bundles, tmp_path):
    from test_bundle import _damage_onnx_weights

    from edgekit.export import Artifact

    damaged = shutil.copytree(bundles["web"], tmp_path / "damaged")
    manifest = json.loads((damaged / "manifest.json").read_text())
    model = damaged / manifest["artifacts"][0]["path"]
    _damage_onnx_weights(model)
    # A second copy whose manifest vouches for the damaged file: only the numbers catch it.
    vouched = shutil.copytree(damaged, tmp_path / "vouched")
    manifest["artifacts"][0]["sha256"] = Artifact("onnx", model, "", "", (), ()).sha256()
    (vouched / "manifest.json").write_text(json.dumps(manifest))

    # And one whose manifest points outside the bundle: refused before anything is fetched.
    evil = shutil.copytree(bundles["web"], tmp_path / "evil")
    bad = json.loads((evil / "manifest.json").read_text())
    bad["golden"]["samples"][0]["inputs"][0]["path"] = "../good/golden/0/in-input_ids.bin"
    (evil / "manifest.json").write_text(json.dumps(bad))

    with serve(APP, {"damaged": damaged, "vouched": vouched, "evil": evil}) as url, \
            phone(tmp_path / "profile") as page:
        for name, reasons in (("damaged", ["sha256 differs", "max_rel"]), ("vouched", ["max_rel"])):
            page.call("Page.navigate", url=f"{url}index.html?bundle={name}/")
            state = page.wait_for(f"{DONE} && window.edgekit", timeout=180)
            assert state["phase"] == "done", (state, page.console)
            result = state["selfTest"]
            assert result["verdict"] == "FAIL" and all(r in result["reason"] for r in reasons)
            assert result["metrics"]["max_rel"] > 1e-2
            text = _text(page)
            assert "FAIL" in text and "max error" in text
            assert page.evaluate("getComputedStyle(document.getElementById('verdict'))"
                                 ".backgroundColor") == "rgb(255, 235, 233)"
            page.screenshot(tmp_path / f"web-selftest-{name}.png")
        assert ("sha256 ok" in text) and "MISMATCH" not in text  # the vouched copy's hash agrees
        page.call("Page.navigate", url=f"{url}index.html?bundle=evil/")
        state = page.wait_for(f"{DONE} && window.edgekit", timeout=60)
        assert state["phase"] == "error" and "escapes the bundle" in state["error"], state
        assert "FAIL" in _text(page)

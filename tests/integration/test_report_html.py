"""report.html of a real int4 export in headless Chromium: the summary first, then the plots,
the per-layer chart of the worst 20 layers with the rest folded; report.md in the same order.

The student is a 4-layer Llama-style decoder, so its int4 plan has 29 layers: more than the
chart draws. Chromium is Debian's package at /usr/bin/chromium; without it the test fails.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from students import tiny_llama

CHROMIUM = Path("/usr/bin/chromium")
WIDTH, HEIGHT = 1200, 2600


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m edgekit ARGS` (kept here: a conftest elsewhere can shadow `import helpers`)."""
    return subprocess.run([sys.executable, "-m", "edgekit", *args], capture_output=True,
                          text=True, timeout=900)


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with nothing fetched and no state kept outside `profile`."""
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: install Debian's package with "
                    "`apt-get update && apt-get install -y chromium` (.ci/run does this)")
    return subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120)


def pixels(image, color: str, opacity: float = 1.0):
    """Mask of the pixels within a small distance of `color` drawn at `opacity` over white."""
    import numpy as np

    rgb = np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)
    target = 255 - opacity * (255 - rgb)
    return (np.abs(image.astype(float) - target) <= 8).all(axis=-1)


@pytest.fixture(scope="module")
def int4_export(tmp_path_factory) -> Path:
    """An int4 export of the 4-layer student for the web target, with report.html rebuilt
    by `edgekit report` from its report.json."""
    tmp = tmp_path_factory.mktemp("int4-report")
    student = tiny_llama(tmp / "tiny-llama-4", layers=4)
    out = tmp / "out"
    exported = run_cli("export", "--model", str(student), "--target", "web", "--quant", "int4",
                       "--out", str(out), "--set", "validate.samples=1",
                       "--set", "export.decode=false")
    assert exported.returncode == 0, exported.stderr[-3000:]
    rendered = run_cli("report", str(out), "--format", "html")
    assert rendered.returncode == 0, rendered.stderr[-3000:]
    return out


def test_the_int4_report_json_has_a_plan_of_29_layers(int4_export: Path):
    report = json.loads((int4_export / "report.json").read_text())
    (recipe,) = report["compression"]
    assert len(recipe["plan"]["layers"]) == 29  # embedding (tied lm_head) + 4 x 7 linears


def test_report_md_puts_the_summary_first_and_ten_layers(int4_export: Path):
    text = (int4_export / "report.md").read_text()
    lines = text.splitlines()
    assert lines[2].startswith("**edgekit export parity passed**: 1 passed")
    first_table = next(i for i, line in enumerate(lines) if line.startswith("|"))
    assert lines[first_table].startswith("| target | format | runtime | quant | parity |")
    assert lines[first_table + 2].startswith("| web | onnx | onnxruntime | int4 | pass |")
    layers = text[text.index("## Per-layer error"):]
    assert len(re.findall(r"^\| \d+ \| `model\.", layers, flags=re.M)) == 10
    assert "19 more layers in report.json (`compression[0].plan.layers`)." in layers
    notes = text[text.index("## Notes"):text.index("## Per-layer error")]
    assert max(len(line) for line in notes.splitlines()) <= 200
    assert "{" not in notes


def test_html_report_renders_in_headless_chromium(int4_export: Path, tmp_path: Path):
    import numpy as np
    from PIL import Image

    from edgekit.report.html import LAYER_COLOR, SIZE_COLOR

    page = (int4_export / "report.html").resolve()
    dom = chromium(tmp_path / "profile", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    order = [dom.stdout.index(key) for key in ('class="status pass"', 'id="summary"',
                                               'id="plot-size"', 'id="notes"',
                                               'id="plot-layers"')]
    assert order == sorted(order), order
    chart = re.search(r'<svg[^>]*data-plot="layers-0".*?</svg>', dom.stdout, flags=re.S)
    assert chart is not None and chart.group(0).count("<rect") == 20
    folded = re.search(r"<details><summary>9 more layers</summary>(.*?)</details>",
                       dom.stdout, flags=re.S)
    assert folded is not None and folded.group(1).count("<tr>") == 1 + 9
    assert "<details open" not in dom.stdout  # folded until the reader opens it

    png = tmp_path / "report.png"
    shot = chromium(tmp_path / "profile", f"--screenshot={png}",
                    f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars", page.as_uri())
    assert shot.returncode == 0 and png.is_file(), shot.stderr[-2000:]
    image = np.asarray(Image.open(png).convert("RGB"))
    assert image.shape == (HEIGHT, WIDTH, 3)
    assert (image < 245).any(axis=-1).mean() > 0.03  # not a blank page
    size_rows = np.nonzero(pixels(image, SIZE_COLOR).any(axis=1))[0]
    layer_mask = pixels(image, LAYER_COLOR)
    layer_rows = np.nonzero(layer_mask.any(axis=1))[0]
    assert size_rows.size > 10 and layer_rows.size > 20 * 10, (size_rows.size, layer_rows.size)
    assert layer_rows.min() > size_rows.max()  # the per-layer chart is drawn below the plots
    # 20 bars, each 16 px tall at this width: separate runs of rows with bar pixels
    runs = 1 + int((np.diff(layer_rows) > 1).sum())
    assert runs == 20, runs

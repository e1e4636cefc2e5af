"""JUnit, Markdown and HTML rendered from small report dicts with checks."""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from test_checks import LATENCY, _artifact, _budgets, _report

from edgekit.report.checks import evaluate, format_number
from edgekit.report.files import FILES, write_reports
from edgekit.report.html import render_html
from edgekit.report.junit import render_junit
from edgekit.report.markdown import render_markdown


def _checked_report() -> dict:
    report = _report(_artifact("android", "onnx", 3 * 2**20, 2e-4, copy.deepcopy(LATENCY)),
                     _artifact("ios", "coreml", 2**20, None))
    report.update(edgekit_version="0.1.0",
                  model={"name": "m", "source": "/tmp/m", "task": "text-generation",
                         "parameters": 1000, "outputs": ["logits"],
                         "inputs": [{"name": "input_ids", "shape": [1, 64], "dtype": "int64"}]},
                  summary={"pass": 1, "fail": 0, "not_run": 1})
    checks = evaluate(report, _budgets("budgets.parity.max_rel=1e-4", "budgets.size.max_mib=4",
                                       "budgets.latency.measured_p50_ms=20"))
    report["checks"] = [c.to_json() for c in checks]
    return report


def test_junit_has_a_case_per_check_with_failures_and_skips():
    report = _checked_report()
    root = ET.fromstring(render_junit(report))
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("8", "1", "3")
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"edgekit.android", "edgekit.ios"}
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    failure = cases[("edgekit.android.onnx", "parity.max_rel")].find("failure")
    assert failure is not None
    assert failure.get("message") == ("max_rel 0.0002 over the budget 0.0001 "
                                      "(budgets.parity.max_rel) by 0.0001")
    assert "value 0.0002, budget 0.0001" in failure.text
    skipped = cases[("edgekit.ios.coreml", "parity.target")].find("skipped")
    assert skipped.get("message").endswith("Core ML runs only on Apple hardware")
    assert cases[("edgekit.android.onnx", "latency.measured_p50_ms")].find("failure") is None


def test_junit_of_an_export_report_lists_its_parity_verdicts():
    report = _checked_report()
    del report["checks"]
    root = ET.fromstring(render_junit(report))
    assert [c.get("name") for c in root.iter("testcase")] == ["parity.target", "parity.target"]


def test_markdown_has_a_status_line_a_checks_table_and_the_problems():
    text = render_markdown(_checked_report())
    assert "**edgekit check FAILED**: 4 passed, 1 failed, 3 not run" in text
    assert "| target | format | check | value | budget | verdict |" in text
    assert "| android | onnx | parity.max_rel | 0.0002 | 0.0001 | fail |" in text
    assert "| android | onnx | size.max_mib | 3 | 4 | pass |" in text
    assert "- **fail** android/onnx `parity.max_rel`: max_rel 0.0002 over the budget" in text
    report = _checked_report()
    del report["checks"]
    assert "## Checks" not in render_markdown(report)


def test_html_is_self_contained_with_four_plots():
    page = render_html(_checked_report())
    assert "<script" not in page and "<link" not in page and "src=" not in page
    for plot in ("size", "latency", "parity"):
        assert re.search(rf'<svg[^>]*data-plot="{plot}"', page), plot
    assert 'data-plot="layers">No per-layer error in this report:' in page
    assert 'class="status fail"' in page
    assert "measured on host (Test CPU, 4 threads)" in page
    # The estimated range and the measured dot are different marks.
    latency = re.search(r'<svg[^>]*data-plot="latency".*?</svg>', page, flags=re.S).group(0)
    assert 'fill="#f58518" fill-opacity="0.45"' in latency  # projected low-high bar
    assert '<circle' in latency and 'fill="#2a6f97"' in latency  # measured p50
    assert "est. 6-14, host 12 ms" in latency


def test_html_plots_per_layer_error_when_the_report_has_it():
    report = _checked_report()
    report["artifacts"][0]["layers"] = [
        {"name": "model.layers.0.mlp.down_proj", "precision": "int4", "error": 0.02},
        {"name": "model.layers.1.mlp.down_proj", "precision": "int8", "error": 0.005}]
    page = render_html(report)
    chart = re.search(r'<svg[^>]*data-plot="layers-0".*?</svg>', page, flags=re.S).group(0)
    assert "<title>model.layers.0.mlp.down_proj</title>layers.0.mlp.down_proj<" in chart
    assert ">int4, 0.02<" in chart and ">int8, 0.005<" in chart
    assert "No per-layer error" not in page
    markdown = render_markdown(report)
    assert "| 1 | `model.layers.0.mlp.down_proj` | int4 | 0.02 |" in markdown
    assert "Every layer is shown." in markdown


def test_html_without_latency_says_so_in_the_plot():
    report = _checked_report()
    for item in report["artifacts"]:
        item.pop("latency", None)
    page = render_html(report)
    assert 'data-plot="latency">No latency in this report yet' in page


def test_write_reports_leaves_only_complete_files(tmp_path: Path):
    written = write_reports(_checked_report(), tmp_path, FILES)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES.values())
    assert [p.name for p in written] == list(FILES.values())
    assert (tmp_path / "report.json").read_text().endswith("}\n")


def test_numbers_are_short_and_keep_the_digits_that_matter():
    assert [format_number(v) for v in (None, 0, 657198, 663769.98, 2.066e-07, 0.99,
                                       0.9999999999999792, 12.0, 1500.0)] == [
        "-", "0", "657198", "663770", "2.07e-07", "0.99", "1.000000", "12", "1500"]


def test_latency_table_keeps_host_and_estimated_columns_apart():
    report = _checked_report()
    report["artifacts"][1]["latency"] = {
        "measured": {"status": "not_run", "reason": "Core ML artifacts cannot be timed here"},
        "projected": dict(LATENCY["projected"], device="iphone-15-pro")}
    text = render_markdown(report)
    assert "Host columns are measured on host (Test CPU, 4 threads)" in text
    assert "| android | onnx | pixel-8 | 12 | 15 | 30 | 220 | 6 / 9 / 14 |" in text
    assert "| ios | coreml | iphone-15-pro | not run | - | - | - | 6 / 9 / 14 |" in text
    assert "- not run: Core ML artifacts cannot be timed here" in text
    assert "<h2>Latency</h2>" in render_html(report)
    for item in report["artifacts"]:
        del item["latency"]
    assert "## Latency" not in render_markdown(report)

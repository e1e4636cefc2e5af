"""`edgekit devices` and `edgekit bench` through the CLI on a tiny exported student (with its
decode artifacts). Orderings and labels only: no timed assertions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import read_report, run_cli


@pytest.fixture(scope="module")
def android_export(student_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "llama"
    result = run_cli("export", "--model", str(student_dir("llama")), "--target", "android",
                     "--decode", "--max-seq-len", "96", "--quant", "none", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_devices_lists_every_profile():
    result = run_cli("devices")
    assert result.returncode == 0, result.stderr
    for key in ("iphone-15-pro", "iphone-13", "iphone-se-3", "pixel-8", "galaxy-s24",
                "galaxy-s23", "poco-f5", "tecno-pova-6"):
        assert key in result.stdout
    rows = json.loads(run_cli("devices", "--json").stdout)
    assert len(rows) >= 8 and all(r["sources"] >= 3 for r in rows)


def test_export_records_measured_and_projected_latency(android_export: Path):
    for entry in read_report(android_export)["artifacts"]:
        measured, projected = entry["latency"]["measured"], entry["latency"]["projected"]
        assert measured["label"].startswith("measured on host (")
        assert measured["device"] == "pixel-8" and measured["iterations"] >= 1
        assert measured["p50_ms"] <= measured["p90_ms"]
        assert projected["label"] == "estimated" and projected["device"] == "pixel-8"
        assert projected["low_ms"] <= projected["mid_ms"] <= projected["high_ms"]
        assert projected["flops"] > 0 and projected["breakdown"]["matmul"]["ops"] >= 1


def test_bench_prints_measured_and_projected_for_several_devices(android_export: Path):
    result = run_cli("bench", str(android_export), "--iterations", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout
    assert text.count("measured on host (") == 5  # .pte, .onnx, .ort; decode .pte, -genai
    assert text.count("estimated on the phone") == 5
    for key in ("iphone-15-pro", "pixel-8", "galaxy-s24", "tecno-pova-6"):
        assert key in text
    assert text.count(", decode)") == 2 and text.count("tok/s (mid ") == 2 * 5


def test_bench_json_orders_phones(android_export: Path):
    pte = android_export / "android" / "tiny-llama.pte"
    result = run_cli("bench", str(pte), "--json", "--iterations", "2",
                     "--device", "galaxy-s24", "--device", "tecno-pova-6")
    assert result.returncode == 0, result.stderr[-3000:]
    (artifact,) = json.loads(result.stdout)["artifacts"]
    projected = artifact["projected"]
    assert projected["galaxy-s24"]["mid_ms"] < projected["tecno-pova-6"]["mid_ms"]
    assert artifact["measured"]["galaxy-s24"]["threads"] >= 1


@pytest.mark.parametrize("args, needle", [
    (["/nonexistent/model.pte"], "no such artifact"),
    (["--device", "nokia-3310", "{pte}"], "unknown device 'nokia-3310'"),
    (["--iterations", "0", "{pte}"], "--iterations must be at least 1"),
])
def test_bench_bad_input_is_one_line(android_export: Path, args: list[str], needle: str):
    pte = str(android_export / "android" / "tiny-llama.pte")
    result = run_cli("bench", *[a.replace("{pte}", pte) for a in args])
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("edgekit: error")]
    assert len(errors) == 1 and needle in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_bench_on_a_lone_pte_measures_and_says_why_it_cannot_project(android_export: Path,
                                                                     tmp_path: Path):
    lone = tmp_path / "lone.pte"
    lone.write_bytes((android_export / "android" / "tiny-llama.pte").read_bytes())
    result = run_cli("bench", str(lone), "--iterations", "1", "--device", "pixel-8")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "measured on host (" in result.stdout
    assert "not projected: " in result.stdout and "nothing to count FLOPs from" in result.stdout


def test_export_records_decode_latency_and_renders_it(android_export: Path):
    decode = read_report(android_export)["decode"]
    assert {d["format"] for d in decode} == {"executorch", "onnx"}
    for entry in decode:
        measured, projected = entry["latency"]["measured"], entry["latency"]["projected"]
        assert measured["label"].startswith("measured on host (")
        assert measured["prefill_ms"] > 0 and measured["decode_tok_s"] > 0
        assert projected["label"] == "estimated" and projected["device"] == "pixel-8"
        assert projected["prefill_tokens"] == measured["prompt_tokens"]
        rate = projected["decode_tok_s"]
        assert 0 < rate["low"] <= rate["mid"] <= rate["high"]
    markdown = (android_export / "report.md").read_text()
    assert "## Decode" in markdown and "android/decode/tiny-llama.pte" in markdown


def test_bench_decode_json_orders_phones(android_export: Path):
    genai = android_export / "android" / "decode" / "tiny-llama-genai"
    result = run_cli("bench", str(genai), "--json", "--device", "galaxy-s24",
                     "--device", "tecno-pova-6")
    assert result.returncode == 0, result.stderr[-3000:]
    (artifact,) = json.loads(result.stdout)["artifacts"]
    assert artifact["kind"] == "decode" and artifact["format"] == "onnx"
    measured = artifact["measured"]["galaxy-s24"]
    assert measured["prefill_ms"] > 0 and measured["decode_tok_s"] > 0
    fast, slow = artifact["projected"]["galaxy-s24"], artifact["projected"]["tecno-pova-6"]
    assert fast["decode_tok_s"]["mid"] > slow["decode_tok_s"]["mid"]
    assert fast["prefill_tokens"] == measured["prompt_tokens"]

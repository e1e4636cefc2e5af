"""`--device NAME|PATH.toml` on export, check, bench and generate with a profile written by
`edgekit devices --template`; decode-ready exports by default for text-generation students."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import read_report, run_cli

from edgekit.cli import main
from edgekit.devices import device_template

TEMPLATE = device_template()

# Three malformed profiles: an unknown key, a missing field, a string where a number belongs.
MALFORMED = {
    "unknown-key": (("ram_gib = 8", "ram_gib = 8\nram_gb = 8"), "ram_gb: unknown key"),
    "missing-field": (("threads = 4\n", ""), "threads: missing; add it"),
    "string-number": (("bandwidth_gbps = 34.1", 'bandwidth_gbps = "34.1 GB/s"'),
                      "memory.bandwidth_gbps: must be a number, got '34.1 GB/s'; write the "
                      "number without its unit"),
}


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("edgekit: error")]


@pytest.fixture(scope="module")
def my_phone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template as `edgekit devices --template > my-phone.toml` writes it."""
    result = run_cli("devices", "--template")
    assert result.returncode == 0, result.stderr
    assert result.stdout == TEMPLATE
    path = tmp_path_factory.mktemp("phones") / "my-phone.toml"
    path.write_text(result.stdout)
    return path


@pytest.fixture(scope="module")
def exported(student_dir, my_phone: Path, tmp_path_factory: pytest.TempPathFactory):
    """A forward-only web export of the tiny Llama for the template phone and the Pixel 8."""
    out = tmp_path_factory.mktemp("device-flag") / "out"
    result = run_cli("export", "--model", str(student_dir("llama")), "--target", "web",
                     "--quant", "none", "--forward-only", "--device", str(my_phone),
                     "--device", "pixel-8", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_profile_is_one_line_and_exit_2(student_dir, tmp_path: Path, capsys,
                                                     case: str):
    (old, new), needle = MALFORMED[case]
    profile = tmp_path / f"{case}.toml"
    profile.write_text(TEMPLATE.replace(old, new, 1))
    out, model = tmp_path / "out", str(student_dir("llama"))
    capsys.readouterr()
    code = main(["export", "--model", model, "--device", str(profile), "--out", str(out)])
    stderr = capsys.readouterr().err
    assert code == 2
    assert _error_lines(stderr) == stderr.strip().splitlines()
    assert len(_error_lines(stderr)) == 1
    assert f"edgekit: error: {profile}: {needle}" in stderr
    assert not out.exists()


@pytest.mark.parametrize("command", ["check", "bench", "generate"])
def test_every_device_flag_validates_the_profile(tmp_path: Path, capsys, command: str):
    (old, new), needle = MALFORMED["string-number"]
    profile = tmp_path / "phone.toml"
    profile.write_text(TEMPLATE.replace(old, new, 1))
    args = {"check": ["check", "--set", "model=unused", "--out", str(tmp_path / "out")],
            "bench": ["bench", str(tmp_path)],
            "generate": ["generate", str(tmp_path / "x.pte"), "--prompt-ids", "1,2"]}[command]
    assert main([*args, "--device", str(profile)]) == 2
    stderr = capsys.readouterr().err
    assert stderr == f"edgekit: error: {profile}: {needle}: {_meaning('bandwidth_gbps')}\n"


def _meaning(key: str) -> str:
    from edgekit.devices import Memory

    return str(Memory.model_fields[key].description)


def test_unknown_and_missing_devices_are_one_line(tmp_path: Path, capsys):
    assert main(["export", "--device", "nokia-3310", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith(
        "edgekit: error: unknown device 'nokia-3310' (known: galaxy-s23, galaxy-s24, ")
    assert main(["export", "--device", str(tmp_path / "mine.toml")]) == 2
    assert capsys.readouterr().err == (
        f"edgekit: error: {tmp_path / 'mine.toml'}: device profile not found; `edgekit "
        "devices --template > mine.toml` writes one to fill in\n")
    assert main(["generate", "x.pte", "--prompt-ids", "1", "--device", "pixel-8", "--device",
                 "iphone-13"]) == 2
    assert "--device given 2 times; a generation runs under one device profile" in \
        capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # argparse: not allowed together
        main(["export", "--forward-only", "--decode"])
    assert info.value.code == 2


def test_export_with_the_template_phone_names_it_in_the_report(exported, my_phone: Path):
    out, result = exported
    assert f"[edgekit] device my-phone: My phone ({my_phone})" in result.stderr
    assert f"[edgekit] {my_phone}: still holds the template's placeholder values" in \
        result.stderr
    report = read_report(out)
    assert "decode" not in report  # --forward-only
    rows = [(a["target"], a["format"], a["path"], a["latency"]["measured"]["device"],
             a["latency"]["projected"]["device"]) for a in report["artifacts"]]
    assert rows == [("web", "onnx", "web/tiny-llama.onnx", "my-phone", "my-phone"),
                    ("web", "onnx", "web/tiny-llama.onnx", "pixel-8", "pixel-8")]
    mine, pixel = report["artifacts"]
    assert mine["latency"]["measured"]["memory_budget_mib"] == 4096
    assert pixel["latency"]["measured"]["memory_budget_mib"] == 4096
    assert mine["parity"] == pixel["parity"]
    assert report["summary"] == {"pass": 2, "fail": 0, "not_run": 0}
    # the template phone is slower than the Pixel 8: 34.1 GB/s against 51.2
    assert mine["latency"]["projected"]["mid_ms"] > pixel["latency"]["projected"]["mid_ms"]
    assert "| web | onnx | my-phone |" in (out / "report.md").read_text()


def test_bench_with_the_template_phone(exported, my_phone: Path):
    out, _ = exported
    result = run_cli("bench", str(out / "web" / "tiny-llama.onnx"), "--device", str(my_phone),
                     "--iterations", "2", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    (artifact,) = json.loads(result.stdout)["artifacts"]
    assert list(artifact["measured"]) == list(artifact["projected"]) == ["my-phone"]
    assert artifact["projected"]["my-phone"]["device"] == "my-phone"


def test_check_holds_the_template_phone_to_its_device_budget(student_dir, my_phone: Path,
                                                             tmp_path: Path):
    out = tmp_path / "out"
    result = run_cli("check", "--set", f"model={student_dir('llama')}", "--set",
                     "export.targets=['web']", "--set", "compress.quant='none'", "--device",
                     str(my_phone), "--forward-only", "--set",
                     "budgets.devices.my-phone.latency.projected_high_ms=1e-6", "--out", str(out))
    assert result.returncode == 1, result.stderr[-3000:]
    (failed,) = [c for c in read_report(out)["checks"] if c["verdict"] == "fail"]
    assert (failed["name"], failed["target"], failed["format"]) == (
        "latency.projected_high_ms", "web", "onnx")
    assert "budgets.devices.my-phone.latency.projected_high_ms" in failed["message"]


def test_text_generation_students_export_decode_ready_by_default(student_dir, my_phone: Path,
                                                                 tmp_path: Path):
    out = tmp_path / "out"
    result = run_cli("export", "--model", str(student_dir("llama")), "--target", "web",
                     "--quant", "none", "--device", str(my_phone), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    (entry,) = read_report(out)["decode"]
    # max_seq_len: 512 capped at the tiny Llama's max_position_embeddings
    assert (entry["target"], entry["format"], entry["path"], entry["max_seq_len"]) == (
        "web", "onnx", "web/decode/tiny-llama-genai", 128)
    assert entry["parity"]["verdict"] == "pass"
    assert entry["latency"]["projected"]["device"] == "my-phone"
    generated = run_cli("generate", str(out / entry["path"]), "--prompt-ids", "1,5,7",
                        "--max-new-tokens", "3", "--device", str(my_phone), "--json")
    assert generated.returncode == 0, generated.stderr[-2000:]
    assert len(json.loads(generated.stdout)["tokens"]) == 3


def test_a_decoder_the_decode_exporters_refuse_keeps_its_forward_artifacts(student_dir,
                                                                           tmp_path: Path):
    out = tmp_path / "out"
    result = run_cli("export", "--model", str(student_dir("llama")), "--target", "web",
                     "--quant", "none", "--max-seq-len", "4096", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    report = read_report(out)
    assert report["summary"] == {"pass": 1, "fail": 0, "not_run": 0}
    assert report["decode"] == [{"target": "web", "format": "onnx", "parity": {
        "verdict": "not_run", "reason": "not exported decode-ready: tiny-llama: max_seq_len "
        "4096 must be in [2, 128] (max_position_embeddings); --forward-only skips decode"}}]
    asked = run_cli("export", "--model", str(student_dir("llama")), "--target", "web",
                    "--quant", "none", "--max-seq-len", "4096", "--decode", "--out",
                    str(tmp_path / "asked"))
    assert asked.returncode == 2
    assert _error_lines(asked.stderr) == ["edgekit: error: tiny-llama: max_seq_len 4096 must be "
                                          "in [2, 128] (max_position_embeddings)"]
    assert "[edgekit] export onnx" not in asked.stderr  # refused before any export
    assert not (tmp_path / "asked").exists()


def test_non_decoders_are_unaffected_unless_decode_is_asked_for(student_dir, tmp_path: Path):
    out = tmp_path / "out"
    result = run_cli("export", "--model", str(student_dir("bert")), "--target", "web",
                     "--quant", "none", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "decode" not in read_report(out)
    asked = run_cli("export", "--model", str(student_dir("bert")), "--target", "web",
                    "--decode", "--out", str(tmp_path / "asked"))
    assert asked.returncode == 2
    assert _error_lines(asked.stderr) == ["edgekit: error: --decode needs a decoder LM (task "
                                          "text-generation); tiny-bert is feature-extraction"]
    assert not (tmp_path / "asked").exists()

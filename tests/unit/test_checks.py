"""Budget checks and baseline regression on small report dicts defined here."""

from __future__ import annotations

import copy

import pytest

from edgekit.config import load_config
from edgekit.report.checks import MIB, checks_of, evaluate, exit_code


def _artifact(target: str, fmt: str, nbytes: int, max_rel: float | None,
              latency: dict | None = None) -> dict:
    if max_rel is None:
        parity = {"runtime": "coreml", "verdict": "not_run",
                  "reason": "Core ML runs only on Apple hardware", "metrics": {}}
    else:
        parity = {"runtime": "onnxruntime", "verdict": "pass",
                  "reason": "within tolerance (max_rel, cosine_min)",
                  "metrics": {"max_abs": max_rel * 3, "max_rel": max_rel, "cosine_min": 0.99999,
                              "sqnr_db": 120.0, "top1_agreement": 1.0}}
    item = {"target": target, "format": fmt, "path": f"{target}/m.{fmt}", "bytes": nbytes,
            "sha256": "0" * 64, "quant": "none", "runtime": parity["runtime"],
            "inputs": [{"name": "input_ids", "shape": [1, 64], "dtype": "int64"}],
            "outputs": ["logits"], "notes": {}, "parity": parity}
    if latency is not None:
        item["latency"] = latency
    return item


# The `latency` object `edgekit export` writes into each artifact (docs/report-schema.md),
# written here by hand because these are unit tests of the budget logic.
LATENCY = {
    "measured": {"label": "measured on host (Test CPU, 4 threads)", "device": "pixel-8",
                 "threads": 4, "load_ms": 30.0, "p50_ms": 12.0, "p90_ms": 15.0,
                 "peak_rss_mib": 220.0, "memory_budget_mib": 2048.0,
                 "over_memory_budget": False, "iterations": 5, "peak_rss_exact": True},
    "projected": {"label": "estimated", "device": "pixel-8", "compute_unit": "cpu",
                  "low_ms": 6.0, "mid_ms": 9.0, "high_ms": 14.0, "flops": 10**9,
                  "bytes": 10**7, "counted_from": "onnx graph m.onnx", "breakdown": {}},
}
CORE_ML_NOT_TIMED = {"status": "not_run", "reason": "Core ML artifacts cannot be timed here"}


def _report(*artifacts: dict) -> dict:
    return {"schema_version": 1, "created": "2026-11-23T04:00:00+00:00",
            "model": {"name": "m"}, "targets": sorted({a["target"] for a in artifacts}),
            "artifacts": list(artifacts)}


def _by_name(checks) -> dict[tuple[str, str, str], object]:
    return {(c.target, c.format, c.name): c for c in checks}


def _budgets(*sets: str):
    return load_config(None, list(sets)).budgets


def test_no_budgets_leaves_only_the_targets_parity_verdicts():
    report = _report(_artifact("web", "onnx", 1000, 2e-7), _artifact("ios", "coreml", 10, None))
    checks = evaluate(report, _budgets())
    assert [(c.target, c.name, c.verdict) for c in checks] == [
        ("web", "parity.target", "pass"), ("ios", "parity.target", "not_run")]
    assert exit_code([c.to_json() for c in checks]) == 0
    assert exit_code([c.to_json() for c in checks], fail_on_not_run=True) == 1


def test_parity_budgets_pass_fail_and_name_the_budget_and_the_overshoot():
    report = _report(_artifact("web", "onnx", 1000, 2e-4))
    checks = _by_name(evaluate(report, _budgets("budgets.parity.max_rel=1e-4",
                                                "budgets.parity.cosine_min=0.9999",
                                                "budgets.parity.sqnr_db_min=130")))
    max_rel = checks[("web", "onnx", "parity.max_rel")]
    assert (max_rel.verdict, max_rel.value, max_rel.budget) == ("fail", 2e-4, 1e-4)
    assert max_rel.message == ("max_rel 0.0002 over the budget 0.0001 "
                               "(budgets.parity.max_rel) by 0.0001")
    assert checks[("web", "onnx", "parity.cosine_min")].verdict == "pass"
    sqnr = checks[("web", "onnx", "parity.sqnr_db_min")]
    assert (sqnr.verdict, sqnr.metric, sqnr.value) == ("fail", "sqnr_db", 120.0)
    assert "under the budget 130" in sqnr.message


def test_per_format_budget_wins_over_the_general_one():
    report = _report(_artifact("android", "onnx", 3 * MIB, 1e-7),
                     _artifact("android", "executorch", 3 * MIB, 1e-7))
    checks = _by_name(evaluate(report, _budgets("budgets.size.max_mib=2",
                                                "budgets.formats.onnx.size.max_mib=4")))
    onnx = checks[("android", "onnx", "size.max_mib")]
    pte = checks[("android", "executorch", "size.max_mib")]
    assert (onnx.verdict, onnx.budget, onnx.value) == ("pass", 4.0, 3.0)
    assert "budgets.formats.onnx.size.max_mib" in onnx.message
    assert (pte.verdict, pte.budget) == ("fail", 2.0)
    assert "size 3 MiB over the budget 2 MiB (budgets.size.max_mib) by 1 MiB" in pte.message


def test_size_in_bytes():
    report = _report(_artifact("web", "onnx", 5000, 1e-7))
    check = evaluate(report, _budgets("budgets.size.max_bytes=4096"))[1]
    assert (check.name, check.metric, check.value, check.budget, check.verdict) == (
        "size.max_bytes", "bytes", 5000, 4096, "fail")


def test_parity_budget_on_an_artifact_that_did_not_run_is_not_run_with_the_reason():
    report = _report(_artifact("ios", "coreml", 10, None))
    check = evaluate(report, _budgets("budgets.parity.max_rel=1e-3"))[1]
    assert (check.verdict, check.value) == ("not_run", None)
    assert check.message == "parity not run: Core ML runs only on Apple hardware"


def test_non_finite_outputs_fail_every_parity_budget():
    item = _artifact("web", "onnx", 10, 1e-7)
    item["parity"] = {"runtime": "onnxruntime", "verdict": "fail",
                      "reason": "the artifact produced NaN or Inf", "metrics": {"non_finite": 1.0}}
    check = evaluate(_report(item), _budgets("budgets.parity.cosine_min=0.9"))[1]
    assert (check.verdict, check.message) == ("fail", "the artifact produced NaN or Inf")


def test_top1_budget_without_logits_is_not_run():
    item = _artifact("web", "onnx", 10, 1e-7)
    del item["parity"]["metrics"]["top1_agreement"]
    check = evaluate(_report(item), _budgets("budgets.parity.top1_min=0.9"))[1]
    assert check.verdict == "not_run"
    assert "logits" in check.message


def test_latency_budget_without_latency_in_the_report_is_not_run_never_pass():
    report = _report(_artifact("web", "onnx", 10, 1e-7))
    checks = evaluate(report, _budgets("budgets.latency.measured_p50_ms=1000",
                                       "budgets.memory.peak_rss_mib=1e6"))
    latency, memory = checks[1], checks[2]
    assert (latency.name, latency.verdict, latency.value) == (
        "latency.measured_p50_ms", "not_run", None)
    assert "no latency" in latency.message
    assert (memory.name, memory.verdict) == ("memory.peak_rss_mib", "not_run")


def test_latency_budgets_measured_and_projected_keep_their_labels():
    report = _report(_artifact("android", "executorch", 10, 1e-7, copy.deepcopy(LATENCY)))
    checks = _by_name(evaluate(report, _budgets(
        "budgets.latency.measured_p50_ms=10", "budgets.latency.measured_p90_ms=20",
        "budgets.latency.load_ms=50", "budgets.latency.projected_high_ms=20",
        "budgets.memory.peak_rss_mib=200")))
    p50 = checks[("android", "executorch", "latency.measured_p50_ms")]
    assert (p50.verdict, p50.value, p50.budget, p50.metric) == (
        "fail", 12.0, 10.0, "latency.measured.p50_ms")
    assert p50.message == ("p50_ms 12 ms over the budget 10 ms "
                           "(budgets.latency.measured_p50_ms) by 2 ms; "
                           "measured on host (Test CPU, 4 threads), pixel-8")
    high = checks[("android", "executorch", "latency.projected_high_ms")]
    assert high.verdict == "pass" and high.message.endswith("; estimated, pixel-8")
    assert checks[("android", "executorch", "latency.measured_p90_ms")].verdict == "pass"
    assert checks[("android", "executorch", "latency.load_ms")].verdict == "pass"
    memory = checks[("android", "executorch", "memory.peak_rss_mib")]
    assert (memory.verdict, memory.value) == ("fail", 220.0)


def test_device_budget_wins_for_its_device_and_an_unmatched_device_is_reported():
    report = _report(_artifact("android", "onnx", 10, 1e-7, copy.deepcopy(LATENCY)))
    checks = evaluate(report, _budgets(
        "budgets.latency.projected_mid_ms=5",
        "budgets.devices.pixel-8.latency.projected_mid_ms=10",
        "budgets.devices.galaxy-a15.latency.projected_mid_ms=1"))
    named = _by_name(checks)
    mid = named[("android", "onnx", "latency.projected_mid_ms")]
    assert (mid.verdict, mid.budget) == ("pass", 10.0)
    assert "budgets.devices.pixel-8.latency.projected_mid_ms" in mid.message
    unmatched = named[("-", "-", "devices.galaxy-a15")]
    assert unmatched.verdict == "not_run"
    assert "matches no artifact" in unmatched.message and "pixel-8" in unmatched.message


def test_device_budget_applies_through_the_targets_default_device_when_nothing_was_measured():
    report = _report(_artifact("android", "onnx", 10, 1e-7))
    checks = evaluate(report, _budgets("budgets.devices.pixel-8.latency.measured_p50_ms=5"),
                      devices={"android": "pixel-8"})
    assert [(c.name, c.verdict) for c in checks] == [
        ("parity.target", "pass"), ("latency.measured_p50_ms", "not_run")]
    assert "budgets.devices.pixel-8.latency.measured_p50_ms" in checks[1].message


def test_partial_latency_object_names_what_is_missing():
    latency = {"projected": dict(LATENCY["projected"])}
    report = _report(_artifact("web", "onnx", 10, 1e-7, latency))
    checks = _by_name(evaluate(report, _budgets("budgets.latency.measured_p50_ms=5",
                                                "budgets.latency.projected_high_ms=20")))
    measured = checks[("web", "onnx", "latency.measured_p50_ms")]
    assert measured.verdict == "not_run"
    assert "no measured latency" in measured.message
    assert checks[("web", "onnx", "latency.projected_high_ms")].verdict == "pass"


def test_regression_names_what_got_worse():
    old = _report(_artifact("android", "onnx", 1000, 1e-4, copy.deepcopy(LATENCY)))
    new = copy.deepcopy(old)
    item = new["artifacts"][0]
    item["bytes"] = 1020  # +2% > 1%
    item["parity"]["metrics"]["max_rel"] = 1.05e-4  # +5% < 10% (+ 1e-6)
    item["parity"]["metrics"]["cosine_min"] = 0.999  # dropped by ~1e-3 > 1e-5
    item["latency"]["measured"]["p50_ms"] = 15.0  # +25% > 20% + 0.5 ms
    item["latency"]["projected"]["mid_ms"] = 9.5
    config = load_config(None, [])
    checks = _by_name(evaluate(new, config.budgets, baseline=old, regression=config.regression))
    verdicts = {name: c.verdict for (_, _, name), c in checks.items()}
    assert verdicts == {
        "parity.target": "pass", "regression.max_rel": "pass",
        "regression.cosine_min": "fail", "regression.top1_agreement": "pass",
        "regression.bytes": "fail", "regression.latency.measured.p50_ms": "fail",
        "regression.latency.projected.mid_ms": "pass",
        "regression.latency.measured.peak_rss_mib": "pass"}
    size = checks[("android", "onnx", "regression.bytes")]
    assert size.message == ("regression: bytes grew from 1000 to 1020 "
                            "(allowed up to 1010: regression.size_growth 0.01)")
    p50 = checks[("android", "onnx", "regression.latency.measured.p50_ms")]
    assert (p50.value, p50.budget) == (15.0, pytest.approx(12.0 * 1.2 + 0.5))
    assert p50.message == (
        "regression: latency.measured.p50_ms grew from 12 to 15 (allowed up to 14.9: "
        "regression.latency_growth 0.2, regression.latency_slack_ms 0.5)")


def test_regression_margins_come_from_the_config():
    old = _report(_artifact("web", "onnx", 1000, 1e-4))
    new = copy.deepcopy(old)
    new["artifacts"][0]["bytes"] = 1500
    regression = load_config(None, ["regression.size_growth=0.6"]).regression
    check = _by_name(evaluate(new, _budgets(), baseline=old, regression=regression))[
        ("web", "onnx", "regression.bytes")]
    assert (check.verdict, check.budget) == ("pass", 1600.0)


def test_regression_without_values_or_counterpart_is_not_run():
    old = _report(_artifact("web", "onnx", 1000, 1e-4), _artifact("ios", "coreml", 9, None))
    new = _report(_artifact("web", "onnx", 1000, 1e-4), _artifact("android", "ort", 9, 1e-7))
    checks = evaluate(new, _budgets(), baseline=old)
    named = _by_name(checks)
    assert named[("web", "onnx", "regression.latency.measured.p50_ms")].verdict == "not_run"
    missing = named[("android", "ort", "regression")]
    assert (missing.verdict, missing.message) == (
        "not_run", "the baseline has no android/ort artifact")
    gone = named[("ios", "coreml", "regression")]
    assert gone.message == "ios/coreml is in the baseline but not in this run"


def test_regression_on_different_devices_is_not_compared():
    old = _report(_artifact("web", "onnx", 1000, 1e-4, copy.deepcopy(LATENCY)))
    new = copy.deepcopy(old)
    new["artifacts"][0]["latency"]["measured"]["device"] = "iphone-13"
    check = _by_name(evaluate(new, _budgets(), baseline=old))[
        ("web", "onnx", "regression.latency.measured.p50_ms")]
    assert check.verdict == "not_run"
    assert check.message == "measured on iphone-13, the baseline on pixel-8"


def test_checks_of_an_export_report_are_its_parity_verdicts():
    report = _report(_artifact("web", "onnx", 10, 1e-7), _artifact("ios", "coreml", 10, None))
    assert [(c["name"], c["verdict"]) for c in checks_of(report)] == [
        ("parity.target", "pass"), ("parity.target", "not_run")]
    report["checks"] = [{"name": "size.max_mib", "verdict": "fail"}]
    assert checks_of(report) == report["checks"]


def test_latency_part_that_was_not_run_gives_its_reason():
    latency = {"measured": dict(CORE_ML_NOT_TIMED), "projected": dict(LATENCY["projected"])}
    report = _report(_artifact("ios", "coreml", 10, None, latency))
    checks = _by_name(evaluate(report, _budgets(
        "budgets.devices.pixel-8.latency.measured_p50_ms=5",
        "budgets.latency.projected_mid_ms=5"), devices={"ios": "pixel-8"}))
    measured = checks[("ios", "coreml", "latency.measured_p50_ms")]
    assert measured.verdict == "not_run"
    assert measured.message == ("measured latency not run: Core ML artifacts cannot be timed "
                                "here; budget budgets.devices.pixel-8.latency.measured_p50_ms")
    assert checks[("ios", "coreml", "latency.projected_mid_ms")].verdict == "fail"


def test_within_device_budget_uses_the_profiles_app_memory_budget():
    fits = copy.deepcopy(LATENCY)
    killed = copy.deepcopy(LATENCY)
    killed["measured"].update(peak_rss_mib=3000.0, over_memory_budget=True)
    report = _report(_artifact("android", "onnx", 10, 1e-7, fits),
                     _artifact("android", "ort", 10, 1e-7, killed),
                     _artifact("ios", "coreml", 10, None, {"measured": CORE_ML_NOT_TIMED,
                                                           "projected": CORE_ML_NOT_TIMED}))
    checks = _by_name(evaluate(report, _budgets("budgets.memory.within_device_budget=true")))
    ok = checks[("android", "onnx", "memory.within_device_budget")]
    assert (ok.verdict, ok.value, ok.budget) == ("pass", 220.0, 2048.0)
    bad = checks[("android", "ort", "memory.within_device_budget")]
    assert bad.verdict == "fail"
    assert bad.message.endswith("would be killed on pixel-8")
    assert checks[("ios", "coreml", "memory.within_device_budget")].verdict == "not_run"
    off = _budgets("budgets.memory.within_device_budget=true",
                   "budgets.devices.pixel-8.memory.within_device_budget=false")
    assert not [c for c in evaluate(report, off) if c.name == "memory.within_device_budget"
                and c.target == "android"]


def test_tiny_absolute_changes_in_timing_and_memory_are_within_the_slack():
    old = _report(_artifact("web", "onnx", 1000, 1e-4, copy.deepcopy(LATENCY)))
    old["artifacts"][0]["latency"]["measured"].update(p50_ms=0.3, peak_rss_mib=0.0)
    new = copy.deepcopy(old)
    new["artifacts"][0]["latency"]["measured"].update(p50_ms=0.7, peak_rss_mib=0.05)
    checks = _by_name(evaluate(new, _budgets(), baseline=old))
    assert checks[("web", "onnx", "regression.latency.measured.p50_ms")].verdict == "pass"
    assert checks[("web", "onnx", "regression.latency.measured.peak_rss_mib")].verdict == "pass"

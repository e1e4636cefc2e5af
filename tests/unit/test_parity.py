import numpy as np

from edgekit.targets import Tolerance
from edgekit.validate.parity import ParityVerdict, compare, judge, verdict_under


def test_identical_outputs_have_perfect_metrics():
    ref = [{"logits": np.array([[[1.0, 2.0, 3.0], [3.0, 1.0, 0.0]]], dtype=np.float32)}]
    metrics = compare(ref, ref, logits=True)
    assert metrics == {"max_abs": 0.0, "max_rel": 0.0, "cosine_min": 1.0, "sqnr_db": 300.0,
                       "top1_agreement": 1.0}


def test_metrics_on_a_known_error():
    ref = [{"y": np.array([[3.0, 4.0]], dtype=np.float32)}]
    act = [{"y": np.array([[3.0, 4.5]], dtype=np.float32)}]
    metrics = compare(ref, act, logits=False)
    assert metrics["max_abs"] == 0.5
    assert metrics["max_rel"] == 0.125
    assert abs(metrics["sqnr_db"] - 10 * np.log10(25 / 0.25)) < 1e-9
    assert "top1_agreement" not in metrics


def test_top1_agreement_counts_positions():
    ref = [{"logits": np.array([[[0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])}]
    act = [{"logits": np.array([[[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]])}]
    assert compare(ref, act, logits=True)["top1_agreement"] == 0.75


def test_non_finite_outputs_fail():
    ref = [{"y": np.ones((2,), dtype=np.float32)}]
    act = [{"y": np.array([1.0, np.nan], dtype=np.float32)}]
    metrics = compare(ref, act, logits=False)
    assert judge(metrics, Tolerance(max_rel=1.0)) == ("fail", "the artifact produced NaN or Inf")


def test_judge_names_every_missed_threshold():
    metrics = {"max_abs": 1.0, "max_rel": 0.01, "cosine_min": 0.99, "sqnr_db": 20.0,
               "top1_agreement": 0.5}
    verdict, reason = judge(metrics, Tolerance(max_rel=1e-4, cosine_min=0.9999, top1_min=0.9))
    assert verdict == "fail"
    assert reason == ("max_rel 0.01 > 0.0001; cosine_min 0.990000 < 0.9999; "
                      "top1_agreement 0.500 < 0.9")
    assert judge(metrics, Tolerance(max_rel=0.1))[0] == "pass"


def test_not_run_and_run_failures_pass_through_unjudged():
    not_run = ParityVerdict("coreml", "not_run", "no runtime here")
    assert verdict_under(not_run, Tolerance(max_rel=1e-4)) is not_run
    measured = ParityVerdict("onnxruntime", "", "", {"max_rel": 1e-6, "cosine_min": 1.0,
                                                      "max_abs": 0.0, "sqnr_db": 120.0})
    judged = verdict_under(measured, Tolerance(max_rel=1e-4))
    assert (judged.verdict, judged.metrics) == ("pass", measured.metrics)

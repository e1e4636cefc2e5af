"""report.md and report.html as a person reads them: the summary table first, notes as short
lines, and only the worst layers of a SmolLM2-sized plan (the rest stay in report.json)."""

from __future__ import annotations

import copy
import re
from html import escape

from test_checks import LATENCY, _artifact, _report

from edgekit.report.digest import brief, precision_counts
from edgekit.report.html import render_html
from edgekit.report.markdown import render_markdown

PROJECTIONS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
UNDELEGATED = {"aten.alias_copy.default": 1, "aten.any.dim": 6, "aten.cat.default": 1,
               "aten.eq.Scalar": 6, "aten.expand_copy.default": 36,
               "aten.full_like.default": 6, "aten.logical_not.default": 12, "aten.mean.dim": 13,
               "aten.mul.Scalar": 12, "aten.unsqueeze_copy.default": 24,
               "aten.where.self": 6, "quantized_decomposed.embedding_4bit.default": 1}


def _smollm2_plan() -> dict:
    """A plan shaped like SmolLM2-135M's: 30 decoder layers of 7 linears, the embedding at
    int8, every down_proj promoted to int8, lm_head kept in fp32. Weight SQNR falls with the
    layer index, so the worst int4 layers are the last ones."""
    layers = [{"names": ["model.model.embed_tokens"], "kind": "embedding",
               "precision": "int8", "weight_sqnr_db": 45.0, "bytes": 100}]
    for block in range(30):
        for index, projection in enumerate(PROJECTIONS):
            int8 = projection == "mlp.down_proj"
            layers.append({"names": [f"model.model.layers.{block}.{projection}"],
                           "kind": "linear", "precision": "int8" if int8 else "int4",
                           "weight_sqnr_db": (44.0 if int8 else 25.0 - block * 0.1 - index
                                              * 0.01), "bytes": 100})
    layers.append({"names": ["model.lm_head"], "kind": "linear", "precision": "fp32",
                   "reason": "kept float (quantize.keep_float)"})
    return {"targets": ["android"], "quant": "int4", "prune": "",
            "plan": {"scheme": "int4", "layers": layers, "weight_bytes": 2**20 * 70,
                     "bits_per_weight": 4.9,
                     "settings": {"bits": 4, "group_size": 32, "method": "search",
                                  "keep_float": ["lm_head"]},
                     "mixed_precision": {
                         "measure": "KL", "measured_layers": 52, "planned_layers": 212,
                         "promoted": [f"model.model.layers.{b}.mlp.down_proj"
                                      for b in range(30)],
                         "all_4bit_error": 0.0488, "estimated_error": 0.02375,
                         "stop": "error budget met (0.5 of the all-4-bit error)"}}}


def _smollm2_report() -> dict:
    onnx = _artifact("android", "onnx", 3 * 2**20, 2e-4, copy.deepcopy(LATENCY))
    onnx["notes"] = {"opset": 18, "plan": {
        "quantized_ops": {f"model.model.layers.{b}.{p}": ["MatMulNBits"]
                          for b in range(30) for p in PROJECTIONS}, "kept_float": {}}}
    pte = _artifact("android", "executorch", 2**20, 3e-4)
    pte["parity"]["runtime"] = "executorch"
    pte["notes"] = {"backend": "XNNPACK", "undelegated_ops": dict(UNDELEGATED)}
    report = _report(onnx, pte)
    report.update(edgekit_version="0.1.0", compression=[_smollm2_plan()],
                  model={"name": "smollm2-135m", "source": "smollm2-135m",
                         "task": "text-generation", "parameters": 134515008,
                         "outputs": ["logits"],
                         "inputs": [{"name": "input_ids", "shape": [1, 64], "dtype": "int64"}]})
    for item in report["artifacts"]:
        item["quant"] = "int4"
    return report


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def test_markdown_starts_with_the_status_line_and_one_summary_table():
    text = render_markdown(_smollm2_report())
    lines = text.splitlines()
    assert lines[:3] == ["# edgekit report: smollm2-135m", "",
                         "**edgekit export parity passed**: 2 passed, 0 failed, 0 not run"]
    first_table = next(i for i, line in enumerate(lines) if line.startswith("|"))
    assert lines[first_table:first_table + 4] == [
        "| target | format | runtime | quant | parity | top1 | cosine | max_rel | size | "
        "host p50 ms (measured) | phone ms (estimated) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        "| android | onnx | onnxruntime | int4 | pass | 1.000 | 0.999990 | 2.00e-04 | "
        "3.0 MiB | 12 | 6-14 on pixel-8 |",
        "| android | executorch | executorch/xnnpack | int4 | pass | 1.000 | 0.999990 | "
        "3.00e-04 | 1.0 MiB | - | - |"]
    assert text.index("## Notes") < text.index("## Per-layer error")


def test_markdown_notes_are_short_lines_with_collections_as_counts():
    notes = _section(render_markdown(_smollm2_report()), "Notes")
    bullets = [line for line in notes.splitlines() if line.startswith("- ")]
    assert max(len(line) for line in notes.splitlines()) <= 200
    assert "{" not in notes and "[" not in notes.replace("[1, 64]", "")
    assert ("- int4 plan: for android: int4 on 180 layers, int8 on 31, fp32 on 1 (lm_head); "
            "4.90 bits per weight; 70.0 MiB of weights") in bullets
    assert "- int4 plan settings: bits 4, group_size 32, method search, keep_float lm_head" \
        in bullets
    assert ("- int4 plan mixed precision: KL on 52 of 212 layers; promoted 30 "
            "(layers.0.mlp.down_proj, layers.1.mlp.down_proj and 28 more); "
            "error 0.0488 all 4-bit -> 0.02375") in bullets
    assert ("- int4 plan mixed precision stopped: error budget met (0.5 of the all-4-bit "
            "error)") in bullets
    assert "- onnx (android) plan.quantized_ops: 210 layers: MatMulNBits on 210" in bullets
    assert "- onnx (android) plan.kept_float: none" in bullets
    assert ("- executorch (android) undelegated_ops: 12 kinds, 124 in all: "
            "aten.expand_copy.default 36, aten.unsqueeze_copy.default 24, aten.mean.dim 13, "
            "aten.logical_not.default 12, aten.mul.Scalar 12 and 7 more") in bullets
    assert ("- parity pass: within tolerance (max_rel, cosine_min): android/onnx, "
            "android/executorch") in bullets


def test_markdown_lists_the_ten_worst_layers_and_counts_the_rest():
    layers = _section(render_markdown(_smollm2_report()), "Per-layer error")
    rows = [line for line in layers.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) == 10
    assert rows[0] == ("| 1 | `model.model.layers.29.mlp.up_proj` | int4 | 22.1 | 0.07898 | - |")
    assert rows[1].startswith("| 2 | `model.model.layers.29.mlp.gate_proj` | int4 | 22.1 |")
    assert rows[9].startswith("| 10 | `model.model.layers.28.self_attn.v_proj` | int4 |")
    assert ("| # | layer | precision | weight SQNR dB | relative weight error | "
            "output KL at 4 bits |") in layers
    assert "Worst 10 of 211 layers by weight SQNR (lowest first)." in layers
    assert "201 more layers in report.json (`compression[0].plan.layers`)." in layers


def test_html_keeps_the_order_and_draws_the_twenty_worst_layers():
    page = render_html(_smollm2_report())
    order = [page.index(key) for key in ('class="status pass"', 'id="summary"',
                                         'id="plot-size"', 'id="plot-parity"', 'id="notes"',
                                         'id="plot-layers"')]
    assert order == sorted(order)
    chart = re.search(r'<svg[^>]*data-plot="layers-0".*?</svg>', page, flags=re.S).group(0)
    assert chart.count("<rect") == 20
    # the others: two size bars and one estimated latency range; never 211 layer bars
    assert page.count("<rect") == 20 + 2 + 1
    assert ">layers.29.mlp.up_proj<" in chart
    assert "<title>model.model.layers.29.mlp.up_proj</title>" in chart
    folded = re.search(r"<details><summary>191 more layers</summary>(.*?)</details>", page,
                       flags=re.S).group(1)
    assert folded.count("<tr>") == 1 + 191
    assert "<td>21</td><td>model.model.layers.26.self_attn.o_proj</td>" in folded
    assert "Worst 20 of 211 layers by weight SQNR (lowest first)" in page


def test_a_failed_artifact_lists_its_localization_worst_first():
    report = _smollm2_report()
    del report["compression"]
    parity = report["artifacts"][0]["parity"]
    parity.update(verdict="fail", reason="max_rel 0.3 > 0.01", localization={
        "cause": "quantization", "layer": "model.model.layers.3.mlp.down_proj",
        "reason": "its own quantization error is the largest",
        "errors": {"model.model.layers.1.mlp.down_proj": 0.02,
                   "model.model.layers.3.mlp.down_proj": 0.31,
                   "model.model.layers.2.mlp.down_proj": 0.07}})
    text = render_markdown(report)
    assert text.splitlines()[2] == "**edgekit export parity FAILED**: 1 passed, 1 failed, 0 not run"
    assert ("- android/onnx localization: cause quantization, layer "
            "model.model.layers.3.mlp.down_proj: its own quantization error is the largest") \
        in text
    layers = _section(text, "Per-layer error")
    assert "### android/onnx: where parity failed (quantization)" in layers
    assert [line.split(" | ")[1] for line in layers.splitlines()
            if re.match(r"\| \d+ \|", line)] == [
        "`model.model.layers.3.mlp.down_proj`", "`model.model.layers.2.mlp.down_proj`",
        "`model.model.layers.1.mlp.down_proj`"]
    assert "Every layer is shown." in layers
    assert 'data-plot="layers-0"' in render_html(report)


def test_without_per_layer_data_both_pages_say_so():
    report = _smollm2_report()
    del report["compression"]
    expected = ("No per-layer error in this report: it is recorded for quantization plans and "
                "for artifacts that failed parity, and this run's quant is int4.")
    assert expected in _section(render_markdown(report), "Per-layer error")
    assert (f'<div class="nodata" data-plot="layers">{escape(expected)}</div>'
            in render_html(report))


def test_brief_summarises_without_dumping():
    assert brief({}) == "none"
    assert brief([]) == "none"
    assert brief({"ran": True, "suitability": {"NNAPI": "NO"}, "log": ["a", "b"]}) == (
        "ran true, suitability NNAPI NO, log in report.json")
    assert brief(["one", "two", "three", "four", "five"]) == "one; two; three and 2 more"
    assert brief({"pow": 13, "add": 13}) == "add 13, pow 13"
    assert len(brief(dict(UNDELEGATED), 80)) <= 80
    assert precision_counts([{"names": ["model.lm_head"], "precision": "fp32"},
                             {"names": ["a"], "precision": "int4"},
                             {"names": ["b"], "precision": "int4"},
                             {"names": ["c"], "precision": "int4"}]) == (
        "int4 on 3 layers, fp32 on 1 (lm_head)")

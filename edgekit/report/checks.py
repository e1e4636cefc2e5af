"""Budget checks and baseline regression, evaluated on a report.json.

Every check is one (target, format, check) with the value read from the report, the budget
it was held to, and a verdict: `pass`, `fail`, or `not_run` when the report has no value to
judge (a check never passes without a value). `edgekit check` adds them to report.json as
`checks`; JUnit, Markdown and HTML are rendered from that list.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from edgekit.config import (
    BudgetsConfig,
    LatencyBudget,
    MemoryBudget,
    ParityBudget,
    RegressionConfig,
    SizeBudget,
)

MIB = 1024 * 1024

# Parity budget key -> (report metric, True when the budget is an upper bound).
PARITY_KEYS: dict[str, tuple[str, bool]] = {
    "max_rel": ("max_rel", True),
    "max_abs": ("max_abs", True),
    "cosine_min": ("cosine_min", False),
    "sqnr_db_min": ("sqnr_db", False),
    "top1_min": ("top1_agreement", False),
}
# Latency budget key -> (part of the artifact's `latency` object, field in it).
LATENCY_KEYS: dict[str, tuple[str, str]] = {
    "measured_p50_ms": ("measured", "p50_ms"),
    "measured_p90_ms": ("measured", "p90_ms"),
    "load_ms": ("measured", "load_ms"),
    "projected_mid_ms": ("projected", "mid_ms"),
    "projected_high_ms": ("projected", "high_ms"),
}
MEMORY_KEYS: dict[str, tuple[str, str]] = {"peak_rss_mib": ("measured", "peak_rss_mib")}
_UNITS = {"ms": " ms", "mib": " MiB", "bytes": " B"}


@dataclass(frozen=True)
class Check:
    """One budget or regression check on one artifact."""

    name: str  # e.g. parity.max_rel, size.max_mib, latency.measured_p50_ms, regression.bytes
    target: str  # "-" for a check that belongs to no artifact
    format: str
    metric: str  # the report field judged, e.g. max_rel, bytes, latency.measured.p50_ms
    value: float | int | None
    budget: float | int | None
    verdict: str  # pass | fail | not_run
    message: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def evaluate(
    report: dict[str, Any],
    budgets: BudgetsConfig,
    devices: dict[str, str] | None = None,
    baseline: dict[str, Any] | None = None,
    regression: RegressionConfig | None = None,
) -> list[Check]:
    """Every check of `report` against `budgets` and, when given, against `baseline`.

    Args:
        report: a report.json document (from `edgekit.pipeline.run` or read from disk).
        budgets: the `[budgets]` section.
        devices: target name -> its default device, used for `[budgets.devices.<d>]` when an
            artifact carries no latency (so the check is reported as not run, not dropped).
        baseline: an earlier report.json to compare against, or None.
        regression: margins for the baseline comparison (defaults when None).

    Returns:
        Per artifact, in report order: the target's parity verdict, then parity, size,
        latency and memory budgets, then regression checks; last, device budgets that
        matched no artifact (not run).
    """
    devices = devices or {}
    checks: list[Check] = []
    used_devices: set[str] = set()
    for item in report["artifacts"]:
        checks.append(tolerance_check(item))
        checks += _parity_checks(item, budgets)
        checks += _size_checks(item, budgets)
        latency_checks, seen = _latency_checks(item, budgets, devices.get(item["target"]))
        checks += latency_checks
        checks += _device_memory_checks(item, budgets, devices.get(item["target"]))
        used_devices |= seen
        if baseline is not None:
            checks += regression_checks(item, baseline, regression or RegressionConfig())
    if baseline is not None:
        checks += _baseline_only(report, baseline)
    for device, budget in budgets.devices.items():
        if device not in used_devices and _set_keys(budget.latency, budget.memory):
            known = ", ".join(sorted(used_devices)) or "none"
            checks.append(Check(f"devices.{device}", "-", "-", "device", None, None, "not_run",
                                f"[budgets.devices.{device}] matches no artifact of this run "
                                f"(devices in this run: {known})"))
    return checks


def checks_of(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's `checks`; for a report written by `edgekit export`, its parity verdicts."""
    if "checks" in report:
        return list(report["checks"])
    return [tolerance_check(item).to_json() for item in report["artifacts"]]


def exit_code(checks: Iterable[dict[str, Any]], fail_on_not_run: bool = False) -> int:
    """1 when a check failed (or, with `fail_on_not_run`, could not run), else 0."""
    bad = {"fail", "not_run"} if fail_on_not_run else {"fail"}
    return 1 if any(c["verdict"] in bad for c in checks) else 0


def counts(checks: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Number of checks per verdict."""
    verdicts = [c["verdict"] for c in checks]
    return {v: verdicts.count(v) for v in ("pass", "fail", "not_run")}


def tolerance_check(item: dict[str, Any]) -> Check:
    """The artifact's parity verdict under its target's tolerances, as a check."""
    parity = item["parity"]
    return Check("parity.target", item["target"], item["format"], "verdict", None, None,
                 parity["verdict"], f"{item['target']} tolerances, {parity['runtime']}: "
                                    f"{parity['reason']}")


def _parity_checks(item: dict[str, Any], budgets: BudgetsConfig) -> list[Check]:
    override = budgets.formats.get(item["format"])
    parity = item["parity"]
    metrics = parity["metrics"]
    checks = []
    for key, (metric, upper) in PARITY_KEYS.items():
        limit, source = _limit(key, "parity", budgets.parity,
                               override.parity if override else None, item["format"])
        if limit is None:
            continue
        name = f"parity.{key}"
        if parity["verdict"] == "not_run":
            checks.append(_not_run(name, item, metric, limit, f"parity not run: "
                                                              f"{parity['reason']}"))
        elif metrics.get("non_finite"):
            checks.append(Check(name, item["target"], item["format"], metric, None, limit,
                                "fail", "the artifact produced NaN or Inf"))
        elif metric not in metrics:
            why = ("top1_agreement is measured only for a student with a 'logits' output"
                   if metrics else f"no metrics: {parity['reason']}")
            checks.append(_not_run(name, item, metric, limit, why))
        else:
            checks.append(_judge(name, item, metric, float(metrics[metric]), limit, upper,
                                 source))
    return checks


def _size_checks(item: dict[str, Any], budgets: BudgetsConfig) -> list[Check]:
    override = budgets.formats.get(item["format"])
    checks = []
    for key, metric, value, unit in (("max_bytes", "bytes", item["bytes"], "bytes"),
                                     ("max_mib", "size_mib", item["bytes"] / MIB, "mib")):
        limit, source = _limit(key, "size", budgets.size,
                               override.size if override else None, item["format"])
        if limit is not None:
            checks.append(_judge(f"size.{key}", item, metric, value, limit, True, source,
                                 unit=unit, label="size"))
    return checks


def _latency_checks(item: dict[str, Any], budgets: BudgetsConfig,
                    default_device: str | None) -> tuple[list[Check], set[str]]:
    latency = item.get("latency")
    checks = []
    seen: set[str] = set()
    for kind, keys, section in (("latency", LATENCY_KEYS, "latency"),
                                ("memory", MEMORY_KEYS, "memory")):
        for key, (part_name, field_name) in keys.items():
            part = latency.get(part_name) if isinstance(latency, dict) else None
            device = (part.get("device") if isinstance(part, dict) else None) or default_device
            if device:
                seen.add(device)
            device_budget = budgets.devices.get(device) if device else None
            limit, source = _limit(key, section, getattr(budgets, section),
                                   getattr(device_budget, section) if device_budget else None,
                                   device or "", scope="devices")
            if limit is None:
                continue
            name, metric = f"{kind}.{key}", f"latency.{part_name}.{field_name}"
            unit = "mib" if kind == "memory" else "ms"
            if not isinstance(latency, dict):
                why = "the report has no latency for this artifact (nothing was measured)"
            elif not isinstance(part, dict):
                why = f"the report has no {part_name} latency for this artifact"
            elif part.get("status") == "not_run":
                why = f"{part_name} latency not run: {part.get('reason', 'no reason given')}"
            elif not isinstance(part.get(field_name), int | float):
                why = f"latency.{part_name} has no {field_name}"
            else:
                where = f"{part.get('label', part_name)}, {device}"
                checks.append(_judge(name, item, metric, float(part[field_name]), limit, True,
                                     source, unit=unit, context=where))
                continue
            checks.append(_not_run(name, item, metric, limit, f"{why}; budget {source}"))
    return checks, seen


def _device_memory_checks(item: dict[str, Any], budgets: BudgetsConfig,
                          default_device: str | None) -> list[Check]:
    """`within_device_budget`: the measured peak against the device profile's app budget."""
    measured = _part(item, "measured")
    device = (measured or {}).get("device") or default_device
    override = budgets.devices.get(device) if device else None
    wanted, source = _limit("within_device_budget", "memory", budgets.memory,
                            override.memory if override else None, device or "",
                            scope="devices")
    if not wanted:
        return []
    name, metric = "memory.within_device_budget", "latency.measured.peak_rss_mib"
    if measured is None or measured.get("status") == "not_run":
        why = (f"measured latency not run: {measured.get('reason')}" if measured else
               "the report has no measured latency for this artifact")
        return [_not_run(name, item, metric, None, f"{why}; {source}")]
    peak, limit = measured.get("peak_rss_mib"), measured.get("memory_budget_mib")
    if not isinstance(peak, int | float) or not isinstance(limit, int | float):
        return [_not_run(name, item, metric, None, "latency.measured has no peak_rss_mib "
                                                   f"or memory_budget_mib; {source}")]
    over = bool(measured.get("over_memory_budget", peak > limit))
    message = (f"peak {_num(peak)} MiB {'over' if over else 'within'} {device}'s app memory "
               f"budget {_num(limit)} MiB ({source})")
    if over:
        message += f": would be killed on {device}"
    return [Check(name, item["target"], item["format"], metric, float(peak), float(limit),
                  "fail" if over else "pass", message)]


def regression_checks(item: dict[str, Any], baseline: dict[str, Any],
                      margins: RegressionConfig) -> list[Check]:
    """Checks that `item` is no worse than the same target/format in `baseline`."""
    old = _find(baseline, item["target"], item["format"])
    if old is None:
        return [_not_run("regression", item, "artifact", None,
                         f"the baseline has no {item['target']}/{item['format']} artifact")]
    checks = []
    new_m, old_m = _metrics(item), _metrics(old)
    for metric, growth, slack, upper, how in (
        ("max_rel", margins.max_rel_growth, margins.max_rel_slack, True,
         f"regression.max_rel_growth {margins.max_rel_growth:g}, "
         f"regression.max_rel_slack {margins.max_rel_slack:g}"),
        ("cosine_min", 0.0, margins.cosine_drop, False,
         f"regression.cosine_drop {margins.cosine_drop:g}"),
        ("top1_agreement", 0.0, margins.top1_drop, False,
         f"regression.top1_drop {margins.top1_drop:g}"),
    ):
        if metric == "top1_agreement" and metric not in new_m and metric not in old_m:
            continue
        checks.append(_regression(item, metric, new_m.get(metric), old_m.get(metric),
                                  growth, slack, upper, how))
    checks.append(_regression(item, "bytes", item["bytes"], old["bytes"],
                              margins.size_growth, 0.0, True,
                              f"regression.size_growth {margins.size_growth:g}"))
    latency = (margins.latency_growth, margins.latency_slack_ms, "latency", "ms")
    memory = (margins.memory_growth, margins.memory_slack_mib, "memory", "mib")
    for part_name, field_name, (growth, slack, kind, unit) in (
        ("measured", "p50_ms", latency), ("projected", "mid_ms", latency),
        ("measured", "peak_rss_mib", memory),
    ):
        new_part, old_part = _part(item, part_name), _part(old, part_name)
        metric = f"latency.{part_name}.{field_name}"
        if new_part and old_part and new_part.get("device") != old_part.get("device"):
            checks.append(_not_run(f"regression.{metric}", item, metric, None,
                                   f"{part_name} on {new_part.get('device')}, the baseline "
                                   f"on {old_part.get('device')}"))
            continue
        reasons = [f" ({side} {part_name} latency not run: {p['reason']})"
                   for side, p in (("this run's", new_part), ("the baseline's", old_part))
                   if p and p.get("status") == "not_run"]
        checks.append(_regression(
            item, metric, (new_part or {}).get(field_name), (old_part or {}).get(field_name),
            growth, slack, True, f"regression.{kind}_growth {growth:g}, "
                                 f"regression.{kind}_slack_{unit} {slack:g}",
            reason=reasons[0] if reasons else ""))
    return checks


def _baseline_only(report: dict[str, Any], baseline: dict[str, Any]) -> list[Check]:
    current = {(a["target"], a["format"]) for a in report["artifacts"]}
    return [Check("regression", a["target"], a["format"], "artifact", None, None, "not_run",
                  f"{a['target']}/{a['format']} is in the baseline but not in this run")
            for a in baseline.get("artifacts", [])
            if (a.get("target"), a.get("format")) not in current]


def _regression(item: dict[str, Any], metric: str, new: Any, old: Any, growth: float,
                slack: float, upper: bool, how: str, reason: str = "") -> Check:
    """`new` against `old`: an upper bound may grow to old * (1 + growth) + slack, a lower
    bound may drop to old - slack."""
    name = f"regression.{metric}"
    if not isinstance(new, int | float) or not isinstance(old, int | float):
        missing = "this run" if not isinstance(new, int | float) else "the baseline"
        return _not_run(name, item, metric, None, f"no {metric} in {missing}{reason}")
    allowed = float(old) * (1 + growth) + slack if upper else float(old) - slack
    worse = new > allowed if upper else new < allowed
    direction = ("grew" if new > old else "shrank") if new != old else "is unchanged"
    change = f"{metric} {direction} from {_num(old)} to {_num(new)}" if new != old else \
        f"{metric} is unchanged at {_num(new)}"
    bound = "up to" if upper else "down to"
    message = f"{change} (allowed {bound} {_num(allowed)}: {how})"
    if worse:
        message = f"regression: {message}"
    return Check(name, item["target"], item["format"], metric, new, allowed,
                 "fail" if worse else "pass", message)


def _judge(name: str, item: dict[str, Any], metric: str, value: float | int, limit: float,
           upper: bool, source: str, unit: str = "", context: str = "",
           label: str = "") -> Check:
    ok = value <= limit if upper else value >= limit
    suffix = _UNITS.get(unit, "")
    shown = f"{label or metric.rsplit('.', 1)[-1]} {_num(value)}{suffix}"
    if ok:
        message = f"{shown} {'<=' if upper else '>='} {_num(limit)}{suffix} ({source})"
    else:
        by = value - limit if upper else limit - value
        message = (f"{shown} {'over' if upper else 'under'} the budget {_num(limit)}{suffix} "
                   f"({source}) by {_num(by)}{suffix}")
    if context:
        message += f"; {context}"
    return Check(name, item["target"], item["format"], metric, value, limit,
                 "pass" if ok else "fail", message)


def _not_run(name: str, item: dict[str, Any], metric: str, limit: float | int | None,
             why: str) -> Check:
    return Check(name, item["target"], item["format"], metric, None, limit, "not_run", why)


def _limit(key: str, section: str, general: Any, specific: Any, scope_name: str,
           scope: str = "formats") -> tuple[Any, str]:
    """The budget for `key`: the per-format (or per-device) one when set, else the general."""
    if specific is not None and getattr(specific, key) is not None:
        return getattr(specific, key), f"budgets.{scope}.{scope_name}.{section}.{key}"
    return getattr(general, key), f"budgets.{section}.{key}"


def _set_keys(*budgets: LatencyBudget | MemoryBudget | ParityBudget | SizeBudget) -> bool:
    return any(v is not None for b in budgets for v in dataclasses.asdict(b).values())


def _find(report: dict[str, Any], target: str, fmt: str) -> dict[str, Any] | None:
    for item in report.get("artifacts", []):
        if item.get("target") == target and item.get("format") == fmt:
            return dict(item)
    return None


def _metrics(item: dict[str, Any]) -> dict[str, Any]:
    parity = item.get("parity") or {}
    metrics = parity.get("metrics") or {}
    return {} if metrics.get("non_finite") else dict(metrics)


def _part(item: dict[str, Any], name: str) -> dict[str, Any] | None:
    latency = item.get("latency")
    part = latency.get(name) if isinstance(latency, dict) else None
    return part if isinstance(part, dict) else None


def _num(value: float | int) -> str:
    """A number short enough for a table cell."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value == 0:
        return "0"
    if 0.9 <= abs(value) < 1:  # cosines and agreements: the digits that matter are late
        fixed = f"{value:.6f}"
        return f"{value:g}" if float(fixed) == value else fixed
    if abs(value) >= 1e5:
        return f"{value:.0f}"
    if 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.3g}"


def format_number(value: Any) -> str:
    """A check's value or budget for display ("-" when there is none)."""
    return "-" if value is None else _num(value) if isinstance(value, int | float) else str(value)

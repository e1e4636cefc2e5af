"""`edgekit check`: export and validate, then hold every artifact to the config's budgets."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgekit.commands.export import add_decode_flags, add_device_flag, device_and_decode_overrides
from edgekit.config import toml_string
from edgekit.errors import EdgekitError


def register(commands: Any) -> None:
    check = commands.add_parser(
        "check", help="export, validate and check budgets; exit 1 when a check fails")
    check.add_argument("--config", type=Path, help="edgekit.toml with a [budgets] section")
    check.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. budgets.parity.max_rel=1e-4")
    check.add_argument("--out", help="output folder (default: edgekit-out/<model-name>)")
    check.add_argument("--baseline", help="an earlier report.json: fail when parity, size or "
                                          "latency got worse than it by more than the margins")
    check.add_argument("--force", action="store_true", help="replace a non-empty --out")
    add_device_flag(check)
    add_decode_flags(check)
    check.set_defaults(handler=_check)


def _overrides(args: argparse.Namespace) -> list[str]:
    sets = []
    if args.out:
        sets.append(f"export.out={toml_string(args.out)}")
    if args.force:
        sets.append("export.force=true")
    if args.baseline:
        sets.append(f"regression.baseline={toml_string(args.baseline)}")
    return sets + device_and_decode_overrides(args) + list(args.set)


def _check(args: argparse.Namespace) -> int:
    from edgekit.config import load_config
    from edgekit.devices import resolve_devices
    from edgekit.pipeline import run
    from edgekit.report.checks import evaluate, exit_code
    from edgekit.report.files import FILES, write_reports
    from edgekit.targets import resolve_targets

    config = load_config(args.config, _overrides(args))
    # Everything that can be refused is read before the run, so bad input writes nothing.
    baseline = _read_baseline(Path(config.regression.baseline)) if config.regression.baseline \
        else None
    chosen = [d.key for d in resolve_devices(config.export.devices)]
    devices = {t.name: (chosen or [t.device])[0] for t in resolve_targets(config.export.targets)}
    report = run(config)
    out = Path(report["out"])
    checks = evaluate(report, config.budgets, devices, baseline, config.regression)
    report["checks"] = [c.to_json() for c in checks]
    write_reports(report, out, FILES)
    print_summary(report, out, config.budgets.fail_on_not_run)
    return exit_code(report["checks"], config.budgets.fail_on_not_run)


def _read_baseline(path: Path) -> dict[str, Any]:
    """The baseline report: a report.json, or an output folder holding one."""
    from edgekit.report import read_report

    if path.is_dir():
        path = path / "report.json"
    try:
        report = read_report(path)
    except OSError as exc:
        raise EdgekitError(f"{path}: cannot read the baseline ({exc.strerror})") from None
    except AttributeError:  # JSON that is not an object
        report = None
    if not isinstance(report, dict) or not isinstance(report.get("artifacts"), list):
        raise EdgekitError(f"{path}: not an edgekit report.json (no 'artifacts' list); "
                           "--baseline takes the report.json of an earlier run")
    return report


def print_summary(report: dict[str, Any], out: Path, fail_on_not_run: bool) -> None:
    """Artifacts table, every check with value, budget and verdict, then the messages."""
    from edgekit.report.checks import counts
    from edgekit.report.markdown import CHECK_HEADER, HEADER, artifact_rows, check_rows

    _print_table([HEADER, *artifact_rows(report)])
    print()
    checks = report["checks"]
    _print_table([CHECK_HEADER, *check_rows(checks)])
    for check in checks:
        if check["verdict"] != "pass":
            print(f"{check['verdict'].upper()} {check['target']}/{check['format']} "
                  f"{check['name']}: {check['message']}")
    n = counts(checks)
    failed = n["fail"] + (n["not_run"] if fail_on_not_run else 0)
    print(f"edgekit check {'FAILED' if failed else 'passed'}: {n['pass']} passed, "
          f"{n['fail']} failed, {n['not_run']} not run"
          f"{' (budgets.fail_on_not_run)' if fail_on_not_run and n['not_run'] else ''}; "
          f"reports: {out / 'report.json'}, report.md, report.junit.xml, report.html")


def _print_table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())

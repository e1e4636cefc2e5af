"""`edgekit report`: rebuild report.md, report.junit.xml or report.html from report.json."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError

_FORMATS = ("html", "md", "junit")


def register(commands: Any) -> None:
    report = commands.add_parser(
        "report", help="rebuild the HTML, Markdown or JUnit report from report.json")
    report.add_argument("out_dir", type=Path, metavar="OUT_DIR",
                        help="an output folder holding report.json")
    report.add_argument("--format", action="append", choices=_FORMATS,
                        help="html, md or junit; repeat for several (default: all three)")
    report.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from edgekit.report import read_report
    from edgekit.report.files import write_reports

    if not args.out_dir.is_dir():
        raise EdgekitError(f"{args.out_dir}: no such output folder")
    report = read_report(args.out_dir / "report.json")
    if not isinstance(report.get("artifacts"), list) or not isinstance(report.get("model"),
                                                                       dict):
        raise EdgekitError(f"{args.out_dir / 'report.json'}: not an edgekit report "
                           "(no 'model' or 'artifacts')")
    formats = list(dict.fromkeys(args.format or _FORMATS))
    for path in write_reports(report, args.out_dir, formats):
        print(path)
    return 0

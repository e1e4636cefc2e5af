"""report.junit.xml: one test case per target x format x check, for CI test-result views.

A failed check is a `<failure>` with the check's message; a check that could not run is
`<skipped>` with the reason. One `<testsuite>` per target (checks that belong to no
artifact go in a suite named `edgekit`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from edgekit.report.checks import checks_of, counts, format_number


def render_junit(report: dict[str, Any]) -> str:
    """The report's checks as JUnit XML (the common Jenkins/Surefire dialect)."""
    checks = checks_of(report)
    suites: dict[str, list[dict[str, Any]]] = {}
    for check in checks:
        suites.setdefault(check["target"], []).append(check)
    total = counts(checks)
    root = ET.Element("testsuites", {
        "name": f"edgekit check {report['model']['name']}",
        "tests": str(len(checks)), "failures": str(total["fail"]), "errors": "0",
        "skipped": str(total["not_run"]),
    })
    for target, members in suites.items():
        n = counts(members)
        suite_name = f"edgekit.{target}" if target != "-" else "edgekit"
        suite = ET.SubElement(root, "testsuite", {
            "name": suite_name, "tests": str(len(members)), "failures": str(n["fail"]),
            "errors": "0", "skipped": str(n["not_run"]), "timestamp": report["created"][:19],
        })
        for check in members:
            classname = (f"{suite_name}.{check['format']}" if check["format"] != "-"
                         else "edgekit.budgets")
            case = ET.SubElement(suite, "testcase", {"classname": classname,
                                                     "name": check["name"], "time": "0"})
            if check["verdict"] == "fail":
                failure = ET.SubElement(case, "failure", {"message": check["message"],
                                                          "type": check["name"]})
                failure.text = (f"{check['target']}/{check['format']} {check['name']}: "
                                f"{check['message']} (value {format_number(check['value'])}, "
                                f"budget {format_number(check['budget'])})")
            elif check["verdict"] == "not_run":
                ET.SubElement(case, "skipped", {"message": check["message"]})
            else:
                out = ET.SubElement(case, "system-out")
                out.text = check["message"]
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"

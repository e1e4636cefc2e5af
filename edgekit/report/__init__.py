"""Reports: report.json first; everything else is rendered from it."""

from edgekit.report.json import SCHEMA_VERSION, read_report, write_report
from edgekit.report.markdown import render_markdown

__all__ = ["SCHEMA_VERSION", "read_report", "render_markdown", "write_report"]

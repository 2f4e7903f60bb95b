"""report.json (schema), report.md, figures."""
from .markdown import render_markdown
from .schema import SCHEMA_VERSION, read_report, validate_report, write_report

__all__ = ["SCHEMA_VERSION", "read_report", "render_markdown", "validate_report", "write_report"]

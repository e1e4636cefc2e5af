"""The errors edgekit reports to users as one line, with exit code 2."""

from __future__ import annotations


class EdgekitError(Exception):
    """A problem with the user's input or environment: reported as one line, exit code 2.

    The message names the thing (file, key, op) and, where there is one, the fix.
    """

    exit_code = 2


class ConfigError(EdgekitError):
    """A bad config file, key or value."""


class LoadError(EdgekitError):
    """A student that cannot be loaded: missing path, corrupt weights, pickle-only checkpoint."""


class ExportError(EdgekitError):
    """A format that could not be produced from the student."""


class StudentError(EdgekitError):
    """The student's own forward fails in PyTorch: the model is at fault, not its export."""

"""mpqlib's version: one home (pyproject.toml reads it too)."""

__version__ = "0.1.0"

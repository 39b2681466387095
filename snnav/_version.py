"""The one place the snnav version is written (read by pyproject.toml and the CLI)."""

__version__ = "0.1.0"

"""Version of graftimg (single source of truth)."""

__version__ = "0.1.0"

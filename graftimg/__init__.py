"""graftimg."""

"""graftimg.phantom (exports are listed by the package owner)."""

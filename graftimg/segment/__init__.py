"""graftimg.segment (exports are listed by the package owner)."""

"""graftimg.pipeline (exports are listed by the package owner)."""

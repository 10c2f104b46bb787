"""graftimg.register (exports are listed by the package owner)."""

"""graftimg.io (exports are listed by the package owner)."""

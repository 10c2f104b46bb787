"""graftimg.measure (exports are listed by the package owner)."""

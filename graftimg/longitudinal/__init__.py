"""graftimg.longitudinal (exports are listed by the package owner)."""

"""graftimg.preprocess (exports are listed by the package owner)."""

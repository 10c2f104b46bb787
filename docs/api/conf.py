"""Sphinx configuration of the graftimg API reference (built from the numpydoc docstrings).

Build: ``sphinx-build -W -b html docs/api docs/api/_build`` (``tests/test_docs.py`` builds it
with warnings as errors).
"""

import graftimg

project = "graftimg"
author = "graftimg developers"
release = version = graftimg.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.autosummary"]
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_typehints = "none"  # the numpydoc Parameters sections carry the types
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autosummary_generate = False
exclude_patterns = ["_build"]
html_theme = "alabaster"
suppress_warnings = ["ref.python"]  # several modules re-export a name: autodoc sees it twice

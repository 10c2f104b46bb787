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


#: Packages lowest layer first (docs/architecture.md), then the test-data generators.
LAYERS = [
    ("base", "Base: errors, flags, modes, spacing, morphology, provenance"),
    ("io", "io: loading and writing"),
    ("preprocess", "preprocess: bias field, noise, normalisation"),
    ("segment", "segment: cord, centerline, injection window, graft"),
    ("measure", "measure: volumes, overlap, lesion metrics"),
    ("register", "register: rigid registration and resampling"),
    ("longitudinal", "longitudinal: survival over sessions"),
    ("report", "report: pictures and pages"),
    ("pipeline", "pipeline: sessions and studies end to end"),
    ("cli", "cli: the graftimg command"),
    ("phantom", "phantom: synthetic studies with known truth"),
    ("validation", "validation: grafts inserted into real scans"),
]


def module_sections() -> str:
    """One section per layer with an ``automodule`` per module of the installed package."""
    from pathlib import Path

    root = Path(graftimg.__file__).parent
    found: dict[str, list[tuple[str, bool]]] = {layer: [] for layer, _ in LAYERS}
    for path in sorted(root.rglob("*.py")):
        parts = ("graftimg", *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] == "_version":
            continue
        layer = "base" if len(parts) == 1 or path.parent == root else parts[1]
        found.setdefault(layer, []).append((".".join(parts), path.name == "__init__.py"))
    lines = []
    for layer, title in LAYERS:
        if found.get(layer):
            lines += [title, "-" * len(title), ""]
            for module, is_package in found[layer]:
                # A package re-exports its modules' names (graftimg.cli even re-exports main(),
                # also the name of the module graftimg.cli.main): those names are indexed where
                # they are defined, so a package's own page is not indexed again.
                extra = ["   :no-index:"] if is_package else []
                lines += [f".. automodule:: {module}", *extra, ""]
    return "\n".join(lines)


def _fill_index(app, docname, source):
    if docname == "index":
        source[0] = source[0].replace(".. graftimg-modules::", module_sections())


def setup(app):
    """Fill the index with every module, so the reference never misses one."""
    app.connect("source-read", _fill_index)

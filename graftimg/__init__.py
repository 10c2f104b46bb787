"""graftimg: track transplanted stem-cell grafts in spinal cord MRI over time.

Subpackages, lowest layer first (a module imports only its own layer and those above it in this
list; docs/architecture.md):

errors, arrays, spacing, morphology, provenance
    The base: typed errors, array and spacing helpers, anisotropic morphology, provenance.
io
    Load NIfTI volumes (canonical RAS+, mm) and BIDS studies; write results like the input.
preprocess
    Bias-field correction, noise estimation, intensity normalisation.
segment
    Cord mask and centerline, injection window, graft voxels (``iron`` and ``t2`` modes).
measure
    Volumes with uncertainty, overlap, lesion metrics in the Spinal Cord Toolbox's definitions.
register
    Rigid registration of sessions and resampling between grids.
longitudinal
    Graft survival over sessions.
report
    Quality-control pictures and reports made from results.
pipeline
    One session and one study end to end; the only place stages are chained.
cli
    The ``graftimg`` command.
phantom, validation
    Test data with known truth: synthetic studies, and grafts inserted into real scans.

``import graftimg`` imports no GUI or plotting library (matplotlib only when a picture is made).
"""

from graftimg._version import __version__

__all__ = ["__version__"]

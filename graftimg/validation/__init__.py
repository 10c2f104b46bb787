"""Validation on real anatomy: grafts of known volume inserted into real spinal cord scans.

:mod:`graftimg.validation.insert` resamples a real scan and its manual cord mask to a target
grid with a rigid motion, brings it to a target SNR, and inserts a ``t2`` graft (tissue between
the local cord and CSF levels, textured, optionally with a cyst) or an ``iron`` void (dark core
and dipole blooming), returning the image and the partial-volume truth maps. The campaign that
runs these images through the pipeline is ``benchmarks/validate_real.py``.
"""

from graftimg.validation import insert

__all__ = ["insert"]

"""graftimg: track transplanted stem-cell grafts in spinal cord MRI over time.

Subpackages, in the order data flows through them:

io
    Load NIfTI volumes (canonical RAS+, mm) and BIDS studies; write results like the input.
preprocess
    Bias-field correction, noise estimation, intensity normalisation.
segment
    Cord mask and centerline, injection window, graft voxels (``iron`` and ``t2`` modes).
measure
    Volumes with uncertainty, lesion metrics in the Spinal Cord Toolbox's definitions.
register
    Rigid registration of sessions and resampling between grids.
longitudinal
    Survival curves over sessions and confounder flags.
pipeline
    One session and one subject end to end; the only place stages are chained.
phantom
    Synthetic longitudinal studies with analytic ground truth.

``import graftimg`` imports neither Qt, napari nor matplotlib.
"""

from graftimg._version import __version__

__all__ = ["__version__"]

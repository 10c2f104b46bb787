"""Typed errors and warnings of graftimg.

Every error says what is wrong, with which file, and what to do about it. The command line turns
a :class:`GraftimgError` into one line on stderr and a non-zero exit code; library users catch
the specific class (most also subclass the matching builtin, e.g. ``ValueError``).
"""

from __future__ import annotations

import copy
from os import PathLike

__all__ = [
    "BIDSError",
    "ConfigError",
    "DimensionError",
    "GraftimgError",
    "GraftimgWarning",
    "ImageFormatError",
    "ImageTooLargeError",
    "LabelError",
    "MetadataError",
    "NonFiniteDataError",
    "OrientationError",
    "OutputError",
    "SegmentationError",
    "SpacingError",
]


class GraftimgError(Exception):
    """Base class of every error graftimg raises on purpose.

    Parameters
    ----------
    message : str
        What is wrong.
    path : str or path-like, optional
        The file or folder concerned; it is put first in the message.
    hint : str, optional
        What the user can do about it; appended to the message.
    """

    def __init__(
        self, message: str, *, path: str | PathLike | None = None, hint: str | None = None
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.hint = hint
        text = message if self.path is None else f"{self.path}: {message}"
        if hint:
            text = f"{text} — {hint}"
        super().__init__(text)

    def about(self, path: str | PathLike | None) -> GraftimgError:
        """The same error naming ``path``, when it names no file yet (class, message, hint kept).

        For errors of array-level functions that know no file, raised on behalf of one.

        Examples
        --------
        >>> str(SegmentationError("image is constant").about("sub-01_T2w.nii.gz"))
        'sub-01_T2w.nii.gz: image is constant'
        """
        if self.path is not None or path is None:
            return self
        named = copy.copy(self)
        GraftimgError.__init__(named, self.message, path=path, hint=self.hint)
        return named


class GraftimgWarning(UserWarning):
    """Legal but odd input, or a result that deserves a second look."""


class ImageFormatError(GraftimgError, ValueError):
    """The file is not a readable NIfTI image (empty, truncated, wrong magic, not an image)."""


class DimensionError(GraftimgError, ValueError):
    """The image has the wrong number of dimensions (2D, 4D without an index, 5D fields)."""


class SpacingError(GraftimgError, ValueError):
    """Voxel sizes are zero, negative, non-finite, or the affine is singular."""


class OrientationError(GraftimgError, ValueError):
    """The header's geometry is contradictory (qform and sform disagree)."""


class NonFiniteDataError(GraftimgError, ValueError):
    """The voxel data hold NaN or infinite values."""


class ImageTooLargeError(GraftimgError, MemoryError):
    """The header declares more data than the file holds or than the memory cap allows."""


class BIDSError(GraftimgError, ValueError):
    """The study folder does not follow the BIDS layout graftimg expects."""


class LabelError(BIDSError):
    """A subject or session label is unsafe (path separators, ``..``) or malformed."""


class MetadataError(BIDSError):
    """Study metadata is missing, unreadable or contradictory."""


class ConfigError(GraftimgError, ValueError):
    """A parameter or pipeline configuration is invalid (unknown key, wrong type, out of range)."""


class SegmentationError(GraftimgError, RuntimeError):
    """A segmentation step cannot proceed on this input."""


class OutputError(GraftimgError, OSError):
    """An output cannot be written where it was asked for."""

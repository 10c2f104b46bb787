"""Image contrasts the cord segmentation knows, and how the cord looks on each.

The polarity of the cord against the cerebrospinal fluid (CSF) around it is a property of the
*contrast*, never guessed from intensities: on T1w the cord is brighter than the CSF, on T2w,
T2*w and magnetisation-transfer (MT) images it is darker (on T2*w its grey-matter butterfly is
bright, yet still darker than CSF).

Examples
--------
>>> contrast_from_name("sub-01_ses-02_T2w.nii.gz")
't2'
>>> CONTRAST_MODELS["t1"].cord_polarity
1
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from os import PathLike, fspath
from pathlib import PurePath

from graftimg.errors import ConfigError

__all__ = [
    "CONTRASTS",
    "CONTRAST_MODELS",
    "ContrastModel",
    "check_contrast",
    "contrast_from_name",
]

#: Contrast names accepted by :func:`graftimg.segment.cord.segment_cord`.
CONTRASTS: tuple[str, ...] = ("t1", "t2", "t2s", "mt")


@dataclass(frozen=True)
class ContrastModel:
    """How the spinal cord appears on one contrast.

    Attributes
    ----------
    name : str
        One of :data:`CONTRASTS`.
    cord_polarity : int
        ``+1`` when the cord is brighter than the CSF around it, ``-1`` when it is darker.
    description : str
        One line for reports.
    """

    name: str
    cord_polarity: int
    description: str


CONTRAST_MODELS: dict[str, ContrastModel] = {
    "t1": ContrastModel("t1", +1, "T1w: cord brighter than the dark CSF"),
    "t2": ContrastModel("t2", -1, "T2w: cord darker than the bright CSF"),
    "t2s": ContrastModel(
        "t2s", -1, "T2*w: cord darker than CSF, its grey-matter butterfly bright inside it"
    ),
    "mt": ContrastModel("mt", -1, "MT (on or off): cord darker than the bright CSF"),
}

# BIDS suffixes (and graftimg's own names) → contrast, compared case-insensitively.
_SUFFIX_TO_CONTRAST = {
    "t1w": "t1",
    "t1": "t1",
    "t2w": "t2",
    "t2": "t2",
    "t2starw": "t2s",
    "t2star": "t2s",
    "t2s": "t2s",
    "mts": "mt",
    "mtw": "mt",
    "mt": "mt",
}
_EXTENSIONS = re.compile(r"(\.nii(\.gz)?|\.json|\.mgz|\.mha|\.nrrd)$", re.IGNORECASE)


def check_contrast(contrast: str) -> str:
    """Return ``contrast`` lower-cased if it is one of :data:`CONTRASTS`, else raise.

    Raises
    ------
    ConfigError
        If the name is not a known contrast.

    Examples
    --------
    >>> check_contrast("T2S")
    't2s'
    """
    name = str(contrast).strip().lower()
    if name not in CONTRASTS:
        raise ConfigError(
            f"unknown contrast {contrast!r}",
            hint=f"use one of {', '.join(CONTRASTS)}",
        )
    return name


def contrast_from_name(path_or_suffix: str | PathLike[str]) -> str:
    """Contrast of an image from its BIDS suffix (``T1w``, ``T2w``, ``T2starw``, ``MTS``, ...).

    Parameters
    ----------
    path_or_suffix : str or path-like
        A file name or path (``sub-01_ses-01_T2w.nii.gz``) or a bare suffix (``T2starw``). The
        suffix is the part of the file name after its last underscore, extension removed.

    Returns
    -------
    str
        One of :data:`CONTRASTS`: ``T1w`` → ``"t1"``, ``T2w`` → ``"t2"``, ``T2starw`` or
        ``T2star`` → ``"t2s"``, ``MTS``, ``MTw`` or ``mt`` → ``"mt"``.

    Raises
    ------
    ConfigError
        If the suffix names no known contrast; the message says to pass the contrast
        explicitly (``--contrast`` on the command line).

    Examples
    --------
    >>> contrast_from_name("data/sub-rat01/anat/sub-rat01_T2starw.nii.gz")
    't2s'
    >>> contrast_from_name("MTS")
    'mt'
    """
    name = PurePath(fspath(path_or_suffix)).name
    stem = _EXTENSIONS.sub("", name)
    suffix = stem.rsplit("_", 1)[-1]
    contrast = _SUFFIX_TO_CONTRAST.get(suffix.lower())
    if contrast is None:
        raise ConfigError(
            f"cannot tell the contrast of {name!r} from its suffix {suffix!r}",
            hint=(
                f"pass it explicitly (--contrast {'|'.join(CONTRASTS)}); "
                "BIDS suffixes understood: T1w, T2w, T2starw, T2star, MTS, MTw"
            ),
        )
    return contrast

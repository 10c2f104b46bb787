"""Pipeline configuration: every parameter, its default, its unit, validated.

A configuration is a YAML file (see ``pipelines/``) whose keys mirror :class:`PipelineConfig`.
Unknown keys are refused so that a typo never silently falls back to a default. Parameters left
at ``null`` take the default of the study's scale (human or rodent), resolved by
:meth:`PipelineConfig.resolved`; the resolved set is what provenance records and hashes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from graftimg.errors import ConfigError

if TYPE_CHECKING:
    from graftimg.segment.graft import GraftParams

__all__ = [
    "KNOT_SPACING_DEFAULTS",
    "SHRINK_DEFAULTS",
    "CordConfig",
    "LoadConfig",
    "PipelineConfig",
    "PreprocessConfig",
    "load_config",
]

Scale = Literal["human", "rodent"]

#: N4 shrink factor by scale (human images are larger; rodent voxels are already small).
SHRINK_DEFAULTS: dict[str, int] = {"human": 2, "rodent": 1}

#: Smallest N4 knot spacing by scale (mm): about 3 cord diameters, so the bias model cannot fit a
#: graft, a cyst or the cord itself (human cord ≈ 10 mm across, rat ≈ 3 mm).
KNOT_SPACING_DEFAULTS: dict[str, float] = {"human": 30.0, "rodent": 10.0}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PreprocessConfig(_Strict):
    """Intensity preprocessing."""

    bias_correction: bool = Field(True, description="N4 bias-field correction inside the body")
    shrink_factor: int | None = Field(
        None, ge=1, le=8, description="N4 works on an image shrunk by this factor"
    )
    n4_iterations: int = Field(
        10,
        ge=1,
        description="N4 iterations per level (on phantoms, 10 fit the true bias field as "
        "closely as 20 or 50: benchmarks/n4_iterations.py)",
    )
    n4_levels: int = Field(
        4,
        ge=1,
        le=6,
        description="at most this many N4 fitting levels (fewer when the knots "
        "would come closer than n4_knot_spacing_mm)",
    )
    n4_knot_spacing_mm: float | None = Field(
        None,
        gt=0,
        description="smallest distance between N4's finest B-spline knots, mm "
        "(default: 30 human, 10 rodent)",
    )
    normalize: bool = Field(
        True,
        description="divide intensities by the cord's median, so reported levels (reference "
        "median, thresholds) compare across sessions; volumes do not depend on it",
    )


class CordConfig(_Strict):
    """Cord mask."""

    contrast: Literal["auto", "t1", "t2", "t2s", "mt"] = Field(
        "auto", description="image contrast; auto reads the BIDS suffix"
    )
    refine_registration: bool = Field(
        True, description="refine a companion's cord by rigid registration around the cord"
    )


class LoadConfig(_Strict):
    """How images are read (the loader choices, per study; ``graftimg run`` takes them here)."""

    affine_from: Literal["header", "sform", "qform"] = Field(
        "header",
        description="which header transform to trust; header refuses an image whose qform and "
        "sform disagree",
    )
    volume_index: int | None = Field(
        None, ge=0, description="volume of a 4D series to use (0-based); null refuses 4D images"
    )
    nonfinite: Literal["raise", "zero"] = Field(
        "raise", description="NaN/Inf voxels: refuse the image (raise) or set them to 0 (zero)"
    )

    def options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`graftimg.io.volume.load_volume`."""
        return self.model_dump()


class PipelineConfig(_Strict):
    """Everything one session's analysis depends on.

    Examples
    --------
    >>> cfg = PipelineConfig(scale="rodent")
    >>> cfg.resolved()["graft"]["window_half_length_mm"]
    5.0
    """

    scale: Literal["auto", "human", "rodent"] = Field(
        "auto", description="size priors; auto: rodent when the in-plane voxel is < 0.25 mm"
    )
    load: LoadConfig = LoadConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    cord: CordConfig = CordConfig()
    graft: dict[str, Any] = Field(
        default_factory=dict,
        description="overrides of graftimg.segment.graft.GraftParams (scale defaults otherwise)",
    )

    @field_validator("graft")
    @classmethod
    def _known_graft_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        from graftimg.segment.graft import GraftParams

        known = set(GraftParams.model_fields)
        unknown = sorted(set(value) - known)
        if unknown:
            raise ConfigError(f"unknown graft parameter(s) {unknown}; known: {sorted(known)}")
        GraftParams(**value)  # type and range checks
        return value

    def graft_params(self, scale: Scale) -> GraftParams:
        """Graft parameters for ``scale`` with this configuration's overrides."""
        from graftimg.segment.graft import GraftParams

        return GraftParams.for_scale(scale, **self.graft)

    def resolve_scale(self, spacing: tuple[float, float, float]) -> Scale:
        """The scale to use for an image with this voxel spacing (mm)."""
        if self.scale != "auto":
            return self.scale
        return "rodent" if min(spacing) < 0.25 else "human"

    def resolved(self, scale: Scale | None = None) -> dict[str, Any]:
        """All parameters with scale defaults filled in (what provenance records)."""
        chosen = scale or (self.scale if self.scale != "auto" else "human")
        out = self.model_dump()
        out["scale"] = chosen
        out["graft"] = self.graft_params(chosen).model_dump()
        if out["preprocess"]["shrink_factor"] is None:
            out["preprocess"]["shrink_factor"] = SHRINK_DEFAULTS[chosen]
        if out["preprocess"]["n4_knot_spacing_mm"] is None:
            out["preprocess"]["n4_knot_spacing_mm"] = KNOT_SPACING_DEFAULTS[chosen]
        return out


def load_config(path: str | os.PathLike | None) -> PipelineConfig:
    """Read and validate a YAML configuration (``None`` gives the defaults).

    Raises
    ------
    ConfigError
        Unreadable YAML, unknown keys, wrong types or values out of range, naming the key.
    """
    if path is None:
        return PipelineConfig()
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("configuration file not found", path=path) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read YAML ({err})", path=path) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("configuration must be a YAML mapping of keys to values", path=path)
    data.pop("description", None)
    try:
        return PipelineConfig.model_validate(data)
    except (ValidationError, ConfigError) as err:
        if isinstance(err, ConfigError):
            raise ConfigError(str(err), path=path) from None
        problems = "; ".join(  # noqa: RUF100
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()[:5]
        )
        raise ConfigError(
            f"invalid configuration ({problems})",
            path=path,
            hint="see docs/methods.md for every key, its default and unit",
        ) from None

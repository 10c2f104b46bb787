"""``graftimg register``: rigid registration of one image to another, around the cord."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction, add_load_options: Callable) -> None:
    """Register ``register``."""
    p = sub.add_parser(
        "register", help="rigidly register MOVING to FIXED (e.g. a session to the baseline)"
    )
    p.add_argument("fixed", metavar="FIXED")
    p.add_argument("moving", metavar="MOVING")
    p.add_argument("-o", "--output", required=True, metavar="OUT_PREFIX", help="output prefix")
    p.add_argument(
        "--mask",
        metavar="MASK",
        help="metric mask in FIXED's grid (e.g. the cord dilated); default: the whole image",
    )
    p.add_argument(
        "--metric",
        choices=("mattes", "correlation"),
        default="mattes",
        help="mattes (any contrasts, default) or correlation (same contrast)",
    )
    add_load_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``graftimg register``."""
    from pathlib import Path

    from graftimg.io.atomic import write_json_atomic
    from graftimg.io.volume import load_volume, save_like
    from graftimg.pipeline.session import json_ready
    from graftimg.provenance import provenance_record
    from graftimg.register.resample import resample_to_grid
    from graftimg.register.rigid import register_rigid

    options = {"affine_from": args.affine_from, "nonfinite": args.nonfinite}
    fixed = load_volume(args.fixed, volume_index=args.volume_index, **options)
    moving = load_volume(args.moving, volume_index=args.volume_index, **options)
    mask = None
    if args.mask:
        mask_volume = load_volume(args.mask, **options)
        if mask_volume.shape != fixed.shape or not np.allclose(
            mask_volume.affine, fixed.affine, atol=1e-3
        ):
            from graftimg.errors import DimensionError

            raise DimensionError(
                "the mask is not on FIXED's grid", path=args.mask, hint="resample it first"
            )
        mask = mask_volume.data > 0.5
    reg = register_rigid(
        fixed.data, fixed.affine, moving.data, moving.affine, fixed_mask=mask, metric=args.metric
    )
    resampled = resample_to_grid(
        moving.data, moving.affine, fixed.affine, fixed.shape, world_transform=reg.world_matrix
    )
    prefix = Path(args.output)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    image_path = Path(f"{prefix}_space-fixed.nii.gz")
    save_like(resampled.astype(np.float32), fixed, image_path, description="graftimg register")
    record = {
        "world_matrix_fixed_to_moving_ras_mm": np.asarray(reg.world_matrix).tolist(),
        "rotation_deg": reg.rotation_deg,
        "translation_mm": list(reg.translation_mm),
        "metric": reg.metric,
        "metric_value": reg.metric_value,
        "correlation": reg.correlation,
        "flags": list(reg.flags),
        "resampled_moving": image_path.name,
        "provenance": provenance_record(
            params={"metric": args.metric, "mask": args.mask},
            inputs={"fixed": args.fixed, "moving": args.moving},
        ),
    }
    write_json_atomic(Path(f"{prefix}_xfm.json"), json_ready(record))
    print(
        f"rotation {reg.rotation_deg:.2f}°, translation "
        f"{np.linalg.norm(reg.translation_mm):.2f} mm, correlation {reg.correlation:.3f}"
        + (f", flags: {', '.join(reg.flags)}" if reg.flags else "")
    )
    print(f"wrote {prefix}_xfm.json and {image_path}")
    return 0

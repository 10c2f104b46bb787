"""``graftimg register``: rigid registration of a session to the baseline, around the cord."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction, add_load_options: Callable) -> None:
    """Register ``register``."""
    p = sub.add_parser(
        "register",
        help="rigidly register MOVING to FIXED (e.g. a session to the baseline)",
        description="Rigidly register MOVING to FIXED. With --cord (the fast, accurate way) "
        "both images are cropped to the cord, its CSF and a rim within ±20 mm of the site "
        "(±5 mm in rats); with --mask, around that mask; with neither, the whole images are "
        "used (slow).",
    )
    p.add_argument("fixed", metavar="FIXED")
    p.add_argument("moving", metavar="MOVING")
    p.add_argument("-o", "--output", required=True, metavar="OUT_PREFIX", help="output prefix")
    p.add_argument(
        "--cord",
        metavar="CORD",
        help="cord mask in FIXED's grid: the metric mask becomes the cord + CSF + rim near "
        "the site",
    )
    p.add_argument(
        "--site",
        nargs=3,
        type=float,
        metavar=("X", "Y", "Z"),
        help="injection site in FIXED's scanner coordinates (RAS mm); default: the middle of "
        "the cord (--cord) or of the mask",
    )
    p.add_argument(
        "--mask",
        metavar="MASK",
        help="metric mask in FIXED's grid, used as it is (ignored with --cord)",
    )
    p.add_argument(
        "--metric",
        choices=("mattes", "correlation"),
        default="mattes",
        help="mattes (any contrasts, default) or correlation (same contrast)",
    )
    p.add_argument(
        "--scale",
        choices=("auto", "human", "rodent"),
        default="auto",
        help="sets the box around the site (auto: rodent below 0.25 mm voxels)",
    )
    add_load_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``graftimg register``."""
    import numpy as np

    from graftimg.io.volume import load_volume
    from graftimg.provenance import provenance_record
    from graftimg.register.session import check_same_grid, register_session, save_registration

    options = {"affine_from": args.affine_from, "nonfinite": args.nonfinite}
    fixed = load_volume(args.fixed, volume_index=args.volume_index, **options)
    moving = load_volume(args.moving, volume_index=args.volume_index, **options)
    masks = {}
    for name, path in (("cord mask", args.cord), ("mask", args.mask)):
        if path:
            mask = load_volume(path, **options)
            check_same_grid(
                mask.shape, mask.affine, fixed.shape, fixed.affine, name=name, path=path
            )
            masks[name] = np.asarray(mask.data) > 0.5
    result = register_session(
        fixed,
        moving,
        cord_mask=masks.get("cord mask"),
        metric_mask=masks.get("mask"),
        site_mm=args.site,
        metric=args.metric,
        scale=args.scale,
    )
    inputs = {"fixed": args.fixed, "moving": args.moving}
    inputs.update({k: v for k, v in (("cord", args.cord), ("mask", args.mask)) if v})
    params = {"metric": args.metric, "scale": args.scale, "site": args.site}
    written = save_registration(
        result,
        fixed,
        moving,
        args.output,
        provenance=provenance_record(params={**params, **inputs}, inputs=inputs),
    )
    reg = result.registration
    print(
        f"rotation {reg.rotation_deg:.2f}°, translation "
        f"{np.linalg.norm(reg.translation_mm):.2f} mm, correlation {reg.correlation:.3f}, "
        f"{result.elapsed_s:.2f} s" + (f", flags: {', '.join(reg.flags)}" if reg.flags else "")
    )
    print(f"wrote {written['json']} and {written['image']}")
    return 0

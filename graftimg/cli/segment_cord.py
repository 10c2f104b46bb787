"""``graftimg segment-cord``: a cord mask in the input's grid, with a JSON sidecar."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction, add_load_options: Callable) -> None:
    """Register ``segment-cord``."""
    from graftimg.cli.segment import add_cord_options

    p = sub.add_parser("segment-cord", help="segment the spinal cord of one image")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("-o", "--output", required=True, metavar="CORD_MASK", help="output mask")
    add_cord_options(p, with_mask=False)
    p.add_argument(
        "--scale", choices=("auto", "human", "rodent"), default="auto", help="cord size priors"
    )
    add_load_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``graftimg segment-cord``."""
    from graftimg.errors import OutputError
    from graftimg.io.atomic import write_json_atomic
    from graftimg.io.volume import load_volume, save_like, sidecar_path
    from graftimg.pipeline.config import PipelineConfig
    from graftimg.pipeline.cord import cord_for_session
    from graftimg.pipeline.session import json_ready
    from graftimg.provenance import provenance_record

    out = Path(args.output)
    if not out.name.endswith((".nii.gz", ".nii")):
        raise OutputError("the cord mask must be a .nii.gz or .nii file", path=out)
    load_options = {"affine_from": args.affine_from, "nonfinite": args.nonfinite}
    volume = load_volume(args.image, volume_index=args.volume_index, **load_options)
    scale = PipelineConfig(scale=args.scale).resolve_scale(volume.spacing)
    seed = None
    if args.cord_seed is not None:
        seed = tuple(float(v) for v in volume.world_to_voxel(args.cord_seed))
    elif args.cord_seed_voxel is not None:
        seed = tuple(float(v) for v in volume.stored_to_canonical_index(args.cord_seed_voxel))
    cord = cord_for_session(
        volume,
        cord_from=args.cord_from,
        seed_voxel=seed,
        contrast=args.contrast,
        scale=scale,
        load_options=load_options,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    save_like(cord.mask, volume, out, description="graftimg cord")
    # Cross-sectional area per slice of the canonical grid (axial slices, inferior first).
    sidecar = {
        "confidence": cord.confidence,
        "flags": list(cord.flags),
        "source": cord.source,
        "scale": scale,
        "cord_volume_mm3": float(cord.mask.sum() * volume.voxel_volume_mm3),
        "csa_mm2_per_axial_slice": [round(float(a), 3) for a in cord.csa_mm2],
        "axial_slice_axis": "canonical RAS+ axis 2 (inferior → superior)",
        "details": cord.details,
        "provenance": provenance_record(
            params={"contrast": args.contrast, "scale": scale, "seed_voxel": seed},
            inputs={"image": args.image},
        ),
    }
    write_json_atomic(sidecar_path(out), json_ready(sidecar))
    flags = ", ".join(cord.flags) or "none"
    volume_text = f"{sidecar['cord_volume_mm3']:.1f} mm³"
    print(f"cord: {volume_text}, confidence {cord.confidence:.2f}, flags: {flags}")
    print(f"wrote {out} and {sidecar_path(out)}")
    return 0

"""``graftimg segment``: segment and measure the graft in one image."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from graftimg.modes import MODES

__all__ = ["add_cord_options", "add_parser", "add_point_options", "run"]


def add_point_options(
    group: argparse._ActionsContainer, option: str, what: str, note: str = ""
) -> None:
    """A point as ``--OPTION X Y Z`` (scanner RAS mm) or ``--OPTION-voxel I J K``.

    The voxel form is an index of the file as stored on disk. ``what`` names the point in the
    help, ``note`` follows it (e.g. the cord route it selects).
    """
    for suffix, axes, where in (
        ("", ("X", "Y", "Z"), "scanner RAS mm"),
        ("-voxel", ("I", "J", "K"), "voxel index of the stored file"),
    ):
        group.add_argument(
            f"--{option}{suffix}",
            nargs=3,
            type=float,
            metavar=axes,
            help=f"{what}, {where}{note}",
        )


def add_cord_options(parser: argparse.ArgumentParser, *, with_mask: bool) -> None:
    """Cord options shared by ``segment`` and ``segment-cord``."""
    group = parser.add_argument_group("cord")
    routes = group.add_mutually_exclusive_group()
    if with_mask:
        routes.add_argument("--cord-mask", metavar="MASK", help="use this cord mask (route a)")
    routes.add_argument(
        "--cord-from",
        metavar="COMPANION_IMAGE",
        help="segment the cord on this same-session T2w/T1w and carry it over (route b)",
    )
    add_point_options(routes, "cord-seed", "a point inside the cord", " (route c)")
    group.add_argument(
        "--contrast",
        choices=("auto", "t1", "t2", "t2s", "mt"),
        default="auto",
        help="image contrast (auto: from the BIDS suffix); sets the cord's polarity",
    )


def add_parser(sub: argparse._SubParsersAction, add_load_options: Callable) -> None:
    """Register ``segment``."""
    p = sub.add_parser("segment", help="segment and measure the graft in one image")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("-o", "--output", required=True, metavar="OUT_PREFIX", help="output prefix")
    p.add_argument("--mode", required=True, choices=MODES, help="graft mode")
    site = p.add_mutually_exclusive_group()
    add_point_options(site, "injection", "injection site")
    add_cord_options(p, with_mask=True)
    p.add_argument("--config", metavar="FILE", help="pipeline configuration (YAML)")
    p.add_argument("--json", action="store_true", help="print the result JSON")
    p.add_argument(
        "--qc", action="store_true", help="also write OUT_PREFIX_qc.png (needs matplotlib)"
    )
    add_load_options(p)
    # Loader options not given on the command line come from the config's ``load:`` section.
    p.set_defaults(func=run, affine_from=None, nonfinite=None)


def _tuple(values):
    return None if values is None else tuple(values)


def _load_options(args: argparse.Namespace, configured: dict) -> dict:
    """The loader options: the config's ``load:`` section, overridden by those given here."""
    given = {key: getattr(args, key) for key in ("affine_from", "nonfinite", "volume_index")}
    return {**configured, **{key: value for key, value in given.items() if value is not None}}


def run(args: argparse.Namespace) -> int:
    """Entry point of ``graftimg segment``."""
    from graftimg.pipeline.config import load_config
    from graftimg.pipeline.session import output_paths, run_session
    from graftimg.report.volume_text import format_mm3, graft_volume_text

    config = load_config(args.config)
    if args.contrast != "auto":
        config = config.model_copy(
            update={"cord": config.cord.model_copy(update={"contrast": args.contrast})}
        )
    result = run_session(
        args.image,
        args.output,
        mode=args.mode,
        config=config,
        load_options=_load_options(args, config.load.options()),
        injection_world=_tuple(args.injection),
        injection_voxel=_tuple(args.injection_voxel),
        cord_mask=args.cord_mask,
        cord_from=args.cord_from,
        cord_seed_world=_tuple(args.cord_seed),
        cord_seed_voxel=_tuple(args.cord_seed_voxel),
        qc=args.qc,
    )
    s = result.summary
    if args.json:
        print(output_paths(args.output)["json"].read_text())
        return 0
    # A volume that could not be measured is printed as such; the run itself succeeded (the
    # masks and the JSON, with the reason, are written), so the exit code stays 0.
    print(graft_volume_text(s))
    if s["mode"] == "t2":
        cyst = s["cyst_volume_mm3"]
        print("cyst volume: " + ("not measured" if cyst is None else f"{format_mm3(cyst)} mm³"))
    print(f"cord: {s['cord_volume_mm3']:.1f} mm³ ({s['cord']['source']})")
    if s["flags"]:
        print("flags: " + ", ".join(s["flags"]))
    print(f"wrote {output_paths(args.output)['json']}")
    return 0

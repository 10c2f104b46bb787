"""``graftimg info``: describe one image, or summarise a BIDS study."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["run"]


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _image(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from graftimg.io.volume import load_volume

    vol = load_volume(
        args.path,
        volume_index=args.volume_index,
        affine_from=args.affine_from,
        nonfinite=args.nonfinite,
    )
    summary = vol.summary()
    if args.json:
        _print_json(summary)
        return 0
    table = Table(title=str(args.path), show_header=False)
    table.add_row("stored shape", " × ".join(map(str, summary["stored_shape"])))
    table.add_row("stored orientation", f"{summary['stored_orientation']} (nibabel axis codes)")
    table.add_row("canonical shape (RAS+)", " × ".join(map(str, summary["canonical_shape"])))
    table.add_row("spacing (mm)", " × ".join(f"{s:g}" for s in summary["spacing_mm"]))
    table.add_row("voxel volume (mm³)", f"{summary['voxel_volume_mm3']:g}")
    table.add_row("field of view (mm)", " × ".join(f"{s:g}" for s in summary["field_of_view_mm"]))
    table.add_row("header units", str(summary["units"]))
    table.add_row("affine from", str(summary["affine_source"]))
    shift = summary["qform_sform_max_displacement_mm"]
    if shift is not None:
        table.add_row("qform vs sform", f"{shift:.2f} mm apart at most over the field of view")
    table.add_row("stored dtype", str(summary["stored_dtype"]))
    table.add_row(
        "intensity range", f"{summary['intensity_min']:g} … {summary['intensity_max']:g}"
    )
    if summary["n_nonfinite_replaced"]:
        table.add_row("NaN/Inf set to 0", str(summary["n_nonfinite_replaced"]))
    for key, value in sorted(summary["metadata"].items()):
        table.add_row(f"sidecar {key}", str(value))
    Console().print(table)
    return 0


def _study(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from graftimg.io.bids import discover_study

    study = discover_study(args.path)
    summary = study.summary()
    if args.json:
        _print_json(summary)
        return 0
    console = Console()
    console.print(
        f"[bold]{summary['name']}[/bold] ({summary['root']}): {summary['n_subjects']} "
        f"subjects, {summary['n_sessions']} sessions"
    )
    table = Table()
    for column in ("subject", "mode", "injection", "session", "days", "images", "flags"):
        table.add_column(column)
    for sub in summary["subjects"]:
        first = True
        inj = sub["injection_date"] or "n/a"
        if sub["injection_site_mm"]:
            inj += " @ (" + ", ".join(f"{c:.1f}" for c in sub["injection_site_mm"]) + ") mm"
        for ses in sub["sessions"] or [None]:
            flags = list(sub["flags"]) if first else []
            row = [sub["subject"] if first else "", (sub["graft_mode"] or "n/a") if first else ""]
            row.append(inj if first else "")
            if ses is None:
                row += ["—", "", "", ", ".join(flags)]
            else:
                days = ses["days_since_injection"]
                row += [
                    str(ses["session"]),
                    "n/a" if days is None else f"{days:.1f}",
                    ", ".join(ses["images"]),
                    ", ".join(flags + ses["flags"]),
                ]
            table.add_row(*row)
            first = False
    console.print(table)
    if summary["flags"]:
        console.print("study flags: " + ", ".join(summary["flags"]))
    return 0


def run(args: argparse.Namespace) -> int:
    """Entry point of ``graftimg info``."""
    if Path(args.path).is_dir():
        return _study(args)
    return _image(args)

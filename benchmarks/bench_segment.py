"""Wall time and peak memory of ``graftimg segment``, next to loading and saving the same image.

Run from the repository root::

    .venv/bin/python benchmarks/bench_segment.py [--json OUT.json] [--repeats 3]
        [--cases t2 phantom] [--workdir DIR]

Two cases: the Spinal Cord Toolbox T2w of the test data (52 × 60 × 55 at 1 mm, ``t2`` mode,
injection site proposed automatically) and a 384 × 384 × 64 human-scale ``t2`` phantom
(0.25 × 0.25 × 2 mm, axial, written as int16 like ``graftimg sample-data``; injection site from
its truth). Each case runs in a fresh Python process, so that its peak memory and its imports
are its own:

1. ``load_save_s``: :func:`graftimg.io.load_volume` then :func:`graftimg.io.save_like` of the
   image as float32, best of ``2 × --repeats`` runs: ``--repeats`` before the first
   segmentation and one after each timed segmentation (on a shared machine wall times drift
   by 1.5× over seconds; interleaving makes both figures sample the same spells);
2. ``segment_cold_s``: the first ``graftimg segment`` of the process (``main(argv)`` in-process,
   so without the interpreter's start but with the imports of SciPy, scikit-image, SimpleITK);
3. ``segment_s``: the best of ``--repeats`` further runs, with the stage times of that run
   (``timings_s`` of the result JSON: load, preprocess, cord, graft, measure, write). N4 runs
   in a worker thread while the cord is segmented: its own time is the ``n4`` column
   (``bias_s``), already inside the cord stage's wall time unless the cord waited for it
   (``bias_wait_s``, counted in ``cord``).

``ratio = segment_s / load_save_s`` is the figure of the issue (target ≤ 10);
``ratio_cold`` uses the first run. ``peak_rss_mb`` is the process's maximum resident set size
(Linux ``VmHWM``) after the segmentations, ``peak_rss_load_save_mb`` the same before the first
segmentation (the interpreter, NumPy and nibabel, one image loaded and saved).
The machine's load average is recorded: on a shared machine wall times vary by 2× or more,
CPU times (``segment_cpu_s``) less.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL_T2 = ROOT / "tests/data/sct_testing_data/t2/t2.nii.gz"
PHANTOM_SHAPE = (384, 384, 64)
PHANTOM_SPACING_MM = (0.25, 0.25, 2.0)
STAGES = ("load_s", "preprocess_s", "cord_s", "graft_s", "measure_s", "write_s")


def _peak_rss_mb() -> float:
    """Maximum resident set size of this process so far, in MB.

    On Linux ``VmHWM`` of ``/proc/self/status``: ``ru_maxrss`` would also count the parent's
    peak, which Linux carries into a child across ``fork``/``exec``.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def write_phantom(path: Path) -> tuple[float, float, float]:
    """Render the 384 × 384 × 64 phantom to ``path`` (int16 NIfTI); return its injection site."""
    import numpy as np

    from graftimg.io.atomic import write_bytes_atomic
    from graftimg.io.nifti import nifti_gz_bytes
    from graftimg.phantom.render import render_session
    from graftimg.phantom.spec import default_spec

    spec = default_spec("human", "t2").with_acquisition(
        "T2w",
        shape=PHANTOM_SHAPE,
        spacing_mm=PHANTOM_SPACING_MM,
        orientation="LAS",
        acquisition_type="2D",
    )
    session = render_session(spec, days=14.0, seed=0)
    image = session.images["T2w"]
    blob = nifti_gz_bytes(image.data, image.affine, dtype=np.int16, slice_axis=2)
    write_bytes_atomic(path, blob)
    return session.truth.injection_site_mm


def _worker(spec: dict) -> dict:
    """Time one case in this (fresh) process and return its figures."""
    t_import = time.perf_counter()
    from graftimg.io import load_volume, save_like

    import_io_s = time.perf_counter() - t_import
    image, out = Path(spec["image"]), Path(spec["out"])
    repeats = int(spec["repeats"])

    def load_and_save() -> float:
        t0 = time.perf_counter()
        volume = load_volume(image)
        save_like(volume.data, volume, out / "copy.nii.gz")
        return time.perf_counter() - t0

    load_save = [load_and_save() for _ in range(repeats)]
    rss_load_save = _peak_rss_mb()
    shape = list(load_volume(image).shape)

    from graftimg.cli.main import main as graftimg_main

    argv = ["segment", str(image), "-o", str(out / "seg"), "--mode", spec["mode"]]
    if spec.get("injection") is not None:
        argv += ["--injection", *(repr(float(v)) for v in spec["injection"])]
    runs = []
    for i in range(repeats + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(io.StringIO()):
            code = graftimg_main(argv)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if code != 0:
            raise RuntimeError(f"graftimg {' '.join(argv)} exited with {code}")
        summary = json.loads((out / "seg_graft.json").read_text())
        runs.append({"wall": wall, "cpu": cpu, "timings": summary["timings_s"]})
        if i > 0:
            # interleaved, so that both timings sample the same spells of a shared machine
            load_save.append(load_and_save())
    cold, best = runs[0], min(runs[1:], key=lambda r: r["wall"])
    return {
        "shape": shape,
        "import_io_s": round(import_io_s, 3),
        "load_save_s": round(min(load_save), 3),
        "segment_cold_s": round(cold["wall"], 3),
        "segment_s": round(best["wall"], 3),
        "segment_cpu_s": round(best["cpu"], 3),
        "segment_runs_s": [round(r["wall"], 3) for r in runs[1:]],
        "stages_s": {k: best["timings"].get(k) for k in STAGES},
        "timings_s": best["timings"],
        "ratio": round(best["wall"] / min(load_save), 1),
        "ratio_cold": round(cold["wall"] / min(load_save), 1),
        "peak_rss_load_save_mb": round(rss_load_save, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "graft_volume_mm3": summary.get("graft_volume_mm3"),
        "cord_volume_mm3": summary.get("cord_volume_mm3"),
    }


def _run_case(name: str, spec: dict) -> dict:
    """Run :func:`_worker` for one case in a fresh interpreter."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"case {name!r} failed:\n{proc.stderr.strip()}")
    return {"case": name, **json.loads(proc.stdout.strip().splitlines()[-1])}


def _table(results: list[dict]) -> str:
    header = ["case", "load+save", *(s.removesuffix("_s") for s in STAGES), "n4 (thread)"]
    header.append("segment")
    header += ["ratio", "cold", "ratio cold", "peak RSS"]
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for r in results:
        stages = [
            "–" if r["stages_s"].get(s) is None else f"{r['stages_s'][s]:.2f}" for s in STAGES
        ]
        n4 = r["timings_s"].get("bias_s")
        row = [r["case"], f"{r['load_save_s']:.3f}", *stages, "–" if n4 is None else f"{n4:.2f}"]
        row.append(f"{r['segment_s']:.2f}")
        row += [f"{r['ratio']:.1f}", f"{r['segment_cold_s']:.2f}", f"{r['ratio_cold']:.1f}"]
        row.append(f"{r['peak_rss_mb']:.0f} MB")
        lines.append(" | ".join(row))
    return "\n".join(f"| {line} |" for line in lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a table and optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--cases", nargs="+", choices=("t2", "phantom"), default=["t2", "phantom"])
    parser.add_argument(
        "--workdir", type=Path, help="keep files here (the rendered phantom is reused)"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return 0
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="graftimg-bench-")))
        else:
            work = args.workdir
            work.mkdir(parents=True, exist_ok=True)
        cases: dict[str, dict] = {}
        if "t2" in args.cases:
            cases["sct t2 52x60x55 (real, 1 mm)"] = {"image": str(REAL_T2), "mode": "t2"}
        if "phantom" in args.cases:
            path = work / "phantom_384x384x64_T2w.nii.gz"
            site_file = path.with_suffix("").with_suffix(".site.json")
            if path.exists() and site_file.exists():
                site = json.loads(site_file.read_text())
            else:
                print("rendering the phantom ...", file=sys.stderr)
                site = list(write_phantom(path))
                site_file.write_text(json.dumps(site))
            cases["phantom 384x384x64 (0.25x0.25x2 mm)"] = {
                "image": str(path),
                "mode": "t2",
                "injection": site,
            }
        results = []
        for i, (name, spec) in enumerate(cases.items()):
            out = work / f"case{i}"
            out.mkdir(exist_ok=True)
            load = os.getloadavg()[0]
            print(f"{name} ...", file=sys.stderr)
            result = _run_case(name, {**spec, "out": str(out), "repeats": args.repeats})
            results.append({**result, "load_average_1min": round(load, 2)})

    print(_table(results))
    if args.json is not None:
        record = {
            "benchmark": "graftimg segment vs load+save",
            "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "python": sys.version.split()[0],
            "machine": platform.platform(),
            "cpu_count": os.cpu_count(),
            "repeats": args.repeats,
            "results": results,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

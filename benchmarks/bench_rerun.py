"""How long a rerun of a finished study takes, next to the full run that made it.

Run from the repository root::

    .venv/bin/python benchmarks/bench_rerun.py [--json OUT.json] [--repeats 3] [--workdir DIR]

A small ``t2`` phantom study (2 subjects × 2 sessions, 40 × 40 × 14 voxels, the study of
``tests/test_study_manifest.py``) is written, then ``graftimg run … participant`` runs on it in
a fresh process: once on an empty output folder (``full_s``, every session analysed), then
``--repeats`` times again (``rerun_s``, the best: every session found done by its manifest and
skipped). Both include the interpreter's start and the imports, so ``ratio = rerun_s / full_s``
says what share of a full run a rerun with nothing to do still costs. The test suite checks
only that such a rerun analyses nothing and rewrites nothing; this benchmark keeps the time,
which on a shared machine varies by 2× or more (the load average is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(bids: Path, out: Path) -> tuple[float, str]:
    """One ``graftimg run participant`` in a fresh process: its wall time and its summary."""
    argv = [sys.executable, "-c", "from graftimg.cli.main import run; run()"]
    t0 = time.perf_counter()
    done = subprocess.run(
        [*argv, "run", str(bids), str(out), "participant"],
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - t0, done.stdout.strip().splitlines()[-1]


def measure(workdir: Path, repeats: int) -> dict[str, object]:
    """Write the study, run it once in full, then ``repeats`` reruns; the figures as a dict."""
    from graftimg.phantom.spec import default_spec
    from graftimg.phantom.study import write_study

    spec = default_spec("rodent", "t2").with_acquisition(
        "T2w", shape=(40, 40, 14), fov_offset_mm=(0.0, 0.0, 0.0), supersample=2
    )
    bids = write_study(workdir / "bids", n_subjects=2, n_sessions=2, spec=spec, seed=1)
    out = workdir / "out"
    full_s, full_summary = _run(bids, out)
    reruns = [_run(bids, out) for _ in range(repeats)]
    rerun_s = min(t for t, _ in reruns)
    return {
        "full_s": round(full_s, 3),
        "full_summary": full_summary,
        "rerun_s": round(rerun_s, 3),
        "rerun_all_s": [round(t, 3) for t, _ in reruns],
        "rerun_summary": reruns[-1][1],
        "ratio": round(rerun_s / full_s, 3),
        "load_average": list(os.getloadavg()),
        "machine": platform.platform(),
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: print the figures, optionally write them as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--repeats", type=int, default=3, help="reruns (the best is kept)")
    parser.add_argument("--workdir", type=Path, help="folder for the study (default: temporary)")
    args = parser.parse_args(argv)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        figures = measure(args.workdir, args.repeats)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            figures = measure(Path(tmp), args.repeats)
    print(json.dumps(figures, indent=2))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

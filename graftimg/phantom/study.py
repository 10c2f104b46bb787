"""Write a longitudinal phantom study as a BIDS raw dataset with its truth as a derivative.

Layout (``n_subjects`` × ``n_sessions``; ``T2starw`` only for ``iron`` subjects)::

    OUT/
      dataset_description.json  README.md  participants.tsv  participants.json
      sub-01/sub-01_sessions.tsv
      sub-01/ses-01/anat/sub-01_ses-01_T2w.nii.gz      (+ .json sidecar)
      sub-01/ses-01/anat/sub-01_ses-01_T2starw.nii.gz  (+ .json sidecar)
      derivatives/truth/
        dataset_description.json  truth.tsv  truth.json  phantom.json
        sub-01/ses-01/anat/sub-01_ses-01_space-orig_label-<graft|cord|cyst|void>_desc-<T2w|T2starw>_mask.nii.gz
        sub-01/ses-01/anat/sub-01_ses-01_space-orig_label-<graft|void>_desc-<T2w|T2starw>_probseg.nii.gz

Masks and partial-volume maps are in each image's own grid and stored orientation (``desc``
names the image). ``truth.tsv`` has one row per subject × session × image with the analytic
volumes, the acquisition, the motion and the paths of the truth files.

Every file is deterministic (sorted JSON, fixed float format, gzip with ``mtime=0``): the same
arguments give byte-identical studies. The study is written in a hidden folder beside
``out_dir`` and renamed into place at the end, so a failure never leaves half a study.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from graftimg._version import __version__
from graftimg.errors import ConfigError, OutputError
from graftimg.io.atomic import hidden_folder, write_json_atomic, write_text_atomic
from graftimg.io.jsonable import jsonable
from graftimg.io.nifti import write_nifti_gz
from graftimg.io.tsv import tsv_text
from graftimg.modes import MODES, Mode
from graftimg.phantom.motion import RigidMotion, random_motion
from graftimg.phantom.render import PhantomImage, SessionPhantom, render_session
from graftimg.phantom.spec import PhantomSpec, Scale, axis_codes, default_spec

__all__ = [
    "GENERATOR_NAME",
    "image_sidecar",
    "slice_axis",
    "subject_spec",
    "write_image",
    "write_study",
]

GENERATOR_NAME = "graftimg.phantom"
"""``GeneratedBy`` name of the studies written here (an existing one may be overwritten)."""

BIDS_VERSION = "1.10.0"
_SPECIES = {"human": "homo sapiens", "rodent": "rattus norvegicus"}
_FIRST_INJECTION = dt.date(2023, 1, 2)


# -- staging and overwrite -------------------------------------------------------------------
def _is_phantom_study(folder: Path) -> bool:
    try:
        description = json.loads((folder / "dataset_description.json").read_text("utf-8"))
        return any(g.get("Name") == GENERATOR_NAME for g in description.get("GeneratedBy", []))
    except (OSError, ValueError, AttributeError, TypeError):
        return False


@contextlib.contextmanager
def _staged_folder(out_dir: Path, overwrite: bool) -> Iterator[Path]:
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError("exists and is not a folder", path=out_dir, hint="choose another path")
    existing = out_dir.is_dir() and any(out_dir.iterdir())
    if existing and not overwrite:
        raise OutputError(
            "folder is not empty",
            path=out_dir,
            hint="choose an empty or new folder, or pass overwrite=True to replace a study",
        )
    if existing and not _is_phantom_study(out_dir):
        raise OutputError(
            "refusing to replace a folder that is not a graftimg phantom study",
            path=out_dir,
            hint="choose an empty or new folder",
        )
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = hidden_folder(out_dir.parent, f".{out_dir.name}.tmp-")
    except OSError as exc:
        raise OutputError(f"cannot create a folder here ({exc.strerror})", path=out_dir) from exc
    try:
        yield staging
        if out_dir.is_dir():
            old = hidden_folder(out_dir.parent, f".{out_dir.name}.old-")
            os.replace(out_dir, old / "study")
            os.replace(staging, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# -- subjects and sessions -------------------------------------------------------------------
def subject_spec(base: PhantomSpec, rng: np.random.Generator) -> PhantomSpec:
    """Return ``base`` with subject-specific anatomy, graft kinetics and position.

    Draws the injection site position (scanner), the curvature phase, a small tilt, the graft
    volumes and decay rate, and (``iron``) the persistent iron fraction and cell count.

    Examples
    --------
    >>> base = default_spec("human", "t2")
    >>> spec = subject_spec(base, np.random.default_rng(3))
    >>> spec.graft_volume0_mm3 != base.graft_volume0_mm3
    True
    """
    jitter = np.array([3.0, 5.0, 15.0]) if base.scale == "human" else np.array([0.5, 0.5, 2.0])
    site = np.asarray(base.injection_world_mm) + rng.uniform(-1, 1, 3) * jitter
    v0 = base.graft_volume0_mm3 * rng.uniform(0.8, 1.2)
    changes: dict[str, Any] = dict(
        injection_world_mm=tuple(round(float(x), 3) for x in site),
        curvature_phase_rad=round(float(rng.uniform(0, 2 * math.pi)), 4),
        tilt_deg=round(float(rng.uniform(-5, 5)), 3),
        graft_volume0_mm3=round(v0, 4),
        graft_volume_inf_mm3=round(v0 * rng.uniform(0.25, 0.55), 4),
        graft_rate_per_day=round(base.graft_rate_per_day * rng.uniform(0.6, 1.5), 5),
    )
    if base.mode == "iron":
        changes["iron_persistent_fraction"] = round(float(rng.uniform(0.6, 0.85)), 4)
        changes["cells_injected"] = int(round(base.cells_injected * rng.uniform(0.8, 1.2), -3))
    return dataclasses.replace(base, **changes)


def _session_days(spec: PhantomSpec, n_sessions: int, rng: np.random.Generator) -> list[int]:
    days = [round(d) for d in spec.session_days]
    while len(days) < n_sessions:
        days.append((days[-1] if days else 0) + 90)
    days = days[:n_sessions]
    jittered = []
    for d in days:
        value = d + int(rng.integers(-2, 3)) if d > 7 else d
        jittered.append(max(value, (jittered[-1] + 1) if jittered else 0))
    return jittered


def _label(index: int, count: int) -> str:
    return f"{index:0{max(2, len(str(count)))}d}"


def slice_axis(image: PhantomImage) -> int | None:
    """Stored axis across the slices of a 2D acquisition (NIfTI ``dim_info``); None for 3D."""
    if image.acquisition.acquisition_type != "2D":
        return None
    spacing = image.acquisition.spacing_mm
    thick = int(np.argmax(spacing))
    for axis, (world, _) in enumerate(axis_codes(image.acquisition.orientation)):
        if world == thick:
            return axis
    return None  # pragma: no cover


def image_sidecar(spec: PhantomSpec, image: PhantomImage) -> dict[str, Any]:
    """The BIDS JSON sidecar of a phantom image (echo time, field strength, sequence)."""
    acq = image.acquisition
    axis = slice_axis(image)
    sidecar = {
        "EchoTime": acq.echo_time_s,
        "RepetitionTime": acq.repetition_time_s,
        "FlipAngle": acq.flip_angle_deg,
        "MagneticFieldStrength": spec.field_strength_T,
        "MRAcquisitionType": acq.acquisition_type,
        "ScanningSequence": acq.scanning_sequence,
        "PulseSequenceType": acq.pulse_sequence,
        "SeriesDescription": f"{acq.suffix} (synthetic graftimg phantom)",
        "ImageComments": "Synthetic image generated by graftimg.phantom; ground truth in "
        "derivatives/truth.",
    }
    if axis is not None:
        sidecar["SliceThickness"] = float(image.spacing_mm[axis])
    return sidecar


def write_image(
    folder: Path, stem: str, spec: PhantomSpec, image: PhantomImage, *, gain: float = 1.0
) -> Path:
    """Write ``stem.nii.gz`` and its sidecar ``stem.json`` as the generator stores an image.

    int16 in the image's stored orientation; with a ``gain`` other than 1 the scaled values are
    stored as float32 (a global intensity change). Returns the image's path.
    """
    data, dtype = image.data, np.int16
    if gain != 1.0:
        data, dtype = np.asarray(image.data, dtype=np.float64) * gain, np.float32
    path = write_nifti_gz(
        folder / f"{stem}.nii.gz",
        data,
        image.affine,
        dtype=dtype,
        slice_axis=slice_axis(image),
        description=f"graftimg phantom {image.acquisition.suffix}",
    )
    write_json_atomic(folder / f"{stem}.json", image_sidecar(spec, image))
    return path


def _write_image_truth(
    truth_dir: Path, stem: str, image: PhantomImage, raw_name: str
) -> dict[str, str | None]:
    """Write masks and partial-volume maps of one image; return their paths by column."""
    paths: dict[str, str | None] = {}
    anat = truth_dir / "anat"
    desc = image.suffix
    source = {"Sources": [f"bids:raw:{raw_name}"]}
    for name in ("graft", "cord", "cyst", "void"):
        occupancy = image.occupancy.get(name)
        if occupancy is None or (name == "cyst" and not occupancy.any()):
            paths[f"{name}_mask"] = None
            continue
        for kind in ("mask", "probseg"):
            if kind == "probseg" and name not in ("graft", "void"):
                continue
            filename = f"{stem}_space-orig_label-{name}_desc-{desc}_{kind}.nii.gz"
            if kind == "mask":
                data, dtype = occupancy >= 0.5, np.uint8
                text = f"{name} truth: sub-sample occupancy >= 0.5"
            else:
                data, dtype = occupancy, np.float32
                text = f"{name} truth: sub-sample occupancy (partial volume) in [0, 1]"
            write_nifti_gz(
                anat / filename, data, image.affine, dtype=dtype, description=f"truth {name}"
            )
            sidecar = dict(source, Description=text)
            write_json_atomic(anat / filename.replace(".nii.gz", ".json"), sidecar)
            paths[f"{name}_{kind}"] = f"{truth_dir.parent.name}/{truth_dir.name}/anat/{filename}"
    return paths


_TRUTH_COLUMNS = {
    "participant_id": "Subject label.",
    "session_id": "Session label.",
    "suffix": "BIDS suffix of the image (T2w or T2starw).",
    "image": "Path of the image in the raw dataset.",
    "graft_mode": "iron or t2.",
    "scale": "human or rodent.",
    "days": "Calendar days between injection_date and the acq_time date.",
    "graft_volume_mm3": "Analytic graft volume (t2: ellipsoid; iron: spherical cell deposit).",
    "graft_volume_pv_mm3": "Sum of graft sub-sample occupancy x voxel volume in this image.",
    "graft_volume_mask_mm3": "Volume of the binary graft mask (occupancy >= 0.5).",
    "cyst_volume_mm3": "Analytic cyst volume (0: no cyst).",
    "cyst_volume_pv_mm3": "Partial-volume cyst volume in this image.",
    "void_volume_mm3": "Analytic blooming-void volume (T2starw of iron subjects), else n/a.",
    "void_volume_pv_mm3": "Partial-volume void volume in this image.",
    "void_volume_mask_mm3": "Volume of the binary void mask.",
    "iron_mass_ug": "Iron in the deposit, micrograms (0 for t2).",
    "iron_moment_am2": "Magnetic moment of the deposit, A.m2.",
    "dipole_constant_mm3": "K = gamma mu0 m TE / (4 pi phi_c); void: r^3 <= max(a^3, K|3cos2-1|).",
    "echo_time_s": "Echo time, s.",
    "field_strength_T": "B0, tesla.",
    "spacing_i_mm": "Voxel size along the first stored axis, mm.",
    "spacing_j_mm": "Voxel size along the second stored axis, mm.",
    "spacing_k_mm": "Voxel size along the third stored axis, mm.",
    "orientation": "nibabel axis codes of the stored array.",
    "snr": "Cord (white matter) signal / noise sigma.",
    "cord_signal": "Noise-free, bias-free white-matter value in stored units.",
    "noise_sigma": "Standard deviation of each Gaussian channel of the Rician noise.",
    "bias_amplitude": "Bias field spans [1/(1+a), 1+a].",
    "cord_ap_mm": "Cord antero-posterior diameter.",
    "cord_lr_mm": "Cord left-right diameter.",
    "csf_rim_mm": "CSF annulus thickness.",
    "cord_area_mm2": "Cord cross-sectional area perpendicular to its axis (pi a b).",
    "cord_volume_pv_mm3": "Partial-volume cord volume inside this field of view.",
    "curvature_amplitude_mm": "Centerline sinusoid amplitude (0: straight).",
    "curvature_period_mm": "Centerline sinusoid period.",
    "tilt_deg": "Tilt of the column about the R-L axis.",
    "graft_semi_axis_lr_mm": "Graft semi-axis, left-right.",
    "graft_semi_axis_ap_mm": "Graft semi-axis, antero-posterior.",
    "graft_semi_axis_si_mm": "Graft semi-axis along the cord.",
    "injection_x_mm": "Injection site (graft centre) at this session, scanner RAS x.",
    "injection_y_mm": "Injection site at this session, scanner RAS y.",
    "injection_z_mm": "Injection site at this session, scanner RAS z.",
    "motion_rx_deg": "Rotation about scanner x relative to the first session (about its site).",
    "motion_ry_deg": "Rotation about scanner y.",
    "motion_rz_deg": "Rotation about scanner z (applied as Rz Ry Rx).",
    "motion_tx_mm": "Translation along scanner x relative to the first session.",
    "motion_ty_mm": "Translation along scanner y.",
    "motion_tz_mm": "Translation along scanner z.",
    "graft_mask": "Binary graft mask (relative to derivatives/truth).",
    "graft_probseg": "Graft occupancy map.",
    "cord_mask": "Binary cord mask (graft and cyst included).",
    "cyst_mask": "Binary cyst mask, or n/a.",
    "void_mask": "Binary void mask (T2starw of iron subjects), or n/a.",
    "void_probseg": "Void occupancy map, or n/a.",
}


def _truth_row(
    participant: str,
    session: str,
    raw_name: str,
    session_phantom: SessionPhantom,
    image: PhantomImage,
    paths: Mapping[str, str | None],
) -> dict[str, Any]:
    spec, truth = session_phantom.spec, session_phantom.truth
    has_void = image.void_volume_mm3 is not None
    row: dict[str, Any] = {
        "participant_id": participant,
        "session_id": session,
        "suffix": image.suffix,
        "image": raw_name,
        "graft_mode": spec.mode,
        "scale": spec.scale,
        "days": round(truth.days),
        "graft_volume_mm3": truth.graft_volume_mm3,
        "graft_volume_pv_mm3": image.occupancy_volume_mm3("graft"),
        "graft_volume_mask_mm3": image.mask_volume_mm3("graft"),
        "cyst_volume_mm3": truth.cyst_volume_mm3,
        "cyst_volume_pv_mm3": image.occupancy_volume_mm3("cyst"),
        "void_volume_mm3": image.void_volume_mm3,
        "void_volume_pv_mm3": image.occupancy_volume_mm3("void") if has_void else None,
        "void_volume_mask_mm3": image.mask_volume_mm3("void") if has_void else None,
        "iron_mass_ug": truth.iron_mass_ug,
        "iron_moment_am2": truth.iron_moment_am2,
        "dipole_constant_mm3": image.dipole_constant_mm3 if has_void else None,
        "echo_time_s": image.acquisition.echo_time_s,
        "field_strength_T": spec.field_strength_T,
        "orientation": image.acquisition.orientation,
        "snr": image.acquisition.snr,
        "cord_signal": spec.signal_scale * image.acquisition.intensities.white_matter,
        "noise_sigma": image.noise_sigma,
        "bias_amplitude": spec.bias_amplitude,
        "cord_ap_mm": spec.cord_ap_mm,
        "cord_lr_mm": spec.cord_lr_mm,
        "csf_rim_mm": spec.csf_rim_mm,
        "cord_area_mm2": truth.cord_area_mm2,
        "cord_volume_pv_mm3": image.occupancy_volume_mm3("cord"),
        "curvature_amplitude_mm": spec.curvature_amplitude_mm,
        "curvature_period_mm": spec.curvature_period_mm,
        "tilt_deg": spec.tilt_deg,
    }
    for axis, value in zip("ijk", image.spacing_mm, strict=True):
        row[f"spacing_{axis}_mm"] = round(value, 9)
    for axis, value in zip(("lr", "ap", "si"), truth.graft_semi_axes_mm, strict=True):
        row[f"graft_semi_axis_{axis}_mm"] = value
    for axis, value in zip("xyz", truth.injection_site_mm, strict=True):
        row[f"injection_{axis}_mm"] = value
    for axis, value in zip("xyz", truth.motion.rotation_deg, strict=True):
        row[f"motion_r{axis}_deg"] = value
    for axis, value in zip("xyz", truth.motion.translation_mm, strict=True):
        row[f"motion_t{axis}_mm"] = value
    row.update(paths)
    return row


_PARTICIPANT_COLUMNS = {
    "participant_id": {"Description": "Subject label."},
    "species": {"Description": "Species (binomial name)."},
    "graft_mode": {
        "Description": "How the graft is seen.",
        "Levels": {
            "iron": "Iron-oxide labelled cells: signal void on T2*w.",
            "t2": "Unlabelled cells: intramedullary T2w signal.",
        },
    },
    "injection_date": {"Description": "Date of the cell injection (YYYY-MM-DD)."},
    "injection_x": {
        "Description": "Injection site, scanner RAS x in the session injection_session.",
        "Units": "mm",
    },
    "injection_y": {"Description": "Injection site, scanner RAS y.", "Units": "mm"},
    "injection_z": {"Description": "Injection site, scanner RAS z.", "Units": "mm"},
    "injection_session": {"Description": "Session whose scanner space holds the site."},
    "cells_injected": {"Description": "Number of cells injected."},
}


def _resolve_specs(
    n_subjects: int,
    mode: Mode | None,
    scale: Scale | None,
    snr: float | None,
    spec: PhantomSpec | Mapping[str, PhantomSpec] | None,
) -> list[PhantomSpec]:
    if isinstance(spec, PhantomSpec):
        if mode is not None and mode != spec.mode:
            raise ConfigError(f"mode={mode!r} contradicts spec.mode={spec.mode!r}")
        mode = spec.mode
    elif spec is not None:
        for key, value in spec.items():
            if not isinstance(value, PhantomSpec) or value.mode != key:
                raise ConfigError(f"spec[{key!r}] must be a PhantomSpec with mode {key!r}")
    specs = []
    for index in range(n_subjects):
        subject_mode = mode if mode is not None else ("t2", "iron")[index % 2]
        if isinstance(spec, PhantomSpec):
            base = spec
        elif spec is not None and subject_mode in spec:
            base = spec[subject_mode]
        else:
            base = default_spec(scale, subject_mode)
        if snr is not None:
            for acq in base.acquisitions:
                base = base.with_acquisition(acq.suffix, snr=float(snr))
        specs.append(base)
    return specs


def write_study(
    out_dir: str | os.PathLike,
    *,
    n_subjects: int = 2,
    n_sessions: int = 3,
    mode: Mode | None = None,
    seed: int = 0,
    scale: Scale | None = None,
    snr: float | None = None,
    spec: PhantomSpec | Mapping[str, PhantomSpec] | None = None,
    overwrite: bool = False,
    on_session: Callable[[str], None] | None = None,
) -> Path:
    """Write a longitudinal BIDS phantom study with its ground truth; return its path.

    Parameters
    ----------
    out_dir : path-like
        New or empty folder (created with its parents).
    n_subjects, n_sessions : int
        Study size.
    mode : {'iron', 't2'}, optional
        Graft mode of every subject; None alternates ``t2`` (odd subjects) and ``iron``.
    seed : int
        Seeds everything; subject ``i``, session ``j`` only depend on ``(seed, i, j)``.
    scale : {'human', 'rodent'}, optional
        Scale of every subject; None takes the mode's default (``t2``: human, ``iron``:
        rodent).
    snr : float, optional
        Overrides the SNR (cord signal / σ) of every image.
    spec : PhantomSpec or mapping of mode to PhantomSpec, optional
        Base spec of every subject (then ``scale`` is ignored and ``mode`` must agree), or one
        base spec per mode (``{'t2': ..., 'iron': ...}``); missing modes use the defaults.
    overwrite : bool
        Replace an existing, non-empty ``out_dir`` if it holds a study written by this function.
    on_session : callable, optional
        Called with ``sub-X_ses-Y`` after each session is written (progress).

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Raises
    ------
    OutputError
        If ``out_dir`` is a file, is not empty (without ``overwrite``), or is not a phantom study.
    ConfigError
        For invalid sizes or parameters.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> spec = default_spec("rodent", "t2").with_acquisition(
    ...     "T2w", shape=(40, 40, 14), fov_offset_mm=(0.0, 0.0, 0.0), supersample=2)
    >>> out = write_study(pathlib.Path(tempfile.mkdtemp()) / "study", n_subjects=1,
    ...                   n_sessions=2, spec=spec, seed=1)
    >>> sorted(p.name for p in (out / "sub-01" / "ses-02" / "anat").iterdir())
    ['sub-01_ses-02_T2w.json', 'sub-01_ses-02_T2w.nii.gz']
    """
    for name, value in (("n_subjects", n_subjects), ("n_sessions", n_sessions)):
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name}={value!r} must be a positive integer")
    if mode is not None and mode not in MODES:
        raise ConfigError(f"mode must be 'iron', 't2' or None, not {mode!r}")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed={seed!r} must be a non-negative integer")
    if snr is not None and not (math.isfinite(snr) and snr > 0):
        raise ConfigError(f"snr={snr!r} must be > 0")
    base_specs = _resolve_specs(n_subjects, mode, scale, snr, spec)
    out_dir = Path(out_dir)
    with _staged_folder(out_dir, overwrite) as root:
        _write_all(root, base_specs, n_sessions, int(seed), on_session)
    return out_dir


def _write_all(
    root: Path,
    base_specs: list[PhantomSpec],
    n_sessions: int,
    seed: int,
    on_session: Callable[[str], None] | None = None,
) -> None:
    generated_by = [
        {
            "Name": GENERATOR_NAME,
            "Version": __version__,
            "Description": "Synthetic spinal cord MRI with analytic ground truth.",
        }
    ]
    n_subjects = len(base_specs)
    modes = sorted({s.mode for s in base_specs})
    write_json_atomic(
        root / "dataset_description.json",
        {
            "Name": "graftimg phantom study",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "raw",
            "License": "CC0",
            "Authors": ["graftimg developers"],
            "GeneratedBy": generated_by,
        },
    )
    write_text_atomic(
        root / "README.md",
        "# graftimg phantom study\n\n"
        f"Synthetic longitudinal spinal cord MRI of {n_subjects} subject(s) x {n_sessions} "
        f"session(s) after a stem-cell graft (modes: {', '.join(modes)}), written by "
        f"graftimg {__version__} with seed {seed}.\n\n"
        "Images are noisy (Rician), bias-corrupted and move slightly between sessions. The "
        "analytic ground truth (graft, cyst and blooming-void volumes, masks in each image's "
        "grid) is in `derivatives/truth/`; `truth.tsv` lists it per image.\n",
    )
    truth_root = root / "derivatives" / "truth"
    truth_root.mkdir(parents=True)
    write_json_atomic(
        truth_root / "dataset_description.json",
        {
            "Name": "graftimg phantom ground truth",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "derivative",
            "GeneratedBy": generated_by,
            "DatasetLinks": {"raw": "../../"},
            "SourceDatasets": [{"URL": "bids:raw:"}],
        },
    )
    participants = []
    truth_rows: list[dict[str, Any]] = []
    record: dict[str, Any] = {"seed": seed, "graftimg_version": __version__, "subjects": {}}
    for s_index, base in enumerate(base_specs, start=1):
        participant = f"sub-{_label(s_index, n_subjects)}"
        rng = np.random.default_rng([seed, s_index])
        spec = subject_spec(base, rng)
        injection_date = _FIRST_INJECTION + dt.timedelta(days=int(rng.integers(0, 365)))
        days = _session_days(spec, n_sessions, rng)
        sessions = []
        subject_record: dict[str, Any] = {"spec": jsonable(spec, digits=12), "sessions": {}}
        for j_index, day in enumerate(days, start=1):
            session = f"ses-{_label(j_index, n_sessions)}"
            session_rng = np.random.default_rng([seed, s_index, j_index])
            motion = (
                RigidMotion()
                if j_index == 1
                else random_motion(
                    session_rng,
                    max_rotation_deg=spec.max_rotation_deg,
                    max_translation_mm=spec.max_translation_mm,
                )
            )
            minutes = int(session_rng.integers(8 * 60, 17 * 60))
            acq_time = dt.datetime.combine(
                injection_date + dt.timedelta(days=day), dt.time(minutes // 60, minutes % 60)
            )
            sessions.append({"session_id": session, "acq_time": acq_time.isoformat()})
            phantom = render_session(spec, days=float(day), seed=session_rng, motion=motion)
            anat = root / participant / session / "anat"
            anat.mkdir(parents=True)
            truth_dir = truth_root / participant / session
            (truth_dir / "anat").mkdir(parents=True)
            stem = f"{participant}_{session}"
            for suffix, image in phantom.images.items():
                name = f"{stem}_{suffix}.nii.gz"
                raw_name = f"{participant}/{session}/anat/{name}"
                write_image(anat, f"{stem}_{suffix}", spec, image)
                paths = _write_image_truth(truth_dir, stem, image, raw_name)
                truth_rows.append(
                    _truth_row(participant, session, raw_name, phantom, image, paths)
                )
            subject_record["sessions"][session] = {
                "days": day,
                "acq_time": acq_time.isoformat(),
                "motion": jsonable(motion, digits=12),
                "motion_matrix": jsonable(motion.matrix(spec.injection_world_mm), digits=12),
                "truth": jsonable(
                    {k: v for k, v in dataclasses.asdict(phantom.truth).items() if k != "motion"},
                    digits=12,
                ),
            }
            if on_session is not None:
                on_session(stem)
        write_text_atomic(
            root / participant / f"{participant}_sessions.tsv",
            tsv_text(["session_id", "acq_time"], sessions),
        )
        site = spec.injection_world_mm
        participants.append(
            {
                "participant_id": participant,
                "species": _SPECIES[spec.scale],
                "graft_mode": spec.mode,
                "injection_date": injection_date.isoformat(),
                "injection_x": site[0],
                "injection_y": site[1],
                "injection_z": site[2],
                "injection_session": sessions[0]["session_id"],
                "cells_injected": spec.cells_injected,
            }
        )
        record["subjects"][participant] = subject_record
    write_text_atomic(
        root / "participants.tsv", tsv_text(list(_PARTICIPANT_COLUMNS), participants)
    )
    write_json_atomic(root / "participants.json", _PARTICIPANT_COLUMNS)
    write_text_atomic(truth_root / "truth.tsv", tsv_text(list(_TRUTH_COLUMNS), truth_rows))
    write_json_atomic(
        truth_root / "truth.json", {k: {"Description": v} for k, v in _TRUTH_COLUMNS.items()}
    )
    write_json_atomic(truth_root / "phantom.json", record)

"""``graftimg run`` on whole studies (issue 10): results that follow from their inputs, failures
that stay in their session, a BIDS derivatives output that never lands among raw data."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import graftimg.pipeline.session as session_module
import graftimg.pipeline.study as study_module
import graftimg.pipeline.study.run as run_module
from graftimg.cli import main
from graftimg.errors import OutputError
from graftimg.io.atomic import atomic_path, exclusive_lock
from graftimg.io.bids import discover_study
from graftimg.phantom.spec import default_spec
from graftimg.phantom.study import write_study
from graftimg.pipeline.config import PipelineConfig
from graftimg.pipeline.study import plan_study, run_job, run_participants

SMALL = default_spec("rodent", "t2").with_acquisition(
    "T2w", shape=(40, 40, 14), fov_offset_mm=(0.0, 0.0, 0.0), supersample=2
)
NAMES = ["sub-01_ses-01", "sub-01_ses-02", "sub-02_ses-01", "sub-02_ses-02"]


def _write(root: Path, n_subjects: int = 2) -> Path:
    return write_study(root, n_subjects=n_subjects, n_sessions=2, spec=SMALL, seed=1)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small t2 study (2 subjects × 2 sessions) and its derivatives, made once."""
    base = tmp_path_factory.mktemp("small")
    bids = _write(base / "bids")
    out = base / "out"
    outcomes, problems = run_participants(bids, out)
    assert [o.status for o in outcomes] == ["done"] * 4 and not problems
    return bids, out


@pytest.fixture
def copy(small, tmp_path):
    """A private copy of the small study and its derivatives."""
    bids, out = small
    shutil.copytree(bids, tmp_path / "bids")
    shutil.copytree(out, tmp_path / "out")
    return tmp_path / "bids", tmp_path / "out"


def _statuses(outcomes):
    return {o.job.name: o.status for o in outcomes}


def _group(bids, out):
    table = study_module.run_group(out, bids, reports=False)
    with open(table) as handle:
        return {
            f"{r['participant_id']}_{r['session_id']}": r
            for r in csv.DictReader(handle, delimiter="\t")
        }


def _mtimes(out):
    """Modification times of every session output."""
    return {p: p.stat().st_mtime_ns for p in out.glob("sub-*/**/*") if p.is_file()}


def _file_states(out):
    """Every file of the output folder with its inode, size and modification time."""
    return {
        p: (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns)
        for p in out.rglob("*")
        if p.is_file()
    }


# -- results that follow from their inputs ----------------------------------------------------
def test_changed_injection_site_redoes_exactly_that_subject(copy):
    bids, out = copy
    path = bids / "participants.tsv"
    rows = path.read_text().splitlines()
    header = rows[0].split("\t")
    cells = rows[2].split("\t")
    assert cells[0] == "sub-02"
    x = header.index("injection_x")
    cells[x] = f"{float(cells[x]) + 0.3:.3f}"
    rows[2] = "\t".join(cells)
    path.write_text("\n".join(rows) + "\n")
    outcomes, _ = run_participants(bids, out)
    assert _statuses(outcomes) == {
        "sub-01_ses-01": "skipped",
        "sub-01_ses-02": "skipped",
        "sub-02_ses-01": "done",
        "sub-02_ses-02": "done",
    }
    result = json.loads(next((out / "sub-02/ses-01/anat").glob("*_graft.json")).read_text())
    assert result["manifest"]["participant"]["injection_x"] == cells[x]


def test_corrupt_image_fails_and_leaves_the_table_as_failed(copy):
    bids, out = copy
    image = bids / "sub-01/ses-02/anat/sub-01_ses-02_T2w.nii.gz"
    image.write_bytes(image.read_bytes()[:300])
    # The group level alone already refuses the old number of a changed input...
    rows = _group(bids, out)
    assert rows["sub-01_ses-02"]["status"] == "failed"
    assert rows["sub-01_ses-02"]["graft_volume_pv_mm3"] == "n/a"
    assert "rerun the participant level" in rows["sub-01_ses-02"]["reason"]
    # ... and the participant level fails that session alone, removing its old outputs.
    outcomes, _ = run_participants(bids, out)
    assert _statuses(outcomes) == dict(zip(NAMES, ["skipped", "failed", "skipped", "skipped"]))
    anat = out / "sub-01/ses-02/anat"
    assert sorted(p.name for p in anat.iterdir()) == ["sub-01_ses-02_failed.json"]
    assert not list((out / "sub-01/figures").glob("sub-01_ses-02_*"))
    rows = _group(bids, out)
    assert [rows[n]["status"] for n in NAMES] == ["done", "failed", "done", "done"]
    failed = rows["sub-01_ses-02"]
    assert failed["graft_volume_pv_mm3"] == "n/a" and failed["cord_volume_mm3"] == "n/a"
    assert str(image) in failed["reason"]
    assert float(rows["sub-01_ses-01"]["cord_volume_mm3"]) > 0


def test_a_result_whose_image_is_gone_is_never_listed_with_its_number(copy):
    bids, out = copy
    for path in (bids / "sub-02/ses-02/anat").iterdir():
        path.rename(path.with_name(path.name.replace("_T2w", "_acq-new_T2w")))
    rows = _group(bids, out)
    assert [rows[n]["status"] for n in NAMES] == ["done", "done", "done", "failed"]
    assert rows["sub-02_ses-02"]["graft_volume_pv_mm3"] == "n/a"
    assert "no image of" in rows["sub-02_ses-02"]["reason"]
    # The participant level analyses the renamed image and removes the old outputs.
    outcomes, _ = run_participants(bids, out, participant_labels=["02"], session_labels=["02"])
    assert _statuses(outcomes) == {"sub-02_ses-02": "done"}
    names = sorted(p.name for p in (out / "sub-02/ses-02/anat").iterdir())
    assert names and all(n.startswith("sub-02_ses-02_acq-new_space-orig_") for n in names)
    figures = sorted(p.name for p in (out / "sub-02/figures").glob("sub-02_ses-02_*"))
    assert figures == ["sub-02_ses-02_acq-new_desc-qc_T2w.png"]
    assert _group(bids, out)["sub-02_ses-02"]["status"] == "done"


def test_config_comment_and_description_redo_nothing(copy, tmp_path):
    bids, out = copy
    before = _mtimes(out)
    for text in ("# first\ndescription: one\n", "# second\ndescription: two\nscale: auto\n"):
        config = tmp_path / "c.yaml"
        config.write_text(text)
        assert main(["run", str(bids), str(out), "participant", "--config", str(config)]) == 0
    assert _mtimes(out) == before
    # A parameter that changes redoes every session.
    config.write_text("preprocess: {n4_iterations: 9}\n")
    outcomes, _ = run_participants(bids, out, participant_labels=["01"], config=None)
    assert set(_statuses(outcomes).values()) == {"skipped"}
    from graftimg.pipeline.config import load_config

    outcomes, _ = run_participants(
        bids, out, participant_labels=["01"], session_labels=["01"], config=load_config(config)
    )
    assert _statuses(outcomes) == {"sub-01_ses-01": "done"}


def test_another_run_holding_a_session_is_never_duplicated(small, tmp_path):
    bids, _ = small
    jobs, _ = plan_study(discover_study(bids), tmp_path / "out")
    folder = study_module.session_outputs(jobs[0])["json"].parent
    folder.mkdir(parents=True)
    with exclusive_lock(folder / f".graftimg-lock-{jobs[0].name}") as held:
        assert held
        outcome = run_job(jobs[0], PipelineConfig())
    assert outcome.status == "busy"
    assert sorted(p.name for p in folder.iterdir()) == []


# -- every failure stays in its session --------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "words"),
    [
        (PermissionError(13, "Permission denied"), "Permission denied"),
        (MemoryError(), "out of memory"),
    ],
)
def test_permission_and_memory_errors_stay_in_their_session(
    copy, monkeypatch, capsys, error, words
):
    bids, out = copy
    shutil.rmtree(out)
    bad = bids / "sub-02/ses-01/anat/sub-02_ses-01_T2w.nii.gz"
    original = session_module.load_volume

    def load(path, **kwargs):
        if Path(path) == bad:
            if isinstance(error, OSError):
                raise type(error)(error.errno, error.strerror, str(path))
            raise MemoryError
        return original(path, **kwargs)

    monkeypatch.setattr(session_module, "load_volume", load)
    monkeypatch.setattr(run_module, "_has_matplotlib", lambda: False)
    assert main(["run", str(bids), str(out), "participant"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    failed = [line for line in err.splitlines() if line.startswith("[") and "failed" in line]
    assert len(failed) == 1 and "sub-02_ses-01" in failed[0] and words in failed[0]
    assert str(bad) in failed[0]
    rows = _group(bids, out)
    assert [rows[n]["status"] for n in NAMES] == ["done", "done", "failed", "done"]


def test_hints_inside_run_name_what_run_accepts(tmp_path, capsys):
    bids = write_study(tmp_path / "bids", n_subjects=1, n_sessions=1, spec=SMALL, seed=1)
    image = bids / "sub-01/ses-01/anat/sub-01_ses-01_T2w.nii.gz"
    img = nib.load(image)
    data = np.asanyarray(img.dataobj)
    series = nib.Nifti1Image(np.stack([data, data], axis=-1), img.affine)
    series.set_qform(img.affine, 1)
    nib.save(series, image)
    out = tmp_path / "out"
    assert main(["run", str(bids), str(out), "participant"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "is 4D with 2 volumes" in err
    assert "load: {volume_index: N}" in err and "--volume-index" not in err
    config = tmp_path / "c.yaml"
    config.write_text("load:\n  volume_index: 1\n")
    assert main(["run", str(bids), str(out), "participant", "--config", str(config)]) == 0
    assert (out / "sub-01/ses-01/anat/sub-01_ses-01_space-orig_desc-T2w_graft.json").is_file()
    assert not (out / "sub-01/ses-01/anat/sub-01_ses-01_failed.json").exists()


# -- output ------------------------------------------------------------------------------------
def _deriv_regexes():
    from bidsschematools import rules, schema

    loaded = schema.load_schema()
    return [
        r["regex"]
        for group in (loaded.rules.files.common, loaded.rules.files.deriv)
        for r in rules.regexify_filename_rules(group, loaded, level=2)
    ]


def test_derivatives_pass_the_bids_schema(small):
    import fnmatch

    _, out = small
    regexes = _deriv_regexes()
    ignore = (out / ".bidsignore").read_text().split()
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    named = [f for f in files if not f.startswith(".")]
    unmatched = [f for f in named if not any(re.match(r, f) for r in regexes)]
    # What BIDS has no name for is listed in .bidsignore: results, failures, table, figures.
    for path in unmatched:
        assert any(fnmatch.fnmatch(path, pat.rstrip("/") + "*") for pat in ignore), path
    masks = [f for f in named if f.endswith("_mask.nii.gz")]
    assert len(masks) == 12  # graft, cord and cyst for each of 4 sessions
    for mask in masks:
        assert mask not in unmatched
        assert "_desc-T2w_mask" in mask
        sidecar = json.loads((out / mask.replace(".nii.gz", ".json")).read_text())
        assert sidecar["Sources"][0].startswith("bids:raw:sub-")
        assert sidecar["Parameters"]["graft"] == {}
    figures = [f for f in named if f.endswith(".png")]
    assert figures and all(
        re.fullmatch(r"sub-0\d/figures/sub-0\d_ses-0\d_desc-qc_T2w\.png", f) for f in figures
    )
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative"
    assert desc["GeneratedBy"][0]["Version"] and desc["GeneratedBy"][0]["CodeURL"]
    assert desc["SourceDatasets"] == [{"URL": "bids:raw:"}]
    assert desc["DatasetLinks"]["raw"].startswith("file://")


def test_output_inside_the_input_or_another_raw_dataset_is_refused(small, tmp_path, capsys):
    bids, _ = small
    for out in (bids / "sub-01" / "anat", bids / "sub-01", bids / "derivatives"):
        assert main(["run", str(bids), str(out), "participant"]) == 1, out
        assert "the output folder is" in capsys.readouterr().err
    assert main(["run", str(bids), str(bids / "sub-01" / "out"), "participant"]) == 1
    assert "inside the input dataset" in capsys.readouterr().err
    other = write_study(tmp_path / "other", n_subjects=1, n_sessions=1, spec=SMALL, seed=1)
    for out in (other, other / "sub-01" / "x"):
        assert main(["run", str(bids), str(out), "participant"]) == 1
        assert "raw BIDS dataset" in capsys.readouterr().err
    assert not (bids / "sub-01" / "out").exists() and not (other / "sub-01" / "x").exists()


def test_output_under_the_input_derivatives_is_accepted(tmp_path):
    bids = write_study(tmp_path / "bids", n_subjects=1, n_sessions=1, spec=SMALL, seed=1)
    out = bids / "derivatives" / "graftimg"
    assert main(["run", str(bids), str(out), "participant"]) == 0
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetLinks"]["raw"] == "../../"


def test_a_stray_folder_is_skipped_with_one_warning(small, tmp_path, capsys, monkeypatch):
    bids, _ = small
    stray = tmp_path / "bids"
    shutil.copytree(bids, stray)
    (stray / "sub-01_old").mkdir()
    (stray / "sub-02" / "ses-01_bad").mkdir()
    monkeypatch.setattr(run_module, "_has_matplotlib", lambda: False)
    args = ["run", str(stray), str(tmp_path / "out"), "participant", "--participant-label", "02"]
    assert main([*args, "--session-label", "01"]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 2 and "sub-01_old" in warnings[0] and "ses-01_bad" in warnings[1]
    assert main(["info", str(stray)]) == 0


# -- messages ----------------------------------------------------------------------------------
def test_group_of_a_missing_dataset_fails(tmp_path, capsys):
    assert main(["run", str(tmp_path / "does/not/exist"), str(tmp_path / "out"), "group"]) == 1
    assert "not a folder" in capsys.readouterr().err


def test_unwritable_output_names_the_file_not_a_temporary(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / ".graftimg-tmp-1-x"))

    monkeypatch.setattr("graftimg.io.atomic._create_file", refuse)  # where the temporary is made
    with pytest.raises(OutputError) as info, atomic_path(tmp_path / "table.tsv"):
        pass
    assert str(info.value).startswith(f"{tmp_path / 'table.tsv'}: cannot write (Permission")
    assert ".graftimg-tmp" not in str(info.value)


def test_sample_data_names_its_own_option_and_shows_progress(tmp_path, capsys):
    assert main(["sample-data", str(tmp_path / "s"), "--subjects", "1", "--sessions", "1"]) == 0
    assert "[1/1] wrote sub-01_ses-01" in capsys.readouterr().err
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "f").write_text("x")
    assert main(["sample-data", str(tmp_path / "busy")]) == 1
    err = capsys.readouterr().err
    assert "--overwrite" in err and "overwrite=True" not in err


def test_stderr_never_wraps_a_long_path(small, tmp_path):
    bids, _ = small
    deep = tmp_path / ("a_very_long_folder_name_" * 4) / "bids"
    shutil.copytree(bids, deep)
    image = deep / "sub-01/ses-01/anat/sub-01_ses-01_T2w.nii.gz"
    image.write_bytes(image.read_bytes()[:300])
    args = ("run", deep, tmp_path / "out", "participant", "--participant-label", "01")
    env = {**os.environ, "COLUMNS": "80"}
    done = subprocess.run(
        _cli(*args, "--session-label", "01"), capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 1
    (line,) = [line for line in done.stderr.splitlines() if "failed" in line]
    assert str(image) in line and len(line) > 160


# -- a killed run -------------------------------------------------------------------------------
def _cli(*args):
    return [sys.executable, "-c", "from graftimg.cli.main import run; run()", *map(str, args)]


def _committed(out):
    """Results JSON of finished sessions (not those still in a run's hidden folder)."""
    return [p for p in out.glob("sub-*/*/anat/*_graft.json")]


def test_sigkill_mid_run_then_rerun_does_only_what_was_missing(tmp_path, monkeypatch, capsys):
    bids = _write(tmp_path / "bids")
    out = tmp_path / "out"
    process = subprocess.Popen(
        _cli("run", bids, out, "participant"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Kill it while the second session is being written (after the first one finished).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if _committed(out) and list(out.glob("sub-*/**/.graftimg-tmp-*/*_mask.nii.gz")):
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = {p.name.split("_space")[0] for p in _committed(out)}
    assert 1 <= len(finished) < 4
    assert list(out.rglob(".graftimg-*")), "the kill left no temporary: it came too late"

    rerun = subprocess.run(
        _cli("run", bids, out, "participant"), capture_output=True, text=True, check=False
    )
    assert rerun.returncode == 0, rerun.stderr
    summary = f"{4 - len(finished)} sessions done, {len(finished)} skipped (already done)"
    assert summary in rerun.stdout, rerun.stderr
    for name in finished:
        assert f"skipped {name}" in rerun.stderr
    assert not list(out.rglob(".graftimg-*"))
    # Every file of a session is one its results JSON lists (mask sidecars beside their mask).
    for result in _committed(out):
        listed = json.loads(result.read_text())["outputs"].values()
        name = result.name.split("_space")[0]
        own = {p.name for p in out.rglob(f"{name}_*")}
        expected = {result.name, *listed}
        expected |= {n.replace(".nii.gz", ".json") for n in listed if n.endswith(".nii.gz")}
        assert own == expected

    # A third run does nothing: no session is analysed, no file is rewritten or replaced. (How
    # fast that is, next to a full run: benchmarks/bench_rerun.py.)
    before = _file_states(out)
    analysed = []

    def run_session(*args, **kwargs):
        analysed.append(args)
        raise AssertionError("a finished session was analysed again")

    monkeypatch.setattr(session_module, "run_session", run_session)
    capsys.readouterr()
    assert main(["--debug", "run", str(bids), str(out), "participant"]) == 0
    assert "0 sessions done, 4 skipped" in capsys.readouterr().out
    assert analysed == []
    assert _file_states(out) == before

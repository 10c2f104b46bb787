"""Pipeline configurations: shipped files load, unknown keys and bad values are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from graftimg.cli import main
from graftimg.errors import ConfigError
from graftimg.pipeline.config import PipelineConfig, load_config

PIPELINES = sorted((Path(__file__).parents[1] / "pipelines").glob("*.yaml"))


def test_pipelines_folder_has_both_modes():
    assert {p.name for p in PIPELINES} >= {"iron_t2starw.yaml", "t2w_unlabeled.yaml"}


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_shipped_configs_load(path):
    cfg = load_config(path)
    assert cfg.graft_params("human").k_sigma == 3.0


def test_defaults_follow_scale():
    cfg = PipelineConfig()
    assert cfg.resolve_scale((0.1, 0.1, 0.5)) == "rodent"
    assert cfg.resolve_scale((0.8, 0.8, 0.8)) == "human"
    assert cfg.resolved("rodent")["graft"]["window_half_length_mm"] == 5.0
    assert cfg.resolved("human")["graft"]["window_half_length_mm"] == 30.0
    assert cfg.resolved("rodent")["preprocess"]["shrink_factor"] == 1


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("graft:\n  kk: 3\n", "unknown graft parameter"),
        ("grafts:\n  k_sigma: 3\n", "grafts"),
        ("graft:\n  k_sigma: -1\n", "k_sigma"),
        ("scale: elephant\n", "scale"),
        ("preprocess:\n  shrink_factor: 0\n", "shrink_factor"),
        ("- a\n- b\n", "mapping"),
        ("graft: [unclosed\n", "YAML"),
    ],
)
def test_bad_configs_are_refused(tmp_path, text, match):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_missing_config_via_cli_is_one_line(tmp_path, capsys):
    image = Path(__file__).parent / "data/sct_testing_data/t2/t2.nii.gz"
    code = main(
        [
            "segment",
            str(image),
            "-o",
            str(tmp_path / "o"),
            "--mode",
            "t2",
            "--config",
            str(tmp_path / "absent.yaml"),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "configuration file not found" in err
    assert list(tmp_path.iterdir()) == []

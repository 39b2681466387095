"""The main job's reuse rules: a trained run is reused only if it was trained with the current configuration."""

import json

from snnav.app.commands.run import DEFAULT_TRAIN_CONFIG, _stale_run
from snnav.training.config import load_config


def test_a_run_with_the_same_config_is_reused(tmp_path):
    config = load_config(DEFAULT_TRAIN_CONFIG).replace(data=str(tmp_path / "d.h5"))
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    assert _stale_run(tmp_path, config) == ""
    assert _stale_run(tmp_path / "missing", config) == ""


def test_a_run_with_another_config_is_stale_and_the_reason_names_the_keys(tmp_path):
    config = load_config(DEFAULT_TRAIN_CONFIG).replace(data=str(tmp_path / "d.h5"))
    old = config.replace(model_config={**config.model_config, "num_heads": 16}, epochs=2)
    (tmp_path / "config.json").write_text(json.dumps(old.to_dict()))
    reason = _stale_run(tmp_path, config)
    assert "model_config" in reason and "epochs" in reason


def test_an_unreadable_saved_config_is_stale(tmp_path):
    config = load_config(DEFAULT_TRAIN_CONFIG)
    (tmp_path / "config.json").write_text("{not json")
    assert "cannot be read" in _stale_run(tmp_path, config)

"""TrainConfig: round trips, unknown keys, types, TOML files (including the shipped configs/)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from snnav.errors import ConfigError
from snnav.training.config import IEMFConfig, TrainConfig, config_diff, load_config

CONFIGS = Path(__file__).resolve().parents[3] / "snnav" / "configs"


def test_round_trip():
    cfg = TrainConfig(model="cmci", model_config={"embed_dim": 32}, epochs=7, betas=(0.8, 0.99),
                      iemf=IEMFConfig(enabled=True, start_epoch=2, end_epoch=5, gain=2.0))
    again = TrainConfig.from_dict(cfg.to_dict())
    assert again == cfg and again.to_dict() == cfg.to_dict()
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    assert again.iemf.active(2) and again.iemf.active(5) and not again.iemf.active(1) and not again.iemf.active(6)


def test_unknown_keys_are_rejected_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"'epoch' \(did you mean 'epochs'\?\)"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ConfigError, match=r"\[iemf\].*'gian'"):
        TrainConfig.from_dict({"iemf": {"gian": 2.0}})


@pytest.mark.parametrize("data, pattern", [
    ({"epochs": "ten"}, "epochs must be of type int"),
    ({"nesterov": 1}, "nesterov must be true or false"),
    ({"optimizer": "adam"}, "optimizer must be one of adamw, sgd"),
    ({"batch_size": 0}, "batch_size must be a finite number > 0"),
    ({"lr": float("nan")}, "lr must be a finite number > 0"),
    ({"lr": float("inf")}, "lr must be a finite number > 0"),
    ({"weight_decay": float("nan")}, "weight_decay must be a finite number >= 0"),
    ({"label_smoothing": float("nan")}, "label_smoothing must be in"),
    ({"iemf": {"mode": "both"}}, "iemf.mode must be one of"),
    ({"iemf": {"start_epoch": 5, "end_epoch": 2}}, "before iemf.start_epoch"),
    ({"model_config": 3}, "model_config must be a table"),
])
def test_bad_values(data, pattern):
    with pytest.raises(ConfigError, match=pattern):
        TrainConfig.from_dict(data)


def test_toml_loading_and_int_for_float(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('model = "cmrl"\nlr = 1\n[model_config]\nalpha = 1.0\n[iemf]\nenabled = true\n')
    cfg = load_config(path)
    assert cfg.model == "cmrl" and cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert dict(cfg.model_config) == {"alpha": 1.0} and cfg.iemf.enabled
    path.write_text("lr = = 1")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_config_diff_names_nested_keys():
    a = TrainConfig()
    b = a.replace(epochs=3, device="cpu", iemf=IEMFConfig(enabled=True))
    assert config_diff(a, b) == ["epochs", "iemf.enabled"]  # device may change on resume


@pytest.mark.parametrize("name", ["av-digits-scmrl.toml", "crema-d.toml", "urbansound8k-av.toml",
                                  "mnistdvs-ntidigits.toml"])
def test_shipped_configs_load(name):
    cfg = load_config(CONFIGS / name)
    assert cfg.model == "scmrl"
    from snnav.training.loop import build_model

    model = build_model(cfg)
    assert model.model_name == "scmrl"


def test_streaming_config_loads_a_causal_model_trained_at_every_step():
    cfg = load_config(CONFIGS / "av-digits-scmrl-causal.toml")
    assert cfg.model == "scmrl-causal" and cfg.step_loss == "every-step" and cfg.time_steps == 16
    from snnav.training.loop import build_model

    model = build_model(cfg)
    assert model.model_name == "scmrl-causal"
    assert type(model.block_audio.attn).__name__ == "CausalCCSSA"
    with pytest.raises(ConfigError, match="step_loss"):
        TrainConfig(step_loss="sometimes")

"""The training loop: exact resume (epoch and mid-epoch), non-finite stop, run files, bad input, evaluate()."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from snnav.errors import ConfigError, DatasetError
from snnav.training import checkpoint as ckpt_io
from snnav.training.checkpoint import CheckpointError
from snnav.training.loop import NonFiniteLossError, evaluate, train
from snnav.training.losses import TrainingLoss

# SGD + IEMF in grad mode with noise, step checkpoints every 2 steps: every source of state that resume must restore
# (momentum buffers, the IEMF noise generator, BN running stats, the partial sums of an epoch) is exercised.
EXACT = dict(optimizer="sgd", iemf={"enabled": True, "mode": "grad", "noise": True}, checkpoint_every_steps=2)


def _without_time(history):
    return [{k: v for k, v in row.items() if k != "time_s"} for row in history]


def _assert_same_run(dir_a, dir_b):
    a, b = ckpt_io.load_checkpoint(dir_a / "last.pt"), ckpt_io.load_checkpoint(dir_b / "last.pt")
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for key in a["iemf"]:
        if key != "_extra_state":
            assert torch.equal(a["iemf"][key], b["iemf"][key]), key
    assert _without_time(a["history"]) == _without_time(b["history"])
    assert a["step"] == b["step"] and a["epoch"] == b["epoch"]
    steps_a = (dir_a / "iemf_steps.csv").read_text()
    assert steps_a == (dir_b / "iemf_steps.csv").read_text() and len(steps_a.splitlines()) == 1 + a["step"]


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, make_config):
    out = tmp_path_factory.mktemp("straight")
    result = train(make_config(**EXACT), out)
    return out, result


def test_straight_run_writes_its_files(straight_run, make_config):
    out, result = straight_run
    assert {p.name for p in out.iterdir()} >= {"config.json", "last.pt", "best.pt", "metrics.json", "metrics.csv",
                                               "iemf_steps.csv"}
    assert json.loads((out / "config.json").read_text()) == make_config(**EXACT).to_dict()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 2 and len(metrics["epochs"]) == 2
    assert metrics["best_acc"] == max(e["test_acc"] for e in metrics["epochs"]) == result.best_acc
    assert metrics["last_acc"] == metrics["epochs"][-1]["test_acc"] == result.last_acc
    first = metrics["epochs"][0]
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "iemf_I", "train_align", "firing_rate"):
        assert key in first, key
    assert first["lr"] == pytest.approx(1e-6) and first["steps"] == 5
    assert "stem_audio.stages.0.lif" in first["firing_rate"]
    assert all(0.0 <= r <= 1.0 for r in first["firing_rate"].values())
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 2 and "rate:stem_audio.stages.0.lif" in rows[0]
    steps = list(csv.DictReader(open(out / "iemf_steps.csv")))
    assert [int(r["step"]) for r in steps] == list(range(1, 11))
    assert float(first["iemf_I"]) == pytest.approx(sum(float(r["I"]) for r in steps[:5]) / 5)


def test_resume_after_an_epoch_is_exact(straight_run, make_config, tmp_path):
    out, _ = straight_run
    config = make_config(**EXACT)
    first = train(config, tmp_path, stop_after_epoch=1)
    assert first.epochs_completed == 1
    resumed = train(config, tmp_path)  # auto-resume: same config
    assert resumed.epochs_completed == 2
    _assert_same_run(out, tmp_path)


def test_resume_inside_an_epoch_is_exact(straight_run, make_config, tmp_path):
    out, _ = straight_run
    config = make_config(**EXACT)

    def interrupt(event):
        if event.kind == "batch" and event.epoch == 1 and event.step == 4:  # global step 9; last.pt is at step 8
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path, progress=interrupt)
    saved = ckpt_io.load_checkpoint(tmp_path / "last.pt")
    assert (saved["epoch"], saved["epoch_step"], saved["step"]) == (1, 3, 8)
    train(config, tmp_path, resume=True)
    _assert_same_run(out, tmp_path)


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(make_config, tmp_path, monkeypatch):
    config = make_config(epochs=3)
    train(config, tmp_path, stop_after_epoch=1)
    before = {name: (tmp_path / name).read_bytes() for name in ("last.pt", "best.pt", "metrics.json")}
    original = TrainingLoss.__call__
    calls = {"n": 0}

    def poisoned(self, output, labels, extra=None):
        total, parts = original(self, output, labels, extra)
        calls["n"] += 1
        return (total * float("nan") if calls["n"] == 3 else total), parts

    monkeypatch.setattr(TrainingLoss, "__call__", poisoned)
    expected = r"epoch 1, step 3/5 \(global step 8\).*last\.pt \(1 epochs done, global step 5\)"
    with pytest.raises(NonFiniteLossError, match=expected):
        train(config, tmp_path)
    assert all((tmp_path / name).read_bytes() == data for name, data in before.items())


def test_huge_learning_rate_is_caught(make_config, tmp_path):
    with pytest.raises(NonFiniteLossError, match="training loss is (nan|inf)|gradients hold NaN or infinite"):
        train(make_config(lr=1e30, warmup_epochs=0, epochs=1), tmp_path)
    assert not (tmp_path / "last.pt").exists()


def test_evaluate_rebuilds_the_model_from_a_checkpoint(straight_run):
    out, result = straight_run
    assert evaluate(out) == pytest.approx(result.best_acc)  # best.pt
    assert evaluate(out / "last.pt") == pytest.approx(result.last_acc)


# ------------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("changes, error, pattern", [
    ({"model": "scmrl2"}, ConfigError, "unknown model 'scmrl2'; expected one of: .*scmrl"),
    ({"dataset": "cifar"}, DatasetError, "unknown dataset 'cifar'"),
    ({"model_config": {"embed_dim": 16, "num_heads": 4, "depth": 3}}, ConfigError,
     r"unknown config key\(s\) \['depth'\]"),
    ({"model_config": {"embed_dim": 16, "num_heads": 4, "in_channels_visual": 2}}, ConfigError,
     "visual has 1 channels .* expects 2; set model_config.in_channels_visual = 1"),
    ({"input_size": 64}, ConfigError, "frames are 32x32 but the model is set up for 64x64"),
    ({"model_config": {"embed_dim": 16, "num_heads": 4, "num_classes": 5}}, ConfigError,
     "labels up to 9 but model 'scmrl' has 5 classes"),
    ({"data": None}, ConfigError, "no data path"),
])
def test_bad_input_fails_before_training(make_config, tmp_path, changes, error, pattern):
    with pytest.raises(error, match=pattern):
        train(make_config(**changes), tmp_path / "run")
    assert not (tmp_path / "run" / "last.pt").exists()


def test_missing_data_file(make_config, tmp_path):
    with pytest.raises(DatasetError):
        train(make_config(data=str(tmp_path / "nope.h5")), tmp_path / "run")


def test_run_dir_with_another_config_or_model_is_refused(straight_run, make_config, tmp_path):
    out, _ = straight_run
    with pytest.raises(ConfigError, match=r"different config \(differs in: model\).*--resume"):
        train(make_config(**{**EXACT, "model": "cmrl"}), out)
    with pytest.raises(ConfigError, match="already holds a run"):
        train(make_config(**EXACT), out, resume=False)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(make_config(), tmp_path, resume=True)
    saved = ckpt_io.load_checkpoint(out)
    with pytest.raises(CheckpointError, match="holds model 'scmrl' but 'cmci' was asked for; use --model scmrl"):
        ckpt_io.check_model_matches(saved, "cmci", saved["model_config"])
    with pytest.raises(CheckpointError, match=r"built differently \(embed_dim: 16 vs 32"):
        ckpt_io.check_model_matches(saved, "scmrl", {**saved["model_config"], "embed_dim": 32})


def test_corrupt_checkpoint_is_reported(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        ckpt_io.load_checkpoint(tmp_path)

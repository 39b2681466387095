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


def test_every_stage_prints_its_time_and_the_summary_names_them(tmp_path, monkeypatch, capsys):
    """The stages' order, arguments and results flow as before; each one's time is printed, and the total names all."""
    from snnav.app import cli
    from snnav.app.commands import run as run_cmd

    calls = []

    def stage(name, result=None):
        def fn(*args):
            calls.append(name)
            return result
        return fn

    monkeypatch.setattr(run_cmd, "_stage_data", stage("data", (tmp_path / "d.h5", False)))
    monkeypatch.setattr(run_cmd, "_stage_train", stage("train", tmp_path / "train"))
    monkeypatch.setattr(run_cmd, "_stage_export", stage("export", tmp_path / "model.nir"))
    monkeypatch.setattr(run_cmd, "_stage_simulate", stage("simulate"))
    monkeypatch.setattr(run_cmd, "_stage_emulate", stage("emulate"))
    monkeypatch.setattr(run_cmd, "_stage_report", stage("report", tmp_path / "report.html"))
    assert cli.main(["run", "--workdir", str(tmp_path / "w"), "--no-gpu", "--no-fast-runtime"]) == 0
    out = capsys.readouterr().out
    assert calls == ["data", "train", "export", "simulate", "emulate", "report"]
    for i, name in enumerate(calls, 1):
        assert f"[{i}/6 {name}] took " in out
    summary = next(line for line in out.splitlines() if line.startswith("main job done in"))
    assert all(f"{name} " in summary for name in calls) and str(tmp_path / "report.html") in out


def test_the_whole_split_emulation_shares_its_chunks_among_the_workers(tmp_path, monkeypatch):
    """--workers reaches the fixed-point whole-split emulation (snnav simulate --jobs: identical results, tested in
    test_cli_simulate); the 250-sample float run stays in this process."""
    from snnav.app.commands import run as run_cmd

    seen = []
    monkeypatch.setattr(run_cmd, "_simulate_to_file",
                        lambda stage, graph, data, out, backend, precision, samples, force, jobs=1:
                        seen.append((out.name, precision, samples, jobs)))
    run_cmd._stage_emulate(tmp_path, tmp_path / "model.nir", tmp_path / "d.h5", False, 2)
    assert seen == [("emulator-fixed.json", "fixed", None, 2), ("emulator-float.json", "float", run_cmd.FLOAT_SAMPLES, 1)]
    parser = __import__("argparse").ArgumentParser()
    run_cmd.add_arguments(parser)
    assert "emulation" in next(a.help for a in parser._actions if a.dest == "workers")


def test_the_data_stage_stores_the_training_views_and_reuses_any_file_that_holds_them(tmp_path, monkeypatch, capsys):
    from snnav.app.commands import run as run_cmd
    from snnav.data.av_digits import generate_av_digits
    from snnav.data.av_digits_config import AVDigitsConfig
    from snnav.data.av_digits_file import read_av_digits_info

    small = AVDigitsConfig(seed=7, n_train=20, n_test=10, frame_size=16, time_steps=2, n_voices=4)
    monkeypatch.setattr(run_cmd, "AVDigitsConfig", lambda: small)
    assert run_cmd.training_views() == ("audio_spectrogram", "visual_static")  # what av-digits-scmrl reads
    path, fresh = run_cmd._stage_data(tmp_path, 1, False)
    assert fresh and read_av_digits_info(path).views == ("visual_static", "audio_spectrogram")
    assert run_cmd._stage_data(tmp_path, 1, False) == (path, False)  # reused
    generate_av_digits(path, small, workers=1)  # a file of every view (snnav data make's) serves as well
    assert run_cmd._stage_data(tmp_path, 1, False) == (path, False)
    generate_av_digits(path, small, workers=1, views=["audio_cochlea", "visual_static"])
    path, fresh = run_cmd._stage_data(tmp_path, 1, False)  # lacks the spectrogram: made again
    assert fresh and "holds no audio_spectrogram view; regenerating" in capsys.readouterr().out
    assert read_av_digits_info(path).views == ("visual_static", "audio_spectrogram")

"""Bad input through the command line, as a user types it: every case must end with exit status 2, exactly one
line on stderr, no traceback, and every file that existed before byte-for-byte unchanged (and no file added).

One tiny world is built once per session (``world``): a dataset (40/20 pairs, 32x32), a one-epoch S-CMRL run, its
export and an emulator result. Most cases run ``snnav.app.cli.main`` in this process (fast); the ``SUBPROCESS``
ones run ``python -m snnav`` exactly as a user does. Full-disk cases write onto a 1 MiB tmpfs (they need root to
mount one; skipped, with the reason, where mounting is not allowed).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from snnav.app import cli
from snnav.data.av_digits import AVDigitsConfig, generate_av_digits
from snnav.training.config import TrainConfig
from snnav.training.loop import train

ROOT = Path(__file__).resolve().parents[3]
TINY_MODEL = {"embed_dim": 16, "num_heads": 4, "mlp_ratio": 2}  # as tests/snnav/conftest.py


# ------------------------------------------------------------------------------------------------- the world


@pytest.fixture(scope="session")
def world(tmp_path_factory, avd_file):
    """Files every case may read and none may change: data, small data (16x16), run, model, result, configs."""
    root = tmp_path_factory.mktemp("world")
    data = root / "avd.h5"
    shutil.copyfile(avd_file, data)
    generate_av_digits(root / "avd16.h5", AVDigitsConfig(n_train=10, n_test=10, frame_size=16, time_steps=4,
                                                          n_voices=4), workers=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(TrainConfig(data=str(data), epochs=1, batch_size=8, warmup_epochs=0, lr=0.05, seed=3, device="cpu",
                          model_config=TINY_MODEL), root / "run")
    finally:
        torch.set_num_threads(threads)
    assert cli.main(["export", str(root / "run"), "--out", str(root / "model.nir"), "--dt-s", "1e-3"]) == 0
    assert cli.main(["simulate", str(root / "model.nir"), "--backend", "emulator", "--samples", "4", "--data",
                     str(data), "--out", str(root / "result.json")]) == 0
    (root / "tiny.toml").write_text('model = "scmrl"\nepochs = 1\nbatch_size = 8\nwarmup_epochs = 0\n'
                                    'model_config = { embed_dim = 16, num_heads = 4, mlp_ratio = 2 }\n')
    gpu = {"format": "snnav.gpu-measurement", "method": "NVML energy counter",
           "hardware": {"gpu_name": "Test GPU"},
           "measurements": [{"target": "torch", "batch_size": 8, "energy_j_per_sample": 2e-3,
                             "dynamic_energy_j_per_sample": 1e-3}]}
    (root / "gpu.json").write_text(json.dumps(gpu))
    return root


def _snapshot(*folders: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def _json_with(world: Path, name: str, path: tuple, value) -> bytes:
    data = json.loads((world / name).read_text())
    where = data
    for key in path[:-1]:
        where = where[key]
    where[path[-1]] = value
    return json.dumps(data).encode()


def _h5_with(world: Path, name: str, edit) -> bytes:
    tmp = world.parent / f"edit-{uuid.uuid4().hex}.h5"
    shutil.copyfile(world / name, tmp)
    with h5py.File(tmp, "r+") as f:
        edit(f)
    data = tmp.read_bytes()
    tmp.unlink()
    return data


def _nan_in(split: str, first: int = 0):
    def edit(f):
        ds = f[f"{split}/audio_spectrogram"]
        values = ds[...]
        values[first:] = np.nan
        ds[...] = values
    return edit


def _dangling_edge(f):
    edges = f["node/edges"][...]
    extra = np.array([[b"visual", b"no_such_node_" + b"x" * 3000]], dtype=edges.dtype)
    del f["node/edges"]
    f["node/edges"] = np.concatenate([edges.astype(object), extra.astype(object)]).astype(h5py.string_dtype())


# Files a case puts into its own folder (name -> bytes, or a function of the world giving bytes).
FILES = {
    "empty": b"",
    "text": b"hello, this is not a snnav file\n",
    "nonutf8.toml": b'model = "scmrl"\n# \xff\xfe latin-1 bytes\n',
    "bad.toml": b"model = \n",
    "unknown.toml": b'modle = "scmrl"\n',
    "nan.toml": b"lr = nan\n",
    "inf.toml": b"lr = inf\n",
    "epochs_text.toml": b'epochs = "four"\n',
    "keep.nir": b"an existing file that must survive\n",
    "keep.json": b'{"keep": true}\n',
    "trunc.h5": lambda w: (w / "avd.h5").read_bytes()[: (w / "avd.h5").stat().st_size // 2],
    "trunc.nir": lambda w: (w / "model.nir").read_bytes()[: (w / "model.nir").stat().st_size // 2],
    "trunc.pt": lambda w: (w / "run" / "last.pt").read_bytes()[:4096],
    "nan_train.h5": lambda w: _h5_with(w, "avd.h5", _nan_in("train")),
    "nan_test.h5": lambda w: _h5_with(w, "avd.h5", _nan_in("test", 7)),
    "dangling.nir": lambda w: _h5_with(w, "model.nir", _dangling_edge),
    "r_model.json": lambda w: _json_with(w, "result.json", ("model",), "x"),
    "r_acc_text.json": lambda w: _json_with(w, "result.json", ("accuracy",), "high"),
    "r_acc_pct.json": lambda w: _json_with(w, "result.json", ("accuracy",), 93.5),
    "r_samples.json": lambda w: _json_with(w, "result.json", ("samples",), -4),
    "r_backend.json": lambda w: _json_with(w, "result.json", ("backend",), "loihi9"),
    "r_format.json": lambda w: _json_with(w, "result.json", ("format",), "something else"),
    "r_counts.json": lambda w: _json_with(w, "result.json", ("counts",), {"nodes": 3}),
    "r_list.json": b"[1, 2, 3]",
    "g_energy_text.json": lambda w: _json_with(w, "gpu.json", ("measurements", 0, "energy_j_per_sample"), "1 mJ"),
    "g_energy_neg.json": lambda w: _json_with(w, "gpu.json", ("measurements", 0, "energy_j_per_sample"), -1e-3),
    "g_batch.json": lambda w: _json_with(w, "gpu.json", ("measurements", 0, "batch_size"), "big"),
    "g_rows.json": lambda w: _json_with(w, "gpu.json", ("measurements",), []),
    "g_hardware.json": lambda w: _json_with(w, "gpu.json", ("hardware",), "H100"),
    "c_energy.json": lambda w: json.dumps({"format": "x"}).encode(),
}

# (id, argv after "snnav" with {w} = the world, {t} = the case's folder, the text the message must contain)
CASES = [
    # the command line itself
    ("cli/unknown-command", ["bogus"], "invalid choice"),
    ("cli/unknown-option", ["train", "--out", "{t}/r", "--no-such-option"], "unrecognized arguments"),
    ("cli/int-not-a-number", ["train", "--out", "{t}/r", "--epochs", "abc"], "invalid int value"),
    ("cli/float-not-a-number", ["train", "--out", "{t}/r", "--lr", "fast"], "invalid float value"),
    ("cli/bad-choice", ["simulate", "{w}/model.nir", "--backend", "loihi"], "invalid choice"),
    ("cli/missing-required", ["export", "{w}/run"], "required"),
    ("info/unknown-option", ["info", "--check-lavaa"], "unrecognized arguments"),
    # data make / data info
    ("data/unknown-dataset", ["data", "make", "cifar", "--out", "{t}/x.h5"], "cannot make dataset"),
    ("data/existing-output", ["data", "make", "av-digits", "--out", "{t}/keep.nir"], "pass --force"),
    ("data/out-is-folder", ["data", "make", "av-digits", "--out", "{t}", "--force"], "is a folder"),
    ("data/workers-0", ["data", "make", "av-digits", "--out", "{t}/x.h5", "--workers", "0"], "--workers"),
    ("data/n-train-0", ["data", "make", "av-digits", "--out", "{t}/x.h5", "--n-train", "0"], "n_train"),
    ("data/n-test-negative", ["data", "make", "av-digits", "--out", "{t}/x.h5", "--n-test", "-5"], "n_test"),
    ("data/frame-size-0", ["data", "make", "av-digits", "--out", "{t}/x.h5", "--frame-size", "0"], "frame_size"),
    ("data/time-steps-0", ["data", "make", "av-digits", "--out", "{t}/x.h5", "--time-steps", "0"], "time_steps"),
    ("data/voices-1", ["data", "make", "av-digits", "--out", "{t}/x.h5", "--voices", "1"], "n_voices"),
    ("data/pixel-noise-nan", ["data", "make", "av-digits", "--out", "{t}/x.h5", "--pixel-noise", "nan"], "pixel"),
    ("data/occlusion-2", ["data", "make", "av-digits", "--out", "{t}/x.h5", "--occlusion", "2"], "occlusion"),
    ("data/snr-minus-inf", ["data", "make", "av-digits", "--out", "{t}/x.h5", "--audio-snr-db", "-inf"], "snr"),
    ("data/pixel-noise-inf", ["data", "make", "av-digits", "--out", "{t}/x.h5", "--pixel-noise", "inf"], "pixel"),
    ("data/snr-nan", ["data", "make", "av-digits", "--out", "{t}/x.h5", "--audio-snr-db", "nan"], "snr"),
    ("data/info-missing", ["data", "info", "{t}/nope.h5"], "nope.h5"),
    ("data/info-empty", ["data", "info", "{t}/empty"], "empty"),
    ("data/info-text", ["data", "info", "{t}/text"], "text"),
    ("data/info-truncated", ["data", "info", "{t}/trunc.h5"], "trunc.h5"),
    ("data/info-folder", ["data", "info", "{t}"], ""),
    # train: configs
    ("train/config-missing", ["train", "--config", "{t}/nope.toml", "--out", "{t}/r"], "does not exist"),
    ("train/config-not-utf8", ["train", "--config", "{t}/nonutf8.toml", "--out", "{t}/r"], "not UTF-8"),
    ("train/config-syntax", ["train", "--config", "{t}/bad.toml", "--out", "{t}/r"], "cannot parse"),
    ("train/config-unknown-key", ["train", "--config", "{t}/unknown.toml", "--out", "{t}/r"], "did you mean"),
    ("train/config-lr-nan", ["train", "--config", "{t}/nan.toml", "--out", "{t}/r"], "lr must be a finite"),
    ("train/config-lr-inf", ["train", "--config", "{t}/inf.toml", "--out", "{t}/r"], "lr must be a finite"),
    ("train/config-wrong-type", ["train", "--config", "{t}/epochs_text.toml", "--out", "{t}/r"], "epochs"),
    # train: options
    ("train/lr-nan", ["train", "--config", "{w}/tiny.toml", "--data", "{w}/avd.h5", "--out", "{t}/r", "--lr", "nan"],
     "lr must be a finite"),
    ("train/lr-inf", ["train", "--config", "{w}/tiny.toml", "--data", "{w}/avd.h5", "--out", "{t}/r", "--lr", "inf"],
     "lr must be a finite"),
    ("train/lr-negative", ["train", "--config", "{w}/tiny.toml", "--data", "{w}/avd.h5", "--out", "{t}/r", "--lr",
                           "-1"], "lr must be"),
    ("train/lr-zero", ["train", "--config", "{w}/tiny.toml", "--data", "{w}/avd.h5", "--out", "{t}/r", "--lr", "0"],
     "lr must be"),
    ("train/epochs-0", ["train", "--config", "{w}/tiny.toml", "--data", "{w}/avd.h5", "--out", "{t}/r", "--epochs",
                        "0"], "epochs must be"),
    ("train/epochs-negative", ["train", "--config", "{w}/tiny.toml", "--data", "{w}/avd.h5", "--out", "{t}/r",
                               "--epochs", "-2"], "epochs must be"),
    ("train/batch-size-0", ["train", "--config", "{w}/tiny.toml", "--data", "{w}/avd.h5", "--out", "{t}/r",
                            "--batch-size", "0"], "batch_size must be"),
    ("train/threads-0", ["train", "--config", "{w}/tiny.toml", "--data", "{w}/avd.h5", "--out", "{t}/r",
                         "--threads", "0"], "--threads"),
    ("train/workers-negative", ["train", "--config", "{w}/tiny.toml", "--data", "{w}/avd.h5", "--out", "{t}/r",
                                "--workers", "-1"], "num_workers"),
    ("train/unknown-model", ["train", "--config", "{w}/tiny.toml", "--data", "{w}/avd.h5", "--out", "{t}/r",
                             "--model", "resnet"], "resnet"),
    ("train/unknown-dataset", ["train", "--config", "{w}/tiny.toml", "--data", "{w}/avd.h5", "--out", "{t}/r",
                               "--dataset", "imagenet"], "imagenet"),
    ("train/data-missing", ["train", "--config", "{w}/tiny.toml", "--data", "{t}/nope.h5", "--out", "{t}/r"],
     "nope.h5"),
    ("train/data-truncated", ["train", "--config", "{w}/tiny.toml", "--data", "{t}/trunc.h5", "--out", "{t}/r"],
     "trunc.h5"),
    ("train/data-text", ["train", "--config", "{w}/tiny.toml", "--data", "{t}/text", "--out", "{t}/r"], "text"),
    ("train/data-nan-train", ["train", "--config", "{w}/tiny.toml", "--data", "{t}/nan_train.h5", "--out", "{t}/r"],
     "sample index 0"),
    ("train/data-nan-test", ["train", "--config", "{w}/tiny.toml", "--data", "{t}/nan_test.h5", "--out", "{t}/r"],
     "sample index 7"),
    ("train/out-is-a-file", ["train", "--config", "{w}/tiny.toml", "--data", "{w}/avd.h5", "--out", "{t}/keep.nir"],
     "keep.nir"),
    ("train/resume-nothing", ["train", "--config", "{w}/tiny.toml", "--data", "{w}/avd.h5", "--out", "{t}/r",
                              "--resume"], "nothing to resume"),
    ("train/other-config-same-dir", ["train", "--config", "{w}/tiny.toml", "--data", "{w}/avd.h5", "--out",
                                     "{w}/run", "--epochs", "3", "--lr", "0.01"], "different config"),
    # export
    ("export/source-missing", ["export", "{t}/nope", "--out", "{t}/m.nir", "--dt-s", "1e-3"], "does not exist"),
    ("export/source-empty-folder", ["export", "{t}", "--out", "{t}/m.nir", "--dt-s", "1e-3"], "best.pt or last.pt"),
    ("export/checkpoint-empty", ["export", "{t}/empty", "--out", "{t}/m.nir", "--dt-s", "1e-3"], ""),
    ("export/checkpoint-text", ["export", "{t}/text", "--out", "{t}/m.nir", "--dt-s", "1e-3"], ""),
    ("export/checkpoint-truncated", ["export", "{t}/trunc.pt", "--out", "{t}/m.nir", "--dt-s", "1e-3"], ""),
    ("export/dt-0", ["export", "{w}/run", "--out", "{t}/m.nir", "--dt-s", "0"], "dt"),
    ("export/dt-negative", ["export", "{w}/run", "--out", "{t}/m.nir", "--dt-s", "-1e-3"], "dt"),
    ("export/dt-nan", ["export", "{w}/run", "--out", "{t}/m.nir", "--dt-s", "nan"], "dt"),
    ("export/dt-inf", ["export", "{w}/run", "--out", "{t}/m.nir", "--dt-s", "inf"], "dt"),
    ("export/existing-output", ["export", "{w}/run", "--out", "{t}/keep.nir", "--dt-s", "1e-3"], "pass --force"),
    ("export/out-is-folder", ["export", "{w}/run", "--out", "{t}", "--dt-s", "1e-3"], "is a folder"),
    # simulate
    ("simulate/model-missing", ["simulate", "{t}/nope.nir", "--data", "{w}/avd.h5"], "nope.nir"),
    ("simulate/model-empty", ["simulate", "{t}/empty", "--data", "{w}/avd.h5"], "empty"),
    ("simulate/model-text", ["simulate", "{t}/text", "--data", "{w}/avd.h5"], "text"),
    ("simulate/model-truncated", ["simulate", "{t}/trunc.nir", "--data", "{w}/avd.h5"], "trunc.nir"),
    ("simulate/dangling-edge", ["simulate", "{t}/dangling.nir", "--data", "{w}/avd.h5"], "no_such_node_"),
    ("simulate/samples-0", ["simulate", "{w}/model.nir", "--data", "{w}/avd.h5", "--samples", "0"], "--samples"),
    ("simulate/samples-negative", ["simulate", "{w}/model.nir", "--data", "{w}/avd.h5", "--samples", "-3"],
     "--samples"),
    ("simulate/data-missing", ["simulate", "{w}/model.nir", "--data", "{t}/nope.h5"], "nope.h5"),
    ("simulate/data-text", ["simulate", "{w}/model.nir", "--data", "{t}/text"], "text"),
    ("simulate/data-frame-size", ["simulate", "{w}/model.nir", "--data", "{w}/avd16.h5"], "32x32"),
    ("simulate/data-nan-test", ["simulate", "{w}/model.nir", "--data", "{t}/nan_test.h5", "--backend", "emulator"],
     "sample index 7"),
    ("simulate/existing-output", ["simulate", "{w}/model.nir", "--data", "{w}/avd.h5", "--backend", "emulator",
                                  "--out", "{t}/keep.json"], "pass --force"),
    ("simulate/out-is-folder", ["simulate", "{w}/model.nir", "--data", "{w}/avd.h5", "--backend", "emulator",
                                "--out", "{t}"], "is a folder"),
    # report
    ("report/run-missing", ["report", "{t}/nope", "--out", "{t}/rep"], "not a folder"),
    ("report/run-empty", ["report", "{t}", "--out", "{t}/rep"], "no training run"),
    ("report/result-missing", ["report", "{w}/run", "--out", "{t}/rep", "--result", "{t}/nope.json"], "nope.json"),
    ("report/result-not-json", ["report", "{w}/run", "--out", "{t}/rep", "--result", "{t}/text"], "JSON"),
    ("report/result-a-list", ["report", "{w}/run", "--out", "{t}/rep", "--result", "{t}/r_list.json"], "list"),
    ("report/result-model-text", ["report", "{w}/run", "--out", "{t}/rep", "--result", "{t}/r_model.json"],
     "'model'"),
    ("report/result-accuracy-text", ["report", "{w}/run", "--out", "{t}/rep", "--result", "{t}/r_acc_text.json"],
     "'accuracy'"),
    ("report/result-accuracy-percent", ["report", "{w}/run", "--out", "{t}/rep", "--result",
                                        "{t}/r_acc_pct.json"], "fraction"),
    ("report/result-samples-negative", ["report", "{w}/run", "--out", "{t}/rep", "--result", "{t}/r_samples.json"],
     "'samples'"),
    ("report/result-backend", ["report", "{w}/run", "--out", "{t}/rep", "--result", "{t}/r_backend.json"],
     "'backend'"),
    ("report/result-format", ["report", "{w}/run", "--out", "{t}/rep", "--result", "{t}/r_format.json"],
     "not a simulation result"),
    ("report/result-counts", ["report", "{w}/run", "--out", "{t}/rep", "--result", "{t}/r_counts.json"], "counts"),
    ("report/cost-model-missing", ["report", "{w}/run", "--out", "{t}/rep", "--result", "{w}/result.json",
                                   "--cost-model", "{t}/nope.json"], "nope.json"),
    ("report/cost-model-bad", ["report", "{w}/run", "--out", "{t}/rep", "--result", "{w}/result.json",
                               "--cost-model", "{t}/c_energy.json"], "cost model"),
    ("report/gpu-missing", ["report", "{w}/run", "--out", "{t}/rep", "--result", "{w}/result.json",
                            "--gpu-measurement", "{t}/nope.json"], "nope.json"),
    ("report/gpu-energy-text", ["report", "{w}/run", "--out", "{t}/rep", "--result", "{w}/result.json",
                                "--gpu-measurement", "{t}/g_energy_text.json"], "'energy_j_per_sample'"),
    ("report/gpu-energy-negative", ["report", "{w}/run", "--out", "{t}/rep", "--result", "{w}/result.json",
                                    "--gpu-measurement", "{t}/g_energy_neg.json"], "> 0"),
    ("report/gpu-batch-text", ["report", "{w}/run", "--out", "{t}/rep", "--result", "{w}/result.json",
                               "--gpu-measurement", "{t}/g_batch.json"], "'batch_size'"),
    ("report/gpu-no-rows", ["report", "{w}/run", "--out", "{t}/rep", "--result", "{w}/result.json",
                            "--gpu-measurement", "{t}/g_rows.json"], "no measurements"),
    ("report/gpu-hardware-text", ["report", "{w}/run", "--out", "{t}/rep", "--result", "{w}/result.json",
                                  "--gpu-measurement", "{t}/g_hardware.json"], "'hardware'"),
    ("report/existing-report", ["report", "{w}/run", "--out", "{t}", "--result", "{w}/result.json"], "--force"),
    ("report/out-is-a-file", ["report", "{w}/run", "--out", "{t}/keep.json", "--result", "{w}/result.json"],
     "is a file"),
    # run (the main job): options checked before any stage starts
    ("run/workers-0", ["run", "--workdir", "{t}/job", "--workers", "0"], "--workers"),
    ("run/gpu-measurement-missing", ["run", "--workdir", "{t}/job", "--gpu-measurement", "{t}/nope.json"],
     "nope.json"),
    ("run/workdir-is-a-file", ["run", "--workdir", "{t}/keep.json"], "keep.json"),
]

# data make cases that got past their check would make the 5,000-pair default: make them small first
SMALL = ["--n-train", "10", "--n-test", "10", "--frame-size", "8", "--voices", "2", "--workers", "1"]
CASES = [(c, argv[:3] + SMALL + argv[3:] if argv[:2] == ["data", "make"] and "--force" not in argv else argv, e)
         for c, argv, e in CASES]

# Run as a user runs them: a new Python, `python -m snnav`.
SUBPROCESS = {"cli/unknown-command", "train/config-not-utf8", "train/lr-nan", "export/existing-output",
              "simulate/model-truncated", "report/gpu-energy-text", "data/existing-output", "train/data-nan-train"}


def _prepare(world: Path, folder: Path, argv: list[str], case: str) -> list[str]:
    text = " ".join(argv)
    for name, content in FILES.items():
        if "{t}/" + name in text:
            (folder / name).write_bytes(content(world) if callable(content) else content)
    if case == "report/existing-report":
        (folder / "report.html").write_text("<p>an earlier report</p>\n")
    return [a.replace("{w}", str(world)).replace("{t}", str(folder)) for a in argv]


def _run(argv: list[str], subprocess_run: bool, capsys) -> tuple[int, str]:
    if subprocess_run:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               "OMP_NUM_THREADS": "1"}
        proc = subprocess.run([sys.executable, "-m", "snnav", *argv], capture_output=True, text=True, env=env,
                              timeout=300)
        return proc.returncode, proc.stderr
    capsys.readouterr()
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case, argv, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(world, tmp_path, capsys, case, argv, expected):
    folder = tmp_path / "case"
    folder.mkdir()
    argv = _prepare(world, folder, argv, case)
    before = _snapshot(world, folder)
    code, err = _run(argv, case in SUBPROCESS, capsys)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert len(lines[0]) <= 600, f"{len(lines[0])} characters: {lines[0][:300]}..."
    assert expected.lower() in lines[0].lower(), lines[0]
    assert _snapshot(world, folder) == before, "a file was changed, removed or added"


def test_there_are_at_least_60_cases_across_every_subcommand():
    commands = {case.split("/")[0] for case, _, _ in CASES}
    assert len(CASES) >= 60 and {"data", "train", "export", "simulate", "report", "run", "info", "cli"} <= commands


def test_nan_training_data_writes_no_weights(world, tmp_path, capsys):
    """The NaN split is refused when the run opens it: no checkpoint, no metrics, nothing non-finite anywhere."""
    bad = tmp_path / "nan.h5"
    bad.write_bytes(FILES["nan_train.h5"](world))
    code, err = _run(["train", "--config", str(world / "tiny.toml"), "--data", str(bad), "--out",
                      str(tmp_path / "r")], False, capsys)
    assert code == 2 and "train/audio_spectrogram" in err and str(bad) in err
    assert not (tmp_path / "r" / "last.pt").exists()


def test_nan_reaching_a_batch_stops_before_the_weights(world, tmp_path, make_config):
    """Data that reach the loop with NaN (a dataset without its own check) stop at the first batch."""
    from snnav.errors import InputError
    from snnav.training.build import open_datasets

    config = make_config(epochs=1)
    train_set, test_set = open_datasets(config)

    class Poisoned(torch.utils.data.Dataset):
        def __len__(self):
            return len(train_set)

        def __getitem__(self, i):
            audio, visual, label = train_set[i]
            return audio * math.nan, visual, label

    with pytest.raises(InputError, match="NaN or infinite"):
        train(config, tmp_path / "r", train_set=Poisoned(), test_set=test_set)
    assert not (tmp_path / "r" / "last.pt").exists()


# ----------------------------------------------------------------------------------------------- disk full


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs mounted at tmp_path/disk (root only)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if not shutil.which("mount") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def _fill(disk: Path, leave: int) -> None:
    """Fill the disk until about ``leave`` bytes are free."""
    free = shutil.disk_usage(disk).free
    if free > leave:
        with open(disk / "filler", "wb") as fh:
            fh.write(b"\0" * (free - leave))


FULL_DISK = [
    ("data-make", ["data", "make", "av-digits", "--out", "{d}/x.h5", "--n-train", "20", "--n-test", "10",
                   "--frame-size", "32", "--time-steps", "4", "--voices", "4", "--workers", "1"], 60 * 1024),
    ("export", ["export", "{w}/run", "--out", "{d}/m.nir", "--dt-s", "1e-3"], 0),
    ("export-midway", ["export", "{w}/run", "--out", "{d}/m.nir", "--dt-s", "1e-3"], 48 * 1024),
    ("simulate-out", ["simulate", "{w}/model.nir", "--data", "{w}/avd.h5", "--backend", "emulator", "--samples", "2",
                      "--out", "{d}/r.json"], 1024),
    ("report", ["report", "{w}/run", "--out", "{d}/rep", "--result", "{w}/result.json"], 0),
    ("train", ["train", "--config", "{w}/tiny.toml", "--data", "{w}/avd.h5", "--out", "{d}/r", "--no-progress"],
     64 * 1024),  # config.json fits, the checkpoint does not
]


@pytest.mark.parametrize("case, argv, leave", FULL_DISK, ids=[c[0] for c in FULL_DISK])
def test_a_full_disk_is_one_line_and_leaves_no_partial_file(world, tiny_disk, capsys, case, argv, leave):
    _fill(tiny_disk, leave)
    argv = [a.replace("{w}", str(world)).replace("{d}", str(tiny_disk)) for a in argv]
    before = _snapshot(world)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "snnav", *argv], capture_output=True, text=True, env=env,
                          timeout=600)  # a subprocess: a segmentation fault would show as a negative status
    plain = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", proc.stderr)  # progress bars: their lines and cursor moves
    lines = [line for line in plain.splitlines() if line.strip() and "it/s]" not in line and "%|" not in line]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(lines) == 1 and "disk is full" in lines[0], proc.stderr
    left = sorted(p.name for p in tiny_disk.rglob("*") if p.is_file() and p.name != "filler")
    # no temp file, nothing partial under a final name (a run folder keeps its complete config.json)
    assert [name for name in left if name != "config.json"] == [], left
    assert _snapshot(world) == before

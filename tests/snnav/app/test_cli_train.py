"""``snnav train`` through its module entry: overrides, one-line errors, resume, kill -9, torchrun."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from snnav.app.commands import train as cli_train
from snnav.training import checkpoint as ckpt_io
from snnav.training.loop import train

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[3]
TOML = """
epochs = {epochs}
batch_size = 8
warmup_epochs = 1
lr = 0.05
seed = 3
device = "cpu"
{extra}
[model_config]
embed_dim = 16
num_heads = 4
mlp_ratio = 2
"""


def _write_config(tmp_path: Path, data, extra: str = "", epochs: int = 2, table: str = "") -> Path:
    """The tiny config as TOML; ``extra`` goes before the tables, ``table`` (e.g. an [iemf] table) after them."""
    path = tmp_path / "cfg.toml"
    path.write_text(TOML.format(epochs=epochs, extra=f'data = "{data}"\n{extra}') + table)
    return path


def test_cli_trains_resumes_and_prints(avd_file, tmp_path, capsys):
    cfg = _write_config(tmp_path, avd_file)
    out = tmp_path / "run"
    assert cli_train.main(["--config", str(cfg), "--out", str(out), "--stop-after", "1", "--no-progress"]) == 0
    assert "after 1/2 epochs" in capsys.readouterr().out
    assert cli_train.main(["--out", str(out), "--resume", "--no-progress"]) == 0  # saved config reused
    printed = capsys.readouterr().out
    assert "after 2/2 epochs" in printed and "best test accuracy" in printed
    assert ckpt_io.load_checkpoint(out / "last.pt")["epoch"] == 2


@pytest.mark.parametrize("argv, extra, message", [
    (["--model", "nope"], "", "unknown model 'nope'"),
    (["--dataset", "nope"], "", "unknown dataset 'nope'"),
    ([], "epoch = 3", "unknown training config keys 'epoch' (did you mean 'epochs'?)"),
    ([], 'model_config = { embed_dim = 16, num_heads = 4, in_channels_audio = 3 }', "in_channels_audio = 1"),
])
def test_cli_errors_are_one_line(avd_file, tmp_path, capsys, argv, extra, message):
    cfg = _write_config(tmp_path, avd_file, extra=extra)
    if "model_config" in extra:  # an inline table replaces the [model_config] table
        cfg.write_text(cfg.read_text().split("[model_config]")[0])
    code = cli_train.main(["--config", str(cfg), "--out", str(tmp_path / "run"), "--no-progress", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("snnav train: error:")
    assert message in err


def test_cli_refuses_a_run_dir_of_another_model(avd_file, tmp_path, capsys):
    cfg = _write_config(tmp_path, avd_file)
    out = tmp_path / "run"
    assert cli_train.main(["--config", str(cfg), "--out", str(out), "--stop-after", "1", "--no-progress"]) == 0
    code = cli_train.main(["--config", str(cfg), "--out", str(out), "--model", "cmrl", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "different config (differs in: model)" in err and "new --out" in err


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _train_cmd(cfg_path: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "snnav.app.commands.train", "--config", str(cfg_path), "--out", str(out), "--no-progress"]


@pytest.mark.slow
def test_kill_9_then_resume_matches_an_uninterrupted_run(avd_file, tmp_path):
    # Every run is a fresh process with one thread: float results are bit-reproducible across processes only with
    # the same thread count (the pytest process runs two).
    cfg_path = _write_config(tmp_path, avd_file, epochs=3)
    out = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(cfg_path, out), env=_env(), cwd=tmp_path)
    try:
        deadline = time.time() + 300
        while not (out / "last.pt").exists():
            assert proc.poll() is None and time.time() < deadline, "training ended before its first checkpoint"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = ckpt_io.load_checkpoint(out / "last.pt")["epoch"]
    assert 1 <= killed_at < 3
    reference = tmp_path / "reference"
    for run_dir in (out, reference):  # auto-resume of the killed run (same config), and one uninterrupted run
        subprocess.run(_train_cmd(cfg_path, run_dir), env=_env(), cwd=tmp_path, check=True, timeout=600)
    a, b = ckpt_io.load_checkpoint(out / "last.pt"), ckpt_io.load_checkpoint(reference / "last.pt")
    assert a["epoch"] == b["epoch"] == 3
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert [{k: v for k, v in r.items() if k != "time_s"} for r in a["history"]] == \
           [{k: v for k, v in r.items() if k != "time_s"} for r in b["history"]]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not installed")
@pytest.mark.parametrize("dtype, atol", [("float64", 1e-10)])
def test_torchrun_two_processes_equal_one_process(avd_file, tmp_path, dtype, atol):
    """2 gloo processes x batch 4 vs 1 process x batch 8 on the same global batches: same weights, same I.

    float64, because in float32 the two summation orders differ by rounding and AdamW's normalised update amplifies
    that on near-zero gradients (measured: 2e-4 max weight difference after 10 steps).
    """
    cfg_path = _write_config(tmp_path, avd_file, extra=f'dtype = "{dtype}"\noptimizer = "adamw"',
                             table="[iemf]\nenabled = true\n")
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    two = tmp_path / "two"
    result = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "snnav.app.commands.train",
                             "--config", str(cfg_path), "--out", str(two), "--no-progress"],
                            env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    from snnav.training.config import load_config

    one = tmp_path / "one"
    train(load_config(cfg_path), one)
    a, b = ckpt_io.load_checkpoint(one / "last.pt"), ckpt_io.load_checkpoint(two / "last.pt")
    for key in a["model"]:
        assert torch.allclose(a["model"][key].double(), b["model"][key].double(), atol=atol, rtol=0), key
    for ra, rb in zip(a["history"], b["history"]):
        assert rb["ranks"]["param_checksum"][0] == rb["ranks"]["param_checksum"][1]  # processes in lock-step
        assert rb["ranks"]["iemf_I"][0] == rb["ranks"]["iemf_I"][1]                  # same I on both ranks
        assert rb["iemf_I"] == pytest.approx(ra["iemf_I"], abs=1e-9)
        assert rb["test_acc"] == ra["test_acc"] and rb["train_acc"] == ra["train_acc"]
        assert rb["train_loss"] == pytest.approx(ra["train_loss"], rel=1e-9)

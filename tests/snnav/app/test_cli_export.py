"""``snnav export`` on a real (tiny) training run: the file, the summary, the oracle check, one-line errors."""

from __future__ import annotations

import pytest
import torch

from export.from_torch.equivalence import compare
from export.ir.nirfile import read_graph
from snnav.app import cli
from snnav.app.checkpoint_export import load_trained_model
from snnav.training.build import open_datasets
from snnav.training.config import TrainConfig


@pytest.fixture(scope="module")
def trained_run(tiny_trained_run):
    """A 1-epoch S-CMRL run on 40 AV-Digits pairs (32x32 frames, D = 16): tests/snnav/conftest.py."""
    return tiny_trained_run


def test_export_writes_a_graph_that_reproduces_the_trained_model(trained_run, tmp_path, capsys):
    run_dir, data = trained_run
    out = tmp_path / "model.nir"
    assert cli.main(["export", str(run_dir), "--out", str(out), "--dt-s", "0.001"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "snnav.SpikeAttention 4" in printed and "LIF 32" in printed  # shallow stems: 6, blocks 22, MLPs 4
    graph = read_graph(out)
    assert graph.metadata["model"] == "scmrl" and graph.metadata["dt"] == 0.001
    model, ckpt = load_trained_model(run_dir)
    (test,) = open_datasets(TrainConfig.from_dict(ckpt["config"]).replace(data=str(data)), ("test",))
    items = [test[i] for i in range(len(test))]
    audio = torch.stack([it[0] for it in items], 1)  # (T, B, C, H, W)
    visual = torch.stack([it[1] for it in items], 1)
    result = compare(model, graph, audio, visual)
    assert result.spike_mismatches == 0 and result.max_abs_logit_diff <= 1e-5
    assert sum(layer.spikes for layer in result.layers) > 0


@pytest.mark.parametrize("argv, message", [
    (["{missing}", "--out", "{out}", "--dt-s", "1e-3"], "does not exist"),
    (["{tmp}", "--out", "{out}", "--dt-s", "1e-3"], "without best.pt or last.pt"),
    (["{run}", "--out", "{out}", "--dt-s", "0"], "dt_s must be a positive"),
    (["{run}", "--out", "{tmp}", "--dt-s", "1e-3"], "is a folder"),
])
def test_export_errors_are_one_line(trained_run, tmp_path, capsys, argv, message):
    run_dir, _ = trained_run
    names = {"missing": tmp_path / "nope", "out": tmp_path / "m.nir", "tmp": tmp_path, "run": run_dir}
    assert cli.main(["export", *(a.format(**names) for a in argv)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("snnav export: error:") and message in err and "\n" not in err
    assert not (tmp_path / "m.nir").exists()


def test_export_refuses_a_corrupt_checkpoint(tmp_path, capsys):
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"not a checkpoint")
    assert cli.main(["export", str(bad), "--out", str(tmp_path / "m.nir"), "--dt-s", "1e-3"]) == 2
    assert "snnav export: error:" in capsys.readouterr().err

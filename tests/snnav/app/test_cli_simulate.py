"""``snnav simulate``: a trained (tiny) S-CMRL export on Lava, fixed and float point, and its one-line errors."""

from __future__ import annotations

import dataclasses
import math

import nir
import numpy as np
import pytest
import torch

from export.ir.nirfile import read_graph, write_graph
from snnav.app import cli
from snnav.app.simulate import open_test_split, simulate, worker_count
from snnav.data.av_digits import AVDigitsConfig, generate_av_digits
from snnav.errors import DatasetError
from snnav.training.config import TrainConfig
from snnav.training.loop import train


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A 1-epoch S-CMRL (D = 16, 32x32 frames, shallow stem) trained on 40 pairs and exported with dt = 1 ms."""
    root = tmp_path_factory.mktemp("simulate_cli")
    data = root / "avd.h5"
    generate_av_digits(data, AVDigitsConfig(n_train=40, n_test=10, frame_size=32, time_steps=4, n_voices=6), workers=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(TrainConfig(data=str(data), epochs=1, batch_size=8, warmup_epochs=0, lr=0.05, seed=3, device="cpu",
                          model_config={"embed_dim": 16, "num_heads": 4, "mlp_ratio": 2}), root / "run")
    finally:
        torch.set_num_threads(threads)
    assert cli.main(["export", str(root / "run"), "--out", str(root / "m.nir"), "--dt-s", "1e-3"]) == 0
    return root / "m.nir", data


@pytest.mark.lava
def test_simulate_prints_accuracy_agreement_and_spikes(exported, capsys):
    graph_path, data = exported
    capsys.readouterr()
    assert cli.main(["simulate", str(graph_path), "--precision", "fixed", "--samples", "2", "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "Lava fixed: accuracy" in out and "same prediction as float" in out
    assert "stem_audio_stages_0_lif" in out and "simulated 2/2 samples" in out


@pytest.mark.slow
@pytest.mark.lava
def test_lava_float_predicts_like_the_interpreter(exported):
    graph = read_graph(exported[0])
    result = simulate(graph, open_test_split(graph, exported[1]), 2, "float", record_spikes=True,
                      progress=lambda _: None)
    assert result.agreement == 1.0 and result.accuracy == result.float_accuracy
    assert sum(result.spikes.values()) > 0
    assert set(result.spikes) == {k for k, n in graph.nodes.items() if isinstance(n, nir.LIF)}


def test_emulator_backend_runs_the_whole_split(exported, capsys):
    graph_path, data = exported
    capsys.readouterr()
    argv = ["simulate", str(graph_path), "--backend", "emulator", "--samples", "100", "--data", str(data)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "emulator fixed: accuracy" in out and "on 10 test samples" in out and "stem_audio_stages_0_lif" in out


def test_simulate_says_which_convention_ran(exported, capsys):
    graph_path, data = exported
    argv = ["simulate", str(graph_path), "--backend", "emulator", "--samples", "2", "--data", str(data),
            "--convention", "auto"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "neuron stepping: nir (detected 'nir': the graph carries metadata['dt']" in out


def test_simulate_errors_are_one_line(exported, tmp_path, capsys):
    graph_path, data = exported
    cases = [
        (["simulate", str(tmp_path / "nope.nir")], "no NIR file at"),
        (["simulate", str(graph_path), "--samples", "0"], "--samples must be >= 1"),
        (["simulate", str(graph_path), "--backend", "emulator", "--jobs", "0"], "--jobs must be >= 1"),
        (["simulate", str(graph_path), "--jobs", "2"], "--jobs 2 applies to --backend emulator only"),
        (["simulate", str(graph_path), "--data", str(tmp_path / "missing.h5")], "missing.h5"),
        (["simulate", str(graph_path), "--data", str(data), "--convention", "snntorch"],
         "convention 'snntorch' needs r = tau/dt"),  # not snnTorch's scaling: refused before running
    ]
    graph = read_graph(graph_path)
    del graph.metadata["data"]
    write_graph(tmp_path / "nodata.nir", graph)
    cases.append((["simulate", str(tmp_path / "nodata.nir"), "--data", str(data)], "no metadata['data']"))
    for argv, message in cases:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("snnav simulate: error:") and message in err and "\n" not in err, err
    assert np.isfinite(graph.metadata["dt"])


def test_out_saves_the_result_with_counts_and_a_raster(exported, tmp_path, capsys):
    from snnav.app.report import read_simulation_result

    graph_path, data = exported
    out = tmp_path / "sim" / "emulator-fixed.json"
    argv = ["simulate", str(graph_path), "--backend", "emulator", "--samples", "100", "--data", str(data),
            "--out", str(out)]
    assert cli.main(argv) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    saved = read_simulation_result(out)
    assert (saved["backend"], saved["precision"], saved["samples"]) == ("emulator", "fixed", 10)
    assert saved["counts"]["run"]["samples"] == 10 and len(saved["counts"]["per_sample"]["spikes"]) == 10
    lifs = {k for k, n in read_graph(graph_path).nodes.items() if isinstance(n, nir.LIF)}
    assert set(saved["raster"]["nodes"]) == lifs
    assert sum(saved["spikes"].values()) == pytest.approx(10 * sum(
        n["spikes"] for k, n in saved["counts"]["nodes"].items() if k in lifs))
    assert len(saved["model"]["sha256"]) == 64 and "--out" in saved["command"]


def test_the_report_opens_with_what_one_inference_costs_on_each_target(exported, tmp_path, capsys):
    """A real export, simulated with counts, priced: Loihi 1/2 mapped, the calibrated GPU model, the 45 nm row."""
    import json

    graph_path, data = exported
    run_dir = graph_path.parent
    result = tmp_path / "sim.json"
    assert cli.main(["simulate", str(graph_path), "--backend", "emulator", "--samples", "4", "--data", str(data),
                     "--out", str(result)]) == 0
    out = tmp_path / "rep"
    assert cli.main(["report", str(run_dir / "run"), "--result", str(result), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    rows = report["headline"]["rows"]
    targets = [r["target"] for r in rows]
    assert targets[:2] == ["loihi1", "loihi2"] and targets[-1] == "45 nm dense accelerator"
    gpu = [r for r in rows if r["chips"] is None and r["time_s"] is not None]
    assert [r["batch"] for r in gpu] == [1, 64] and all(r["kind"] == "estimate" for r in gpu)
    assert "h100-calibrated" in report["headline"]["gpu"]
    for r in rows:
        e = r["energy_total_j"]
        assert 0 < e["lower"] <= e["value"] <= e["upper"], r["target"]
        assert r["included"] and r["excluded"] and 0 <= r["accuracy"] <= 1
    chip = rows[0]
    assert chip["cores"] > 0 and chip["chips"] >= 1 and chip["energy_static_j"]["value"] > 0
    assert abs(sum(chip["by_layer_j"].values()) - chip["energy_dynamic_j"]["value"]) < 1e-9 + 1e-6 * chip[
        "energy_dynamic_j"]["value"]
    md = (out / "report.md").read_text()
    assert md.index("## What one inference costs") < md.index("## Accuracy against energy")
    html = (out / "report.html").read_text()
    assert html.index("What one inference costs") < html.index("Accuracy against energy")
    assert html.count("<svg") >= 3 and "Not modelled" in html


def test_stream_reports_the_window_nodes_of_faithful_scmrl(exported, capsys):
    """Faithful S-CMRL waits for its windows: --stream names them and the first output comes after all T steps."""
    graph_path, data = exported
    graph = read_graph(graph_path)
    result = simulate(graph, open_test_split(graph, data), 10, "fixed", backend="emulator", stream=True,
                      progress=lambda *_: None)
    st = result.stream
    assert len(st.window_nodes) == 4 and any("temporal_attend" in n for n in st.window_nodes)
    assert st.pipeline_depth >= 2 * st.steps  # the temporal attention's window, then the fusion's
    assert st.accuracy_by_step[-1] == pytest.approx(result.accuracy)
    assert cli.main(["simulate", str(graph_path), "--backend", "emulator", "--samples", "10", "--data", str(data),
                     "--stream"]) == 0
    assert "WINDOW nodes" in capsys.readouterr().out


def _differences(a, b, path="result") -> list[str]:
    """Where two results differ: dataclasses field by field, dicts key by key (in order), arrays element by element
    (dtype and shape included), everything else by type and ==."""
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        if type(a) is not type(b):
            return [f"{path}: {type(a).__name__} != {type(b).__name__}"]
        return [d for f in dataclasses.fields(a) for d in _differences(getattr(a, f.name), getattr(b, f.name),
                                                                        f"{path}.{f.name}")]
    if isinstance(a, dict):
        if not isinstance(b, dict) or list(a) != list(b):
            return [f"{path}: keys differ"]
        return [d for k in a for d in _differences(a[k], b[k], f"{path}[{k!r}]")]
    if isinstance(a, (list, tuple)):
        if type(a) is not type(b) or len(a) != len(b):
            return [f"{path}: {type(a).__name__} of {len(a)} != {b!r:.60}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{path}[{i}]")]
    if isinstance(a, np.ndarray):
        same = isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
        return [] if same else [f"{path}: arrays differ"]
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return []
    return [] if type(a) is type(b) and a == b else [f"{path}: {a!r} != {b!r}"]


def test_worker_count_starts_workers_only_where_the_chunks_can_be_shared():
    assert worker_count([3, 3, 3, 1], 2) == 2 and worker_count([128, 128], 2) == 2
    assert worker_count([128, 128], 4) == 2  # a third worker would have no chunk
    assert worker_count([128] * 7 + [104], 3) == 3 and worker_count([128] * 7 + [104], 1) == 1
    assert worker_count([250, 6], 2) == 1  # one worker would run 250 of 256 samples: this process does it
    assert worker_count([8], 4) == 1


def test_jobs_2_gives_the_result_of_one_process(exported):
    """Four chunks (3, 3, 3, 1 samples) over two worker processes: every field but the timings equals --jobs 1's,
    the energy per decision priced on a chip included."""
    graph_path, data = exported
    graph = read_graph(graph_path)
    dataset = open_test_split(graph, data)
    lines = []
    options = dict(backend="emulator", count=True, stream=True, chunk_size=3, chips=("loihi2",))
    one = simulate(graph, dataset, 10, "fixed", progress=lambda *_: None, **options)
    two = simulate(graph, dataset, 10, "fixed", progress=lines.append, jobs=2, data=data, **options)
    assert "  4 chunks of up to 3 samples over 2 worker processes, 1 thread(s) each" in lines[1:]
    assert lines[-1].startswith("  simulated 10/10 samples on emulator (fixed, 2 processes)")
    timings = {"seconds", "ms_per_step"}
    assert [f.name for f in dataclasses.fields(one) if f.name not in timings and getattr(one, f.name) is None] == []
    assert one.counts.run.samples == 10 and len(one.counts.per_sample["spikes"]) == 10 and sum(one.spikes.values())
    assert one.stream.final_steps.shape == (10,) and one.raster["nodes"]
    assert one.stream.energy["loihi2"].to_decision_j["value"].shape == (10,)
    assert _differences(dataclasses.replace(one, seconds=0.0, ms_per_step=0.0),
                        dataclasses.replace(two, seconds=0.0, ms_per_step=0.0)) == []
    # the comparison sees a change in the last sample's counts
    changed = dataclasses.replace(two.counts, per_sample={**two.counts.per_sample, "spikes": (
        *two.counts.per_sample["spikes"][:-1], two.counts.per_sample["spikes"][-1] + 1)})
    assert _differences(one.counts, changed) == ["result.per_sample['spikes'][9]: "
                                                 f"{one.counts.per_sample['spikes'][-1]!r} != "
                                                 f"{changed.per_sample['spikes'][-1]!r}"]


def test_a_worker_error_reaches_the_caller_as_itself(exported, tmp_path):
    """The workers open the test split themselves: a missing file is the DatasetError one process would raise."""
    graph_path, data = exported
    graph = read_graph(graph_path)
    dataset = open_test_split(graph, data)
    with pytest.raises(DatasetError, match="missing.h5"):
        simulate(graph, dataset, 10, "fixed", backend="emulator", progress=lambda *_: None, jobs=2,
                 data=tmp_path / "missing.h5", chunk_size=5)

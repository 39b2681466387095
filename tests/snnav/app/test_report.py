"""``snnav report``: a report from hand-written inputs, its numbers checked by hand, its files, its errors."""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import re
from pathlib import Path

import pytest

from snnav.app import cli
from snnav.app.report import REPORT_FILES, ResultFileError, make_report, read_simulation_result
from snnav.app.report.results import write_simulation_result

T = 4  # time steps per sample
# Per-node means per inference. Hand-computed energies (pJ per inference):
#   loihi1       = 23.6 (12 + 40 + 5 + 1) + 81 * 20 + 52 * 12 + 1.7 * 6 = 1368.8 + 1620 + 624 + 10.2 = 3623.0
#   horowitz45nm = 0.9 (12 + 5) + 4.6 (40 + 1)                           = 15.3 + 188.6           = 203.9
#   GPU, dense   = 4.6 (64 + 64 + 5 + 1)  (every synapse a MAC; extension products as MACs)    = 616.4
LOIHI1_PJ, H45_PJ, GPU_DENSE_PJ = 3623.0, 203.9, 616.4


def _node(type_, neurons, binary=None, rate=None, **counts):
    fields = ("spikes", "neuron_updates_active", "neuron_updates_idle", "synaptic_events", "dense_macs",
              "dense_synapses", "ext_acs", "ext_macs")
    return {"type": type_, "neurons": neurons, "binary_input": binary, **{k: float(counts.get(k, 0)) for k in fields},
            "firing_rate": rate}


def counts_dict(precision="fixed", backend="emulator"):
    nodes = {
        "audio": _node("Input", 8),
        "conv": _node("Conv2d", 8, False, dense_macs=40, dense_synapses=64),
        "lif": _node("LIF", 8, rate=6 / (8 * T), spikes=6, neuron_updates_active=20, neuron_updates_idle=12),
        "att": _node("snnav.SpikeAttention", 8, True, ext_acs=5, ext_macs=1),
        "fc": _node("Affine", 2, True, synaptic_events=12, dense_synapses=64),
    }
    per_sample = {"spikes": [5, 7], "synaptic_events": [10, 14], "dense_macs": [40, 40],
                  "neuron_updates_active": [19, 21], "neuron_updates_idle": [13, 11], "ext_acs": [4, 6],
                  "ext_macs": [1, 1]}
    totals = {"spikes": 6.0, "synaptic_events": 12.0, "dense_macs": 40.0, "neuron_updates_active": 20.0,
              "neuron_updates_idle": 12.0, "ext_acs": 5.0, "ext_macs": 1.0, "dense_synapses": 128.0}
    return {"format": "snnav.activity-counts", "version": 1,
            "run": {"backend": backend, "precision": precision, "samples": 2, "time_steps": T, "dt_s": 1e-3},
            "nodes": nodes, "per_sample": per_sample, "totals": totals,
            "neurobench": {"activation_sparsity": 1 - 6 / 32, "effective_macs": 40.0, "effective_acs": 12.0,
                           "dense": 128.0, "missed_by_neurobench": {"ext_acs": 5.0, "ext_macs": 1.0,
                                                                    "pooling_events": 0.0}}}


def result_dict(precision="fixed", backend="emulator", accuracy=0.5):
    return {"format": "snnav.simulation-result", "version": 1, "created_utc": "2025-01-01T00:00:00+00:00",
            "snnav_version": "test", "command": "snnav simulate m.nir --out x.json", "backend": backend,
            "precision": precision, "model": {"path": "/m.nir", "sha256": "ab" * 32, "name": "tiny", "dt_s": 1e-3,
                                              "time_steps": T, "readout_step": T - 1},
            "data": {"path": "/d.h5", "split": "test", "first_sample": 0}, "samples": 2, "accuracy": accuracy,
            "float_accuracy": 1.0, "agreement": 0.5, "float_reference": "interpreter", "spikes": {"lif": 12},
            "neuron_steps": {"lif": 64}, "timing": {"seconds": 1.0, "ms_per_step": 0.0, "samples_per_s": 2.0},
            "counts": counts_dict(precision, backend),
            "raster": {"sample": 0, "max_neurons": 256, "nodes": {"lif": {"neurons": 8, "spikes": [[0, 1], [3, 7]]}}}}


def gpu_dict():
    row = {"target": "torch", "batch_size": 1, "energy_j_per_sample": 2e-3, "dynamic_energy_j_per_sample": 1e-3,
           "wall_s_per_sample": 1e-3, "samples_per_s": 1e3, "accuracy": 1.0}
    big = {**row, "batch_size": 64, "energy_j_per_sample": 2e-4, "dynamic_energy_j_per_sample": 5e-5}
    return {"format": "snnav.gpu-measurement", "format_version": 1, "method": "measured (NVML energy counter)",
            "hardware": {"gpu_name": "Test GPU"}, "measurements": [row, big]}


def _write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def run_dir(tmp_path):
    """A main-job-like folder: train/metrics.json + config.json and two simulation results (fixed, float)."""
    root = tmp_path / "run"
    _write(root / "train" / "metrics.json", {"best_acc": 0.75, "best_epoch": 1, "last_acc": 0.5, "epochs": [
        {"epoch": 0, "test_acc": 0.75}, {"epoch": 1, "test_acc": 0.5}]})
    _write(root / "train" / "config.json", {"model": "scmrl", "dataset": "av-digits"})
    _write(root / "simulations" / "emulator-fixed.json", result_dict("fixed"))
    _write(root / "simulations" / "emulator-float.json", result_dict("float", accuracy=1.0))
    return root


def _energy(report, result, model):
    return next(e for e in report["energy"] if e["result"] == result and e["cost_model"] == model)


def test_report_numbers_match_hand_computation(run_dir):
    report, files = make_report(run_dir)
    assert set(files) == set(REPORT_FILES) and all(p.is_file() and p.stat().st_size for p in files.values())
    assert files["report.html"].parent == run_dir / "report"
    assert _energy(report, "sim1", "loihi1")["total_pj"] == pytest.approx(LOIHI1_PJ)
    assert _energy(report, "sim1", "horowitz45nm")["total_pj"] == pytest.approx(H45_PJ)
    assert _energy(report, "sim1", "loihi1")["by_node_count_pj"]["lif"] == pytest.approx(
        {"spikes": 10.2, "neuron_updates_active": 1620.0, "neuron_updates_idle": 624.0})
    gpu = report["gpu"]
    assert gpu["kind"] == "estimate" and gpu["energy_j"] == pytest.approx(GPU_DENSE_PJ * 1e-12)
    assert gpu["accuracy"] == 0.75 and "No GPU measurement" in report["notes"][0]
    points = {p["name"]: p for p in report["accuracy_vs_energy"]}
    fixed = points["Loihi fixed point (emulator, bit-exact with Lava) x loihi1"]
    assert fixed["accuracy"] == 0.5 and fixed["energy_j"] == pytest.approx(LOIHI1_PJ * 1e-12)
    assert fixed["sources"] == ["sim1", "cost:loihi1"]
    assert points["Lava float (emulator of Lava's float models) x horowitz45nm"]["accuracy"] == 1.0
    ids = {s["id"]: s for s in report["sources"]}
    assert ids["sim1"]["path"].endswith("emulator-fixed.json") and len(ids["sim1"]["sha256"]) == 64
    assert "Davies" in ids["cost:loihi1"]["description"] and ids["run"]["kind"] == "training-run"
    assert json.loads(files["report.json"].read_text())["energy"][0]["total_pj"] == report["energy"][0]["total_pj"]


def test_csv_rows_recompute_the_energies(run_dir):
    report, files = make_report(run_dir)
    with open(files["energy_by_layer.csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    totals: dict[tuple[str, str], float] = {}
    for row in rows:
        assert float(row["count_per_inference"]) * float(row["pj_per_op"]) == pytest.approx(float(row["energy_pj"]))
        assert row["kind"] == "estimate" and row["cost_model_source"] and row["result_file"].endswith(".json")
        key = (row["result"], row["cost_model"])
        totals[key] = totals.get(key, 0.0) + float(row["energy_pj"])
    assert totals[("sim1", "loihi1")] == pytest.approx(LOIHI1_PJ)
    assert totals[("sim2", "horowitz45nm")] == pytest.approx(H45_PJ)
    with open(files["activity.csv"], newline="") as fh:
        activity = {(r["result"], r["node"]): r for r in csv.DictReader(fh)}
    assert ("sim1", "audio") not in activity  # Inputs do no operations
    assert float(activity["sim1", "lif"]["firing_rate"]) == pytest.approx(0.1875)
    assert float(activity["sim1", "fc"]["synaptic_sparsity"]) == pytest.approx(1 - 12 / 64)
    with open(files["summary.csv"], newline="") as fh:
        summary = list(csv.DictReader(fh))
    assert len(summary) == 1 + 2 * 2 and summary[0]["kind"] == "estimate"
    assert all(r["source_files"] for r in summary)
    md = files["report.md"].read_text()
    assert "| 0.003623 |" in md and "| 2.039e-04 |" in md  # µJ in the tables: 3623 pJ = 0.003623 µJ
    assert "Davies" in md and "Horowitz" in md


def test_html_is_self_contained_with_every_plot(run_dir):
    _, files = make_report(run_dir)
    html = files["report.html"].read_text()
    without_ns = html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert not re.search(r"https?://", without_ns), "a URL in the page: it must render offline"
    assert not re.search(r"<script|<link|<img|<iframe|\burl\(|@import|\bsrc=", html, re.I)
    # scatter + firing rate + sparsity + (totals + per layer) x 2 built-in cost models + raster
    assert html.count("<svg") == 1 + 2 + 2 * 2 + 1
    assert "Spike raster of one sample" in html and "lif (8)" in html
    assert html.count('fill="#111"') == 2  # the raster's two spikes
    assert "estimate" in html and "table of sources" in html


def test_gpu_measurement_is_used_and_labelled(run_dir, tmp_path):
    gpu_file = _write(tmp_path / "gpu.json", gpu_dict())
    report, files = make_report(run_dir, tmp_path / "out", gpu_measurement=gpu_file)
    gpu = report["gpu"]
    assert gpu["kind"] == "measured" and gpu["energy_j"] == 5e-5 and "batch 64" in gpu["name"]
    assert gpu["label"] == "measured (NVML energy counter)" and gpu["sources"] == ["gpu"]
    assert not any("No GPU measurement" in n for n in report["notes"])
    assert report["accuracy_vs_energy"][0]["kind"] == "measured"
    assert "Test GPU" in files["report.html"].read_text()
    other = {**gpu_dict(), "run": {"checkpoint": "elsewhere/run", "model_name": "av-add", "best_acc": 0.6}}
    report, _ = make_report(run_dir, tmp_path / "out", gpu_measurement=_write(tmp_path / "other.json", other))
    warning = [n for n in report["notes"] if n.startswith("WARNING: the GPU measurement is of another model")]
    assert len(warning) == 1 and re.search(r"model av-add \[[0-9a-f]{12}\] \(measured\) vs scmrl \[[0-9a-f]{12}\]",
                                           warning[0]) and "elsewhere/run" in warning[0]


def test_user_cost_model_file_is_priced_and_cited(run_dir, tmp_path):
    from hardware_sims.cost.energy import builtin_cost_model

    data = builtin_cost_model("loihi1").to_dict()
    data["name"] = "halfloihi"
    for op in data["operations"].values():
        if op["energy_pj"] is not None:
            op["energy_pj"] /= 2
    model_file = _write(tmp_path / "half.json", data)
    report, _ = make_report(run_dir, tmp_path / "out", cost_models=[model_file])
    assert _energy(report, "sim1", "halfloihi")["total_pj"] == pytest.approx(LOIHI1_PJ / 2)
    source = next(s for s in report["sources"] if s["id"] == "cost:halfloihi")
    assert source["path"] == str(model_file.resolve()) and len(source["sha256"]) == 64


def test_bad_inputs_raise_errors_that_name_the_fix(run_dir, tmp_path):
    with pytest.raises(ResultFileError, match="is not a folder"):
        make_report(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultFileError, match="holds no training run.*snnav train"):
        make_report(tmp_path / "empty")
    only_train = tmp_path / "only_train"
    _write(only_train / "metrics.json", {"epochs": [{"test_acc": 0.5}]})
    with pytest.raises(ResultFileError, match="no simulation results.*snnav simulate .* --out"):
        make_report(only_train)
    bad = _write(tmp_path / "bad.json", {"format": "something-else"})
    with pytest.raises(ResultFileError, match="not a simulation result"):
        make_report(run_dir, results=[bad])
    no_counts = _write(tmp_path / "nocounts.json", {**result_dict(), "counts": None})
    with pytest.raises(ResultFileError, match="no activity counts.*snnav simulate"):
        make_report(run_dir, results=[no_counts])
    broken = copy.deepcopy(result_dict())
    del broken["counts"]["nodes"]["lif"]["spikes"]
    with pytest.raises(ResultFileError, match="counts cannot be read"):
        make_report(run_dir, results=[_write(tmp_path / "broken.json", broken)])
    with pytest.raises(ResultFileError, match="not a GPU measurement.*measure_gpu.py"):
        make_report(run_dir, gpu_measurement=bad)
    with pytest.raises(ResultFileError, match="cannot use the cost model"):
        make_report(run_dir, cost_models=[bad])


def test_bad_input_leaves_an_existing_report_untouched(run_dir, tmp_path):
    _, files = make_report(run_dir)
    before = {name: p.read_bytes() for name, p in files.items()}
    (tmp_path / "not-json.json").write_text("{", encoding="utf-8")
    with pytest.raises(ResultFileError, match="not a readable JSON"):
        make_report(run_dir, gpu_measurement=tmp_path / "not-json.json")
    assert {name: p.read_bytes() for name, p in files.items()} == before


def test_simulation_result_file_round_trip(tmp_path):
    from hardware_sims.counts import ActivityCounts
    from snnav.app.simulate import SimulationResult

    model = tmp_path / "m.nir"
    model.write_bytes(b"not really a graph")
    counts = ActivityCounts.from_dict(counts_dict())
    result = SimulationResult(2, 0.5, 1.0, 0.5, {"lif": 12}, {"lif": 64}, 1.0, 0.0, counts,
                              {"sample": 0, "max_neurons": 256, "nodes": {}})
    out = write_simulation_result(tmp_path / "r.json", result, backend="emulator", precision="fixed",
                                  model_path=model, graph_metadata={"dt": 1e-3, "model": "tiny"},
                                  data_path=tmp_path / "d.h5", command="snnav simulate ...")
    data = read_simulation_result(out)
    assert ActivityCounts.from_dict(data["counts"]) == counts
    assert data["model"]["sha256"] == hashlib.sha256(b"not really a graph").hexdigest()
    assert data["accuracy"] == 0.5 and data["command"] == "snnav simulate ..."


def test_cli_report_writes_and_prints_where(run_dir, tmp_path, capsys):
    out = tmp_path / "rep"
    assert cli.main(["report", str(run_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    # this run folder's simulation result names a model file that is not there: the headline says so
    assert f"open {out / 'report.html'}" in printed and "no headline: the model file /m.nir" in printed
    assert all((out / name).is_file() for name in REPORT_FILES)
    assert cli.main(["report", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("snnav report: error:") and "\n" not in err


def test_main_job_reuses_only_a_result_of_the_same_model_data_and_samples(tmp_path, capsys):
    from hardware_sims.counts import ActivityCounts
    from snnav.app.commands.run import _reusable
    from snnav.app.simulate import SimulationResult

    model, data = tmp_path / "model.nir", tmp_path / "d.h5"
    model.write_bytes(b"graph v1")
    result = SimulationResult(2, 0.5, 1.0, 0.5, {}, {}, 1.0, 0.0, ActivityCounts.from_dict(counts_dict()), None)
    out = write_simulation_result(tmp_path / "sim.json", result, backend="emulator", precision="fixed",
                                  model_path=model, graph_metadata={}, data_path=data, command="c")
    assert _reusable(out, model, data, "emulator", "fixed", 2)["accuracy"] == 0.5
    assert _reusable(out, model, data, "emulator", "fixed", 3) is None
    assert _reusable(out, model, data, "emulator", "float", 2) is None
    assert _reusable(out, model, tmp_path / "other.h5", "emulator", "fixed", 2) is None
    model.write_bytes(b"graph v2")  # re-exported differently: simulate again
    assert _reusable(out, model, data, "emulator", "fixed", 2) is None
    out.write_text("{", encoding="utf-8")
    assert _reusable(out, model, data, "emulator", "fixed", 2) is None
    assert "unusable" in capsys.readouterr().out
    assert _reusable(tmp_path / "none.json", model, data, "emulator", "fixed", 2) is None
    # a fine-tuned export pins its quantizer: the result records it, and is reused only for such a graph
    pinned = {"quantizer": {"weight_bits": 4, "v_headroom": 16.0, "weight_exps": {"fc": -2}}}
    out = write_simulation_result(tmp_path / "q4.json", result, backend="emulator", precision="fixed",
                                  model_path=model, graph_metadata=pinned, data_path=data, command="c")
    q = read_simulation_result(out)["quantizer"]
    assert (q["weight_bits"], q["pinned"], q["weight_exps_pinned"]) == (4, True, 1)
    assert _reusable(out, model, data, "emulator", "fixed", 2, pinned) is not None
    assert _reusable(out, model, data, "emulator", "fixed", 2, {}) is None
    # a file from before the pinned key (the defaults only) is still read, and reused for an unpinned graph only
    old = json.loads(out.read_text())
    old["quantizer"] = {"v_headroom": 16.0, "weight_bits": 8}
    _write(out, old)
    assert _reusable(out, model, data, "emulator", "fixed", 2, {}) is not None
    assert _reusable(out, model, data, "emulator", "fixed", 2, pinned) is None


def stream_dict():
    """A --stream section of 2 samples at T = 4: decisions final at steps 1 and 3, loihi2 priced by hand."""
    bounds = lambda lo, val, hi: {"lower": lo, "value": val, "upper": hi}  # noqa: E731
    return {"steps": T, "pipeline_depth": 5, "window_nodes": [], "accuracy_by_step": [0.0, 0.5, 0.5, 0.5],
            "float_accuracy_by_step": [0.5, 0.5, 1.0, 1.0], "final_steps": [1, 3], "decision_latency_steps": [6, 8],
            "spikes_total": [10.0, 20.0], "spikes_to_decision": [4.0, 20.0],
            "chips": {"loihi2": {
                "kind": "estimate", "step_s": bounds(1e-6, 2e-6, 4e-6), "depth_steps": 5, "window": False,
                "energy_to_decision_j": bounds([1e-6, 3e-6], [2e-6, 4e-6], [3e-6, 5e-6]),
                "dynamic_to_decision_j": bounds([1e-6, 2e-6], [1e-6, 3e-6], [2e-6, 4e-6]),
                "energy_per_sample_j": bounds([2e-6, 3e-6], [4e-6, 4e-6], [6e-6, 5e-6]),
                "time_to_decision_s": bounds([7e-6, 9e-6], [14e-6, 18e-6], [28e-6, 36e-6]),
                "time_per_step_includes": "the slowest layer", "included": ["synaptic ops"],
                "excluded": ["host I/O"], "sources": {}}}}


def test_report_shows_a_streaming_result_and_nothing_without_one(run_dir, tmp_path):
    report, files = make_report(run_dir)
    assert "streaming" not in report
    assert "Streaming decisions" not in files["report.html"].read_text() + files["report.md"].read_text()
    data = result_dict("fixed")
    data["stream"] = stream_dict()
    _write(run_dir / "simulations" / "emulator-fixed.json", data)
    report, files = make_report(run_dir, tmp_path / "with-stream")
    (st,) = report["streaming"]
    assert st["result"] == "sim1" and st["final_step_mean"] == 2.0 and st["decision_latency_steps_mean"] == 7.0
    chip = st["chips"]["loihi2"]
    assert chip["energy_to_decision_j"]["value"] == pytest.approx(3e-6)
    assert chip["time_to_decision_s"]["upper"] == pytest.approx(32e-6)
    md = files["report.md"].read_text()
    assert "## Streaming decisions" in md and "Accuracy against the input steps seen (sim1" in md
    # t* 2, latency 7 steps, 2 µs per step (1 .. 4), 16 µs (8 .. 32), 3 µJ per decision (2 .. 4), 4 µJ per sample (2.5 .. 5.5)
    assert "| sim1 | loihi2 | 2 | 7 | 2 (1 .. 4) | 16 (8 .. 32) | 3 (2 .. 4) | 4 (2.5 .. 5.5) | 12 | 15 |" in md
    html = files["report.html"].read_text()
    assert html.count("<svg") == 1 + 2 + 2 * 2 + 1 + 1  # as without a stream, + the accuracy-vs-steps plot
    assert "Streaming decisions" in html and "input steps seen" in html


def test_a_damaged_stream_section_is_refused(run_dir):
    data = result_dict("fixed")
    data["stream"] = stream_dict()
    data["stream"]["accuracy_by_step"] = [0.5, 1.5, 0.5, 0.5]
    path = _write(run_dir / "simulations" / "emulator-fixed.json", data)
    with pytest.raises(ResultFileError, match=r"stream.accuracy_by_step\[1\]' is 1.5; expected a number from 0 to 1"):
        read_simulation_result(path)
    data["stream"] = stream_dict()
    del data["stream"]["chips"]["loihi2"]["step_s"]["upper"]
    _write(path, data)
    with pytest.raises(ResultFileError, match="stream.chips.loihi2.step_s.upper' is missing"):
        make_report(run_dir)

"""``snnav simulate --stream``: a tiny trained streaming S-CMRL (``scmrl-causal``) read at every step."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from export.ir.nirfile import read_graph
from hardware_sims.cost.chip_cost import activity_from_counts, chip_cost
from hardware_sims.cost.decision import DecisionPricer, price_decisions
from hardware_sims.cost.mapping import map_plan
from hardware_sims.counts import ActivityCounter, merge_all
from hardware_sims.emulator import emulate
from hardware_sims.plan import build_plan
from snnav.app import cli
from snnav.app.report import make_report
from snnav.app.report.results import ResultFileError, read_simulation_result
from snnav.app.simulate import batch_arrays, final_decision_steps, open_test_split, simulate
from snnav.data.av_digits import AVDigitsConfig, generate_av_digits
from snnav.errors import InputError
from snnav.training.config import TrainConfig
from snnav.training.loop import train

T = 6


@pytest.fixture(scope="module")
def causal_export(tmp_path_factory):
    """A 1-epoch scmrl-causal (D = 16, 32x32 event and cochlea views over T = 6) trained at every step, exported."""
    root = tmp_path_factory.mktemp("stream_cli")
    data = root / "avd.h5"
    generate_av_digits(data, AVDigitsConfig(n_train=40, n_test=10, frame_size=32, time_steps=T, n_voices=6), workers=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(TrainConfig(model="scmrl-causal", data=str(data), time_steps=T, epochs=1, batch_size=8, warmup_epochs=0,
                          lr=0.05, seed=3, device="cpu", step_loss="every-step",
                          data_options={"audio_view": "cochlea", "visual_view": "events"},
                          model_config={"embed_dim": 16, "num_heads": 4, "mlp_ratio": 2}), root / "run")
    finally:
        torch.set_num_threads(threads)
    assert cli.main(["export", str(root / "run"), "--out", str(root / "m.nir"), "--dt-s", "1e-3"]) == 0
    return root / "m.nir", data


def test_final_decision_step_is_where_the_prediction_stops_changing():
    pred = np.array([[1, 2, 0, 3],
                     [1, 0, 0, 3],
                     [1, 2, 0, 1],
                     [1, 2, 0, 3]])  # [T, B]
    assert final_decision_steps(pred).tolist() == [0, 2, 0, 3]


def test_stream_prints_the_curve_for_a_causal_export(causal_export, capsys):
    graph_path, data = causal_export
    assert cli.main(["simulate", str(graph_path), "--backend", "emulator", "--precision", "fixed", "--samples", "10",
                     "--data", str(data), "--stream"]) == 0
    out = capsys.readouterr().out
    assert "causal graph (no node waits for later steps)" in out and "steps seen  Lava step  accuracy" in out
    assert "decision latency" in out and "up to the final decision" in out


def test_stream_result_agrees_with_the_last_step_and_the_float_reference(causal_export):
    graph_path, data = causal_export
    graph = read_graph(graph_path)
    assert not [k for k, n in graph.nodes.items() if getattr(n, "needs_future", False)]
    result = simulate(graph, open_test_split(graph, data), 10, "float", backend="emulator", stream=True,
                      progress=lambda *_: None)
    st = result.stream
    assert st.steps == T and st.window_nodes == () and st.pipeline_depth > 0
    assert st.accuracy_by_step[-1] == pytest.approx(result.accuracy)
    np.testing.assert_allclose(st.accuracy_by_step, st.float_accuracy_by_step)  # float emulator = interpreter
    assert st.final_steps.shape == (10,) and (st.final_steps < T).all()
    assert (st.decision_latency == st.final_steps + st.pipeline_depth).all()
    assert (st.spikes_to_decision <= st.spikes_total).all() and st.spikes_total.min() > 0


# ------------------------------------------------------------------------------------------ energy per decision
@pytest.fixture(scope="module")
def causal_run(causal_export):
    """The export's fixed-point emulator run of 6 test samples with every node recorded, and its inputs."""
    graph_path, data = causal_export
    graph = read_graph(graph_path)
    inputs, labels = batch_arrays(open_test_split(graph, data), 0, 6)
    plan = build_plan(graph)
    inputs = {k: v for k, v in inputs.items() if k in plan.inputs}
    return graph, emulate(plan, inputs, precision="fixed", record=True), inputs


def test_a_prefix_of_all_steps_counts_the_whole_run(causal_run):
    graph, res, _ = causal_run
    counter = ActivityCounter(graph)
    assert counter(res, steps=T) == counter(res)
    with pytest.raises(InputError, match="outside 1..6"):
        counter(res, steps=T + 1)


def test_a_prefix_counts_what_a_run_on_the_first_steps_does(causal_run):
    """Causal graph: the counts of NIR steps 0..k-1 of the T-step run equal those of a run on the first k input steps
    (same quantized plan), for every node and sample."""
    graph, res, inputs = causal_run
    counter = ActivityCounter(graph)
    for k in (1, 3):
        short = emulate(res.plan, {n: v[:k] for n, v in inputs.items()}, precision="fixed", record=True)
        a, b = counter(res, steps=k, samples=[1, 4]), counter(short, samples=[1, 4])
        assert a.run.time_steps == k and a.run.samples == 2
        assert a.nodes == b.nodes and a.per_sample == b.per_sample
        assert a.totals["spikes"] < counter(res).totals["spikes"] * 2  # a real prefix, not the whole run twice


def test_counts_by_sample_merge_to_the_batch(causal_run):
    graph, res, _ = causal_run
    counter = ActivityCounter(graph)
    whole, each = counter(res), counter.by_sample(res)
    assert len(each) == 6 and all(c.run.samples == 1 for c in each)
    merged = merge_all(each)
    assert merged.per_sample == whole.per_sample
    for name, node in whole.nodes.items():
        assert merged.nodes[name].spikes == pytest.approx(node.spikes)
        assert merged.nodes[name].synaptic_events == pytest.approx(node.synaptic_events)
    assert each[2].per_sample["spikes"] == (whole.per_sample["spikes"][2],)


def test_energy_per_decision_grows_with_the_steps_and_ends_at_the_chip_cost(causal_run):
    graph, res, _ = causal_run
    counter = ActivityCounter(graph)
    each = counter.by_sample(res)
    pricer = DecisionPricer(res.plan, "loihi2", merge_all(each))
    sample = 3
    costs = [pricer.price(counter.by_sample(res, steps=k, samples=[sample])[0], k - 1) for k in range(1, T + 1)]
    for bound in ("lower", "value", "upper"):
        totals = [c.energy_total_j[bound] for c in costs]
        dynamic = [c.energy_dynamic_j[bound] for c in costs]
        assert all(b > a for a, b in zip(totals, totals[1:])) and all(b >= a for a, b in zip(dynamic, dynamic[1:]))
    # all T steps: exactly the cost model's price of that sample's inference (dynamic), at the shared time per step
    m = map_plan(res.plan, "loihi2", time_steps=T)
    act, ext = activity_from_counts(m, each[sample])
    alone = chip_cost(m, act, ext)
    assert costs[-1].energy_dynamic_j["value"] == pytest.approx(alone.energy_dynamic_j["value"])
    assert costs[-1].lava_steps == alone.steps_per_sample == T + pricer.depth
    # the mean over the samples of the whole-sample prices = the chip cost of the mean counts (as snnav report)
    whole = price_decisions(res.plan, "loihi2", each, each, [T - 1] * 6)
    for bound in ("lower", "value", "upper"):
        assert whole.per_sample_j[bound].mean() == pytest.approx(pricer.sample_cost.energy_total_j[bound])
        assert whole.time_to_decision_s[bound][0] == pytest.approx(pricer.sample_cost.latency_s[bound])
    with pytest.raises(InputError, match="counts of 2 steps"):
        pricer.price(each[0], 1)
    # a WINDOW graph's decision reads all T steps whenever it is read: same activity, less time when read earlier
    early, late = pricer.price(each[0], 1, window=True), pricer.price(each[0], T - 1, window=True)
    assert early.energy_dynamic_j == late.energy_dynamic_j and early.time_s["value"] < late.time_s["value"]


def test_stream_prints_and_saves_energy_per_decision(causal_export, tmp_path, capsys):
    graph_path, data = causal_export
    out = tmp_path / "stream.json"
    assert cli.main(["simulate", str(graph_path), "--backend", "emulator", "--samples", "10", "--data", str(data),
                     "--stream", "--chip", "loihi2", "--chip", "loihi1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "on loihi2 (estimate" in text and "on loihi1 (estimate" in text
    assert "energy per decision: mean" in text and "time per Lava step" in text and "excludes:" in text
    data_ = read_simulation_result(out)
    st = data_["stream"]
    assert "--stream --chip loihi2 --chip loihi1" in data_["command"]
    assert len(st["accuracy_by_step"]) == T and len(st["final_steps"]) == 10
    assert [a + st["pipeline_depth"] for a in st["final_steps"]] == st["decision_latency_steps"]
    chip = st["chips"]["loihi2"]
    assert chip["kind"] == "estimate" and set(st["chips"]) == {"loihi1", "loihi2"}
    for bound in ("lower", "value", "upper"):
        assert all(0 < d <= s * (1 + 1e-12) for d, s in zip(chip["energy_to_decision_j"][bound],
                                                            chip["energy_per_sample_j"][bound]))
        expected = [(t + 1 + chip["depth_steps"]) * chip["step_s"][bound] for t in st["final_steps"]]
        np.testing.assert_allclose(chip["time_to_decision_s"][bound], expected)
    # the report of the training run with this result shows the curve and the loihi2 / loihi1 decision costs
    report, files = make_report(graph_path.parent / "run", tmp_path / "report", results=[out])
    (shown,) = report["streaming"]
    assert shown["accuracy_by_step"] == st["accuracy_by_step"] and set(shown["chips"]) == {"loihi1", "loihi2"}
    assert shown["chips"]["loihi2"]["energy_to_decision_j"]["value"] == pytest.approx(
        np.mean(chip["energy_to_decision_j"]["value"]))
    assert "Streaming decisions" in files["report.html"].read_text() and "| sim1 | loihi1 |" in files[
        "report.md"].read_text()
    # a damaged stream section is refused with a one-line error naming the field
    bad = json.loads(out.read_text())
    bad["stream"]["chips"]["loihi2"]["energy_to_decision_j"]["value"] = [1.0]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(bad))
    with pytest.raises(ResultFileError, match="stream.chips.loihi2.energy_to_decision_j.value"):
        read_simulation_result(broken)
    bad = json.loads(out.read_text())
    bad["stream"]["final_steps"][0] = T
    broken.write_text(json.dumps(bad))
    with pytest.raises(ResultFileError, match="stream.final_steps"):
        read_simulation_result(broken)


def test_stream_chip_needs_stream_and_a_known_chip(causal_export, capsys):
    graph_path, data = causal_export
    assert cli.main(["simulate", str(graph_path), "--backend", "emulator", "--data", str(data),
                     "--chip", "loihi2"]) != 0
    assert "--chip prices the streaming decisions: give it with --stream" in capsys.readouterr().err
    assert cli.main(["simulate", str(graph_path), "--backend", "emulator", "--data", str(data), "--stream",
                     "--chip", "loihi9"]) != 0
    err = capsys.readouterr().err
    assert "not a built-in chip" in err and len(err.strip().splitlines()) == 1

"""Energy from counts (`hardware_sims.cost.energy`): every built-in cost model against hand-computed energies, the
labelling as an estimate, the list of uncosted counts, Loihi 2 refused with its reason, and malformed user models
refused with messages that name the problem."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from hardware_sims.cost.energy import (
    CostModel,
    CostModelError,
    CostModelUnavailableError,
    available_cost_models,
    builtin_cost_model,
    estimate_energy,
    get_cost_model,
    load_cost_model,
)
from hardware_sims.counts import COUNT_FIELDS, ActivityCounts

NODE_A = {"spikes": 10.0, "synaptic_events": 100.0, "dense_macs": 20.0, "neuron_updates_active": 30.0,
          "neuron_updates_idle": 40.0, "ext_acs": 5.0, "ext_macs": 2.0}
NODE_B = {"spikes": 0.0, "synaptic_events": 50.0, "dense_macs": 0.0, "neuron_updates_active": 0.0,
          "neuron_updates_idle": 0.0, "ext_acs": 0.0, "ext_macs": 0.0}


def hand_counts() -> ActivityCounts:
    """Two nodes, two samples; node figures are the means of the per-sample totals below."""
    def node(typ, figures):
        return {"type": typ, "neurons": 4, "binary_input": None, "dense_synapses": 0.0, "firing_rate": None,
                **figures}

    per_sample = {k: [NODE_A[k] + NODE_B[k] - 1.0, NODE_A[k] + NODE_B[k] + 1.0] for k in COUNT_FIELDS}
    per_sample["ext_macs"] = [2.0, 2.0]  # a sample may have none of a count: keep it simple for one field
    data = {"format": "snnav.activity-counts", "version": 1,
            "run": {"backend": "emulator", "precision": "fixed", "samples": 2, "time_steps": 4, "dt_s": 1e-3},
            "nodes": {"a": node("LIF", NODE_A), "b": node("Conv2d", NODE_B)},
            "per_sample": per_sample,
            "totals": {},
            "neurobench": {"activation_sparsity": 0.5, "effective_macs": 0.0, "effective_acs": 0.0, "dense": 0.0,
                           "missed_by_neurobench": {"ext_acs": 0.0, "ext_macs": 0.0, "pooling_events": 0.0}}}
    return ActivityCounts.from_dict(data)


def test_loihi1_energy_by_hand():
    est = estimate_energy(hand_counts(), "loihi1")
    # node a: 1.7*10 + 23.6*(100 + 20 + 5 + 2) + 81*30 + 52*40 = 17 + 2997.2 + 2430 + 2080; node b: 23.6*50
    assert est.by_node_pj["a"] == pytest.approx(7524.2)
    assert est.by_node_pj["b"] == pytest.approx(1180.0)
    assert est.total_pj == pytest.approx(8704.2) and est.total_j == pytest.approx(8704.2e-12)
    assert est.by_operation_pj == pytest.approx({"spike": 17.0, "synaptic_op": 23.6 * 177,
                                                 "neuron_update_active": 2430.0, "neuron_update_idle": 2080.0})
    assert est.uncosted == {}
    assert set(est.assumptions) == {"dense_macs", "ext_acs", "ext_macs"}  # mapped onto synaptic ops, labelled
    assert est.statuses == {"spike": "simulated", "synaptic_op": "simulated", "neuron_update_active": "simulated",
                            "neuron_update_idle": "simulated"}
    # per sample: every count one below / above its mean except ext_macs (6 priced counts -> -/+ their energies)
    step = 1.7 + 23.6 * 3 + 81 + 52
    assert est.per_sample_pj == pytest.approx((8704.2 - step, 8704.2 + step))
    assert est.kind == "estimate" and "estimate" in est.label and "Davies" in est.label and "Table 2" in est.source


def test_horowitz_energy_by_hand():
    est = estimate_energy(hand_counts(), "horowitz45nm")
    # ACs: 0.9 * (100 + 50 + 5); MACs: 4.6 * (20 + 2)
    assert est.total_pj == pytest.approx(0.9 * 155 + 4.6 * 22)
    assert est.by_count_pj == pytest.approx({"synaptic_events": 135.0, "ext_acs": 4.5, "dense_macs": 92.0,
                                             "ext_macs": 9.2})
    assert est.by_operation_pj == pytest.approx({"ac": 139.5, "mac": 101.2})
    assert {k: v.amount for k, v in est.uncosted.items()} == {"spikes": 10.0, "neuron_updates_active": 30.0,
                                                             "neuron_updates_idle": 40.0}
    assert all("not costed" in v.reason.lower() for v in est.uncosted.values())
    assert est.statuses == {"ac": "estimate", "mac": "estimate"} and "Horowitz" in est.source
    assert est.to_dict()["kind"] == "estimate" and json.dumps(est.to_dict())


def test_a_wrong_figure_is_caught():
    model = builtin_cost_model("horowitz45nm").to_dict()
    model["operations"]["mac"]["energy_pj"] = 4.7
    assert estimate_energy(hand_counts(), CostModel.from_dict(model)).total_pj != pytest.approx(0.9 * 155 + 4.6 * 22)


def test_builtin_models_cite_their_sources():
    loihi, horowitz = builtin_cost_model("loihi1"), builtin_cost_model("horowitz45nm")
    assert (loihi.source.year, loihi.source.table, loihi.source.page, loihi.source.doi) == \
        (2018, "Table 2", "96", "10.1109/MM.2018.112130359")
    assert {k: v.energy_pj for k, v in loihi.operations.items() if v.energy_pj is not None} == \
        {"synaptic_op": 23.6, "neuron_update_active": 81.0, "neuron_update_idle": 52.0, "spike": 1.7}
    assert horowitz.source.doi == "10.1109/ISSCC.2014.6757323"
    assert (horowitz.operations["mac"].energy_pj, horowitz.operations["ac"].energy_pj) == (4.6, 0.9)
    assert CostModel.from_dict(json.loads(json.dumps(loihi.to_dict()))) == loihi


def test_loihi2_is_listed_unavailable_and_refused():
    listed = {m["name"]: m for m in available_cost_models()}
    assert listed["loihi1"]["available"] and listed["horowitz45nm"]["available"]
    assert not listed["loihi2"]["available"] and "per-operation" in listed["loihi2"]["reason"]
    with pytest.raises(CostModelUnavailableError, match="loihi2"):
        builtin_cost_model("loihi2")
    with pytest.raises(CostModelUnavailableError):
        estimate_energy(hand_counts(), "loihi2")
    with pytest.raises(CostModelError, match="built-in models are"):
        get_cost_model("truenorth")


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_a_user_model_from_json(tmp_path):
    data = builtin_cost_model("horowitz45nm").to_dict()
    data["name"] = "mine"
    data["operations"]["ac"] = {"energy_pj": 0.03, "status": "measured", "note": "8-bit integer add"}
    est = estimate_energy(hand_counts(), load_cost_model(write(tmp_path, data)))
    assert est.model == "mine" and est.by_operation_pj["ac"] == pytest.approx(0.03 * 155)
    assert get_cost_model(str(write(tmp_path, data))).name == "mine"


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d.pop("source"), "missing keys \\['source'\\]"),
    (lambda d: d.update(extra=1), "unknown keys \\['extra'\\]"),
    (lambda d: d["operations"].pop("spike"), "missing keys \\['spike'\\]"),
    (lambda d: d["operations"].update(flop={"energy_pj": 1.0, "status": "estimate", "note": "x"}),
     "unknown keys \\['flop'\\]"),
    (lambda d: d["operations"]["mac"].update(energy_pj=-1.0), "finite number >= 0"),
    (lambda d: d["operations"]["mac"].update(energy_pj=math.nan), "finite number >= 0"),
    (lambda d: d["operations"]["mac"].update(status="guessed"), "'guessed' is not one of"),
    (lambda d: d["operations"]["spike"].update(energy_pj=1.0), "needs energy_pj null"),
    (lambda d: d["counts"].pop("ext_acs"), "missing keys \\['ext_acs'\\]"),
    (lambda d: d["counts"]["spikes"].update(operation="hop"), "'hop' is not one of"),
    (lambda d: d["source"].update(year="2014"), "expected an integer"),
    (lambda d: d.update(version=2), "version 2"),
])
def test_malformed_models_are_refused_with_the_reason(tmp_path, mutate, message):
    data = builtin_cost_model("horowitz45nm").to_dict()
    mutate(data)
    with pytest.raises(CostModelError, match=message):
        load_cost_model(write(tmp_path, data))


def test_missing_and_non_json_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_cost_model(tmp_path / "nope.json")
    with pytest.raises(CostModelError, match="not valid JSON"):
        load_cost_model(write(tmp_path, "{oops"))

"""hardware_sims.cost: chip and GPU descriptions, mapping, chip time/energy, GPU roofline and calibration.

Every formula is checked against values computed by hand in the comments."""

from __future__ import annotations

import copy
import json
from importlib import resources

import nir
import numpy as np
import pytest

from hardware_sims.cost.chip import chip_from_dict, get_chip, load_chip
from hardware_sims.cost.chip_cost import LayerActivity, chip_cost
from hardware_sims.cost.errors import CostModelError
from hardware_sims.cost.gpu import (
    DenseWorkload,
    Measurement,
    calibrate_gpu,
    get_gpu,
    gpu_from_dict,
    predict_gpu,
    read_measurements,
)
from hardware_sims.cost.mapping import map_plan
from hardware_sims.plan.lowering import build_plan
from snnav.errors import SnnavError


def chip_dict(name: str = "loihi1") -> dict:
    return json.loads(resources.files("hardware_sims.cost").joinpath("chips", f"{name}.json").read_text())


def simple_chip(**values) -> object:
    """Loihi 1's file with some values replaced and every bound removed (lower = value = upper)."""
    d = chip_dict()
    for f in d["figures"].values():
        f.pop("lower", None)
        f.pop("upper", None)
    for k, v in values.items():
        d["figures"][k]["value"] = v
    return chip_from_dict(d, "test chip")


def chain(n_in: int, n_out: int, seed: int = 0) -> nir.NIRGraph:
    w = np.random.default_rng(seed).normal(size=(n_out, n_in)).astype(np.float32)
    return nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([n_in])}),
               "fc": nir.Affine(weight=w, bias=np.zeros(n_out, dtype=np.float32)),
               "lif": nir.LIF(tau=np.full(n_out, 2e-3), r=np.ones(n_out), v_leak=np.zeros(n_out),
                              v_threshold=np.ones(n_out), v_reset=np.zeros(n_out)),
               "output": nir.Output(output_type={"output": np.array([n_out])})},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")], metadata={"dt": 1e-3})


# --- descriptions and their validation -------------------------------------------------------------------------


def test_builtin_chips_and_gpu_load_with_sources():
    for name in ("loihi1", "loihi2"):
        chip = get_chip(name)
        assert chip["cores_per_chip"] == 128
        assert all(f.source in chip.sources and f.status for f in chip.figures.values())
    assert get_chip("loihi1")["e_synaptic_op"] == 23.6 and get_chip("loihi1").lo("e_synaptic_op") == 23.6
    assert get_gpu("h100")["memory_bandwidth"] == 3.35e12


@pytest.mark.parametrize("edit,field", [
    (lambda f: f.pop("e_hop_ew"), "figures.e_hop_ew"),
    (lambda f: f["e_synaptic_op"].update(value=-1), "figures.e_synaptic_op.value"),
    (lambda f: f["t_synaptic_op"].update(value="fast"), "figures.t_synaptic_op.value"),
    (lambda f: f["p_static_chip"].pop("unit"), "figures.p_static_chip.unit"),
    (lambda f: f["p_static_chip"].update(unit="mW"), "figures.p_static_chip.unit"),
    (lambda f: f["cores_per_chip"].update(status="rumour"), "figures.cores_per_chip.status"),
    (lambda f: f["cores_per_chip"].update(source="nowhere"), "figures.cores_per_chip.source"),
    (lambda f: f["e_synaptic_op"].update(upper=1.0), "figures.e_synaptic_op"),
])
def test_bad_chip_fields_raise_one_line_naming_the_field(edit, field):
    d = chip_dict()
    edit(d["figures"])
    with pytest.raises(CostModelError) as err:
        chip_from_dict(d, "mine.json")
    assert isinstance(err.value, SnnavError)
    assert f"mine.json: {field}" in str(err.value) and "\n" not in str(err.value)


def test_user_chip_file_and_bad_json(tmp_path):
    path = tmp_path / "c.json"
    d = chip_dict("loihi2")
    d["name"] = "mine"
    path.write_text(json.dumps(d))
    assert load_chip(path).name == "mine" and get_chip(str(path)).name == "mine"
    path.write_text("{")
    with pytest.raises(CostModelError, match="not valid JSON"):
        load_chip(path)
    with pytest.raises(CostModelError, match="no such file"):
        load_chip(tmp_path / "missing.json")
    with pytest.raises(CostModelError, match="not a built-in chip"):
        get_chip("truenorth")


def test_bad_gpu_field():
    d = json.loads(resources.files("hardware_sims.cost").joinpath("gpus", "h100.json").read_text())
    d["figures"]["memory_bandwidth"]["unit"] = "GB/s"
    with pytest.raises(CostModelError, match=r"figures.memory_bandwidth.unit: expected 'B/s'"):
        gpu_from_dict(d, "g.json")


def test_measurement_file_errors(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"format": "snnav.gpu-measurement", "hardware": {}, "run": {},
                                "measurements": [{"target": "torch", "batch_size": 1}]}))
    with pytest.raises(CostModelError, match=r"measurements\[0\].wall_s_per_sample: missing"):
        read_measurements(path)


# --- mapping ---------------------------------------------------------------------------------------------------


def test_mapping_compartments_and_memory():
    # 3000 LIF neurons, 8 inputs: ceil(3000 / 1024) = 3 cores; synapses 3000 x 8 at 8 bits = 24000 bytes
    m = map_plan(chain(8, 3000), "loihi1", weight_bits=8)
    (layer,) = m.layers.values()
    assert (layer.compartments, layer.cores, layer.limited_by) == (3000, 3, "compartments")
    assert layer.synapses == 24000 and layer.synapse_bits == 24000 * 8
    assert m.chips == 1 and m.fits
    assert m.utilisation["compartments"] == pytest.approx(3000 / (3 * 1024))
    # memory-limited: 4 KiB of synaptic memory per core: 24000 bytes -> ceil(24000 / 4096) = 6 cores
    small = simple_chip(synaptic_memory_per_core=4096)
    assert map_plan(chain(8, 3000), small).layers["lif"].cores == 6


def test_mapping_reports_fan_in_and_weight_violations():
    m = map_plan(chain(5000, 3), "loihi1")
    v = [x for x in m.violations if x.layer == "lif"]
    assert v and v[0].needed == 5000 and v[0].limit == 4096 and v[0].amount == 904
    assert not m.fits
    m = map_plan(chain(8, 4), "loihi1", weight_bits=12)
    assert any(x.constraint == "weight width" and x.amount == 3 for x in m.violations)


def test_mapping_of_a_model_export_places_extension_nodes():
    pytest.importorskip("torch")
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "snnav_export_test_models_cost", Path(__file__).resolve().parents[2] / "export" / "export_models.py")
    tm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tm)
    from export.from_torch.exporter import ExportConfig, export_model

    graph = export_model(tm.small_model("scmrl"), ExportConfig(dt_s=1e-3, time_steps=4, audio_shape=(1, 16, 16),
                                                              visual_shape=(2, 16, 16)))
    plan = build_plan(graph)
    m1, m2 = map_plan(plan, "loihi1"), map_plan(plan, "loihi2")
    assert m1.extensions and set(m1.extensions) == set(m2.extensions)
    assert all("embedded" in e.placement and e.cores == 0 for e in m1.extensions.values())
    assert all("programmable" in e.placement and e.cores >= 1 for e in m2.extensions.values())
    assert m1.cores >= len(m1.layers) and m1.steps_per_sample == plan.steps_per_sample(4)
    assert "cores" in m1.summary() and m1.to_dict()["chips"] >= 1


def test_a_neuron_reading_more_axons_than_a_core_has_is_split_with_graded_spikes_and_refused_without():
    plan = build_plan(chain(40, 3))
    binary = map_plan(plan, simple_chip(fan_in_axons_per_core=16, graded_spikes=0), time_steps=2)
    assert [v.constraint for v in binary.violations] == ["fan-in axons of one neuron"]
    assert binary.violations[0].needed == 40 and binary.violations[0].amount == 24
    graded = map_plan(plan, simple_chip(fan_in_axons_per_core=16, graded_spikes=1), time_steps=2)
    layer = graded.layers["lif"]
    # ceil(40 / 16) = 3 partial sums per neuron, 3 x 3 compartments, 3 more cores; one more pipeline step
    assert graded.fits and layer.relay_compartments == 9 and layer.compartments == 3 + 9
    assert layer.cores == binary.layers["lif"].cores + 3 and "3 partial-sum cores" in layer.limited_by
    assert graded.steps_per_sample == binary.steps_per_sample + 1
    assert any("split over 3 partial-sum compartments" in n for n in graded.notes)


# --- chip time and energy --------------------------------------------------------------------------------------


def test_chip_cost_by_hand():
    chip = simple_chip(compartments_per_core=2, e_synaptic_op=2, e_neuron_update_active=3, e_neuron_update_idle=1,
                       t_synaptic_op=1, t_neuron_update_active=2, t_neuron_update_idle=1, p_static_chip=1.0)
    plan = build_plan(chain(4, 3))
    m = map_plan(plan, chip, time_steps=2)
    assert m.layers["lif"].cores == 2 and m.steps_per_sample == 2 + plan.max_latency == 3
    c = chip_cost(m, {"lif": LayerActivity(synaptic_events=10, spikes=4, active_updates=5)}, balance=False)
    # dynamic: 10 x 2 + 5 x 3 + (3 x 3 - 5) x 1 = 39 pJ
    assert c.energy_dynamic_j["value"] == pytest.approx(39e-12)
    # step: 10/2/2 x 1 + 3/2 x (5/9 x 2 + 4/9 x 1) = 2.5 + 2.3333 ns, + barrier of one tile 113 ns
    step = (2.5 + 1.5 * 14 / 9 + 113) * 1e-9
    assert c.step_s["value"] == pytest.approx(step)
    assert c.latency_s["value"] == pytest.approx(3 * step)
    assert c.throughput_per_s["value"] == pytest.approx(1 / (3 * step))
    # static: 1 W x 1 chip x latency; lower bound: 1 W x 2/128 of a chip
    assert c.energy_static_j["value"] == pytest.approx(3 * step)
    assert c.energy_static_j["lower"] == pytest.approx(3 * step * 2 / 128)
    assert c.energy_total_j["value"] == pytest.approx(39e-12 + 3 * step)


def test_balancing_spreads_the_slowest_layer_over_the_chips_spare_cores():
    chip = simple_chip(compartments_per_core=2, e_synaptic_op=2, e_neuron_update_active=3, e_neuron_update_idle=1,
                       t_synaptic_op=1, t_neuron_update_active=2, t_neuron_update_idle=1, p_static_chip=1.0)
    m = map_plan(build_plan(chain(4, 3)), chip, time_steps=2)
    act = {"lif": LayerActivity(synaptic_events=10, spikes=4, active_updates=5)}
    c = chip_cost(m, act)
    # 2 cores hold the 3 neurons; the chip's spare cores let each neuron have its own (3 cores, at most one per
    # neuron): step = 10/2/3 x 1 + 3/3 x 14/9 + 113 ns; the dynamic energy does not change
    step = (10 / 6 + 14 / 9 + 113) * 1e-9
    assert c.cores == 3 and c.step_s["value"] == pytest.approx(step)
    assert c.energy_dynamic_j["value"] == pytest.approx(chip_cost(m, act, balance=False).energy_dynamic_j["value"])
    assert c.energy_static_j["lower"] == pytest.approx(3 * step * 3 / 128)
    assert any("load balanced: 1 spare cores" in n for n in c.notes)


def test_chip_cost_bounds_and_graded_inputs():
    m = map_plan(build_plan(chain(4, 3)), "loihi1", time_steps=2, weight_bits=8)
    c = chip_cost(m, {"lif": LayerActivity(graded_events=10)})
    # graded events on a binary-spike chip: 1 op each (value), weight_bits = 8 ops each at 47.2 pJ (upper)
    idle = 9 * 52e-12
    assert c.energy_dynamic_j["value"] == pytest.approx(10 * 23.6e-12 + idle)
    assert c.energy_dynamic_j["upper"] == pytest.approx(80 * 47.2e-12 + idle)
    assert c.energy_dynamic_j["lower"] <= c.energy_dynamic_j["value"] <= c.energy_dynamic_j["upper"]


# --- GPU roofline and calibration ------------------------------------------------------------------------------


def test_gpu_prediction_by_hand():
    wl = DenseWorkload("x", flops_per_sample=1e9, activation_bytes_per_sample=1e6, weight_bytes=1e6,
                       kernels_per_call=100)
    p = predict_gpu(wl, "h100", batch=1)
    # host 100 x 15 us = 1.5 ms > device max(1e9/6.7e13, 2e6/3.35e12) = 14.9 us
    assert p.time_per_call_s == pytest.approx(1.5e-3) and p.bound == "host (launch)"
    # 120 W x 1.5 ms + 30 uJ x 100 + 0.1 nJ/B x 2e6 B + 1 pJ x 1e9 = 0.18 + 0.003 + 0.0002 + 0.001 J
    assert p.energy_per_sample_j == pytest.approx(0.1842)
    assert p.dynamic_per_sample_j == pytest.approx(0.0042)
    big = predict_gpu(wl, "h100", batch=10000)  # device: 1e13 FLOP / 6.7e13 = 0.149 s > host
    assert big.bound == "device (roofline)" and big.time_per_call_s == pytest.approx(1e13 / 6.7e13)


def test_calibration_recovers_known_constants():
    wl = DenseWorkload("net", 2e8, 3e7, 1e7, 800)
    t_launch, e_kernel, e_byte, idle = 1.6e-5, 2e-5, 3e-10, 120.0
    ms = []
    for b in (1, 64):
        t = max(800 * t_launch, (1e7 + b * 3e7) / 3.35e12)
        dyn = e_kernel * 800 + e_byte * (1e7 + b * 3e7) + 1e-12 * b * 2e8
        ms.append(Measurement("net", "torch", b, t / b, (dyn + idle * t) / b, dyn / b, idle, "H100", "m.json"))
    cal = calibrate_gpu("h100", wl, ms)
    assert cal.fitted["t_launch"] == pytest.approx(t_launch)
    assert cal.fitted["e_kernel"] == pytest.approx(e_kernel) and cal.fitted["e_byte"] == pytest.approx(e_byte)
    assert all(abs(r["energy"]) < 1e-9 for r in cal.residuals.values())
    assert cal.gpu.figures["t_launch"].status == "measured" and cal.gpu.calibrated_from == "m.json"
    with pytest.warns(UserWarning, match="measurements of model 'other'"):
        calibrate_gpu("h100", wl, [copy.replace(m, model="other") if hasattr(copy, "replace") else
                                   Measurement("other", *list(m.__dict__.values())[1:]) for m in ms])
    with pytest.raises(CostModelError, match="no measurement of target"):
        calibrate_gpu("h100", wl, ms, target="tensorrt")

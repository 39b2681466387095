"""Every registered model's export on Lava: floating point spike for spike with the NIR interpreter, fixed point
bit-exact with the numpy reference of Lava's models and deterministic.

The models are the small randomized ones of the export tests (``tests/export/export_models.py``: embed_dim 32, 16x16
inputs, T = 4, batch norms with random statistics so every layer fires), exported in float64. A run starts one OS
process per Lava process (37 for CMCI, about 120 for S-CMRL), so only the smallest model is in the default suite;
the others are ``slow``. ``scripts/lava_agreement.py`` does the same on trained checkpoints and AV-Digits.

Fixed point has no reference outside Lava to agree with spike for spike (quantization changes spikes), so the
fixed-point tests assert what is exact: two runs give identical records, and every neuron layer and every extension
process, recomputed from the recorded integer messages of its sources with ``hardware_sims.fixed_point.reference`` (Dense,
Sparse, LIF), an integer convolution wrapped like Lava's Conv, and the extension kernels of ``lava.procs``, equals
what Lava produced, bit for bit. The prediction agreement and accuracy against float are reported (no threshold).

A bias into an extension port (WeightAttention's gate ``fc2(fc1(...))``) is the extension process's port bias: the
default suite checks it in the plan, in the process, and on Lava in a tiny graph (float against the interpreter,
fixed point bit-exact and different without the bias).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import nir
import numpy as np
import pytest
import torch

import hardware_sims  # noqa: F401  (lava compatibility fixes before any lava import)
from export.from_torch.exporter import ExportConfig, export_model
from export.interpreter import Interpreter
from hardware_sims.extensions import kernels
from hardware_sims.fixed_point.prepare import fixed_arguments
from hardware_sims.fixed_point.reference import dense_fixed, lif_fixed_step, wrap_signed
from hardware_sims.lava.build import extension_builder
from hardware_sims.lava.procs.base import fixed_output
from hardware_sims.lava.run import run_lava
from hardware_sims.plan import build_plan
from snnav.models import list_models

B = 3
SMALLEST = "cmci"  # fewest Lava processes (37)


def _export_test_models():
    path = Path(__file__).resolve().parents[2] / "export" / "export_models.py"
    spec = importlib.util.spec_from_file_location("snnav_export_test_models_lava", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TM = _export_test_models()


@functools.lru_cache(maxsize=None)
def small_case(name: str):
    """``(graph, inputs)``: the small randomized model exported in float64, and B random samples ``[T, B, ...]``."""
    shapes = {"audio": (1, TM.SIZE, TM.SIZE), "visual": (2, TM.SIZE, TM.SIZE)}
    drop = {"spikformer-audio": "visual", "spikformer-visual": "audio"}.get(name)
    cfg = ExportConfig(dt_s=1e-3, time_steps=TM.T, dtype="float64",
                       audio_shape=None if drop == "audio" else shapes["audio"],
                       visual_shape=None if drop == "visual" else shapes["visual"])
    graph = export_model(TM.small_model(name), cfg)
    audio, visual = TM.inputs(dtype=torch.float64)
    inputs = {k: x[:, :B].numpy() for k, x in (("audio", audio), ("visual", visual)) if k in graph.nodes}
    return graph, inputs


def reference(graph, inputs):
    return Interpreter(graph, dtype=torch.float64).run({k: torch.from_numpy(v) for k, v in inputs.items()})


def lif_nodes(graph) -> list[str]:
    return [n for n, node in graph.nodes.items() if isinstance(node, nir.LIF)]


def check_float_agreement(name: str) -> None:
    graph, inputs = small_case(name)
    result = run_lava(graph, inputs, precision="float", record=True)
    ref = reference(graph, inputs)
    lifs = lif_nodes(graph)
    assert lifs and set(lifs) <= set(result.records)
    mismatches = {n: int((result.records[n] != ref.records[n].numpy()).sum()) for n in ref.spikes}
    assert set(lifs) <= set(mismatches)
    assert mismatches == dict.fromkeys(mismatches, 0)  # every spiking node (LIF and the max-pool Thresholds)
    for n in lifs:  # every LIF layer fires in every sample, and not at every step (the comparison means something)
        rate = result.records[n].mean(axis=(0, *range(2, result.records[n].ndim)))
        assert np.all(rate > 0) and np.all(rate < 1), (n, rate)
    for n, lava in result.records.items():  # graded values (extension outputs, readouts): equal up to rounding
        if n not in ref.spikes:
            np.testing.assert_allclose(lava, ref.records[n].numpy(), rtol=1e-12, atol=1e-12, err_msg=n)
    step = graph.metadata["readout_step"]
    np.testing.assert_allclose(result.outputs["logits"][step], ref.outputs["logits"].numpy()[step], rtol=1e-12,
                               atol=1e-12)


@pytest.mark.lava
def test_smallest_model_float_matches_interpreter_in_every_lif_layer():
    check_float_agreement(SMALLEST)


@pytest.mark.slow
@pytest.mark.lava
@pytest.mark.parametrize("name", [n for n in list_models() if n != SMALLEST])
def test_every_model_float_matches_interpreter_in_every_lif_layer(name):
    check_float_agreement(name)


def test_weight_attention_gate_bias_is_in_the_plan():
    """WeightAttention's gate is ``fc2(fc1(...))`` with biases: the constant reaches the Gate's ``gate`` port as the
    process's port bias (no Lava synapse has a bias), equal to ``W2 b1 + b2``."""
    graph, _ = small_case("weight-attention")
    plan = build_plan(graph)
    gates = [p for p in plan.of_kind("extension") if p.params["type_name"] == "snnav.Gate"]
    assert len(gates) == 2
    for p in gates:
        assert set(p.params["bias"]) == {"gate"}
        block = p.name.rsplit("_gate", 1)[0]
        fc1_bias = graph.nodes[f"{block}_fc1_x"].bias  # fc1's bias sits on its x half
        fc2 = graph.nodes[f"{block}_fc2"]
        np.testing.assert_allclose(p.params["bias"]["gate"], fc2.weight @ fc1_bias + fc2.bias, rtol=1e-12)
        assert p.latency == p.live_step  # the bias costs no step


def test_extension_port_bias_is_checked_and_broadcast():
    from hardware_sims.lava.procs.gate import GateProcess

    proc = GateProcess(shape=(4, 3), bias={"gate": 0.5})
    np.testing.assert_array_equal(proc.proc_params["bias"]["gate"], [0.5])
    assert GateProcess(shape=(4, 3)).proc_params["bias"] == {}
    with pytest.raises(ValueError, match="unknown ports"):
        GateProcess(shape=(4, 3), bias={"y": 1.0})
    with pytest.raises(ValueError, match="does not broadcast"):
        GateProcess(shape=(4, 3), bias={"x": np.ones(5)})


# ------------------------------------------------------------------------------------------------ fixed point


def _conv_int(x: np.ndarray, w: np.ndarray, stride, padding, dilation, groups: int) -> np.ndarray:
    """Integer cross-correlation ``[..., C_in, H, W]`` * ``(C_out, C_in/groups, kh, kw)``, zero padding (exact)."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    co, cig, kh, kw = w.shape
    lead = x.shape[:-3]
    xp = np.pad(x, [(0, 0)] * len(lead) + [(0, 0), (ph, ph), (pw, pw)])
    ho = (xp.shape[-2] - dh * (kh - 1) - 1) // sh + 1
    wo = (xp.shape[-1] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((*lead, co, ho, wo), dtype=np.int64)
    per = co // groups
    for g in range(groups):
        xs = xp[..., g * cig:(g + 1) * cig, :, :]
        for i in range(kh):
            for j in range(kw):
                patch = xs[..., i * dh: i * dh + sh * (ho - 1) + 1: sh, j * dw: j * dw + sw * (wo - 1) + 1: sw]
                out[..., g * per:(g + 1) * per, :, :] += np.einsum("...chw,oc->...ohw", patch,
                                                                   w[g * per:(g + 1) * per, :, i, j])
    return out


class FixedReplay:
    """Recompute a fixed-point run's layers from its records (NIR-step aligned integer messages)."""

    def __init__(self, result, inputs: dict, port_bias: bool = True):
        self.port_bias = port_bias
        self.plan, self.rec = result.plan, result.records
        self.q = self.plan.quant
        self.args = fixed_arguments(self.plan)
        self.inputs = inputs
        self.cache: dict[str, np.ndarray] = {}

    def recorded(self, proc: str) -> np.ndarray:
        """A signal process's messages ``[T, B, *shape]`` as the integers Lava sent."""
        spec = self.plan.processes[proc]
        if spec.kind == "input":
            return np.rint(self.inputs[proc] * 2.0 ** self.q.message_exps.get(proc, 0)).astype(np.int64)
        scaled = self.rec[proc] * 2.0 ** self.q.read_exp(proc, "v" if spec.params.get("read") == "v" else "s_out")
        ints = np.rint(scaled)
        assert np.array_equal(ints, scaled), proc  # records are exact integers in real units
        return ints.astype(np.int64)

    def messages(self, proc: str) -> np.ndarray:
        """What `proc` sends at each NIR step: recorded for signal processes, recomputed for synapses."""
        if proc in self.cache:
            return self.cache[proc]
        spec = self.plan.processes[proc]
        if spec.kind in ("input", "neuron", "extension"):
            out = self.recorded(proc)
        elif spec.kind == "delay":  # alignment only (no NIR Delay nodes in snnav graphs): same NIR-step values
            (c,) = self.plan.inbound(proc)
            out = self.messages(c.src)
        else:
            (c,) = self.plan.inbound(proc)
            out = self.synapse(spec, self.messages(c.src))
        self.cache[proc] = out
        return out

    def synapse(self, spec, x: np.ndarray) -> np.ndarray:
        """One synapse's a_out for every step and sample (Lava's bit-accurate Dense/Sparse/Conv)."""
        t, b = x.shape[:2]
        if spec.kind == "conv":
            s = x if spec.graded_in else (x != 0).astype(np.int64)
            p = spec.params
            out = _conv_int(s, np.asarray(self.args[spec.name]["weight"], dtype=np.int64), p["stride"],
                            p["padding"], p["dilation"], int(p["groups"]))
            return wrap_signed(out)
        a = self.args[spec.name]
        bits = 24 if spec.graded_in else 0
        flat = x.reshape(t, b, -1)
        out = np.stack([np.stack([dense_fixed(a["weights"], a["weight_exp"], flat[i, j], num_message_bits=bits)
                                  for j in range(b)]) for i in range(t)])
        return out.reshape(t, b, *spec.shape)

    def port_input(self, proc: str, port: str) -> np.ndarray:
        """``[T, B, size]``: the sum of what arrives at a port (Lava sums the connections into one InPort)."""
        terms = [self.messages(c.src) for c in self.plan.inbound(proc) if c.port == port]
        return sum(x.reshape(*x.shape[:2], -1) for x in terms)

    def neuron(self, proc: str) -> np.ndarray:
        """``[T, B, *shape]`` spikes (or v for a readout) of a LIF population replayed with `lif_fixed_step`."""
        spec = self.plan.processes[proc]
        a = self.args[proc]
        a_in = self.port_input(proc, "a_in").reshape(-1, B, *spec.shape)
        u = v = np.zeros((B, *spec.shape), dtype=np.int64)
        out = []
        for t in range(a_in.shape[0]):
            u, v, s = lif_fixed_step(u, v, a_in[t], a["du"], a["dv"], a["vth"], a["bias_mant"].reshape(spec.shape),
                                     a["bias_exp"])
            out.append(v if spec.params["read"] == "v" else s.astype(np.int64))
        return np.stack(out)

    def extension(self, proc: str) -> np.ndarray:
        """``[T, B, *shape]`` output messages of an extension process, from its ports' recomputed inputs."""
        spec = self.plan.processes[proc]
        node = spec.params["node"]
        process = extension_builder(node)(node, f"replay:{proc}", **self.args[proc]).process
        plan, pp = process.plan, process.proc_params
        bias = self.args[proc].get("bias", {}) if self.port_bias else {}
        ports = {}
        for port in process.PORTS:
            shape = tuple(getattr(process, port).shape)
            ports[port] = self.port_input(proc, port).reshape(-1, B, *shape) + bias.get(port, 0)
        kind, window = node.type_name, spec.params["window"]
        out = []
        for b in range(B):
            x = {p: v[:, b] for p, v in ports.items()}
            if kind == "snnav.Gate":
                acc = np.stack([kernels.gate_acc(x["x"][t], x["gate"][t]) for t in range(len(x["x"]))])
            elif kind == "snnav.AttentionScores":
                acc = np.stack([kernels.attention_scores_acc(x["q"][t], x["k"][t], pp["num_heads"])
                                for t in range(len(x["q"]))])
            elif kind == "snnav.AttentionApply":
                acc = np.stack([kernels.attention_apply_acc(x["p"][t], x["v"][t], pp["num_heads"])
                                for t in range(len(x["p"]))])
            elif kind == "snnav.SpikeAttention" and node.axis == "tokens":
                acc = np.stack([kernels.attention_tokens_acc(x["q"][t], x["k"][t], x["v"][t], pp["num_heads"])
                                for t in range(len(x["q"]))])
            elif kind == "snnav.SpikeAttention":  # one window = the whole sample (snnav exports window = T)
                assert window == len(x["q"])
                acc = kernels.time_layout(kernels.attention_time_acc(x["q"], x["k"], x["v"], pp["num_heads"]),
                                          node.layout)
            elif kind == "snnav.ComplementaryFusion":
                assert window == len(x["spatial"])
                acc = kernels.fusion_acc(x["spatial"], x["temporal"])
            else:
                raise AssertionError(f"no replay for {kind}")
            out.append(fixed_output(plan, acc).astype(np.int64))
        return np.stack(out, axis=1)


def replay_mismatches(result, inputs: dict) -> dict[str, int]:
    """Per neuron and extension process: elements where the replay differs from what Lava recorded."""
    replay = FixedReplay(result, inputs)
    out = {}
    for spec in result.plan.processes.values():
        if spec.kind == "neuron":
            out[spec.name] = int((replay.neuron(spec.name) != replay.recorded(spec.name)).sum())
        elif spec.kind == "extension":
            out[spec.name] = int((replay.extension(spec.name) != replay.recorded(spec.name)).sum())
    return out


def gate_graph(rng, lin_range=(-0.5, 1.5)) -> nir.NIRGraph:
    """Spikes x (4, 3) times a gate computed by an Affine with bias from a graded input, then Linear -> LIF."""
    from export.ir.extensions import Gate

    nodes = {"x": nir.Input(input_type=np.array([4, 3])), "g": nir.Input(input_type=np.array([2])),
             "fc": nir.Affine(weight=rng.uniform(-1, 1, (1, 2)), bias=np.array([0.8])), "gate": Gate(shape=(4, 3)),
             "flat": nir.Flatten(input_type={"input": np.array([4, 3])}, start_dim=0, end_dim=-1),
             "lin": nir.Linear(weight=rng.uniform(*lin_range, (5, 12))),
             "lif": nir.LIF(tau=np.full(5, 2e-3), r=np.ones(5), v_leak=np.zeros(5), v_threshold=np.ones(5)),
             "out": nir.Output(output_type=np.array([5]))}
    edges = [("x", "gate.x"), ("g", "fc"), ("fc", "gate.gate"), ("gate", "flat"), ("flat", "lin"), ("lin", "lif"),
             ("lif", "out")]
    return nir.NIRGraph(nodes, edges, metadata={"dt": 1e-3}, type_check=False)


@pytest.mark.lava
def test_a_bias_into_an_extension_port_runs_exactly_in_float_and_fixed_point():
    rng = np.random.default_rng(5)
    graph = gate_graph(rng)
    inputs = {"x": (rng.random((6, B, 4, 3)) < 0.5).astype(float), "g": rng.uniform(0, 1.5, (6, B, 2))}
    (gate,) = build_plan(graph).of_kind("extension")
    np.testing.assert_array_equal(gate.params["bias"]["gate"], [0.8])

    flt = run_lava(graph, inputs, precision="float", record=True)
    ref = reference(graph, inputs)
    assert 0 < flt.records["lif"].mean() < 1
    np.testing.assert_array_equal(flt.records["lif"], ref.records["lif"].numpy())
    np.testing.assert_allclose(flt.records["gate"], ref.records["gate"].numpy(), rtol=1e-12, atol=1e-12)

    fix = run_lava(graph, inputs, precision="fixed", record=True)
    mismatches = replay_mismatches(fix, inputs)
    assert set(mismatches) == {"gate", "lif"} and mismatches == {"gate": 0, "lif": 0}
    no_bias = FixedReplay(fix, inputs, port_bias=False)
    assert (no_bias.extension("gate") != no_bias.recorded("gate")).any()
    assert [r.kind for r in fix.plan.quant.report.layers].count("bias") == 1


def test_an_extension_output_exponent_leaves_the_weights_it_feeds_their_resolution():
    """The Gate's lossless output has the fractional bits of both its ports; a synapse with tiny weights fed by it
    would need a weight exponent below Loihi's -8 and lose its weights to rounding. The backend lowers the
    extension's output exponent just enough (a second quantizer pass)."""
    from hardware_sims.fixed_point.plan_quantizer import quantize_plan
    from hardware_sims.fixed_point.prepare import _extension_exps, prepare_fixed

    plan = build_plan(gate_graph(np.random.default_rng(2), lin_range=(0.001, 0.004)))
    lossless, _ = quantize_plan(plan, source_exps=_extension_exps(plan))
    fixed, _, _ = prepare_fixed(plan, {})
    exps = lossless.quant.port_formats
    assert lossless.quant.message_exps["gate"] == exps[("gate", "x")][0] + exps[("gate", "gate")][0]  # lossless
    assert lossless.quant.synapses["lin"].zeroed > 0
    assert fixed.quant.message_exps["gate"] < lossless.quant.message_exps["gate"]
    assert fixed.quant.synapses["lin"].zeroed == 0
    assert fixed.quant.synapses["lin"].exp == -8 and fixed.quant.synapses["lin"].clipped == 0
    assert fixed.quant.port_formats[("gate", "gate")] == lossless.quant.port_formats[("gate", "gate")]


@pytest.mark.slow
@pytest.mark.lava
@pytest.mark.parametrize("name", [SMALLEST, "weight-attention", "scmrl"])
def test_fixed_point_is_deterministic_and_bit_exact_with_the_reference(name, record_property, capsys):
    graph, inputs = small_case(name)
    first = run_lava(graph, inputs, precision="fixed", record=True)
    second = run_lava(graph, inputs, precision="fixed", record=True)
    assert set(first.records) == set(second.records)
    for n in first.records:
        np.testing.assert_array_equal(first.records[n], second.records[n], err_msg=n)
    mismatches = replay_mismatches(first, inputs)
    kinds = {first.plan.processes[n].kind for n in mismatches}
    assert "neuron" in kinds and (name == SMALLEST or "extension" in kinds)
    assert mismatches == dict.fromkeys(mismatches, 0)
    # the replay is sensitive: one synapse into a LIF layer with twice its weights changes that layer's spikes
    replay = FixedReplay(first, inputs)
    syn, lif = next((c.src, c.dst) for c in first.plan.connections
                    if first.plan.processes[c.src].kind in ("dense", "sparse")
                    and first.plan.processes[c.dst].params.get("nir_type") == "LIF")
    replay.args[syn] = {**replay.args[syn], "weight_exp": replay.args[syn]["weight_exp"] + 1}
    assert (replay.neuron(lif) != replay.recorded(lif)).any()
    if name == "weight-attention":  # the gates' port bias took part: without it their replay differs
        gates = [p.name for p in first.plan.of_kind("extension") if p.params["bias"]]
        assert len(gates) == 2
        no_bias = FixedReplay(first, inputs, port_bias=False)
        assert all((no_bias.extension(g) != no_bias.recorded(g)).any() for g in gates)

    flt = run_lava(graph, inputs, precision="float", record=False)
    pred_fixed, pred_float = first.readout("logits").argmax(-1), flt.readout("logits").argmax(-1)
    ref = reference(graph, inputs).outputs["logits"].numpy()[graph.metadata["readout_step"]].argmax(-1)
    agreement = float((pred_fixed == pred_float).mean())
    report = first.plan.quant.report
    record_property("fixed_eq_float_prediction", agreement)
    record_property("max_abs_dlogit_fixed_vs_float",
                    float(np.abs(first.readout("logits") - flt.readout("logits")).max()))
    record_property("weights_rounded", report.total_rounded)
    with capsys.disabled():
        print(f"\n{name}: fixed = float prediction on {agreement:.0%} of {B} random samples "
              f"(interpreter = float: {float((ref == pred_float).mean()):.0%}); quantization: "
              f"{report.total_clipped} clipped, {report.total_rounded} rounded of {report.total_size} values")

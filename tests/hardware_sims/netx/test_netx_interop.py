"""lava-dl netx interop: `.net` files written by `hardware_sims.netx.write`, loaded by netx's own loader.

Conformance (marker ``lava``): the same NIR chain runs twice on Lava's ``Loihi2SimCfg(select_tag="fixed_pt")`` --
once from the `.net` file through ``lava.lib.dl.netx.hdf5.Network`` (`run_netx`), once through snnav's compiler
(``run_lava(report.plan, precision="fixed")``, the plan holding the integers written) -- and every spiking layer
must give the same spikes at every step of 2 samples. Chains: a plain convolutional baseline (Conv2d -> LIF ->
strided Conv2d -> LIF -> Flatten -> Affine -> LIF; quant "slayer"), the token MLP of an exported av-add model
(Conv1d(k=1) -> LIF -> Conv1d -> LIF, as dense layers over the flattened tokens, fed the graded sum x + rpe; quant
"fit"), and the model's audio stem (Conv2d -> LIF -> SumPool2d -> Threshold, twice, pools as depthwise convs,
real-valued audio input with 4 fractional bits).

The other tests need no Lava run: the file layout as netx reads it, netx's weight path, and the refusals.
"""

from __future__ import annotations

import h5py
import nir
import numpy as np
import pytest
from lava_graphs import conv_chain, conv_pool, lif_chain, residual, two_inputs_readout

from hardware_sims.fixed_point.plan_quantizer import quantize_plan
from hardware_sims.fixed_point.quantize import quantize_weights
from hardware_sims.netx import NetxExportError, netx_limits, read_netx_layers, write_netx
from hardware_sims.plan import build_plan

T, B = 6, 2


@pytest.fixture(scope="module")
def av_add():
    """A small exported av-add model with random batch-norm statistics (so that every layer fires)."""
    torch = pytest.importorskip("torch")
    from export.from_torch.exporter import ExportConfig, export_model
    from snnav.models import create_model

    torch.manual_seed(0)
    model = create_model("av-add", num_classes=5, embed_dim=32, num_heads=4, mlp_ratio=2, stem="shallow",
                         in_channels_audio=1, in_channels_visual=2)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=gen))
                m.bias.copy_(0.3 + torch.rand(m.bias.shape, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(m.running_var.shape, generator=gen))
    config = ExportConfig(dt_s=1e-3, time_steps=4, audio_shape=(1, 16, 16), visual_shape=(2, 16, 16))
    return export_model(model.eval(), config)


def token_mlp(graph: nir.NIRGraph) -> nir.NIRGraph:
    from export.interop.parts import subgraph

    keep = ["mlp_audio_mlp_fc1_conv", "mlp_audio_mlp_fc1_lif", "mlp_audio_mlp_fc2_conv", "mlp_audio_mlp_fc2_lif"]
    return subgraph(graph, keep, input_at="mlp_audio_mlp_fc1_conv")  # input: the fan-in x + rpe, one Input


def audio_stem(graph: nir.NIRGraph) -> nir.NIRGraph:
    from export.interop.parts import subgraph

    keep = [f"stem_audio_stages_{i}_{part}" for i in (0, 1) for part in ("conv", "lif", "pool", "pool_or")]
    return subgraph(graph, keep)


# ------------------------------------------------------------------------------------------------ conformance


def _case(name: str, rng, av_add):
    """(graph, write_netx options, input [T, B, ...]) of one conformance chain."""
    if name == "conv_chain":
        return conv_chain(rng), {}, (rng.random((T, B, 2, 8, 8)) < 0.4).astype(np.float64)
    if name == "token_mlp":  # the sum of two spike trains (x and rpe): graded 0..2, input_message_bits = 24
        x = (rng.random((T, B, 32, 16)) < 0.3).astype(np.float64) + (rng.random((T, B, 32, 16)) < 0.3)
        return token_mlp(av_add), {"quant": "fit"}, x
    # real-valued audio in [0, 3) on a 1/16 grid: the first layer's state_exp is 4, pools are depthwise convs
    return audio_stem(av_add), {"input_exp": 4, "pool_as_conv": True}, 3 * rng.random((T, B, 1, 16, 16))


@pytest.mark.lava
@pytest.mark.parametrize("name", ["conv_chain", "token_mlp", "audio_stem"])
def test_netx_spikes_equal_snnav_compiler(name, av_add, tmp_path):
    from hardware_sims.lava.run import run_lava
    from hardware_sims.netx import run_netx

    rng = np.random.default_rng(3)
    graph, options, x = _case(name, rng, av_add)
    report = write_netx(graph, tmp_path / f"{name}.net", **options)
    netx = run_netx(report.path, x)
    ours = run_lava(report.plan, {report.input_name: x}, precision="fixed")
    assert netx.steps_per_sample == ours.steps_per_sample == report.steps_per_sample(T)
    assert [layer.neuron for layer in report.spiking_layers] == list(netx.records)
    counts = {}
    for node, spikes in netx.records.items():
        assert netx.latency[node] == ours.node_latency[node]
        np.testing.assert_array_equal(spikes, ours.records[node], err_msg=f"{name}: {node}")
        rate = spikes.mean()
        counts[node] = int(spikes.sum())
        assert 0.02 < rate < 0.9, (node, rate)  # every layer fires, none saturates
        # a one-step misalignment would be caught: the spike trains are not shift-invariant
        assert not np.array_equal(spikes[1:], ours.records[node][:-1]), node
    print(name, counts, {k: round(v, 2) for k, v in netx.timing.items()})


# ------------------------------------------------------------------------------------- the file as netx reads it


@pytest.mark.parametrize("quant", ["slayer", "fit"])
def test_written_weights_are_the_folded_weights_rounded(quant, av_add, tmp_path):
    """Every written weight is within half a step of the planner's folded weight (sparse token linears included)."""
    for graph in (conv_chain(np.random.default_rng(0)), token_mlp(av_add)):
        plan = build_plan(graph)
        report = write_netx(graph, tmp_path / "w.net", quant=quant)
        for name, q in report.plan.quant.synapses.items():
            params = plan.processes[name].params
            w = params["weights"] if "weights" in params else params["weight"]
            w = w.toarray() if hasattr(w, "toarray") else np.asarray(w)
            mant = q.mant.toarray() if hasattr(q.mant, "toarray") else np.asarray(q.mant)
            assert q.exp == 0 and np.abs(mant * q.step - w).max() <= q.step * (1 + 1e-9), (quant, name)


def test_file_layout_is_what_netx_reads(tmp_path):
    report = write_netx(conv_chain(np.random.default_rng(0)), tmp_path / "c.net")
    q = report.plan.quant
    assert [layer.type for layer in report.layers] == ["input", "conv", "conv", "flatten", "dense"]
    with h5py.File(report.path, "r") as f:
        layers = f["layer"]
        assert len(layers) == 5 and "simulation" not in f  # no time_steps in this graph's metadata
        assert [layers[str(i)]["type"][0] for i in range(5)] == [b"input", b"conv", b"conv", b"flatten", b"dense"]
        conv1, dense = layers["1"], layers["4"]
        np.testing.assert_array_equal(conv1["shape"][()], [4, 8, 8])  # netx reverses it to (x, y, z) = (8, 8, 4)
        np.testing.assert_array_equal(conv1["weight"][()], q.synapses["conv1"].conv_weight())  # torch layout
        assert conv1["groups"][()] == 1 and list(layers["2"]["stride"][()]) == [2, 2]
        np.testing.assert_array_equal(dense["weight"][()], q.synapses["fc"].mant)
        n = q.neurons["lif2"]
        neuron = layers["2"]["neuron"]
        assert (neuron["type"][()], neuron["iDecay"][()], neuron["vDecay"][()], neuron["vThMant"][()]) == (
            b"CUBA", 4096, 1024, round(0.8 * 64))
        assert n.du == 4095 and n.dv == 1024 and n.vth_mant == 51 and n.bias_exp == 6
        np.testing.assert_array_equal(conv1["bias"][()], q.neurons["lif1"].bias_mant.reshape(4, -1)[:, 0])
        assert "bias" not in layers["2"]  # conv2 has none
    layers, attrs = read_netx_layers(report.path)
    assert attrs["input_exp"] == 0 and list(attrs["nir_input_shape"]) == [2, 8, 8] and attrs["quant"] == "slayer"
    assert [(layer["type"], layer["nir_node"]) for layer in layers] == [
        ("input", None), ("conv", "lif1"), ("conv", "lif2"), ("flatten", None), ("dense", "lif3")]


@pytest.mark.lava
def test_netx_builds_the_layers_snnav_expects(tmp_path):
    """netx's loader (no run): Lava shapes (x, y, z), kernel (C_out, x, y, C_in) flipped, weights as written."""
    from lava.lib.dl.netx.hdf5 import Network

    import hardware_sims  # noqa: F401

    report = write_netx(conv_chain(np.random.default_rng(0)), tmp_path / "c.net")
    net = Network(net_config=report.path)
    assert [tuple(block.out.shape) for block in net.layers] == [(8, 8, 4), (4, 4, 6), (10,)]
    assert tuple(net.inp.shape) == (8, 8, 2)
    w = report.plan.quant.synapses["conv1"].conv_weight()
    np.testing.assert_array_equal(net.layers[0].synapse.weight.init, w[:, :, ::-1, ::-1].transpose(0, 3, 2, 1))
    assert net.layers[0].neuron.vth.init == 64 and net.layers[0].neuron.du.init == 4095
    assert net.layers[0].neuron.bias_exp.init == 6
    dense = net.layers[2].synapse
    assert np.array_equal(np.asarray(dense.weights.init) >> -dense.proc_params["weight_exp"],
                          report.plan.quant.synapses["fc"].mant)


def test_netx_weight_optimization_keeps_written_dense_weights():
    """netx re-encodes dense weights (utils.optimize_weight_bits), Lava clips and truncates them: exact for the
    mantissas snnav writes (mixed sign or excitatory), lossy for inhibitory matrices, which the writer refuses."""
    pytest.importorskip("lava")
    from lava.lib.dl.netx.utils import optimize_weight_bits
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

    import hardware_sims  # noqa: F401

    def loaded(mant):
        w, bits, exp, _ = optimize_weight_bits(np.array(mant))
        mode = determine_sign_mode(w)  # netx passes no sign_mode: Lava infers it
        w = truncate_weights(clip_weights(w, mode, num_bits=8), mode, bits)
        return w >> -exp if exp <= 0 else w << exp

    rng = np.random.default_rng(0)
    for scale in (0.1, 0.5, 1.0, 3.9):
        for lo in (-1.0, 0.0):
            mant = quantize_weights(rng.uniform(lo, 1.0, (7, 9)) * scale, target="conv").mant
            np.testing.assert_array_equal(loaded(mant), mant)
    with np.errstate(divide="ignore"):  # netx divides 127 by the largest weight, here 0
        assert loaded([[-2]]).tolist() == [[0]] and loaded([[-4, 0]]).tolist() != [[-4, 0]]


def test_written_integers_equal_the_quantizer_at_netx_settings(tmp_path):
    """The writer uses snnav's quantizer: neurons as quantize_plan(state_exp=0) gives them, weights at exponent 0.

    snnav's default quantize_plan picks a finer state scale per layer (state_exp 7 for theta = 1) and weight
    exponents != 0, which netx cannot store: hence report.plan.
    """
    graph = conv_chain(np.random.default_rng(0))
    report = write_netx(graph, tmp_path / "c.net")
    plan = build_plan(graph)
    ref, _ = quantize_plan(plan, state_exp=0, source_exps={"img": 0})
    for name, n in report.plan.quant.neurons.items():
        m = ref.quant.neurons[name]
        assert (n.du, n.dv, n.vth_mant) == (m.du, m.dv, m.vth_mant)
    for name, w in report.plan.quant.synapses.items():
        assert w.exp == 0 and w.state_exp == 0
        np.testing.assert_array_equal(w.mant, quantize_weights(plan.processes[name].params.get(
            "weights", plan.processes[name].params.get("weight")), target="conv").mant)
    default, _ = quantize_plan(plan)
    assert set(default.quant.state_exps.values()) != {0}
    assert any(q.exp != 0 for q in default.quant.synapses.values())


def test_fit_uses_finer_scales_and_slayer_refuses_large_weights(tmp_path):
    rng = np.random.default_rng(0)
    report = write_netx(conv_chain(rng), tmp_path / "fit.net", quant="fit")
    assert all(layer.state_exp > 0 for layer in report.spiking_layers)
    big = lif_chain(np.random.default_rng(1))
    big.nodes["fc2"].weight[0, 0] = 20.0  # 20 * dt/tau * r = 8 real: beyond w * 64 <= 254
    with pytest.raises(NetxExportError, match="exceed netx's 8-bit range.*quant='fit'"):
        write_netx(big, tmp_path / "big.net")
    fitted = write_netx(big, tmp_path / "big.net", quant="fit")
    assert fitted.layers[-1].state_exp < 0


# ----------------------------------------------------------------------------------------------------- refusals


def test_pool_layers_are_refused_unless_written_as_conv(tmp_path):
    graph = conv_pool(np.random.default_rng(0))
    with pytest.raises(NetxExportError, match=r"'pool' \(SumPool2d\): netx cannot load pool layers.*"
                                              r"NotImplementedError\('pool is not implemented.'\)"):
        write_netx(graph, tmp_path / "p.net")
    report = write_netx(graph, tmp_path / "p.net", pool_as_conv=True)
    assert [layer.type for layer in report.layers] == ["input", "conv", "conv"]
    assert "depthwise conv" in report.notes[0] and "Threshold" in report.notes[1]
    assert report.layers[2].fields["groups"] == 3


@pytest.mark.lava
def test_netx_itself_refuses_a_pool_layer(tmp_path):
    """The error quoted in NETX.md, from netx's loader."""
    from lava.lib.dl.netx.hdf5 import Network

    import hardware_sims  # noqa: F401

    path = tmp_path / "pool.net"
    with h5py.File(path, "w") as f:
        for i, kind in enumerate(["input", "pool"]):
            f.create_dataset(f"layer/{i}/type", (1,), "S10", [kind.encode()])
            f.create_dataset(f"layer/{i}/shape", data=np.array([3, 4, 4]))
    with pytest.raises(NotImplementedError, match="pool is not implemented"):
        Network(net_config=str(path))


def test_branches_fan_in_and_two_inputs_are_refused(tmp_path):
    with pytest.raises(NetxExportError) as err:
        write_netx(residual(np.random.default_rng(0)), tmp_path / "r.net")
    assert "'lif1' (LIF) feeds ['fc2', 'skip']" in str(err.value)
    assert "'fc3' (Linear) sums inputs from ['lif2', 'skip']" in str(err.value) and "no add" in str(err.value)
    msgs = netx_limits(two_inputs_readout(np.random.default_rng(0)))
    assert any("Inputs ['audio', 'visual']" in m for m in msgs)
    assert any("'readout' (I): a non-spiking readout" in m or "(I): a non-spiking readout" in m for m in msgs)


def test_parameter_limits_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    graph = lif_chain(rng)
    graph.nodes["lif1"].v_reset = np.full(10, 0.2)
    with pytest.raises(NetxExportError, match="v_reset must be 0"):
        write_netx(graph, tmp_path / "a.net")
    graph = lif_chain(rng)
    graph.nodes["lif2"].v_threshold = np.linspace(0.5, 1.0, 6)
    with pytest.raises(NetxExportError, match="one v_threshold per process"):
        write_netx(graph, tmp_path / "b.net")
    graph = lif_chain(rng)
    graph.nodes["fc2"].weight = -np.abs(graph.nodes["fc2"].weight)
    with pytest.raises(NetxExportError, match="every weight is <= 0"):
        write_netx(graph, tmp_path / "c.net")
    assert not (tmp_path / "c.net").exists()


def test_the_av_add_model_outside_the_writable_chains(av_add):
    """Which parts of a whole snnav model netx cannot take (summarised in NETX.md)."""
    msgs = netx_limits(av_add)
    text = "\n".join(msgs)
    assert "Inputs ['audio', 'visual']" in text
    assert "netx cannot load pool layers" in text and "(I): a non-spiking readout" in text
    assert "'stem_audio_stages_1_pool_or' (Threshold) feeds ['stem_audio_rpe_conv', 'stem_audio_flatten_x']" in text
    assert "'mlp_audio_mlp_fc1_conv' (Conv1d) sums inputs from" in text
    assert netx_limits(token_mlp(av_add)) == [] and netx_limits(audio_stem(av_add), pool_as_conv=True) == []

"""The exporter: a pure function of (model, config), standard NIR where NIR has the op, clear errors otherwise."""

from __future__ import annotations

import functools

import h5py
import nir
import numpy as np
import pytest
import torch
from export_models import SIZE, T, small_model

from export.from_torch.exporter import ExportConfig, ExportError, export_model
from export.ir.extensions import is_extension
from export.ir.nirfile import read_graph, write_graph
from snnav.models import create_model, list_models
from snnav.neurons import MultiStepLIF

EXTENSION_FREE = {"av-add", "av-concat", "cmci"}  # the unimodal Spikformers have self-attention


@pytest.mark.parametrize("name", list_models())
def test_export_does_not_touch_the_model(name, export_config):
    model = small_model(name).train()  # a training-mode model stays in training mode
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_model(model, export_config)
    after = model.state_dict()
    assert model.training
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key


@pytest.mark.parametrize("name", list_models())
def test_graph_round_trips_and_standard_graphs_load_with_plain_nir(name, export_config, tmp_path):
    graph = export_model(small_model(name), export_config)
    path = tmp_path / f"{name}.nir"
    write_graph(path, graph)
    back = read_graph(path)
    assert set(back.nodes) == set(graph.nodes)
    assert sorted(map(tuple, back.edges)) == sorted(map(tuple, graph.edges))
    assert back.metadata["dt"] == pytest.approx(1e-3) and back.metadata["time_steps"] == T
    has_ext = any(is_extension(n) for n in graph.nodes.values())
    assert has_ext == (name not in EXTENSION_FREE)
    if not has_ext:
        plain = nir.read(str(path))  # nir's own reader with type checking on
        plain.check_types()
        assert {type(n).__name__ for n in plain.nodes.values()} <= {
            "Input", "Output", "Conv2d", "Conv1d", "LIF", "SumPool2d", "Threshold", "Flatten", "Affine", "Linear",
            "Scale", "I"}
    else:
        # nir 1.0.8's reader stops at the unknown type (an AssertionError without a message); the stored type
        # itself says what the node is and where its spec lives.
        with pytest.raises(AssertionError):
            nir.read(str(path))
        with h5py.File(path, "r") as f:
            types = {f[f"node/nodes/{k}/type"][()].decode() for k in f["node/nodes"]}
        assert any(t.startswith("snnav.") and "spec export/EXTENSIONS.md#" in t for t in types), types


def test_neurons_map_to_lif_with_euler_parameters(export_config):
    graph = export_model(small_model("av-add"), export_config)
    lifs = [n for n in graph.nodes.values() if isinstance(n, nir.LIF)]
    assert len(lifs) == sum(isinstance(m, MultiStepLIF) for m in small_model("av-add").modules())
    for node in lifs:
        assert np.all(node.tau == 2e-3) and np.all(node.r == 1) and np.all(node.v_leak == 0)
        assert np.all(node.v_reset == 0)
        # theta' is the largest float32 below 1: v > theta' <=> v >= 1 for float32 v
        assert np.all(node.v_threshold == np.nextafter(np.float32(1), np.float32(0)))
        assert np.all(np.float32(node.v_threshold) < np.float32(1))


def test_max_pool_is_sum_pool_then_threshold(export_config):
    graph = export_model(small_model("spikformer-audio"), export_config)
    pools = [k for k, n in graph.nodes.items() if isinstance(n, nir.SumPool2d)]
    assert len(pools) == 2  # shallow stem: two pooled stages
    for name in pools:
        (dst,) = [d for s, d in graph.edges if s == name]
        assert isinstance(graph.nodes[dst], nir.Threshold) and np.all(graph.nodes[dst].threshold == 0.5)
        assert list(graph.nodes[name].kernel_size) == [3, 3] and list(graph.nodes[name].padding) == [1, 1]


def test_batch_norm_is_folded_exactly_in_float64():
    model = small_model("spikformer-audio").double()
    cfg = ExportConfig(dt_s=1e-3, time_steps=T, audio_shape=(1, SIZE, SIZE), dtype="float64")
    graph = export_model(model, cfg)
    conv = graph.nodes["stem_stages_0_conv"]
    x = torch.rand(2, 1, SIZE, SIZE, dtype=torch.float64)
    stage = model.stem.stages[0]
    want = stage.bn(stage.conv(x))
    got = torch.nn.functional.conv2d(x, torch.from_numpy(conv.weight), torch.from_numpy(conv.bias), padding=1)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_metadata_names_the_source_module_of_every_node(export_config):
    model = small_model("scmrl")
    graph = export_model(model, export_config)
    modules = dict(model.named_modules())
    for name, node in graph.nodes.items():
        if isinstance(node, (nir.Input, nir.Output)):
            continue
        source = node.metadata["source"].split(":")[0]
        assert source in modules, (name, source)
    assert graph.metadata["extensions"] == {"snnav.SpikeAttention": 1, "snnav.ComplementaryFusion": 1}
    assert graph.metadata["readout_step"] == T - 1 and graph.metadata["model"] == "scmrl"


def test_window_nodes_are_marked():
    graph = export_model(small_model("scmrl"), ExportConfig(1e-3, T, (1, SIZE, SIZE), (2, SIZE, SIZE)))
    windows = {type(n).__name__: n.window for n in graph.nodes.values() if is_extension(n) and n.needs_future}
    assert windows == {"SpikeAttention": T, "ComplementaryFusion": T}  # the temporal branch and the fusion


@pytest.mark.parametrize("bad, message", [
    (dict(dt_s=0.0), "dt_s must be a positive"),
    (dict(dt_s=float("nan")), "dt_s must be a positive"),
    (dict(time_steps=0), "time_steps must be >= 1"),
    (dict(dtype="float16"), "float32 or float64"),
])
def test_bad_export_config(bad, message):
    with pytest.raises(ExportError, match=message):
        ExportConfig(**{"dt_s": 1e-3, "time_steps": T, **bad})


def test_errors_name_the_fix(export_config):
    with pytest.raises(ExportError, match="sca_random_rpb=False"):
        export_model(small_model("sca", sca_random_rpb=True), export_config)
    custom = create_model("av-add", neuron_layer=functools.partial(torch.nn.ReLU), **{
        k: v for k, v in dict(num_classes=5, embed_dim=32, num_heads=4, stem="shallow", in_channels_audio=1,
                              in_channels_visual=2).items()})
    with pytest.raises(ExportError, match="not snnav's MultiStepLIF"):
        export_model(custom, export_config)
    with pytest.raises(ExportError, match="input channels"):
        export_model(small_model("av-add"), ExportConfig(1e-3, T, (3, SIZE, SIZE), (2, SIZE, SIZE)))
    with pytest.raises(ExportError, match="divisible by 4"):
        export_model(small_model("av-add"), ExportConfig(1e-3, T, (1, 18, 18), (2, 18, 18)))
    with pytest.raises(ExportError, match="visual_shape"):
        export_model(small_model("av-add"), ExportConfig(1e-3, T, (1, SIZE, SIZE), None))

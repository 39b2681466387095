"""The exported graph run by the NIR interpreter equals the torch model: logits and every neuron layer's spikes.

Two independent implementations meet here: ``snnav/models`` (the model's forward) and ``export/interpreter/interpreter.py`` plus
its extension evaluators (written from ``export/EXTENSIONS.md``, without reading the models). The models get random
batch-norm statistics and biases (conftest.randomize) so every layer fires at a moderate rate, attention included.
"""

from __future__ import annotations

import pytest
import torch
from export_models import SIZE, T, inputs, small_model

from export.from_torch.equivalence import compare
from export.from_torch.exporter import ExportConfig, export_model
from export.ir.nirfile import read_graph, write_graph
from snnav.models import list_models


def _check_nontrivial(result) -> None:
    for layer in result.layers:  # a comparison of silent (or saturated) layers would prove nothing
        assert 0 < layer.spikes < layer.total, (layer.source, layer.spikes, layer.total)


@pytest.mark.parametrize("name", list_models())
def test_interpreter_reproduces_the_model_float32(name, tmp_path):
    model = small_model(name)
    graph = export_model(model, ExportConfig(1e-3, T, (1, SIZE, SIZE), (2, SIZE, SIZE)))
    write_graph(tmp_path / "m.nir", graph)
    audio, visual = inputs()
    result = compare(model, read_graph(tmp_path / "m.nir"), audio, visual)
    _check_nontrivial(result)
    assert result.spike_mismatches == 0, result.first_divergence
    assert result.max_abs_logit_diff <= 1e-5


@pytest.mark.parametrize("name", list_models())
def test_interpreter_reproduces_the_model_float64(name):
    model = small_model(name, seed=4).double()
    graph = export_model(model, ExportConfig(1e-3, T, (1, SIZE, SIZE), (2, SIZE, SIZE), dtype="float64"))
    audio, visual = inputs(seed=5, dtype=torch.float64)
    result = compare(model, graph, audio, visual)
    _check_nontrivial(result)
    assert result.spike_mismatches == 0, result.first_divergence
    assert result.max_abs_logit_diff <= 1e-12


def test_comparison_detects_a_wrong_graph():
    """The check can fail: a graph whose LIF threshold is off by a little gives spike mismatches."""
    model = small_model("av-add")
    graph = export_model(model, ExportConfig(1e-3, T, (1, SIZE, SIZE), (2, SIZE, SIZE)))
    node = graph.nodes["mlp_audio_mlp_fc1_lif"]
    node.v_threshold = node.v_threshold * 1.05
    result = compare(model, graph, *inputs())
    assert result.spike_mismatches > 0
    assert result.first_divergence.source == "mlp_audio.mlp.fc1.lif"


@pytest.mark.parametrize("layout", ["faithful", "clean"])
def test_temporal_reshape_layouts_both_export(layout):
    model = small_model("cmrl", attn_variant="temporal", temporal_reshape=layout, num_heads=8)
    graph = export_model(model, ExportConfig(1e-3, T, (1, SIZE, SIZE), (2, SIZE, SIZE)))
    result = compare(model, graph, *inputs())
    assert result.spike_mismatches == 0, result.first_divergence
    assert result.max_abs_logit_diff <= 1e-5

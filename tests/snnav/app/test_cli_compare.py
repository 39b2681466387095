"""``snnav compare``: a small S-CMRL export run by torch, the interpreter and the emulator (and Lava), where they part,
the pages it writes, and its one-line errors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nir
import numpy as np
import pytest

from export.from_torch.exporter import ExportConfig, export_model
from export.ir.nirfile import write_graph
from hardware_sims.compare import compare_traces
from hardware_sims.plan import build_plan
from snnav.app import cli
from snnav.app.compare import compare_inputs, run_traces

EXPORT_TESTS = Path(__file__).resolve().parents[2] / "export"
FIRST_LIF = "stem_audio_stages_0_lif"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("snnav_export_test_models_compare", EXPORT_TESTS / "export_models.py")
    tm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tm)
    model = tm.small_model("scmrl")
    graph = export_model(model, ExportConfig(dt_s=1e-3, time_steps=tm.T, audio_shape=(1, tm.SIZE, tm.SIZE),
                                             visual_shape=(2, tm.SIZE, tm.SIZE)))
    path = tmp_path_factory.mktemp("compare") / "scmrl.nir"
    write_graph(path, graph)
    return model, graph, path


def _traces(small, backends, **kw):
    model, graph, _ = small
    xs, _ = compare_inputs(graph, build_plan(graph), 2, None)
    return run_traces(graph, backends, xs, model=model, progress=lambda _: None, **kw)


def test_torch_interpreter_and_float_agree_and_fixed_parts_at_the_first_neuron_layer(small):
    _, graph, _ = small
    traces = _traces(small, ["torch", "interpreter", "emulator-float", "emulator-fixed"])
    lifs = {k for k, n in graph.nodes.items() if isinstance(n, nir.LIF)}
    assert set(traces[0].records) == lifs  # torch: every LIF layer, paired by metadata["source"]
    comparison = compare_traces(graph, traces)
    for a, b in (("torch", "interpreter"), ("torch", "emulator-float"), ("interpreter", "emulator-float")):
        pair = comparison.pair(a, b)
        assert pair.agree and pair.spike_mismatches == 0 and pair.prediction_agreement == 1.0, (a, b)
    parted = comparison.pair("emulator-float", "emulator-fixed")
    assert not parted.agree and parted.first.node == FIRST_LIF and parted.first.step == 0
    params = {q.parameter: q for q in parted.first.quantization}
    assert {"dv", "du", "vth", "bias", "v before the reset", "u"} <= set(params)
    assert any(p.startswith("weights ") and q.rounded > 0 for p, q in params.items())
    ranked = parted.nodes
    assert ranked[0].rate >= ranked[-1].rate and ranked[0].mismatches > 0


@pytest.mark.slow
@pytest.mark.lava
def test_lava_fixed_equals_the_emulator_on_the_export(small):
    _, graph, _ = small
    comparison = compare_traces(graph, _traces(small, ["emulator-fixed", "lava-fixed"]))
    (pair,) = comparison.pairs
    assert pair.agree and pair.spike_mismatches == 0 and len(pair.nodes) > 20


def test_compare_writes_markdown_html_and_json_and_refuses_to_overwrite(small, tmp_path, capsys):
    _, _, path = small
    out = tmp_path / "cmp"
    argv = ["compare", str(path), "--backends", "interpreter,emulator-fixed", "--samples", "2", "--weight-bits", "4",
            "--out", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert f"interpreter vs emulator-fixed: part at {FIRST_LIF} (spikes), step 0" in printed
    md = (out / "compare.md").read_text()
    assert "## interpreter vs emulator-fixed: first part at" in md and "Fixed point at" in md
    assert "4-bit mantissas" in md and "Nodes ranked by divergence" in md and "--weight-bits 4" in md
    html = (out / "compare.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<table>" in html and FIRST_LIF in html
    data = json.loads((out / "compare.json").read_text())
    assert data["pairs"][0]["first"]["node"] == FIRST_LIF and data["info"]["quant_options"] == {"weight_bits": 4}
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "exists; pass --force" in err
    assert cli.main([*argv, "--force"]) == 0


@pytest.mark.parametrize("argv, message", [
    (["--backends", "interpreter,lava-fast"], "unknown backend 'lava-fast' in --backends; choose from torch,"),
    (["--backends", "interpreter"], "at least two different backends"),
    (["--backends", "torch,interpreter"], "backend 'torch' needs the training run: pass --run DIR"),
    (["--samples", "0"], "--samples must be >= 1"),
    (["--weight-bits", "9"], "--weight-bits must be in 1..8"),
])
def test_errors_are_one_line(small, argv, message, capsys):
    _, _, path = small
    assert cli.main(["compare", str(path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0


def test_a_missing_model_file_is_one_line(tmp_path, capsys):
    assert cli.main(["compare", str(tmp_path / "none.nir")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_random_inputs_follow_the_graph(small):
    _, graph, _ = small
    xs, source = compare_inputs(graph, build_plan(graph), 3, None, seed=5)
    assert set(xs) == {"audio", "visual"} and xs["audio"].shape[1] == 3 and "seed 5" in source
    assert set(np.unique(xs["visual"])) <= {0.0, 1.0}

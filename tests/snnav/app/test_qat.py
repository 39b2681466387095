"""Quantization-aware fine-tuning (``snnav train --finetune RUN --fixed-point``): the deployed model is the trained one.

A tiny S-CMRL (spiking attention, cross-modal products, residual fan-in) is trained for one epoch in float, then
fine-tuned through the fixed-point forward. Its exported graph, emulated in fixed point with the quantizer settings
from its metadata, produces the same spikes in every spiking layer as the fine-tuned torch model's forward.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

import hardware_sims  # noqa: F401
from export.from_torch.equivalence import record_model
from export.ir.nirfile import read_graph
from hardware_sims.emulator import emulate
from hardware_sims.fixed_point.prepare import prepare_fixed, quantizer_settings
from hardware_sims.fixed_point.quantize import quantize_weights
from hardware_sims.plan import build_plan
from snnav.app import cli
from snnav.app.checkpoint_export import load_trained_model
from snnav.app.qat import finetuned_model, save_spec, spec_for_run
from snnav.training.build import open_datasets
from snnav.training.checkpoint import load_checkpoint, save_checkpoint
from snnav.training.config import QATConfig, TrainConfig
from snnav.training.loop import load_qat_spec, train
from snnav.training.qat import QATSpec, WeightQuant, apply_qat, plain_state_dict


@pytest.fixture(scope="module")
def float_run(tiny_trained_run, tmp_path_factory):
    """The shared 1-epoch S-CMRL run (tests/snnav/conftest.py), copied and livened (`_liven`)."""
    run_dir, data = tiny_trained_run
    root = tmp_path_factory.mktemp("qat")
    shutil.copytree(run_dir, root / "float")
    _liven(root / "float")
    return root / "float", data


def _liven(run_dir):
    """One epoch on 40 samples leaves the tiny model nearly silent; batch-norm gains of 2..4 and positive shifts make
    every layer spike, so the comparison has something to compare (the run stays a loadable training run)."""
    for name in ("last.pt", "best.pt"):
        gen = torch.Generator().manual_seed(0)
        ckpt = load_checkpoint(run_dir / name)
        for key, value in ckpt["model"].items():
            if ".bn." in key and key.endswith(".weight"):
                value.copy_(2.0 + 2.0 * torch.rand(value.shape, generator=gen))
            elif ".bn." in key and key.endswith(".bias"):
                value.copy_(0.8 * torch.rand(value.shape, generator=gen))
        save_checkpoint(run_dir / name, ckpt)


@pytest.fixture(scope="module")
def finetuned(float_run, tmp_path_factory):
    run_dir, _ = float_run
    out = tmp_path_factory.mktemp("qat_ft") / "q6"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert cli.main(["train", "--finetune", str(run_dir), "--fixed-point", "--weight-bits", "6", "--out", str(out),
                         "--no-progress", "--lr", "0.5"]) == 0
    finally:
        torch.set_num_threads(threads)
    return out


def _test_batch(run_dir, data):
    ckpt = load_checkpoint(run_dir / "last.pt")
    (test,) = open_datasets(TrainConfig.from_dict(ckpt["config"]).replace(data=str(data)), ("test",))
    items = [test[i] for i in range(len(test))]
    return torch.stack([it[0] for it in items], 1), torch.stack([it[1] for it in items], 1)  # (T, B, C, H, W)


def _spike_mismatches(graph, records, result):
    """Per spiking node with a source module: (mismatches, total, spikes)."""
    out = {}
    for name, node in graph.nodes.items():
        source = (node.metadata or {}).get("source")
        if source not in records or name not in result.records:
            continue
        ours, axes = records[source], node.metadata.get("source_axes")
        if axes is not None:
            ours = ours.permute(0, 1, *[2 + int(i) for i in np.argsort(axes)])
        theirs = torch.as_tensor(np.asarray(result.records[name]), dtype=ours.dtype)
        ours = ours.reshape(theirs.shape)
        out[name] = (int((ours != theirs).sum()), ours.numel(), int(ours.sum()))
    return out


def test_the_deployed_model_is_the_finetuned_one(float_run, finetuned):
    run_dir, data = float_run
    audio, visual = _test_batch(run_dir, data)
    spec = load_qat_spec(finetuned / "qat_spec.pt")
    model, _ = finetuned_model(finetuned, spec)
    logits, records = record_model(model, audio, visual)
    graph = read_graph(finetuned / "model.nir")
    assert quantizer_settings(graph.metadata)["weight_bits"] == 6
    result = emulate(graph, {"audio": audio.numpy(), "visual": visual.numpy()}, precision="fixed")
    diffs = _spike_mismatches(graph, records, result)
    assert len(diffs) == len(spec.neurons) >= 30  # every spiking layer of the model is compared
    assert sum(d[2] for d in diffs.values()) > 1000, "the comparison needs spikes"
    assert {n: d for n, d in diffs.items() if d[0]} == {}
    # The readout (head, non-spiking, several right-shifted fan-in paths) is not exact: its logits may differ.
    assert np.mean(logits.argmax(-1).numpy() == result.readout().argmax(-1)) >= 0.8


def test_snnav_export_of_a_finetuned_run_is_the_deployed_graph(finetuned, tmp_path):
    out = tmp_path / "m.nir"
    assert cli.main(["export", str(finetuned), "--out", str(out), "--dt-s", "0.001"]) == 0
    graph, deployed = read_graph(out), read_graph(finetuned / "model.nir")
    assert quantizer_settings(graph.metadata) == quantizer_settings(deployed.metadata)
    for name, node in deployed.nodes.items():
        if hasattr(node, "weight"):
            assert np.array_equal(np.asarray(graph.nodes[name].weight), np.asarray(node.weight)), name


def test_the_quantizer_uses_the_settings_in_the_metadata(finetuned):
    graph = read_graph(finetuned / "model.nir")
    settings = quantizer_settings(graph.metadata)
    fixed, _, _ = prepare_fixed(build_plan(graph), {})
    assert {n: q.exp for n, q in fixed.quant.synapses.items()} == settings["weight_exps"]
    assert {q.num_weight_bits for q in fixed.quant.synapses.values()} == {6}
    graph.metadata.pop("quantizer")  # without them: the default 8 bits
    fixed, _, _ = prepare_fixed(build_plan(graph), {})
    assert {q.num_weight_bits for q in fixed.quant.synapses.values()} == {8}


def test_finetuning_changed_the_weights_and_keeps_plain_checkpoints(float_run, finetuned):
    run_dir, _ = float_run
    before, after = load_checkpoint(run_dir / "last.pt")["model"], load_checkpoint(finetuned / "last.pt")["model"]
    assert before.keys() == after.keys()  # plain names: a plain model loads it
    moved = [k for k in before if before[k].is_floating_point() and not torch.equal(before[k], after[k])]
    assert any(k.endswith("conv.weight") for k in moved)
    assert not any(".bn." in k for k in moved), "batch norm is frozen during fine-tuning"


def _weight_error(model, spec):
    """Summed relative error of every quantized module weight on the spec's grid."""
    total = 0.0
    for path, wq in spec.weights.items():
        w = model.get_submodule(path).weight.detach().double()
        step = wq.step.reshape(-1, *([1] * (w.dim() - 1)))
        q = torch.clamp(wq.q * torch.round(w / (wq.q * step)), wq.lo, wq.hi) * step
        total += float(torch.linalg.norm(q - w) / torch.linalg.norm(w))
    return total


def test_low_bit_specs_pin_the_exponents_of_least_weight_error(float_run, finetuned):
    run_dir, _ = float_run
    plain, _ = spec_for_run(run_dir, weight_bits=4, fit_exponents=False)
    fitted, _ = spec_for_run(run_dir, weight_bits=4)
    assert (plain.settings["exponent_rule"], fitted.settings["exponent_rule"]) == ("no-clipping", "least-error")
    before, after = plain.settings["weight_exps"], fitted.settings["weight_exps"]
    assert before.keys() == after.keys()
    assert all(after[k] <= before[k] for k in before) and any(after[k] < before[k] for k in before)
    model, _ = load_trained_model(run_dir)
    assert _weight_error(model, fitted) < _weight_error(model, plain)
    # The 6-bit run the agreement tests deploy was fine-tuned on such exponents, pinned in its graph.
    spec = load_qat_spec(finetuned / "qat_spec.pt")
    assert spec.settings["exponent_rule"] == "least-error"
    assert quantizer_settings(read_graph(finetuned / "model.nir").metadata)["weight_exps"] == \
        spec.settings["weight_exps"]
    default, _ = spec_for_run(run_dir, weight_bits=6, fit_exponents=False)
    assert spec.settings["weight_exps"] != default.settings["weight_exps"]


def test_fake_quant_matches_the_quantizer_on_a_layer():
    """One layer: the library's grid (plain numbers) reproduces hardware_sims' mantissas."""
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.3, (8, 4, 3, 3))
    for bits in (8, 6, 4):
        q = quantize_weights(w, state_exp=6, weight_bits=bits)
        lo, hi, step = hardware_sims.fixed_point.formats.weight_mant_grid(q.sign_mode, bits)
        layer = torch.nn.Conv2d(4, 8, 3, bias=False)
        layer.weight.data = torch.as_tensor(w)
        apply_qat(torch.nn.Sequential(layer), _spec_of(layer, WeightQuant(torch.full((8,), q.step), lo, hi, step)))
        assert np.array_equal(layer.weight.detach().numpy(), q.dequantize())


def _spec_of(layer, wq):
    return QATSpec(weights={"0": wq})


def test_a_finetuning_run_resumes_exactly(float_run, tmp_path):
    run_dir, data = float_run
    spec, ckpt = spec_for_run(run_dir, weight_bits=4)
    save_spec(spec, tmp_path / "spec.pt")
    config = TrainConfig.from_dict(ckpt["config"]).replace(
        epochs=2, lr=0.05, qat=QATConfig(spec=str(tmp_path / "spec.pt"), init=str(run_dir / "last.pt")))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(config, tmp_path / "straight")
        train(config, tmp_path / "split", stop_after_epoch=1)
        train(config, tmp_path / "split", resume=True)
    finally:
        torch.set_num_threads(threads)
    a, b = load_checkpoint(tmp_path / "straight" / "last.pt"), load_checkpoint(tmp_path / "split" / "last.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["history"][-1]["test_acc"] == b["history"][-1]["test_acc"]


@pytest.mark.parametrize("argv, message", [
    (["train", "--fixed-point", "--out", "{out}"], "--fixed-point needs --finetune"),
    (["train", "--finetune", "{missing}", "--fixed-point", "--out", "{out}"], "does not exist"),
    (["train", "--finetune", "{run}", "--out", "{out}"], "--finetune needs --fixed-point"),
    (["train", "--finetune", "{run}", "--fixed-point", "--weight-bits", "0", "--out", "{out}"], "weight_bits"),
])
def test_finetune_errors_are_one_line(float_run, tmp_path, capsys, argv, message):
    run_dir, _ = float_run
    fill = {"out": str(tmp_path / "o"), "missing": str(tmp_path / "nope"), "run": str(run_dir)}
    assert cli.main([a.format(**fill) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("snnav train: error:") and message in err and "\n" not in err


def test_plain_state_dict_has_no_quantizer_keys(float_run):
    run_dir, _ = float_run
    spec, _ = spec_for_run(run_dir, weight_bits=8)
    model, ckpt = finetuned_model(run_dir, spec)
    assert set(plain_state_dict(model)) == set(ckpt["model"])


@pytest.mark.lava
@pytest.mark.slow
def test_lava_runs_the_finetuned_model_as_it_was_trained(float_run, finetuned):
    """Two test samples on Lava's bit-accurate models: the same spikes as the fine-tuned torch model's forward."""
    from hardware_sims.lava.run import run_lava  # noqa: PLC0415  (lava: heavy, only for this test)

    run_dir, data = float_run
    audio, visual = _test_batch(run_dir, data)
    audio, visual = audio[:, :2], visual[:, :2]
    model, _ = finetuned_model(finetuned, load_qat_spec(finetuned / "qat_spec.pt"))
    _, records = record_model(model, audio, visual)
    graph = read_graph(finetuned / "model.nir")
    result = run_lava(graph, {"audio": audio.numpy(), "visual": visual.numpy()}, precision="fixed")
    diffs = _spike_mismatches(graph, records, result)
    assert len(diffs) >= 30 and sum(d[2] for d in diffs.values()) > 100
    assert {n: d for n, d in diffs.items() if d[0]} == {}


def _simulate(model, data, out):
    assert cli.main(["simulate", str(model), "--backend", "emulator", "--precision", "fixed", "--samples", "4",
                     "--data", str(data), "--no-spikes", "--out", str(out)]) == 0
    return out


def test_the_report_prices_each_result_at_its_own_weight_bits(float_run, finetuned, tmp_path, one_thread):
    """The result file of the fine-tuned export records its pinned 6 bits; the report's quantization section gives
    each result's accuracy and the energy `headline_rows` gives for its own counts, model and bits (the headline's
    for the primary result); a result whose model file is gone says so; no section without a fine-tuned result."""
    from hardware_sims.cost.gpu import get_gpu
    from hardware_sims.cost.headline import headline_rows
    from hardware_sims.counts import ActivityCounts
    from snnav.app.report import make_report, read_simulation_result

    run_dir, data = float_run
    float_nir = tmp_path / "float.nir"
    assert cli.main(["export", str(run_dir), "--out", str(float_nir), "--dt-s", "0.001"]) == 0
    gone = tmp_path / "gone" / "model.nir"
    gone.parent.mkdir()
    shutil.copy(finetuned / "model.nir", gone)
    files = [_simulate(float_nir, data, tmp_path / "float.json"), _simulate(finetuned / "model.nir", data,
                                                                            tmp_path / "q6.json"),
             _simulate(gone, data, tmp_path / "gone.json")]
    gone.unlink()
    q = read_simulation_result(files[1])["quantizer"]
    assert (q["weight_bits"], q["pinned"], q["weight_exps_pinned"] > 0) == (6, True, True)
    assert read_simulation_result(files[0])["quantizer"]["pinned"] is False

    report, written = make_report(run_dir, tmp_path / "rep", results=files)
    section = report["quantization"]
    rows = {r["result"]: r for r in section["rows"]}
    assert [(r["weight_bits"], r["fine_tuned"]) for r in section["rows"]] == [(8, False), (6, True), (None, True)]
    for path, r in zip(files, section["rows"]):
        data_ = read_simulation_result(path)
        assert (r["accuracy"], r["samples"]) == (data_["accuracy"], 4)
        assert r["vs_reference"] == data_["accuracy"] - read_simulation_result(files[0])["float_accuracy"]
        if r["weight_bits"] is None:
            continue
        expected = headline_rows(build_plan(read_graph(data_["model"]["path"])),
                                 ActivityCounts.from_dict(data_["counts"]), weight_bits=r["weight_bits"],
                                 gpu=get_gpu("h100-calibrated"))
        assert r["energy_total_j"] == {e["target"]: e["energy_total_j"] for e in expected if e["chips"]}
    primary = report["headline"]
    assert primary["result"] == "sim1" and primary["weight_bits"] == 8
    assert rows["sim1"]["energy_total_j"] == {e["target"]: e["energy_total_j"] for e in primary["rows"] if e["chips"]}
    assert rows["sim2"]["energy_total_j"] != rows["sim1"]["energy_total_j"]
    assert rows["sim3"]["energy_total_j"] == {} and "is gone" in rows["sim3"]["missing"]
    md, html = written["report.md"].read_text(), written["report.html"].read_text()
    assert "## Quantization: accuracy against energy" in md and f"{gone} is gone" in md and "<svg" in html
    assert "Quantization: accuracy against energy</h2>" in html and "estimate" in md

    report, written = make_report(run_dir, tmp_path / "rep0", results=files[:1])
    assert "quantization" not in report and "Quantization" not in written["report.md"].read_text()

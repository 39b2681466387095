"""snnav's extension-free graphs imported into snnTorch 1.0.0 and Norse 1.1.0 with their own importers
(``export/interop.py``, table of limits in ``export/interop/INTEROP.md``).

Positive tests: every spiking node of av-add, av-concat and cmci lies in a part of the graph that the library
imports, and there it spikes exactly as the reference interpreter does on the same inputs. Limit tests: each
asserts the exact error or the measured difference, so it fails (and the docs need updating) the day a library
lifts the limit.

The interpreter runs one sample at a time, step by step (``stepwise=True``, B = 1), because the libraries are
stepped per sample (NIR's Flatten dims are per-sample, see `test_batched_flatten_is_wrong_in_both_libraries`) and a
float32 convolution over B samples may round differently from the same convolution over one sample.
"""

from __future__ import annotations

import functools
import re

import nir
import numpy as np
import pytest
import torch
from export_models import SIZE, T, inputs, small_model

from export.from_torch.exporter import ExportConfig, export_model
from export.interop import (
    InteropError,
    Part,
    interop_report,
    limits,
    loadable_parts,
    part_input,
    rewrite_equivalent,
    run_imported,
    subgraph,
    to_norse,
    to_snntorch,
)
from export.interpreter import Interpreter

snntorch = pytest.importorskip("snntorch")
norse_torch = pytest.importorskip("norse.torch")

DT = 1e-3
B = 2  # samples per test input (per-sample stepping makes the cost linear in B)
MODELS = ("av-add", "av-concat", "cmci")
IMPORTERS = {"snntorch": to_snntorch, "norse": to_norse}
SPIKING = (nir.LIF, nir.Threshold)


@functools.lru_cache(maxsize=None)
def exported(name: str) -> nir.NIRGraph:
    config = ExportConfig(dt_s=DT, time_steps=T, audio_shape=(1, SIZE, SIZE), visual_shape=(2, SIZE, SIZE))
    return export_model(small_model(name), config)


def interpret(graph: nir.NIRGraph, xs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every node's output [T, B, ...] from the interpreter run per sample (B = 1), step by step."""
    interp = Interpreter(graph, stepwise=True)
    batch = next(iter(xs.values())).shape[1]
    runs = [interp.run({k: x[:, b : b + 1] for k, x in xs.items()}).records for b in range(batch)]
    return {n: torch.cat([r[n] for r in runs], dim=1) for n in runs[0]}


@functools.lru_cache(maxsize=None)
def reference(name: str) -> dict[str, torch.Tensor]:
    audio, visual = inputs()
    return interpret(exported(name), {"audio": audio[:, :B], "visual": visual[:, :B]})


def graph_of(*nodes: tuple[str, nir.NIRNode], edges=None, shape=(1,)) -> nir.NIRGraph:
    """A chain input -> nodes... -> output (or the given edges), with metadata dt."""
    all_nodes = {"input": nir.Input(input_type={"input": np.array(shape)}), **dict(nodes)}
    last = nodes[-1][1].output_type["output"]
    all_nodes["output"] = nir.Output(output_type={"output": np.array(last)})
    names = ["input", *(n for n, _ in nodes), "output"]
    return nir.NIRGraph(nodes=all_nodes, edges=edges or list(zip(names, names[1:])), metadata={"dt": DT})


def lif(n: int = 1, *, th: float = 1.0, r: float = 1.0, v_reset: float = 0.0, tau_steps: float = 2.0) -> nir.LIF:
    full = lambda v: np.full((n,), v, dtype=np.float64)  # noqa: E731
    return nir.LIF(tau=full(tau_steps * DT), r=full(r), v_leak=full(0.0), v_threshold=full(th), v_reset=full(v_reset))


def affine(n: int = 3) -> nir.Affine:
    return nir.Affine(weight=np.eye(n, dtype=np.float32) * 2, bias=np.ones(n, dtype=np.float32))


def run_single(graph: nir.NIRGraph, library: str, x: torch.Tensor, **kw) -> torch.Tensor:
    """The spikes/output of a one-input graph imported into `library`, x [T, 1, ...]."""
    return run_imported(IMPORTERS[library](graph, **kw), x).output


# ---------------------------------------------------------------------------------------------- positive
@pytest.mark.parametrize("library", ["snntorch", "norse"])
@pytest.mark.parametrize("name", MODELS)
def test_every_spiking_node_is_spike_identical_in_an_imported_part(name, library):
    """Cut each graph into the parts the library imports (with the SumPool2d/Threshold rewrites) and compare every
    neuron of every part with the interpreter on the whole graph, fed with what the whole graph computed.

    Why a mismatch cannot come from the mapping (only from float rounding, quantified below):
    * Norse: LIFBoxCell's ``v + dt*(1/tau) * ((x + 0) - v)`` is the interpreter's ``v + (dt/tau) * ((0 - v) + r x)``
      operation for operation when r = 1 and ``dt*(1/tau)`` rounds to float32(dt/tau) = 0.5 (the note in
      `to_norse` checks this); threshold ``v - th > 0`` == ``v > th``; reset ``(1-z) v + z*0`` is exact.
    * snnTorch: ``m <- 0.5 m + x`` with the threshold divided by r dt/tau = 0.5 keeps ``m = 2 v`` in exact
      arithmetic, but ``fl(v + x)`` and ``2 fl(v + 0.5 fl(x - v))`` round differently: spikes can differ when the
      membrane is within a few ulp of the threshold (minimal 1-neuron case:
      `test_snntorch_membrane_rounds_differently_minimal_case`). Not observed on these inputs.
    * Conv2d/Conv1d/Linear are the same torch kernels on one sample in both (the interpreter runs B = 1);
      rewritten pools and thresholds are exact integer arithmetic (`rewrite_equivalent`).
    """
    graph, ref = exported(name), reference(name)
    parts = loadable_parts(graph, library, rewrite=True)
    prepared = rewrite_equivalent(graph)[0]
    covered: set[str] = set()
    for part in parts:
        imported = IMPORTERS[library](subgraph(prepared, part.nodes, part.output, input_at=part.input_at))
        assert not [n for n in imported.notes if "differs" in n], imported.notes
        run = run_imported(imported, part_input(graph, part, ref))
        for node in imported.neurons:
            assert torch.equal(run.records[node], ref[node]), (part.source, node)
        assert torch.equal(run.output, ref[part.output]), part.output
        covered |= set(imported.neurons)
    spiking = {n for n, node in graph.nodes.items() if isinstance(node, SPIKING)}
    assert covered == spiking
    assert min(int(ref[n].sum()) for n in spiking) > 100  # every layer fires (conftest.randomize), so the
    assert sum(int(ref[n].sum()) for n in spiking) > 10_000  # comparison is not between silent layers


def test_largest_parts_are_whole_modality_branches():
    """With the rewrites, snnTorch imports a whole modality branch (stem, tokens, MLP, and for av-concat its half of
    the head) and Norse the whole stem; without them only Conv2d -> LIF stages and the token stage."""
    def largest(name, library, rewrite):
        part = loadable_parts(exported(name), library, rewrite=rewrite)[0]
        return part.source, part.output, len(part.nodes)

    assert largest("av-concat", "snntorch", True) == ("audio", "head_audio_half", 18)
    assert largest("av-add", "snntorch", True) == ("audio", "mlp_audio_mlp_fc2_lif", 16)
    assert largest("av-add", "norse", True) == ("audio", "stem_audio_flatten_rpe", 11)
    assert largest("av-add", "snntorch", False) == ("stem_audio_stages_1_pool_or", "mlp_audio_mlp_fc2_lif", 8)
    cmci = {p.source: p for p in loadable_parts(exported("cmci"), "snntorch", rewrite=True)}
    assert cmci["block_audio_lif_input"] == Part("block_audio_lif_input", ("block_audio_fc1", "block_audio_fc2"),
                                                 ("block_audio_lif", "block_audio_mlp_mlp_fc1_conv",
                                                  "block_audio_mlp_mlp_fc1_lif", "block_audio_mlp_mlp_fc2_conv",
                                                  "block_audio_mlp_mlp_fc2_lif", "head_flatten", "head"),
                                                 "head", "block_audio_lif")


@pytest.mark.parametrize("library", ["snntorch", "norse"])
def test_parts_without_rewrites_are_spike_identical(library):
    graph, ref = exported("av-add"), reference("av-add")
    for part in loadable_parts(graph, library):
        imported = IMPORTERS[library](subgraph(graph, part.nodes, part.output, input_at=part.input_at))
        run = run_imported(imported, part_input(graph, part, ref))
        for node in imported.neurons:
            assert torch.equal(run.records[node], ref[node]), (part.source, node)


@pytest.mark.parametrize("library", ["snntorch", "norse"])
def test_lif_golden_trajectory_reset_on_the_spike_step(library):
    """x = 1.2 each step, tau = 2 dt, th = 1: v = 0.6, 0.9, 1.05 (spike, v <- 0), 0.6, 0.9, 1.05 (spike).
    snnTorch's own default neuron (reset by subtraction, one step later) would not give this; its importer builds
    reset_mechanism="zero", reset_delay=False, which does."""
    graph = graph_of(("lif", lif()))
    x = torch.full((6, 1, 1), 1.2)
    expected = torch.tensor([0, 0, 1, 0, 0, 1.0]).reshape(6, 1, 1)
    assert torch.equal(Interpreter(graph).run(x).outputs["output"], expected)
    assert torch.equal(run_single(graph, library, x), expected)
    bare = run_imported(IMPORTERS[library](graph).module, x.expand(6, 3, 1), record=["lif"])  # a bare module too
    assert torch.equal(bare.records["lif"], expected.expand(6, 3, 1))


@pytest.mark.parametrize("library", ["snntorch", "norse"])
def test_threshold_is_strict_in_both_libraries(library):
    """NIR, snnTorch (``mem - thr > 0``) and Norse (``v - th > 0``) spike on v > th only: v == th is no spike. (snnav
    stores th' = nextafter(theta, -inf) so that v > th' is its model's v >= theta.) x = 2 gives v = 1.0 exactly."""
    graph = graph_of(("lif", lif(2, th=1.0)), shape=(2,))
    x = torch.tensor([[[2.0, 2.0000002]]])  # v = 1.0 (== th), v = 1.0000001 (> th)
    expected = torch.tensor([[[0.0, 1.0]]])
    assert torch.equal(Interpreter(graph).run(x).outputs["output"], expected)
    assert torch.equal(run_single(graph, library, x), expected)


def test_snntorch_takes_r_into_the_threshold():
    """r = 2: snnTorch divides the threshold by r dt/tau (its "hack_w_scale"), which is exact here."""
    graph = graph_of(("lif", lif(r=2.0)))
    x = torch.full((6, 1, 1), 0.6)
    expected = Interpreter(graph).run(x).outputs["output"]
    assert expected.sum() == 2
    assert torch.equal(run_single(graph, "snntorch", x), expected)


def test_interop_report_of_av_add():
    report = interop_report(exported("av-add"))
    snn, nrs = report["snntorch"], report["norse"]
    assert (snn["loads"], snn["imports"], nrs["loads"], nrs["imports"]) == (False, False, False, False)
    assert snn["error"] == ("ValueError: Unknown node type <class 'nir.ir.threshold.Threshold'>, mapping does not "
                            "exist in node_map")
    assert snn["rewritten"]["error"] == ("ValueError: Unknown node type <class 'nir.ir.neuron.I'>, mapping does not "
                                         "exist in node_map")
    assert nrs["error"] == "KeyError: 'stem_audio_stages_0_pool_or'"
    assert nrs["rewritten"]["error"] == "KeyError: 'mlp_audio_mlp_fc1_conv'"

    def kinds(entry):
        return sorted({(lim["node_type"], lim["feature"]) for lim in entry["limits"]})

    assert kinds(snn) == [("I", "node type"), ("NIRGraph", "2 Input nodes ['audio', 'visual']"),
                          ("SumPool2d", "padding"), ("Threshold", "node type")]
    assert kinds(snn["rewritten"]) == [("I", "node type"), ("NIRGraph", "2 Input nodes ['audio', 'visual']")]
    assert kinds(nrs["rewritten"]) == [("Conv1d", "node type"), ("I", "node type"),
                                       ("NIRGraph", "2 Input nodes ['audio', 'visual']")]
    assert all(p["imports"] for e in (snn, nrs, snn["rewritten"], nrs["rewritten"]) for p in e["parts"])
    assert set(snn["rewritten"]["rewrites"]) == {f"stem_{m}_stages_{i}_{k}" for m in ("audio", "visual")
                                                 for i in (0, 1) for k in ("pool", "pool_or")}


def test_subgraph_is_a_valid_nir_graph_fed_by_the_cut_nodes():
    graph = exported("cmci")
    part = subgraph(graph, ["block_audio_lif", "block_audio_mlp_mlp_fc1_conv", "block_audio_mlp_mlp_fc1_lif"],
                    input_at="block_audio_lif")
    assert sorted(part.nodes) == ["block_audio_lif", "block_audio_lif_input", "block_audio_mlp_mlp_fc1_conv",
                                  "block_audio_mlp_mlp_fc1_lif", "block_audio_mlp_mlp_fc1_lif_output"]
    assert part.nodes["block_audio_lif_input"].input_type["input"].tolist() == [32, 16]
    assert part.metadata["dt"] == DT
    stem = subgraph(graph, ["stem_audio_stages_1_conv", "stem_audio_stages_1_lif"])
    assert isinstance(stem.nodes["stem_audio_stages_0_pool_or"], nir.Input)  # named after the cut node
    nir.NIRGraph(nodes=stem.nodes, edges=stem.edges, type_check=True)  # NIR's own type check passes
    with pytest.raises(ValueError, match="do not lead to output"):
        subgraph(graph, ["stem_audio_stages_1_conv", "stem_audio_stages_1_lif"], output="stem_audio_stages_1_conv")
    with pytest.raises(ValueError, match="sinks"):
        subgraph(graph, ["stem_audio_stages_1_lif", "stem_visual_stages_1_lif"])


def test_graph_is_not_modified():
    graph = exported("av-concat")
    before = (list(graph.nodes), list(graph.edges), graph.nodes["stem_audio_stages_0_lif"].tau.copy())
    interop_report(graph)
    assert before[:2] == (list(graph.nodes), list(graph.edges))
    assert np.array_equal(before[2], graph.nodes["stem_audio_stages_0_lif"].tau)


# ------------------------------------------------------------------------------------------------- limits
@pytest.mark.parametrize("library", ["snntorch", "norse"])
def test_whole_graph_is_refused_with_every_limit_named(library):
    with pytest.raises(InteropError, match=r"2 Input nodes \['audio', 'visual'\]") as err:
        IMPORTERS[library](exported("av-add"))
    message = str(err.value)
    assert "node 'head_mean_t' (I)" in message and "node 'stem_audio_stages_0_pool' (SumPool2d)" in message


def test_snntorch_two_inputs_is_the_last_blocker():
    """Rewritten av-add without the I readout: everything left is importable node by node, and nirtorch fails on
    the second Input."""
    graph = rewrite_equivalent(exported("av-add"))[0]
    no_readout = subgraph(graph, [n for n, x in graph.nodes.items()
                                  if not isinstance(x, (nir.Input, nir.Output)) and n != "head_mean_t"])
    assert [lim.feature for lim in limits(no_readout, "snntorch")] == ["2 Input nodes ['audio', 'visual']"]
    with pytest.raises(RuntimeError, match="^Node redefined name is_none!$"):
        to_snntorch(no_readout, check=False)


def test_norse_two_inputs_run_one_branch_silently():
    """nirtorch.load (Norse 1.1.0) feeds the data to one Input, picked by set order; the other branch never runs."""
    fb = nir.Affine(weight=np.eye(3, dtype=np.float32) * 3, bias=np.zeros(3, dtype=np.float32))
    graph = graph_of(("fa", affine()), ("fb", fb), shape=(3,))
    graph.nodes["input_b"] = nir.Input(input_type={"input": np.array([3])})
    graph.edges[:] = [("input", "fa"), ("input_b", "fb"), ("fa", "output"), ("fb", "output")]
    x = torch.tensor([1.0, 2.0, 3.0])
    imported = to_norse(graph, check=False)
    out, _ = imported.module(x)
    assert torch.equal(out, 2 * x + 1) or torch.equal(out, 3 * x)  # NIR: fa(x_a) + fb(x_b), both inputs
    assert "logged: Multiple input nodes found. Using the first node as the input." in imported.notes
    assert limits(graph, "norse")[0].feature == "2 Input nodes ['input', 'input_b']"


@pytest.mark.parametrize("node", [nir.Threshold(threshold=np.full(3, 0.5, np.float32)), nir.I(r=np.full(3, 250.0)),
                                  nir.Scale(scale=np.full(3, 0.5, np.float32))], ids=lambda n: type(n).__name__)
def test_snntorch_rejects_threshold_i_and_scale(node):
    graph = graph_of(("n", node), shape=(3,))
    message = f"Unknown node type {type(node)}, mapping does not exist in node_map"
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        to_snntorch(graph, check=False)
    assert limits(graph, "snntorch")[0].message == "ValueError: " + message


@pytest.mark.parametrize("node", [nir.Threshold(threshold=np.full((1, 3), 1.5, np.float32)),
                                  nir.I(r=np.full((1, 3), 250.0)), nir.Scale(scale=np.full((1, 3), 0.5, np.float32)),
                                  nir.Conv1d(input_shape=3, weight=np.full((1, 1, 1), 3, np.float32), stride=1,
                                             padding=0, dilation=1, groups=1, bias=np.zeros(1, np.float32))],
                         ids=lambda n: type(n).__name__)
def test_norse_drops_a_single_unsupported_node_silently(node):
    """Norse maps these to None; nirtorch.load then ignores the node's edges and returns the LIF's spikes (1.0)
    where NIR gives Threshold(1.5): 0, I: dt r = 0.25, Scale: 0.5, Conv1d: 3."""
    graph = graph_of(("lif", nir.LIF(**{k: np.full((1, 3), v) for k, v in dict(
        tau=2 * DT, r=1.0, v_leak=0.0, v_threshold=1.0, v_reset=0.0).items()})), ("n", node), shape=(1, 3))
    x = torch.full((1, 1, 1, 3), 4.0)
    assert torch.equal(run_single(graph, "norse", x, check=False), torch.ones(1, 1, 1, 3))
    expected = {"Threshold": 0.0, "I": 0.25, "Scale": 0.5, "Conv1d": 3.0}[type(node).__name__]
    assert torch.equal(Interpreter(graph).run(x).outputs["output"], torch.full((1, 1, 1, 3), expected))
    assert limits(graph, "norse")[0].feature == "node type"


def test_norse_fails_on_two_unsupported_nodes_with_a_key_error():
    graph = graph_of(("th", nir.Threshold(threshold=np.full(3, 0.5, np.float32))), ("i", nir.I(r=np.full(3, 250.0))),
                     ("fa", affine()), shape=(3,))
    with pytest.raises(KeyError, match="^'th'$"):
        to_norse(graph, check=False)


@pytest.mark.parametrize("library", ["snntorch", "norse"])
def test_sumpool_padding_is_dropped(library):
    """snnav's max-pool SumPool2d(3, 2, padding 1) -> torch.nn.LPPool2d(1, 3, 2): 16x16 gives 7x7, not 8x8."""
    graph, ref = exported("av-add"), reference("av-add")
    part = subgraph(graph, ["stem_audio_stages_0_pool"])
    assert [lim.feature for lim in limits(part, library)] == ["padding"]
    out = run_imported(IMPORTERS[library](part, check=False), ref["stem_audio_stages_0_lif"]).output
    assert tuple(out.shape[2:]) == (16, 7, 7)
    assert tuple(ref["stem_audio_stages_0_pool"].shape[2:]) == (16, 8, 8)


def test_batched_flatten_is_wrong_in_both_libraries():
    """Both importers build torch.nn.Flatten(start_dim, end_dim) from NIR's per-sample dims, so on a batch they
    flatten the batch axis in: head_flatten (start_dim 0) turns [B, 32, 16] into [B*32, 16]."""
    graph, ref = exported("av-add"), reference("av-add")
    part = next(p for p in loadable_parts(graph, "snntorch") if p.input_at == "head_flatten")
    sub = subgraph(graph, part.nodes, part.output, input_at=part.input_at)
    x = part_input(graph, part, ref)[0]  # [B, 32, 16]
    for library in ("snntorch", "norse"):
        imported = IMPORTERS[library](sub)
        with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(64x16 and 512x5\)"):
            imported.module(x)
        with pytest.raises(ValueError, match="per_sample=True"):
            run_imported(imported, x[None], per_sample=False)


def test_snntorch_without_dt_preparation_computes_another_neuron():
    """import_from_nir hard-codes dt = 1e-4: a tau = 2 ms LIF (snnav, dt = 1 ms) becomes beta = 0.95 with the
    threshold divided by r dt/tau = 0.05, i.e. a neuron 10x slower. to_snntorch rescales tau by 1e-4/dt."""
    from snntorch.import_nir import import_from_nir

    graph = graph_of(("lif", lif()))
    module = import_from_nir(graph)
    leaky = module.get_submodule("lif")
    assert float(leaky.beta) == pytest.approx(0.95) and float(leaky.threshold) == pytest.approx(20.0)
    prepared = to_snntorch(graph_of(("lif", lif()))).module.get_submodule("lif")
    assert (float(prepared.beta), float(prepared.threshold), prepared.reset_mechanism) == (0.5, 2.0, "zero")


def test_snntorch_membrane_rounds_differently_minimal_case():
    """The one way snnTorch's spikes can differ from NIR's on snnav graphs. snnav LIF (tau = 2 dt, r = 1,
    th' = 1 - 2^-24): NIR v1 = 2^-24, v2 = fl(v1 + 0.5 fl(x1 - v1)) = 1 - 2^-24 = th' (no spike); snnTorch (beta 0.5,
    thr 2 th' = 2 - 2^-23): m1 = 2^-23, m2 = fl(0.5 m1 + x1) = fl(2 - 2^-23 + 2^-24) = 2.0 > thr (spike).
    The membranes differ by one ulp; spikes differ only for membranes within a few ulp of the threshold."""
    th = float(np.nextafter(np.float32(1.0), np.float32(-np.inf)))
    graph = graph_of(("lif", lif(th=th)))
    x = torch.tensor([2.0**-23, 2.0 - 2.0**-23], dtype=torch.float32).reshape(2, 1, 1)
    assert Interpreter(graph).run(x).outputs["output"].flatten().tolist() == [0.0, 0.0]
    assert run_single(graph, "snntorch", x).flatten().tolist() == [0.0, 1.0]
    assert run_single(graph, "norse", x).flatten().tolist() == [0.0, 0.0]  # Norse: NIR's arithmetic


@pytest.mark.parametrize("library", ["snntorch", "norse"])
def test_v_reset_is_ignored(library):
    """Both reset to 0 whatever v_reset is. x = 1.2, v_reset = 0.5: NIR spikes at t = 2, 4, 6; reset-to-0 at 2, 5."""
    graph = graph_of(("lif", lif(v_reset=0.5)))
    x = torch.full((7, 1, 1), 1.2)
    assert [lim.feature for lim in limits(graph, library)] == ["v_reset"]
    assert Interpreter(graph).run(x).outputs["output"].flatten().tolist() == [0, 0, 1, 0, 1, 0, 1]
    assert run_single(graph, library, x, check=False).flatten().tolist() == [0, 0, 1, 0, 0, 1, 0]


def test_norse_ignores_r():
    graph = graph_of(("lif", lif(r=2.0)))
    x = torch.full((6, 1, 1), 0.6)
    assert [lim.feature for lim in limits(graph, "norse")] == ["r"]
    assert Interpreter(graph).run(x).outputs["output"].flatten().tolist() == [0, 0, 1, 0, 0, 1]
    assert run_single(graph, "norse", x, check=False).flatten().tolist() == [0, 0, 0, 0, 0, 0]


def test_output_fan_in_is_not_summed():
    graph = graph_of(("fa", affine()), ("fb", affine()), shape=(3,),
                     edges=[("input", "fa"), ("input", "fb"), ("fa", "output"), ("fb", "output")])
    x = torch.tensor([1.0, 2.0, 3.0])
    snn_out = to_snntorch(graph, check=False).module(x)
    assert len(snn_out) == 3 and torch.equal(snn_out[0], 2 * x + 1) and torch.equal(snn_out[1], 2 * x + 1)
    norse_out, _ = to_norse(graph, check=False).module(x)
    assert torch.equal(norse_out, 2 * x + 1)  # NIR: 4 x + 2
    assert {lim.feature for lib in ("snntorch", "norse") for lim in limits(graph, lib)} == {"fan-in"}


def test_rewrites_apply_only_over_integer_valued_inputs():
    graph = graph_of(("fa", affine()), ("th", nir.Threshold(threshold=np.full(3, 0.5, np.float32))), shape=(3,))
    rewritten, done = rewrite_equivalent(graph)
    assert done == {} and isinstance(rewritten.nodes["th"], nir.Threshold)
    done = rewrite_equivalent(exported("cmci"))[1]
    assert done["stem_audio_stages_0_pool"].startswith("SumPool2d -> Conv2d")
    assert done["stem_audio_stages_0_pool_or"].startswith("Threshold -> LIF(tau=dt")


def cubalif(n: int, v_leak: float = 0.0) -> nir.CubaLIF:
    """r = tau_mem/dt, w_in = tau_syn/dt: the form snnTorch's Synaptic exports (and its importer demands)."""
    full = lambda v: np.full((n,), v, dtype=np.float64)  # noqa: E731
    return nir.CubaLIF(tau_syn=full(4 * DT), tau_mem=full(2 * DT), r=full(2.0), v_leak=full(v_leak),
                       v_threshold=full(1.0), v_reset=full(0.0), w_in=full(4.0))


@pytest.mark.parametrize("library", ["snntorch", "norse"])
def test_cubalif_imports_as_nir_defines_it(library):
    """Not in snnav graphs; snnTorch imports it as snn.Synaptic (the dt rescaling keeps r = tau_mem/dt), Norse as an
    LIBox synapse feeding an LIFBox. Spikes as the interpreter's NIR semantics (on these inputs: rounding differs
    for snnTorch as for LIF)."""
    graph = graph_of(("cuba", cubalif(4)), shape=(4,))
    x = torch.rand(8, 2, 4, generator=torch.Generator().manual_seed(3))  # B = 2: the state is reset per sample
    expected = Interpreter(graph).run(x).outputs["output"]
    assert expected.sum() > 3
    assert limits(graph, library) == []
    assert torch.equal(run_single(graph, library, x), expected)


def test_norse_cubalif_synapse_leaks_to_v_leak():
    graph = graph_of(("cuba", cubalif(6, v_leak=0.3)), shape=(6,))
    x = 4 * torch.rand(20, 1, 6, generator=torch.Generator().manual_seed(0))
    assert [lim.feature for lim in limits(graph, "norse")] == ["v_leak"]
    expected = Interpreter(graph).run(x).outputs["output"]
    out = run_single(graph, "norse", x, check=False)
    assert (int(expected.sum()), int(out.sum())) == (118, 119)  # measured: one spike more in Norse


def _one(node: nir.NIRNode, n: int = 2) -> nir.NIRGraph:
    return graph_of(("l", node), shape=(n,))


def _full(v, n: int = 2) -> np.ndarray:
    return np.full((n,), v, dtype=np.float64)


@pytest.mark.parametrize("node, feature, message", [
    (nir.LIF(tau=_full(2 * DT), r=_full(1.0), v_leak=_full(0.1), v_threshold=_full(1.0), v_reset=_full(0.0)),
     "v_leak", "v_leak not supported"),
    (nir.LIF(tau=_full(2 * DT), r=_full(1.0), v_leak=_full(0.0), v_threshold=np.array([1.0, 2.0]),
             v_reset=_full(0.0)), "v_threshold", "v_threshold must be same for all neurons"),
    (nir.CubaLIF(tau_syn=_full(4 * DT), tau_mem=_full(2 * DT), r=_full(1.0), v_leak=_full(0.0),
                 v_threshold=_full(1.0), v_reset=_full(0.0), w_in=_full(1.0)), "r", "r not supported in CubaLIF"),
    (nir.IF(r=_full(2.0), v_threshold=_full(1.0), v_reset=_full(0.0)), "neuron", "r != 1 not supported"),
], ids=["lif-v_leak", "lif-threshold", "cubalif-r", "if-r"])
def test_snntorch_neuron_parameter_assertions(node, feature, message):
    graph = _one(node)
    assert [lim.feature for lim in limits(graph, "snntorch")] == [feature]
    with pytest.raises(AssertionError, match="^" + re.escape(message) + "$"):
        to_snntorch(graph, check=False)


def test_snntorch_if_is_a_leaky_neuron_returning_a_tuple():
    graph = _one(nir.IF(r=_full(1.0), v_threshold=_full(1.0), v_reset=_full(0.0)))
    imported = to_snntorch(graph, check=False)
    (spk, mem), _state = imported.module(torch.ones(2))
    assert float(imported.module.get_submodule("l").beta) == pytest.approx(0.9)
    assert torch.equal(spk, torch.zeros(2)) and torch.equal(mem, torch.ones(2))


def test_norse_lif_starts_from_v_leak():
    """x = 0, v_leak = 0.8, th = 0.65: NIR from v = 0: 0.4, 0.6, 0.7 (spike), 0.4; Norse from v = 0.8: spike at once."""
    graph = _one(nir.LIF(tau=_full(2 * DT, 1), r=_full(1.0, 1), v_leak=_full(0.8, 1), v_threshold=_full(0.65, 1),
                         v_reset=_full(0.0, 1)), n=1)
    x = torch.zeros(4, 1, 1)
    assert [lim.feature for lim in limits(graph, "norse")] == ["v_leak"]
    assert Interpreter(graph).run(x).outputs["output"].flatten().tolist() == [0, 0, 1, 0]
    assert run_single(graph, "norse", x, check=False).flatten().tolist() == [1, 0, 0, 1]


def test_norse_if_ignores_dt_and_r():
    """NIR IF: v + dt r x = v + 0.0006 per step (no spike); Norse IAFCell: v + x = 0.6, 1.2 (spike), 0.6, 1.2."""
    graph = _one(nir.IF(r=_full(1.0, 1), v_threshold=_full(1.0, 1), v_reset=_full(0.0, 1)), n=1)
    x = torch.full((4, 1, 1), 0.6)
    assert [lim.feature for lim in limits(graph, "norse")] == ["r, dt, v_reset"]
    assert Interpreter(graph).run(x).outputs["output"].flatten().tolist() == [0, 0, 0, 0]
    assert run_single(graph, "norse", x, check=False).flatten().tolist() == [0, 1, 0, 1]


def test_norse_graph_of_one_unsupported_node_is_empty():
    with pytest.raises(ValueError, match="^Cannot find the input of an empty graph$"):
        to_norse(_one(nir.I(r=_full(1.0))), check=False)

"""Streaming S-CMRL (``scmrl-causal``): every step's output uses the current and past inputs only, in the torch
model and in its exported graph, which has no node that waits for future steps (docs/scmrl.md §8)."""

from __future__ import annotations

import pytest
import torch
from export_models import SIZE, T, inputs, small_model

from export.from_torch.exporter import ExportConfig, export_model
from export.interpreter import Interpreter
from export.ir.extensions import CausalFusion, CausalSpikeAttention, is_extension
from snnav.models.attention import CausalTemporalCrossAttention, TemporalCrossAttention

CFG = ExportConfig(1e-3, T, (1, SIZE, SIZE), (2, SIZE, SIZE))
CUT = 2  # inputs from this step on are replaced


def _changed_future(seed: int = 7) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    audio, visual = inputs()
    other_a, other_v = inputs(seed=seed)
    audio2, visual2 = audio.clone(), visual.clone()
    audio2[CUT:], visual2[CUT:] = other_a[CUT:], other_v[CUT:]
    return audio, visual, audio2, visual2


@pytest.mark.parametrize("name, causal", [("scmrl-causal", True), ("scmrl", False)])
def test_outputs_before_a_change_do_not_see_it(name, causal):
    """The check can fail: faithful S-CMRL's cross-modal attention changes at early steps when later inputs change."""
    model = small_model(name)
    audio, visual, audio2, visual2 = _changed_future()
    with torch.no_grad():
        out, out2 = model(audio, visual), model(audio2, visual2)
        (a0, v0), (a02, v02) = model.encode(audio, visual), model.encode(audio2, visual2)
        attn, attn2 = model.block_audio.attn(a0, v0), model.block_audio.attn(a02, v02)
    assert torch.equal(out.step_logits[-1], out.logits)
    assert not torch.equal(out.step_logits[CUT:], out2.step_logits[CUT:])  # the change matters later
    assert not torch.equal(attn[CUT:], attn2[CUT:])
    assert torch.equal(attn[:CUT], attn2[:CUT]) == causal
    if causal:
        assert torch.equal(out.step_logits[:CUT], out2.step_logits[:CUT])


def test_causal_export_has_no_window_node_and_every_record_is_causal():
    graph = export_model(small_model("scmrl-causal"), CFG)
    exts = {type(n) for n in graph.nodes.values() if is_extension(n)}
    assert {CausalSpikeAttention, CausalFusion} <= exts
    assert not [k for k, n in graph.nodes.items() if is_extension(n) and n.needs_future]
    audio, visual, audio2, visual2 = _changed_future()
    interp = Interpreter(graph)
    run, run2 = interp.run({"audio": audio, "visual": visual}), interp.run({"audio": audio2, "visual": visual2})
    for name, rec in run.records.items():
        assert torch.equal(rec[:CUT], run2.records[name][:CUT]), name
    assert not torch.equal(run.outputs["logits"][CUT:], run2.outputs["logits"][CUT:])


def test_running_nodes_give_the_same_values_whole_sequence_or_step_by_step():
    graph = export_model(small_model("scmrl-causal"), CFG)
    audio, visual = inputs()
    seq = Interpreter(graph).run({"audio": audio, "visual": visual})
    steps = Interpreter(graph, stepwise=True).run({"audio": audio, "visual": visual})
    for name in seq.records:
        if is_extension(graph.nodes[name]):
            assert torch.allclose(seq.records[name], steps.records[name], rtol=0, atol=1e-6), name
    assert seq.spikes.keys() == steps.spikes.keys()
    for name, spikes in seq.spikes.items():
        assert torch.equal(spikes, steps.spikes[name]), name


def test_causal_temporal_branch_equals_the_clean_one_at_the_last_step():
    torch.manual_seed(0)
    q, k, v = ((torch.rand(T, 2, 8, 5) < 0.5).float() for _ in range(3))
    causal = CausalTemporalCrossAttention(8, num_heads=2).attend(q, k, v)
    clean = TemporalCrossAttention(8, num_heads=2, temporal_reshape="clean").attend(q, k, v)
    assert torch.equal(causal[-1], clean[-1])
    assert not torch.equal(causal[0], clean[0])
    # step t from a loop over s <= t (the spec's definition)
    qh, kh, vh = (x.reshape(T, 2, 2, 4, 5) for x in (q, k, v))  # (T, B, h, d, N)
    for t in range(T):
        ref = sum((qh[t] * kh[s]).sum(dim=2, keepdim=True) * vh[s] for s in range(t + 1)) * 0.25
        assert torch.equal(causal[t], ref.reshape(2, 8, 5))

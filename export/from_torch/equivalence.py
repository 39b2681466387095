"""Model vs exported graph: the trained torch model and the NIR interpreter on the same inputs, layer by layer.

The model's spikes are recorded with forward hooks on its neuron modules; the interpreter records every node. Each
``nir.LIF`` node names its source module in ``metadata["source"]``, which pairs the two. The comparison reports the
largest absolute logit difference and, per neuron layer, how many spikes differ, plus where the first divergence
is: for a float32 model vs a graph with folded batch norm, a differing spike can only come from a membrane within
float rounding of the threshold, and :attr:`LayerDiff.min_margin` shows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nir
import torch
from torch import Tensor, nn

from export.interpreter import Interpreter
from snnav.neurons import MultiStepLIF

__all__ = ["LayerDiff", "Comparison", "record_model", "compare"]


@dataclass(frozen=True)
class LayerDiff:
    """One neuron layer: ``mismatches`` differing spikes out of ``total``; ``spikes`` in the model's output."""

    source: str
    node: str
    mismatches: int
    total: int
    spikes: int


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare`."""

    max_abs_logit_diff: float
    layers: list[LayerDiff] = field(default_factory=list)
    argmax_agreement: float = 1.0

    @property
    def spike_mismatches(self) -> int:
        return sum(layer.mismatches for layer in self.layers)

    @property
    def first_divergence(self) -> LayerDiff | None:
        return next((layer for layer in self.layers if layer.mismatches), None)


def _neuron_modules(model: nn.Module) -> dict[str, nn.Module]:

    return {name: m for name, m in model.named_modules() if isinstance(m, MultiStepLIF)}


def record_model(model: nn.Module, audio: Tensor | None, visual: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
    """``(logits [B, K], {neuron module path: spikes [T, B, ...]})`` of one eval-mode forward (mode restored after)."""
    records: dict[str, Tensor] = {}
    handles = []
    for name, module in _neuron_modules(model).items():
        def hook(_m, _inp, out, name=name):
            if name in records:
                raise RuntimeError(f"{name} ran twice in one forward; the pairing with NIR nodes assumes once")
            records[name] = out.detach().clone()

        handles.append(module.register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            out = model(audio, visual)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return out.logits.detach(), records


def _graph_inputs(graph: nir.NIRGraph, audio: Tensor | None, visual: Tensor | None) -> dict[str, Tensor]:
    given = {"audio": audio, "visual": visual}
    return {name: given[name] for name, node in graph.nodes.items() if isinstance(node, nir.Input)}


def compare(model: nn.Module, graph: nir.NIRGraph, audio: Tensor | None, visual: Tensor | None) -> Comparison:
    """Run both on ``audio``/``visual`` ``[T, B, C, H, W]`` and compare logits and every neuron layer's spikes."""

    logits, model_spikes = record_model(model, audio, visual)
    dtype = next(model.parameters()).dtype
    result = Interpreter(graph, dtype=dtype).run(_graph_inputs(graph, audio, visual))
    step = int(graph.metadata.get("readout_step", -1))
    graph_logits = result.outputs["logits"][step]  # (B, K)
    layers = []
    for name, node in graph.nodes.items():
        if not isinstance(node, nir.LIF):
            continue
        source = node.metadata.get("source")
        if source not in model_spikes:
            raise KeyError(f"LIF node {name!r} names source {source!r}, which the model did not record")
        ours, theirs = model_spikes[source], result.records[name]  # (T, B, ...)
        axes = node.metadata.get("source_axes")
        if axes is not None:  # the model ran this neuron on a permuted layout
            theirs = theirs.permute(0, 1, *(2 + int(a) for a in axes))
        theirs = theirs.reshape(ours.shape).to(ours.dtype)
        layers.append(LayerDiff(source, name, int((ours != theirs).sum()), ours.numel(), int(ours.sum())))
    omitted = tuple(graph.metadata.get("omitted_modules", {}))
    missing = {s for s in model_spikes if not any(s == o or s.startswith(o + ".") for o in omitted)}
    missing -= {layer.source for layer in layers}
    if missing:
        raise KeyError(f"neuron modules {sorted(missing)} have no LIF node in the graph")
    return Comparison(
        max_abs_logit_diff=float((logits - graph_logits.to(logits.dtype)).abs().max()),
        layers=layers,
        argmax_agreement=float((logits.argmax(1) == graph_logits.argmax(1)).float().mean()),
    )

"""NeuroBench's workload definitions on a NIR graph: the input of every linear node as NIR computes it.

NeuroBench (``neurobench.metrics.workload``, 2.3.0; Yik et al., Nature Communications 2025) hooks a torch model's
connection layers (``Linear``, ``Conv1d/2d/3d``) and counts, per call, the nonzero-input x nonzero-weight products
of the layer (a binarized copy of the layer, bias zeroed, applied to the binarized input): **ACs** if every value of
the layer's input is in {-1, 0, 1}, else **MACs**; ``Dense`` is the same with all-ones inputs and weights (every
synapse). ``ActivationSparsity`` is 1 - nonzero/total over the outputs of the spiking neurons. Products between
activations (attention) and pooling layers are not hooked.

Here the layer input is the node's summed fan-in in NIR semantics (Scales before the layer applied, residual terms
summed, NIR Delays and recurrent edges shifted), evaluated from the run's records of the signal nodes; the weights
are the graph's. The AC/MAC decision is made per sample over all its steps (NeuroBench decides per call, i.e. per
step and batch; a per-sample decision gives the same totals whichever batches a test set is cut into).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import nir
import numpy as np
import scipy.sparse as sp

from export.ir.graph import flatten_graph, schedule
from hardware_sims.counts.signals import binary_matrix, record_values, shifted
from hardware_sims.plan import exprs as ex
from hardware_sims.plan.linear import linear_op, node_bias, op_matrix
from hardware_sims.plan.registry import role_of

__all__ = ["NirValues", "NEUROBENCH_LAYERS", "POOL_LAYERS", "layer_ops", "input_summary", "dense_synapses"]

NEUROBENCH_LAYERS: tuple[type, ...] = (nir.Affine, nir.Linear, nir.Conv1d, nir.Conv2d)
"""NIR nodes NeuroBench's counter sees (torch ``Linear``, ``Conv1d``, ``Conv2d``)."""
POOL_LAYERS: tuple[type, ...] = (nir.SumPool2d, nir.AvgPool2d)
"""Linear NIR nodes NeuroBench's counter does not see."""


def _ones_like_weights(node: Any) -> Any:
    """The node with every weight set to 1 (pools already have nonzero kernels)."""
    if isinstance(node, POOL_LAYERS):
        return node
    return dataclasses.replace(node, weight=np.ones_like(np.asarray(node.weight, dtype=np.float64)))


def dense_synapses(name: str, node: Any, in_shape: tuple[int, ...]) -> int:
    """Synapses of a linear node over one step with every weight counted, zeros included (NeuroBench's ``Dense``):
    input-output pairs a weight connects; for a convolution, the kernel taps inside the (unpadded) input."""
    return int(binary_matrix(op_matrix(linear_op(name, _ones_like_weights(node), in_shape))).nnz)


def input_summary(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(nonzero, binary)`` of a layer input ``[T, B, in_size]``: per sample and input element, at how many steps
    it was nonzero (float64 ``[B, in_size]``); per sample, whether every value was in {-1, 0, 1}."""
    nonzero = np.zeros(x.shape[1:], dtype=np.int64)
    binary = np.ones(x.shape[1], dtype=bool)
    for step in x:  # one step at a time: no [T, B, in] temporaries
        nz = step != 0
        nonzero += nz
        binary &= np.all(np.abs(step) == nz, axis=-1)  # |x| is 1 where x is nonzero (and 0 elsewhere)
    return nonzero.astype(np.float64), binary


def layer_ops(x: np.ndarray, synapses: sp.csr_matrix,
              summary: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: ``(ops, binary)``: nonzero-input x synapse products over all steps, and whether every input
    value was in {-1, 0, 1}. ``x``: ``[T, B, in_size]``; ``synapses``: 1 per nonzero weight ``(out, in)``;
    ``summary``: `input_summary` of ``x`` when already computed."""
    fan_out = np.asarray(synapses.sum(axis=0)).reshape(-1)
    nonzero, binary = input_summary(x) if summary is None else summary
    return nonzero @ fan_out, binary.copy()


class NirValues:
    """The values of a graph's wiring nodes over a run, from the records of its signal nodes (lazily).

    Args:
        graph: the NIR graph (nested subgraphs allowed; names are flattened like the plan's).
        records: signal node -> ``[T, B, *shape]``.
        dt: seconds per step (for Delay nodes).
    """

    def __init__(self, graph: nir.NIRGraph, records: Mapping[str, np.ndarray], steps: int, batch: int,
                 dt: float | None, cache: dict | None = None) -> None:
        # what depends on the graph only (its flattening, schedule, roles, synapse matrices): shared across runs of
        # the same graph when `cache` is given
        cache = {} if cache is None else cache
        if "flat" not in cache:
            flat = flatten_graph(graph)
            cache["flat"], cache["sched"] = flat, schedule(flat)
            cache["roles"] = {n: role_of(n, node, flat.inputs, flat.outputs) for n, node in flat.nodes.items()}
        self.flat, self.sched, self.roles = cache["flat"], cache["sched"], cache["roles"]
        self._synapses: dict[str, sp.csr_matrix] = cache.setdefault("synapses", {})
        self._ops: dict[tuple, tuple] = cache.setdefault("ops", {})
        self.records, self.steps, self.batch, self.dt = records, steps, batch, dt
        self._values: dict[str, np.ndarray] = {}

    @property
    def nodes(self) -> dict[str, Any]:
        return self.flat.nodes

    def input_of(self, name: str) -> np.ndarray:
        """The summed fan-in of a standard node: ``[T, B, *shape]``."""
        total = None
        for idx, delayed in self.sched.fan_in[name].get(None, ()):
            v = self.value(self.flat.edges[idx].src)
            if delayed:  # the interpreter's one step over a recurrent edge
                v = shifted(v, -1, self.steps - 1)
            total = v if total is None else np.add(total, v, dtype=np.float64)  # int8 spike records: no overflow
        if total is None:
            raise ValueError(f"node {name!r} has no input edge")
        return total

    def value(self, name: str) -> np.ndarray:
        """The output of a node over the run: ``[T, B, *shape]``."""
        if name not in self._values:
            self._values[name] = self._compute(name)
        return self._values[name]

    def _compute(self, name: str) -> np.ndarray:
        role, node = self.roles[name], self.nodes[name]
        if role in ("input", "neuron", "extension"):
            if name not in self.records:
                raise KeyError(name)
            return record_values(self.records[name])
        x = self.input_of(name)
        lead = x.shape[:2]
        if role in ("identity", "output"):
            return x
        if role == "flatten":
            shape = ex.flatten_shape(x.shape[2:], int(node.start_dim), int(node.end_dim), name)
            return x.reshape(*lead, *shape)
        if role == "scale":
            return x * np.asarray(node.scale, dtype=np.float64)
        if role == "delay":
            steps = np.rint(np.broadcast_to(np.asarray(node.delay, dtype=np.float64), x.shape[2:]) / self.dt)
            flat = x.reshape(self.steps, self.batch, -1)
            out = np.zeros_like(flat)
            for i, k in enumerate(steps.reshape(-1).astype(np.int64)):
                out[:, :, i] = shifted(flat[:, :, i], -int(k), self.steps - int(k))
            return out.reshape(x.shape)
        if role == "linear":
            key = (name, tuple(x.shape[2:]))
            if key not in self._ops:
                op = linear_op(name, node, x.shape[2:])
                self._ops[key] = (op, op_matrix(op), node_bias(node, op.out_shape))
            op, matrix, bias = self._ops[key]
            y = np.asarray(matrix @ x.reshape(-1, op.in_size).T).T.reshape(*lead, *op.out_shape)
            return y if bias is None else y + bias
        raise ValueError(f"node {name!r}: no value model for role {role!r}")

    def linear_synapses(self, name: str, in_shape: tuple[int, ...]) -> sp.csr_matrix:
        """1 per nonzero weight of a linear node of the graph, ``(out_size, in_size)`` (cached)."""
        if name not in self._synapses:
            self._synapses[name] = binary_matrix(op_matrix(linear_op(name, self.nodes[name], in_shape)))
        return self._synapses[name]

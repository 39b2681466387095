"""`ActivityCounts`: what a run did, per node and per sample, as plain data (JSON ``snnav.activity-counts`` v1).

Every per-node figure is a mean per sample; ``per_sample`` holds the totals over all nodes, one entry per sample;
``totals`` (derived) the means of those. Counts from chunks of samples of one graph combine with `merge` (means
weighted by samples, per-sample lists concatenated), so a test set simulated in batches gives the counts of the
whole set. The definitions are in ``hardware_sims/counts/COUNTS.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = ["ActivityCounts", "NodeCounts", "RunInfo", "NeuroBenchCounts", "COUNT_FIELDS", "NODE_FIELDS",
           "FORMAT", "VERSION", "merge_all"]

FORMAT = "snnav.activity-counts"
VERSION = 1

COUNT_FIELDS: tuple[str, ...] = ("spikes", "synaptic_events", "dense_macs", "neuron_updates_active",
                                 "neuron_updates_idle", "ext_acs", "ext_macs")
"""The operation counts of a run: per node, per sample, and the ones a cost model may price."""
NODE_FIELDS: tuple[str, ...] = ("spikes", "neuron_updates_active", "neuron_updates_idle", "synaptic_events",
                                "dense_macs", "dense_synapses", "ext_acs", "ext_macs")
"""The numeric per-node figures (means per sample)."""


def _check_keys(where: str, data: Mapping[str, Any], expected: Iterable[str]) -> None:
    expected = set(expected)
    missing, unknown = sorted(expected - set(data)), sorted(set(data) - expected)
    if missing or unknown:
        raise ValueError(f"{where}: missing keys {missing}, unknown keys {unknown}; expected {sorted(expected)}")


@dataclass(frozen=True)
class RunInfo:
    """The run the counts come from: backend ("lava" | "emulator"), precision ("fixed" | "float"), samples, NIR
    time steps per sample, seconds per step (None when the graph has none)."""

    backend: str
    precision: str
    samples: int
    time_steps: int
    dt_s: float | None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class NodeCounts:
    """One node's figures, each a mean per sample (``COUNTS.md`` §2-§5).

    Attributes:
        type: NIR class name, or ``snnav.<Kind>`` for an extension node.
        neurons: output elements of the node.
        binary_input: linear and extension nodes: every input value of every sample was in {-1, 0, 1}; None for
            other nodes.
        firing_rate: spiking nodes: spikes / (neurons x time steps); None otherwise.
    """

    type: str
    neurons: int
    binary_input: bool | None
    spikes: float = 0.0
    neuron_updates_active: float = 0.0
    neuron_updates_idle: float = 0.0
    synaptic_events: float = 0.0
    dense_macs: float = 0.0
    dense_synapses: float = 0.0
    ext_acs: float = 0.0
    ext_macs: float = 0.0
    firing_rate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class NeuroBenchCounts:
    """NeuroBench's workload figures (definitions in ``hardware_sims/counts/neurobench.py``), means per sample.

    Attributes:
        activation_sparsity: 1 - spikes / (spiking neurons x steps), over every spiking node, step and sample.
        effective_macs / effective_acs: nonzero-input x nonzero-weight products of the Affine/Linear/Conv nodes
            whose input is graded / in {-1, 0, 1}.
        dense: every synapse of those nodes, every step.
        missed_ext_acs / missed_ext_macs: the extension nodes' operations, which NeuroBench's counter does not see.
        missed_pooling_events: the pooling nodes' nonzero-input x synapse products, which it does not see either.
    """

    activation_sparsity: float
    effective_macs: float
    effective_acs: float
    dense: float
    missed_ext_acs: float
    missed_ext_macs: float
    missed_pooling_events: float

    def to_dict(self) -> dict[str, Any]:
        return {"activation_sparsity": self.activation_sparsity, "effective_macs": self.effective_macs,
                "effective_acs": self.effective_acs, "dense": self.dense,
                "missed_by_neurobench": {"ext_acs": self.missed_ext_acs, "ext_macs": self.missed_ext_macs,
                                         "pooling_events": self.missed_pooling_events}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NeuroBenchCounts:
        _check_keys("neurobench", data, ("activation_sparsity", "effective_macs", "effective_acs", "dense",
                                         "missed_by_neurobench"))
        missed = data["missed_by_neurobench"]
        _check_keys("neurobench.missed_by_neurobench", missed, ("ext_acs", "ext_macs", "pooling_events"))
        return cls(float(data["activation_sparsity"]), float(data["effective_macs"]), float(data["effective_acs"]),
                   float(data["dense"]), float(missed["ext_acs"]), float(missed["ext_macs"]),
                   float(missed["pooling_events"]))


@dataclass(frozen=True)
class ActivityCounts:
    """Counts of one run (or of several chunks of one graph's runs, `merge`).

    Attributes:
        run: what ran.
        nodes: node name -> `NodeCounts` (signal and linear nodes; wiring nodes have no operations).
        per_sample: each of `COUNT_FIELDS` -> its total over all nodes, one entry per sample.
        neurobench: NeuroBench's figures.
    """

    run: RunInfo
    nodes: Mapping[str, NodeCounts]
    per_sample: Mapping[str, tuple[float, ...]]
    neurobench: NeuroBenchCounts

    @property
    def totals(self) -> dict[str, float]:
        """Each count summed over the nodes, mean per sample (`COUNT_FIELDS` and ``dense_synapses``)."""
        return {k: float(sum(getattr(n, k) for n in self.nodes.values())) for k in (*COUNT_FIELDS, "dense_synapses")}

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape ``snnav.activity-counts`` v1 (``COUNTS.md`` §1)."""
        return {"format": FORMAT, "version": VERSION, "run": self.run.to_dict(),
                "nodes": {name: n.to_dict() for name, n in self.nodes.items()},
                "per_sample": {k: list(self.per_sample[k]) for k in COUNT_FIELDS},
                "totals": self.totals, "neurobench": self.neurobench.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActivityCounts:
        """Read `to_dict`'s output back (``totals`` is derived and checked to be consistent).

        Raises:
            ValueError: another format or a newer version, missing or unknown keys, lists of the wrong length.
        """
        if data.get("format") != FORMAT:
            raise ValueError(f"not activity counts: format {data.get('format')!r}, expected {FORMAT!r}")
        if data.get("version") != VERSION:
            raise ValueError(f"activity counts version {data.get('version')!r}; this snnav reads version {VERSION}")
        _check_keys("activity counts", data, ("format", "version", "run", "nodes", "per_sample", "totals",
                                              "neurobench"))
        _check_keys("run", data["run"], [f.name for f in fields(RunInfo)])
        r = data["run"]
        run = RunInfo(str(r["backend"]), str(r["precision"]), int(r["samples"]), int(r["time_steps"]),
                      None if r["dt_s"] is None else float(r["dt_s"]))
        nodes = {}
        for name, n in data["nodes"].items():
            _check_keys(f"node {name!r}", n, [f.name for f in fields(NodeCounts)])
            nodes[name] = NodeCounts(
                str(n["type"]), int(n["neurons"]), None if n["binary_input"] is None else bool(n["binary_input"]),
                *(float(n[k]) for k in NODE_FIELDS),
                firing_rate=None if n["firing_rate"] is None else float(n["firing_rate"]))
        _check_keys("per_sample", data["per_sample"], COUNT_FIELDS)
        per_sample = {k: tuple(float(v) for v in data["per_sample"][k]) for k in COUNT_FIELDS}
        bad = {k: len(v) for k, v in per_sample.items() if len(v) != run.samples}
        if bad:
            raise ValueError(f"per_sample lists must have run.samples = {run.samples} entries; found {bad}")
        return cls(run, nodes, per_sample, NeuroBenchCounts.from_dict(data["neurobench"]))

    def merge(self, other: ActivityCounts) -> ActivityCounts:
        """The counts of both runs together (same graph, backend, precision, T and dt; e.g. two chunks of a test
        set): node means weighted by samples, per-sample lists concatenated.

        Raises:
            ValueError: the runs or their nodes differ.
        """
        a, b = self.run, other.run
        if (a.backend, a.precision, a.time_steps, a.dt_s) != (b.backend, b.precision, b.time_steps, b.dt_s):
            raise ValueError(f"cannot merge counts of different runs: {a} and {b} (backend, precision, time_steps "
                             "and dt_s must be equal)")
        shape_a = {k: (n.type, n.neurons) for k, n in self.nodes.items()}
        shape_b = {k: (n.type, n.neurons) for k, n in other.nodes.items()}
        if shape_a != shape_b:
            diff = sorted(set(shape_a.items()) ^ set(shape_b.items()))[:5]
            raise ValueError(f"cannot merge counts of different graphs; nodes differ, e.g. {diff}")
        n = a.samples + b.samples
        wa, wb = a.samples / n, b.samples / n

        def mean(x: float, y: float) -> float:
            return x * wa + y * wb

        nodes = {}
        for name, x in self.nodes.items():
            y = other.nodes[name]
            binary = None if x.binary_input is None else bool(x.binary_input and y.binary_input)
            merged = {k: mean(getattr(x, k), getattr(y, k)) for k in NODE_FIELDS}
            rate = None if x.firing_rate is None else merged["spikes"] / max(1, x.neurons * a.time_steps)
            nodes[name] = replace(x, binary_input=binary, firing_rate=rate, **merged)
        nb = {f.name: mean(getattr(self.neurobench, f.name), getattr(other.neurobench, f.name))
              for f in fields(NeuroBenchCounts)}
        return ActivityCounts(replace(a, samples=n), nodes,
                              {k: (*self.per_sample[k], *other.per_sample[k]) for k in COUNT_FIELDS},
                              NeuroBenchCounts(**nb))


def merge_all(counts: Iterable[ActivityCounts]) -> ActivityCounts:
    """`ActivityCounts.merge` over several chunks, in order.

    Raises:
        ValueError: no counts given, or they cannot be merged.
    """
    out = None
    for c in counts:
        out = c if out is None else out.merge(c)
    if out is None:
        raise ValueError("merge_all needs at least one ActivityCounts")
    return out

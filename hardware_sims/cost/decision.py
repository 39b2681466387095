"""Energy and time up to a streaming decision on a neuromorphic chip (estimates, with lower and upper bounds).

A causal graph (no WINDOW node) reads its decision on input steps ``0..t`` at output step ``t``. What the chip
spends up to the step ``t*`` at which a sample's decision becomes final is priced here as the cost model's
inference (`chip_cost`) of the sample's first ``k = t* + 1`` input steps:

* **dynamic energy**: the activity every node did at its NIR steps ``0..k-1`` (counts of the run restricted to
  those steps, `hardware_sims.counts.restrict_run`; for a causal graph equal to the counts of a run on the first k
  input steps), priced with the chip's per-operation figures (synaptic ops incl. the synapse read from core SRAM,
  neuron updates incl. state read/write, spike messages and hops, extension operations), and the update of every
  compartment at each of the ``k + D`` Lava steps the chip runs until the decision leaves the pipeline (``D``: the
  chip's pipeline depth, `DecisionPricer.depth`);
* **static energy**: the chip's static power x that time (``p_static x chips``; the lower bound: the cores used);
* **time**: ``(k + D) x t_step``. ``t_step`` is the time per Lava step of the whole sample's mean load (`chip_cost`
  of the mean counts over all T steps, the spare cores of the chips spread over the slowest layers as in
  ``snnav report``), used for every prefix, so that time and static energy grow with the steps; the decision is
  read at the end of Lava step ``t* + D``.

In-flight steps: while the decision of step ``t*`` travels the ``D`` steps of the pipeline, the first layers already
process input steps after ``t*`` (if the input goes on). That activity belongs to later decisions and is **not**
included (it is zero when the input stops at ``t*``); those compartments' updates are priced as idle updates.

A graph with WINDOW nodes outputs nothing that has not read all T input steps: its decision is priced with the
activity of all T steps (an upper bound: the layers after the windows have not yet run their steps after ``t*``),
over the ``t* + 1 + D`` Lava steps until it is read.

Everything is an estimate: the chip figures' sources and status are in ``hardware_sims/cost/chips/*.json``; what
`chip_cost` includes and excludes is in its `INCLUDED` / `EXCLUDED` (host I/O, off-chip input encoding and board
power are not included).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from hardware_sims.cost.chip import Chip
from hardware_sims.cost.chip_cost import BOUNDS, EXCLUDED, INCLUDED, activity_from_counts, chip_cost
from hardware_sims.cost.mapping import Mapping, map_plan
from hardware_sims.counts import merge_all
from snnav.errors import InputError

__all__ = ["DecisionCost", "DecisionPricer", "DecisionEnergy", "price_decisions", "TIME_INCLUDES"]

TIME_INCLUDES = ("the slowest layer's synaptic ops, neuron updates and spike sends on its cores, or "
                 "the extension nodes' work, plus the barrier synchronisation; the whole sample's mean load")


@dataclass(frozen=True)
class DecisionCost:
    """One sample's cost up to a decision (each a dict bound -> value, `BOUNDS`): joules and seconds.

    Attributes:
        steps_seen: input steps the priced activity covers (k).
        lava_steps: Lava steps the chip runs until the decision is read (k + depth).
    """

    steps_seen: int
    lava_steps: int
    energy_dynamic_j: dict[str, float]
    energy_static_j: dict[str, float]
    time_s: dict[str, float]

    @property
    def energy_total_j(self) -> dict[str, float]:
        return {b: self.energy_dynamic_j[b] + self.energy_static_j[b] for b in BOUNDS}


class DecisionPricer:
    """Prices a sample's activity up to a decision on one chip (module docstring).

    Args:
        plan: the compiled plan the counts come from.
        chip: a chip name ("loihi1", "loihi2") or description.
        mean_counts: the mean ``ActivityCounts`` of the samples over all T steps: it sets the time per step.
        weight_bits: the quantized weight width of the mapping.
    """

    def __init__(self, plan: Any, chip: Chip | str, mean_counts: Any, *, weight_bits: int = 8) -> None:
        self.time_steps = int(mean_counts.run.time_steps)
        self.full = map_plan(plan, chip, weight_bits=weight_bits, time_steps=self.time_steps)
        act, ext = activity_from_counts(self.full, mean_counts)
        self.sample_cost = chip_cost(self.full, act, ext)
        self.chip = self.sample_cost.chip
        self.depth = self.full.steps_per_sample - self.time_steps
        self.step_s = dict(self.sample_cost.step_s)
        self.static_w = {b: (self.sample_cost.energy_static_j[b] / self.sample_cost.latency_s[b]
                             if self.sample_cost.latency_s[b] else 0.0) for b in BOUNDS}
        self.included, self.excluded = INCLUDED, EXCLUDED
        self.sources = dict(self.sample_cost.sources)

    def mapping(self, steps: int) -> Mapping:
        """The placement for a sample of ``steps`` input steps: the same cores, ``steps + depth`` Lava steps (the
        placement does not depend on T)."""
        return replace(self.full, time_steps=int(steps), steps_per_sample=int(steps) + self.depth)

    def time_to_decision_s(self, final_step: int) -> dict[str, float]:
        """Seconds from the first input step to the end of the Lava step that outputs the decision of output step
        ``final_step`` (t*): ``(t* + 1 + depth) x t_step``, by bound."""
        lava = int(final_step) + 1 + self.depth
        return {b: lava * self.step_s[b] for b in BOUNDS}

    def price(self, counts: Any, final_step: int, *, window: bool = False) -> DecisionCost:
        """The cost of the decision read at output step ``final_step`` (t*).

        Args:
            counts: one sample's ``ActivityCounts`` (``run.samples`` = 1) of its NIR steps ``0..t*`` (``t* + 1``
                steps), or of all T steps when ``window``.
            final_step: t*.
            window: the graph has WINDOW nodes (module docstring): the counts cover all T steps.

        Raises:
            InputError: the counts cover another number of steps than t* + 1 (all T with ``window``).
        """
        t_star = int(final_step)
        if not 0 <= t_star < self.time_steps:
            raise InputError(f"decision step {t_star} outside 0..{self.time_steps - 1}")
        seen = self.time_steps if window else t_star + 1
        if counts.run.time_steps != seen:
            raise InputError(f"the counts cover {counts.run.time_steps} steps; the decision at step {t_star} needs "
                             f"the counts of {seen} steps")
        m = self.mapping(seen)
        act, ext = activity_from_counts(m, counts)
        dyn = chip_cost(m, act, ext, balance=False).energy_dynamic_j  # dynamic energy does not depend on the cores
        time = self.time_to_decision_s(t_star)
        return DecisionCost(seen, t_star + 1 + self.depth, dict(dyn),
                            {b: self.static_w[b] * time[b] for b in BOUNDS}, time)


@dataclass(frozen=True)
class DecisionEnergy:
    """The cost of every sample's decision on one chip (estimates; module docstring for what is included).

    Attributes:
        chip: the chip's name.
        step_s: time per Lava step by bound (the whole sample's mean load).
        depth: the chip's pipeline depth in Lava steps (its steps per sample - T).
        to_decision_j / to_decision_dynamic_j: bound -> ``[samples]`` energy (total / dynamic) up to the decision.
        per_sample_j: bound -> ``[samples]`` energy of the whole sample (all T steps, T + depth Lava steps).
        time_to_decision_s: bound -> ``[samples]`` seconds from the first input step to the decision.
        window: the graph has WINDOW nodes (its decisions are priced with all T steps).
        fits: the mapping breaks no constraint of the chip (else ``violations`` says which: priced anyway).
        notes: the mapping's and the cost model's assumptions.
    """

    chip: str
    step_s: dict[str, float]
    depth: int
    to_decision_j: dict[str, np.ndarray]
    to_decision_dynamic_j: dict[str, np.ndarray]
    per_sample_j: dict[str, np.ndarray]
    time_to_decision_s: dict[str, np.ndarray]
    window: bool
    fits: bool = True
    violations: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    included: tuple[str, ...] = INCLUDED
    excluded: tuple[str, ...] = EXCLUDED
    sources: dict[str, str] = field(default_factory=dict)
    kind: str = "estimate"


def price_decisions(plan: Any, chip: Chip | str, sample_counts: Sequence[Any], decision_counts: Sequence[Any],
                    final_steps: Sequence[int] | np.ndarray, *, window: bool = False,
                    weight_bits: int = 8) -> DecisionEnergy:
    """Price every sample's decision and whole sample on ``chip``.

    Args:
        plan: the compiled plan the counts come from.
        chip: a chip name or description.
        sample_counts: one ``ActivityCounts`` per sample over all T steps.
        decision_counts: one per sample over its steps ``0..t*`` (all T steps with ``window``).
        final_steps: t* of every sample.
        window: the graph has WINDOW nodes.

    Raises:
        InputError: the lists differ in length or are empty; counts that do not cover the steps a decision needs.
    """
    final_steps = np.asarray(final_steps, dtype=np.int64)
    if not len(sample_counts) == len(decision_counts) == len(final_steps) or not len(final_steps):
        raise InputError(f"price_decisions needs one count per sample in both lists and one final step each; got "
                         f"{len(sample_counts)}, {len(decision_counts)} and {len(final_steps)}")
    pricer = DecisionPricer(plan, chip, merge_all(sample_counts), weight_bits=weight_bits)
    T = pricer.time_steps
    to_dec = [pricer.price(c, t, window=window) for c, t in zip(decision_counts, final_steps)]
    whole = [pricer.price(c, T - 1, window=window) for c in sample_counts]

    def arr(costs: list[DecisionCost], what: str) -> dict[str, np.ndarray]:
        return {b: np.array([getattr(c, what)[b] for c in costs]) for b in BOUNDS}

    return DecisionEnergy(pricer.chip, pricer.step_s, pricer.depth, arr(to_dec, "energy_total_j"),
                          arr(to_dec, "energy_dynamic_j"), arr(whole, "energy_total_j"),
                          arr(to_dec, "time_s"), window, pricer.full.fits,
                          tuple(v.text() for v in pricer.full.violations),
                          tuple(pricer.sample_cost.notes) + tuple(pricer.full.notes), sources=pricer.sources)

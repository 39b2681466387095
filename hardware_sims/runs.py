"""The run set-up every backend shares: load a plan, bind the inputs, choose the readouts, assemble them, and the
result record (`RunResult`, with the ``backend`` that produced it).

A backend (``hardware_sims.lava.run.run_lava``, ``hardware_sims.emulator.emulate``) loads its plan with `load_plan`,
adds the state readouts with `with_state`, checks the inputs with `bind_inputs`, picks what to record with
`chosen_readouts`, steps its processes, and turns each readout's raw records into ``[T, B, *shape]`` with
`assemble_readout`. No Lava here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np

from export.ir.nirfile import read_graph
from hardware_sims.fixed_point.prepare import record_scale
from hardware_sims.plan.errors import InputBindingError
from hardware_sims.plan.lowering import build_plan
from hardware_sims.plan.plan import STATE_VARS, Plan, Readout, state_readout_name, with_state_readouts

__all__ = ["RunResult", "RunSetup", "set_up_run", "load_plan", "bind_inputs", "with_state", "chosen_readouts",
           "assemble_readout"]


@dataclass(frozen=True)
class RunResult:
    """What a backend's run produced (`run_lava` or `emulate`), aligned back to NIR steps.

    Attributes:
        outputs: graph Output name -> ``[T, B, *shape]``.
        records: NIR node -> ``[T, B, *shape]`` (spikes of spiking nodes, ``v`` of LI/I readouts, messages of
            extension nodes, values of wiring nodes; see `run_lava`'s ``record``); ``"<node>#v"`` and
            ``"<node>#u"``: membrane and current of the neurons named in ``record_state``.
        node_latency: NIR signal node -> Lava step (within a sample) of its NIR step 0.
        steps_per_sample: Lava steps each sample ran for.
        plan: the plan that ran.
        timing: seconds: ``build_s`` (processes), ``compile_s`` (compile and start Lava), ``run_s``; ``lava_steps``;
            ``ms_per_step`` = run_s / lava_steps.
        readout_step: ``graph.metadata["readout_step"]`` when present (the step at which snnav reads logits).
        cleanup: what was started and released (``pids``, ``shm_names``, ``workdir``), for checks.
        backend: which backend produced it: ``"lava"`` or ``"emulator"`` (None: assembled by hand).
    """

    outputs: dict[str, np.ndarray]
    records: dict[str, np.ndarray]
    node_latency: dict[str, int]
    steps_per_sample: int
    plan: Plan
    timing: dict[str, float] = field(default_factory=dict)
    readout_step: int | None = None
    cleanup: dict[str, Any] = field(default_factory=dict)
    backend: str | None = None

    def readout(self, name: str | None = None) -> np.ndarray:
        """Output `name` (default: the only one) at ``readout_step`` (default: the last step): ``[B, *shape]``."""
        if name is None:
            if len(self.outputs) != 1:
                raise ValueError(f"the graph has outputs {sorted(self.outputs)}; name one")
            name = next(iter(self.outputs))
        out = self.outputs[name]
        return out[self.readout_step if self.readout_step is not None else out.shape[0] - 1]


# ------------------------------------------------------------------------------------------------- inputs


def load_plan(graph: Any, dt: float | None, record: Any, convention: str | None = None) -> Plan:
    """The float plan of `graph` (a `Plan` as it is, a graph, or a ``.nir`` path), readable at the nodes in `record`,
    its neurons stepped as `convention` says (`build_plan`)."""
    if isinstance(graph, Plan):
        if convention not in (None, "auto", graph.convention):
            raise ValueError(f"this plan was built for convention {graph.convention!r}, not {convention!r}; pass the "
                             "graph instead")
        return graph
    if not isinstance(graph, nir.NIRGraph):
        graph = read_graph(graph)
    extra = () if record in (True, False, None) else tuple({record} if isinstance(record, str) else record)
    probe = build_plan(graph, dt=dt, convention=convention)
    if not extra:
        return probe
    return build_plan(graph, dt=dt, extra_readouts=[n for n in extra if n not in probe.readouts],
                      convention=convention)


def bind_inputs(plan: Plan, inputs: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], int, int]:
    """`inputs` (a dict name -> ``[T, B, *shape]``, or one array) checked against the plan's Input nodes, as float64;
    and T, B. Raises `InputBindingError`."""
    if not isinstance(inputs, Mapping):
        if len(plan.inputs) != 1:
            raise InputBindingError(f"the graph has inputs {sorted(plan.inputs)}; pass a dict name -> [T, B, ...]")
        inputs = {next(iter(plan.inputs)): inputs}
    missing, extra = sorted(set(plan.inputs) - set(inputs)), sorted(set(inputs) - set(plan.inputs))
    if missing or extra:
        raise InputBindingError(
            f"inputs do not match the graph: unbound Input node(s) {missing}, unknown name(s) {extra}; the graph's "
            f"inputs are {sorted(plan.inputs)} with shapes {dict(plan.input_shapes)}. Pass one [T, B, *shape] "
            "array per Input node"
        )
    xs, lead = {}, None
    for name in plan.inputs:
        x = np.asarray(inputs[name], dtype=np.float64)
        shape = tuple(plan.input_shapes[name])
        if x.ndim != len(shape) + 2 or tuple(x.shape[2:]) != shape:
            raise InputBindingError(f"input {name!r}: expected an array [T, B, *{shape}], found shape {x.shape}")
        if lead is not None and x.shape[:2] != lead:
            raise InputBindingError(f"inputs disagree on [T, B]: {lead} and {x.shape[:2]} ({name!r})")
        lead = x.shape[:2]
        xs[name] = x
    if lead[0] < 1 or lead[1] < 1:
        raise InputBindingError(f"inputs must have T >= 1 and B >= 1, found [T, B] = {list(lead)}")
    for proc, window in plan.windows.items():
        if window > lead[0] or lead[0] % window:
            raise InputBindingError(
                f"extension process {proc!r} works on windows of {window} steps, but the run has T = {lead[0]} "
                f"steps; T must be a multiple of the window (snnav exports window = time_steps). Pass T = k * {window}"
            )
    return xs, int(lead[0]), int(lead[1])


def with_state(plan: Plan, record_state: str | Iterable[str] | None) -> tuple[Plan, list[str]]:
    """`plan` with the state readouts of the neurons in `record_state`, and their names (``"<node>#v"``, ``#u``)."""
    if not record_state:
        return plan, []
    names = [record_state] if isinstance(record_state, str) else list(dict.fromkeys(record_state))
    plan = with_state_readouts(plan, names, STATE_VARS)
    return plan, [state_readout_name(n, var) for n in names for var in STATE_VARS]


def chosen_readouts(plan: Plan, record: Any, state: Iterable[str] = ()) -> dict[str, Readout]:
    """The readouts a run assembles: all (``record=True``), the Outputs (False/None), or the named nodes plus the
    Outputs; plus the state readouts `state`."""
    if record is True:
        names = set(plan.readouts)
    elif record in (False, None):
        names = set(plan.outputs)
    else:
        names = set({record} if isinstance(record, str) else record) | set(plan.outputs)
        unknown = sorted(names - set(plan.readouts))
        if unknown:
            raise ValueError(f"cannot record {unknown}: not readable in this plan; readable nodes are "
                             f"{sorted(plan.readouts)}")
    names |= set(state)
    return {n: plan.readouts[n] for n in plan.readouts if n in names}


def assemble_readout(readout: Readout, plan: Plan, steps: int, batch: int, aligned) -> np.ndarray:
    """``[T, B, *shape]`` of one readout. ``aligned(term)`` gives the term's raw record as ``[T, B, size]`` whose
    row t is NIR step t of the term's process (its latency already removed); shared by Lava and the emulator."""
    out = np.zeros((steps, batch, *readout.shape))
    t = np.arange(steps)
    for term in readout.terms:
        raw = aligned(term)  # [T, B, size]
        shift = np.asarray(term.shift)
        if shift.ndim == 0:
            seg = np.zeros_like(raw)
            s = int(shift)
            if s < steps:
                seg[s:] = raw[: steps - s]
        else:  # per element
            rows = t[:, None] - shift.reshape(1, -1)  # (T, size)
            seg = raw[np.clip(rows, 0, None), :, np.arange(raw.shape[2])[None, :]]  # (T, size, B)
            seg = np.where((rows >= 0)[:, :, None], seg, 0.0).transpose(0, 2, 1)
        seg = seg.reshape(steps, batch, *readout.shape)
        scale = record_scale(plan, term.proc, term.var)
        if scale != 1.0:
            seg = seg * scale
        out += seg if term.factor is None else seg * term.factor
    if readout.bias is not None:
        out += readout.bias
    return out


@dataclass(frozen=True)
class RunSetup:
    """What every backend starts from: the plan (with state readouts), the bound inputs, their steps and batch, the
    readouts to return, and the neurons whose state is recorded."""

    plan: Plan
    state: list[str]
    inputs: dict[str, np.ndarray]
    steps: int
    batch: int
    readouts: dict[str, Readout]


def set_up_run(graph: Any, inputs: Mapping[str, Any], *, precision: str, dt: float | None, record: Any,
               record_state: str | Iterable[str] | None, convention: str | None, backend: str) -> RunSetup:
    """The run set-up of Lava and the emulator alike: load (or take) the plan, check the precision against it, add
    the state readouts, bind the inputs and choose the readouts.

    Raises:
        ValueError: an unknown precision, or a quantized plan run in float.
        InputBindingError: inputs that do not match the graph's Input nodes.
    """
    if precision not in ("float", "fixed"):
        raise ValueError(f"precision must be 'float' or 'fixed', found {precision!r}")
    plan = load_plan(graph, dt, record, convention)
    if plan.precision == "fixed" and precision != "fixed":
        raise ValueError(f"this plan is quantized (precision='fixed'); run it on {backend} with precision='fixed' or "
                         "pass the float plan")
    plan, state = with_state(plan, record_state)
    xs, steps, batch = bind_inputs(plan, inputs)
    return RunSetup(plan, state, xs, steps, batch, chosen_readouts(plan, record, state))

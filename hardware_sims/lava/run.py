"""Run a NIR graph on Lava's Loihi 2 simulation: `run_lava`.

Samples run back to back in one Lava run: sample b occupies Lava steps ``[b P, (b+1) P)`` with ``P = T +
max_latency`` (`Plan.steps_per_sample`); its inputs fill the first T steps, zeros the rest. No pause is needed
between samples: every stateful process resets itself at its live step within the sample (``LIFReset``, snnav's
``Delay``); a synapse's buffer holds one step and is overwritten. Only extension processes with a window are reset
with ``reset()``, for which the run pauses at their live step of every sample. Long batches run in chunks of
samples; inputs and records travel through memory-mapped files (`procs.memmap_io`), not Lava Vars.

Lava is always stopped: after the run, on any error, and on ``KeyboardInterrupt`` (then its processes are killed
at once rather than asked to finish). Its shared memory is released, its processes are joined, the memory-mapped
files are deleted, and the logging handlers Lava adds to the root logger for every process are removed. Exits the
run cannot see (``kill -9``, a crash) are covered by `hardware_sims.lava.guard`: Lava's processes die with snnav,
a watchdog removes the shared memory and files, and the next run cleans what even the watchdog could not.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import nir
import numpy as np

import hardware_sims  # noqa: F401  (lava compatibility fixes first)
from hardware_sims.fixed_point.prepare import prepare_fixed
from hardware_sims.lava.build import LavaNetwork, build_network
from hardware_sims.lava.guard import RunGuard, clean_stale_runs
from hardware_sims.plan.errors import LavaRunError
from hardware_sims.plan.plan import Plan, Readout
from hardware_sims.runs import RunResult, assemble_readout, set_up_run

__all__ = ["run_lava", "FILE_BUDGET_BYTES"]

logger = logging.getLogger(__name__)

FILE_BUDGET_BYTES = 256 * 2**20
"""Largest total size of the input and record files of one chunk of samples."""

STOP_TIMEOUT_S = 20.0
"""How long a graceful ``Runtime.stop()`` may take before Lava's processes are killed."""


# -------------------------------------------------------------------------------------------------- Lava


def _runtime_of(net: LavaNetwork | None) -> Any:
    if net is None:
        return None
    for proc in net.processes.values():
        if proc.runtime is not None:
            return proc.runtime
    return None


def _cleanup_info(runtime: Any) -> dict[str, Any]:
    infra = getattr(runtime, "_messaging_infrastructure", None)
    if infra is None:
        return {"pids": [], "shm_names": []}
    smm = getattr(infra, "smm", None)
    handles = getattr(smm, "_shared_memory_handles", []) if smm is not None else []
    return {"pids": [a.pid for a in infra.actors if a.pid is not None], "shm_names": [h.name for h in handles]}


def _shutdown(runtime: Any, interrupted: bool) -> None:
    """Stop Lava; on interrupt or if a graceful stop does not finish, kill its processes. Never raises."""
    if runtime is None:
        return
    infra = runtime._messaging_infrastructure
    if runtime._is_started and not interrupted:
        errors: list[BaseException] = []

        def stop() -> None:
            try:
                runtime.stop()
            except BaseException as exc:  # noqa: BLE001 - reported below, cleanup continues
                errors.append(exc)

        worker = threading.Thread(target=stop, name="lava-stop", daemon=True)
        worker.start()
        worker.join(STOP_TIMEOUT_S)
        if worker.is_alive() or errors:
            logger.warning("Lava did not stop cleanly (%s); killing its processes",
                           errors[0] if errors else f"no answer in {STOP_TIMEOUT_S} s")
    for actor in list(infra.actors):
        try:
            if actor._popen is not None and actor.is_alive():
                actor.kill()
            actor.join()
        except (ValueError, AssertionError, OSError):  # already joined and closed
            pass
    runtime._is_started = runtime._is_running = False
    smm = infra.smm
    if smm is not None:
        try:
            smm.shutdown()
        except Exception as exc:  # noqa: BLE001
            logger.warning("Lava's shared memory manager did not shut down: %s", exc)


def _run_steps(net: LavaNetwork, steps: int, cfg: Any) -> None:
    from lava.magma.core.run_conditions import RunSteps  # noqa: PLC0415  (lava: optional, heavy)

    if steps > 0:
        net.any_process().run(condition=RunSteps(num_steps=int(steps)), run_cfg=cfg)


def _run_chunk(net: LavaNetwork, n_samples: int, period: int, cfg: Any) -> None:
    if not net.resettable:
        _run_steps(net, n_samples * period, cfg)
        return
    phases = sorted({live for _, live in net.resettable})
    for _ in range(n_samples):
        done = 0
        for phase in phases:
            _run_steps(net, phase - done, cfg)
            done = phase
            for proc, live in net.resettable:
                if live == phase:
                    proc.reset()
        _run_steps(net, period - done, cfg)


def _fill_inputs(net: LavaNetwork, xs: dict[str, np.ndarray], b0: int, b1: int, period: int, steps: int) -> None:
    for name, (rows, _) in net.sources.items():
        rows[:] = 0
        for k, b in enumerate(range(b0, b1)):
            rows[k * period : k * period + steps] = xs[name][:, b]
        rows.flush()


def _assemble(readout: Readout, recs: dict, plan: Plan, n: int, period: int, steps: int) -> np.ndarray:
    """``[T, n, *shape]`` of one readout from the chunk's raw records ``[n * period, *proc_shape]`` (real units)."""

    def aligned(term) -> np.ndarray:  # rows latency .. latency + T - 1 of each sample (zeros past the period)
        raw = recs[(term.proc, term.var)].reshape(n, period, -1)[:, term.latency : term.latency + steps]
        if raw.shape[1] < steps:
            raw = np.concatenate([raw, np.zeros((n, steps - raw.shape[1], raw.shape[2]))], axis=1)
        return raw.swapaxes(0, 1)

    return assemble_readout(readout, plan, steps, n, aligned)


def run_lava(graph: nir.NIRGraph | Plan | str | os.PathLike, inputs: Mapping[str, Any] | Any, *,
             precision: str = "float", record: bool | str | Iterable[str] = True, dt: float | None = None,
             file_budget_bytes: int = FILE_BUDGET_BYTES, quant_options: Mapping[str, Any] | None = None,
             record_state: str | Iterable[str] | None = None, convention: str | None = None) -> RunResult:
    """Run a NIR graph (or a `Plan`) on Lava's ``Loihi2SimCfg``, samples back to back with state reset.

    Args:
        graph: a ``nir.NIRGraph``, a path to a ``.nir`` file (read with snnav's reader), or a `Plan`.
        inputs: Input node name -> ``[T, B, *shape]`` array (a bare array for a one-input graph).
        precision: "float" (``select_tag="floating_pt"``) or "fixed" (``"fixed_pt"``, quantized plan).
        record: True: every readable node (signal nodes, Outputs, wiring nodes that need no extra process);
            False: Outputs only; names: those nodes and the Outputs (a linear layer's output adds its synapses).
        dt: seconds per step; default the graph's ``metadata["dt"]``.
        file_budget_bytes: the largest input+record file size of one chunk of samples.
        quant_options: keyword arguments of ``hardware_sims.fixed_point.plan_quantizer.quantize_plan`` (fixed point, float plan).
        record_state: neuron node names whose state to record as well: ``records["<node>#v"]`` (membrane) and
            ``records["<node>#u"]`` (current), ``[T, B, *shape]`` aligned to NIR steps like the spikes (the value
            at the end of each step; real units, in fixed point exact multiples of ``2**-(12 + state_exp)``).
        convention: whose stepping the neurons follow: "nir" (None: NIR's, or a plan's own), "snntorch", "norse"
            or "auto" (`hardware_sims.plan.build_plan`); ``result.plan.convention`` says which ran.

    Returns:
        A `RunResult`.

    Raises:
        InputBindingError: an unbound or unknown input, wrong shapes, T not a multiple of a window.
        UnsupportedGraphError / LatencyError: from `build_plan`.
        LavaRunError: Lava failed while running (it has been stopped).
    """
    from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: PLC0415  (lava: optional, heavy)

    setup = set_up_run(graph, inputs, precision=precision, dt=dt, record=record, record_state=record_state,
                       convention=convention, backend="Lava")
    plan, xs, steps, batch, readouts = setup.plan, setup.inputs, setup.steps, setup.batch, setup.readouts
    fixed = None
    if precision == "fixed":
        plan, fixed, xs = prepare_fixed(plan, xs, **(quant_options or {}))
    period = plan.steps_per_sample(steps)
    wanted = {(t.proc, t.var) for r in readouts.values() for t in r.terms}
    row_bytes = 8 * sum(int(np.prod(plan.processes[p].shape)) for p, _ in wanted | {(n, "") for n in plan.inputs})
    chunk = max(1, min(batch, file_budget_bytes // max(1, row_bytes * period)))
    cfg = Loihi2SimCfg(select_tag="fixed_pt" if precision == "fixed" else "floating_pt")
    results = {n: np.zeros((steps, batch, *r.shape)) for n, r in readouts.items()}
    timing = {"build_s": 0.0, "compile_s": 0.0, "run_s": 0.0, "lava_steps": 0}
    root_handlers = list(logging.getLogger().handlers)
    stale = clean_stale_runs()
    if stale:
        logger.warning(stale)
    guard = RunGuard().__enter__()
    workdir = str(guard.workdir)
    net, runtime, interrupted, info = None, None, False, {}
    try:
        t0 = time.perf_counter()
        net = build_network(plan, period=period, n_rows=chunk * period, workdir=workdir, record=wanted, fixed=fixed)
        timing["build_s"] = time.perf_counter() - t0
        for b0 in range(0, batch, chunk):
            b1 = min(batch, b0 + chunk)
            _fill_inputs(net, xs, b0, b1, period, steps)
            if runtime is None:
                t0 = time.perf_counter()
                net.any_process().create_runtime(run_cfg=cfg)
                runtime = _runtime_of(net)
                info = _cleanup_info(runtime)
                timing["compile_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            try:
                _run_chunk(net, b1 - b0, period, cfg)
            except RuntimeError as exc:
                raise LavaRunError(f"Lava failed while running ({exc}); it has been stopped. The processes' "
                                   "tracebacks were logged by Lava") from exc
            timing["run_s"] += time.perf_counter() - t0
            timing["lava_steps"] += (b1 - b0) * period
            recs = {key: np.array(rows[: (b1 - b0) * period]) for key, (rows, _) in net.records.items()}
            for name, readout in readouts.items():
                results[name][:, b0:b1] = _assemble(readout, recs, plan, b1 - b0, period, steps)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if _main_thread() else None
        try:
            runtime = runtime or _runtime_of(net)
            info = info or _cleanup_info(runtime)
            _shutdown(runtime, interrupted)
        finally:
            if net is not None:
                for rows, _ in {id(v[0]): v for v in (*net.sources.values(), *net.records.values())}.values():
                    _close(rows)
            guard.release()
            root = logging.getLogger()
            for handler in root.handlers[:]:
                if handler not in root_handlers:
                    root.removeHandler(handler)
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
    timing["ms_per_step"] = 1e3 * timing["run_s"] / max(1, timing["lava_steps"])
    outputs = {n: results[n] for n in plan.outputs}
    step = plan.metadata.get("readout_step")
    return RunResult(outputs, results, dict(plan.node_latency), period, plan, timing,
                     None if step is None else int(step), {**info, "workdir": workdir}, backend="lava")


def _close(rows: np.ndarray) -> None:
    mapped = getattr(rows, "_mmap", None)
    if mapped is not None:
        try:
            mapped.close()
        except (BufferError, ValueError):  # a view is still alive; the file is removed anyway
            pass


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()

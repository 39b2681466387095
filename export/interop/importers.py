"""Interop: snnav's extension-free NIR graphs imported into snnTorch and Norse with their own importers.

``to_snntorch`` calls ``snntorch.import_nir.import_from_nir`` (snnTorch 1.0.0, built on ``nirtorch.nir_to_torch``)
and ``to_norse`` calls ``norse.torch.from_nir`` (Norse 1.1.0, built on the deprecated ``nirtorch.load``). Neither
importer is re-implemented here; this module only

* prepares a copy of the graph where a library needs it and the preparation does not change what the graph
  computes (snnTorch assumes dt = 1e-4 s, so every LIF's tau is rescaled to keep ``dt/tau``; Norse is given the
  graph's dt);
* optionally (``rewrite=True``) replaces two snnav nodes the importers cannot express by standard nodes that
  compute the same values bit for bit on the inputs they get in snnav graphs (`rewrite_equivalent`, in
  ``export.interop.limits``);
* refuses (``check=True``) graphs on which an importer would silently compute something else, naming every
  limit (`limits`), and reports which parts of a graph do import (`loadable_parts`, `interop_report`); these
  analyses live in ``export.interop.limits`` and ``export.interop.parts``; the package ``export.interop``
  re-exports every public name;
* steps the imported module over ``[T, B, ...]`` the way each library expects and records every neuron layer
  (`run_imported`).

Conventions that matter for spike identity (full table with the exact messages: ``export/interop/INTEROP.md``)::

    NIR/snnav LIF   v <- v + (dt/tau) ((v_leak - v) + r x);  z = v > th;  v <- v_reset where z     (same step)
    snnTorch Leaky  m <- beta m + x;  z = m - th' > 0;  m <- 0 where z   beta = 1 - 1e-4/tau,
                    th' = th / (r 1e-4/tau)  (import_from_nir: reset_mechanism="zero", reset_delay=False)
    Norse LIFBox    v <- v + (dt (1/tau)) ((x + v_leak) - v);  z = v - th > 0;  v <- (1 - z) v + z * 0

With tau = 2 dt, r = 1 (snnav) the snnTorch membrane is ``m = 2 v`` in exact arithmetic; in float32 the two
updates round differently (by at most a few ulp), so a spike can differ only when the membrane lies within a few
ulp of the threshold (minimal case in ``tests/export/test_interop_import.py``). Norse's update is the NIR update
bit for bit whenever ``dt * (1/tau)`` rounds to ``float32(dt/tau)`` (checked, `Imported.notes`).

Both importers build modules whose ``torch.nn.Flatten(start_dim, end_dim)`` takes NIR's per-sample dims as they
are, so they are correct only on unbatched inputs: `run_imported` steps one sample at a time.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from dataclasses import dataclass
from typing import Iterable

import nir
import numpy as np
import torch
from torch import Tensor

from export.interop.limits import SNNTORCH_DT_S, SPIKING_TYPES, InteropError, graph_dt, limits, rewrite_equivalent

__all__ = ["Imported", "ImportedRun", "InteropError", "run_imported", "to_norse", "to_snntorch"]

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class Imported:
    """A module built by a library's own importer, with the prepared graph it was built from.

    Attributes:
        library: "snntorch" or "norse".
        module: snnTorch: a ``torch.fx.GraphModule`` (``out, state = m(x, state)``; neurons keep their membrane
            in the module, ``init_hidden=True``); Norse: a nirtorch ``GraphExecutor`` (``out, state = m(x, state)``).
        graph: the prepared graph given to the importer (a copy; the importer received its own copy).
        notes: what the preparation changed and what the importer reported (its prints and log lines).
    """

    library: str
    module: torch.nn.Module
    graph: nir.NIRGraph
    notes: tuple[str, ...] = ()

    @property
    def neurons(self) -> tuple[str, ...]:
        """Names of the spiking nodes (LIF/IF/CubaLIF, and Threshold before a rewrite) of the prepared graph."""
        return tuple(n for n, node in self.graph.nodes.items() if isinstance(node, SPIKING_TYPES))


@dataclass(frozen=True)
class ImportedRun:
    """Result of `run_imported`: the module's output and the recorded node outputs, all ``[T, B, ...]``."""

    output: Tensor
    records: dict[str, Tensor]


def _prepare(graph: nir.NIRGraph, library: str, rewrite: bool, check: bool) -> tuple[nir.NIRGraph, list[str]]:
    graph_dt(graph)  # fail early, with what to do, on a graph without dt

    notes: list[str] = []
    if rewrite:
        graph, done = rewrite_equivalent(graph)
        notes += [f"rewrite {n}: {what}" for n, what in done.items()]
    else:
        graph = copy.deepcopy(graph)
    if check:
        found = limits(graph, library)
        if found:
            raise InteropError(f"{library} cannot import this graph faithfully ({len(found)} limit(s)):\n  "
                               + "\n  ".join(str(lim) for lim in found)
                               + "\nImport a part of it (export.interop.loadable_parts / subgraph), or pass "
                               "rewrite=True where a limit is a SumPool2d or Threshold over spikes.")
    return graph, notes


def _snntorch_time(graph: nir.NIRGraph, dt: float) -> list[str]:
    """Rescale every LIF/CubaLIF tau in place so that snnTorch's hard-coded dt = 1e-4 sees the graph's dt/tau.

    Only ``dt/tau`` enters NIR's Euler step, so this changes nothing the graph computes. r and w_in stay: the
    importer's checks ``r = tau_mem/dt'`` and gains ``r dt'/tau``, ``w_in dt'/tau_syn`` see the same ratios.
    """
    notes = []
    for name, node in graph.nodes.items():
        fields = ("tau",) if isinstance(node, nir.LIF) else ("tau_syn", "tau_mem") if isinstance(node, nir.CubaLIF) \
            else ()
        for f in fields:
            tau = np.asarray(getattr(node, f), dtype=np.float64)
            setattr(node, f, SNNTORCH_DT_S * (tau / dt))  # tau/dt first: exact 2.0 for snnav's tau = 2 dt
        if fields:
            notes.append(f"{name}: {', '.join(fields)} scaled by {SNNTORCH_DT_S}/{dt} (snnTorch assumes dt=1e-4)")
    return notes


class _Keep(logging.Handler):
    """Collects the log records emitted while an importer runs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _drop(record: logging.LogRecord) -> bool:
    return False


@contextlib.contextmanager
def _captured(notes: list[str]):
    """Put the importers' prints (snnTorch), root-logger warnings (Norse; importing norse installs a stderr
    handler on the root logger) and Python warnings into ``notes`` instead of on the console."""
    root, keep = logging.getLogger(), _Keep()
    others = list(root.handlers)
    root.addHandler(keep)
    for h in others:
        h.addFilter(_drop)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        root.removeHandler(keep)
        for h in others:
            h.removeFilter(_drop)
    lines = [line.strip() for line in out.getvalue().splitlines() if line.strip()]
    if lines:
        notes.append("printed: " + " | ".join(lines[:3]) + (" ..." if len(lines) > 3 else ""))
    notes += [f"logged: {r.getMessage().splitlines()[0]}" for r in keep.records]
    notes += [f"warned: {w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught]


def to_snntorch(graph: nir.NIRGraph, *, rewrite: bool = False, check: bool = True) -> Imported:
    """Import ``graph`` with ``snntorch.import_nir.import_from_nir`` after rescaling tau for its dt = 1e-4.

    Args:
        graph: an snnav graph with ``metadata["dt"]``; never modified.
        rewrite: apply `rewrite_equivalent` first (SumPool2d/Threshold over spikes).
        check: raise `InteropError` listing every `limits` entry instead of importing a graph that would compute
            something else; ``check=False`` hands the graph to the importer anyway (its own error propagates).
    """
    from snntorch.import_nir import import_from_nir  # noqa: PLC0415 - optional dependency, imported on use

    prepared, notes = _prepare(graph, "snntorch", rewrite, check)
    notes += _snntorch_time(prepared, graph_dt(graph))
    with _captured(notes):
        module = import_from_nir(copy.deepcopy(prepared))  # it rewrites the graph it is given (RNN subgraphs)
    logger.debug("snntorch import notes: %s", notes)
    return Imported("snntorch", module, prepared, tuple(notes))


def to_norse(graph: nir.NIRGraph, *, rewrite: bool = False, check: bool = True) -> Imported:
    """Import ``graph`` with ``norse.torch.from_nir(graph, dt=graph.metadata["dt"])``.

    Arguments as `to_snntorch`. A note records whether Norse's coefficient ``dt * (1/tau)`` (float32) equals
    ``float32(dt/tau)``, the value NIR's forward Euler uses.
    """
    import norse.torch as norse_torch  # noqa: PLC0415 - optional dependency, imported on use

    prepared, notes = _prepare(graph, "norse", rewrite, check)
    dt = graph_dt(graph)
    for name, node in prepared.nodes.items():
        if isinstance(node, nir.LIF):
            norse_c = dt * (1 / torch.from_numpy(np.asarray(node.tau)).float())
            nir_c = torch.from_numpy(dt / np.asarray(node.tau, dtype=np.float64)).float()
            if not torch.equal(norse_c, nir_c):
                notes.append(f"{name}: Norse's dt*(1/tau) differs from float32(dt/tau) by "
                             f"{(norse_c - nir_c).abs().max().item():.3g}")
    with _captured(notes):
        module = norse_torch.from_nir(copy.deepcopy(prepared), dt=dt)
    logger.debug("norse import notes: %s", notes)
    return Imported("norse", module, prepared, tuple(notes))

# ------------------------------------------------------------------------------------------------ running
def _submodule(module: torch.nn.Module, name: str) -> torch.nn.Module:
    for candidate in (name.replace(".", "_"), "nir_node_" + name):  # nirtorch's name sanitising
        try:
            return module.get_submodule(candidate)
        except AttributeError:
            continue
    raise KeyError(f"no module for node {name!r} in the imported {type(module).__name__}")


def _has_submodule(module: torch.nn.Module, name: str) -> bool:
    try:
        _submodule(module, name)
    except KeyError:
        return False
    return True


def _reset_hidden(module: torch.nn.Module) -> None:
    """Zero snnTorch's in-module membranes (``init_hidden=True``) before a new sample."""
    for m in module.modules():
        if getattr(m, "init_hidden", False) and hasattr(m, "reset_mem"):
            m.reset_mem()


def run_imported(imported: Imported | torch.nn.Module, inputs: Tensor | dict[str, Tensor], *,
                 record: Iterable[str] | None = None, per_sample: bool = True) -> ImportedRun:
    """Step an imported module over ``inputs`` ``[T, B, *shape]`` and record node outputs.

    Each sample starts from the library's initial state (snnTorch: membranes zeroed with ``reset_mem``; both:
    ``state=None``) and runs ``out, state = module(x[t], state)`` for t = 0..T-1, threading the state.

    Args:
        imported: from `to_snntorch` / `to_norse`, or a module an importer returned (then nothing is recorded
            unless ``record`` names nodes, and the Flatten check below is skipped).
        inputs: one tensor, or a dict with the single Input's name.
        record: node names whose module outputs to record (default: the `Imported.neurons` that have a module);
            a neuron's output is its spikes (Norse's ``(z, state)`` is reduced to z).
        per_sample: feed one unbatched sample at a time. The importers pass NIR's per-sample Flatten dims to
            ``torch.nn.Flatten`` unchanged, so a batched input is flattened along the wrong axes; batched
            stepping is refused for graphs with a Flatten.
    """
    if not isinstance(imported, Imported):
        imported = Imported("unknown", imported, nir.NIRGraph(nodes={}, edges=[], type_check=False))
    if isinstance(inputs, dict):
        if len(inputs) != 1:
            raise ValueError(f"both importers take one input tensor; got inputs {sorted(inputs)}")
        inputs = next(iter(inputs.values()))
    if inputs.dim() < 2:
        raise ValueError(f"inputs must be [T, B, ...], got shape {tuple(inputs.shape)}")
    if not per_sample and any(isinstance(n, nir.Flatten) for n in imported.graph.nodes.values()):
        raise ValueError("the graph has a Flatten, which the imported module applies with NIR's per-sample dims: "
                         "step it with per_sample=True")
    if record is None:  # a neuron an importer dropped (Norse, check=False) has no module to record
        names = tuple(n for n in imported.neurons if _has_submodule(imported.module, n))
    else:
        names = tuple(record)
    current: dict[str, Tensor] = {}
    hooks = []
    for name in names:
        def keep(_m, _inp, out, name=name):
            current[name] = (out[0] if isinstance(out, tuple) else out).detach().clone()
        hooks.append(_submodule(imported.module, name).register_forward_hook(keep))
    steps, batch = inputs.shape[0], inputs.shape[1]
    outs: list[list[Tensor]] = []
    recs: dict[str, list[list[Tensor]]] = {n: [] for n in names}
    try:
        with torch.no_grad():
            for xs in (inputs[:, b] for b in range(batch)) if per_sample else (inputs,):
                _reset_hidden(imported.module)
                state = None
                seq, rec_seq = [], {n: [] for n in names}
                for t in range(steps):
                    current.clear()
                    out, state = imported.module(xs[t], state)[:2]
                    seq.append(out.detach().clone())
                    for n in names:
                        rec_seq[n].append(current[n])
                outs.append(seq)
                for n in names:
                    recs[n].append(rec_seq[n])
    finally:
        for h in hooks:
            h.remove()

    def stack(per: list[list[Tensor]]) -> Tensor:
        if not per_sample:
            return torch.stack(per[0])  # [T, B, ...]
        return torch.stack([torch.stack(s) for s in per], dim=1)  # [T, B, ...]

    return ImportedRun(stack(outs), {n: stack(recs[n]) for n in names})

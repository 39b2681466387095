"""Which library's stepping a graph was exported for: `detect_convention` and `resolve_convention`.

A convention (``"nir"``, ``"snntorch"``, ``"norse"``) says how the producing library steps the same NIR parameters
(`hardware_sims.plan.neurons`, and the interpreter's ``export/interpreter/neurons.py``). Third-party exports carry
no producer in their metadata (snnTorch 1.0.0 and Norse 1.1.0 write ``metadata = {}``), so `detect_convention`
reads, in order:

1. ``metadata["convention"]`` (or ``"producer"``) when a writer put one there;
2. ``metadata["dt"]`` present: a graph written with its dt (snnav's exporter does): NIR's convention;
3. the parameters as each library's exporter writes them: snnTorch's ``r = tau/1e-4`` (LIF), ``w_in = tau_syn/1e-4``
   and ``r = tau_mem/1e-4`` (CubaLIF) on every neuron; Norse's ``LIFCell`` as ``CubaLIF`` with ``w_in = r = 1``;
4. otherwise NIR's.

It only names a convention; whether the hardware can run it is `hardware_sims.plan.neurons`' business.
"""

from __future__ import annotations

from typing import Any

import nir
import numpy as np

from hardware_sims.plan.errors import ConventionError
from hardware_sims.plan.neurons import CONVENTIONS

__all__ = ["detect_convention", "resolve_convention", "CHOICES"]

CHOICES: tuple[str, ...] = (*CONVENTIONS, "auto")
_SNNTORCH_DT = 1e-4


def _nodes(graph: nir.NIRGraph):
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            yield from _nodes(node)
        else:
            yield name, node


def _f64(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _ratio_is_one(gain: Any, tau: Any) -> bool:
    g, t = _f64(gain), _f64(tau)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = g * _SNNTORCH_DT / t
    return bool(np.all((np.isinf(g) & np.isinf(t)) | np.isclose(ratio, 1.0, rtol=1e-4, atol=0.0)))


def detect_convention(graph: nir.NIRGraph) -> tuple[str, str]:
    """``(convention, why)`` for `graph` (module docstring); never raises on odd parameters."""
    meta = graph.metadata if isinstance(graph.metadata, dict) else {}
    for key in ("convention", "producer"):
        value = str(meta.get(key, "")).lower()
        if value in CONVENTIONS:
            return value, f"graph metadata[{key!r}] = {value!r}"
    if meta.get("dt") is not None:
        return "nir", f"the graph carries metadata['dt'] = {meta['dt']} (a NIR-convention writer such as snnav)"
    neurons = [(n, node) for n, node in _nodes(graph) if isinstance(node, (nir.LIF, nir.CubaLIF))]
    if not neurons:
        return "nir", "no LIF or CubaLIF node whose stepping differs between libraries"
    try:
        snntorch = all(
            _ratio_is_one(node.r, node.tau) if isinstance(node, nir.LIF)
            else _ratio_is_one(node.w_in, node.tau_syn) and _ratio_is_one(node.r, node.tau_mem)
            for _, node in neurons)
        cubas = [node for _, node in neurons if isinstance(node, nir.CubaLIF)]
        norse = bool(cubas) and all(np.all(_f64(c.w_in) == 1) and np.all(_f64(c.r) == 1) for c in cubas)
    except (TypeError, ValueError):
        return "nir", "neuron parameters could not be read as numbers"
    if snntorch:
        return "snntorch", ("every neuron has r = tau/1e-4 (and w_in = tau_syn/1e-4) as snnTorch's exporter writes "
                            "(no producer in the metadata)")
    if norse:
        return "norse", ("every CubaLIF has w_in = r = 1 as Norse's exporter writes LIFCell (no producer in the "
                         "metadata)")
    return "nir", "no producer in the metadata and no library's parameter pattern"


def resolve_convention(graph: nir.NIRGraph, convention: str | None) -> tuple[str, str]:
    """``(convention, note)``: the caller's choice as given, or the detected one for ``"auto"``.

    Raises:
        ConventionError: an unknown convention.
    """
    convention = "nir" if convention is None else str(convention)
    if convention not in CHOICES:
        raise ConventionError(f"unknown convention {convention!r}; expected one of {list(CHOICES)}")
    if convention == "auto":
        found, why = detect_convention(graph)
        return found, f"detected {found!r}: {why}"
    return convention, f"{convention!r} as asked"

"""The mapping table ``NIR type -> role`` of the Lava backend, and the hook for snnav's extension nodes.

Every NIR node plays one role in the lowering (`hardware_sims.plan.lowering`):

=========  =================================================  ================================================
role       NIR types                                          Lava
=========  =================================================  ================================================
input      top-level ``Input``                                ``io.source.RingBuffer`` (graded values)
output     top-level ``Output``                               read from the processes that compute it
identity   ``Identity``, ``Input``/``Output`` of a subgraph   none (a wire)
flatten    ``Flatten``                                        none (a reshape of the port)
scale      ``Scale``                                          none (folded into the consuming synapse)
delay      ``Delay``                                          none of its own: merged into the alignment delay
linear     ``Affine``, ``Linear``, ``Conv1d``, ``Conv2d``,    ``Dense`` / ``Sparse`` / ``Conv``, one per source
           ``SumPool2d``, ``AvgPool2d``                       path (latency 1)
neuron     ``LIF``, ``IF``, ``LI``, ``I``, ``Threshold``,     ``LIFReset`` (latency 0)
           ``CubaLIF``, ``CubaLI``
extension  snnav's extension nodes with a registered builder  the builder's process (latency 0 or its window)
=========  =================================================  ================================================

Extension nodes are built by type name (``hardware_sims.lava.build.extension_builder``) -- by default from
``hardware_sims.lava.procs.builders.EXTENSION_BUILDERS`` (``type_name -> builder(node, name, **fixed) ->
ExtensionBuild(process, in_ports, out_port, latency)``), imported only when a graph has an extension node.
`register_extension` adds or overrides one (tests, third-party processes). A builder's process must take its
inputs on InPorts named like the node's ports and send on ``s_out``; if its latency is nonzero it must offer
``reset()`` (called while the run is paused at the step where the first input of a sample arrives).

snnav's own extension types are also known without Lava (`extension_semantics`,
``hardware_sims.extensions.semantics``): planning, quantizing and emulating a graph with them imports no Lava; only
building the Lava processes does. A type overridden with `register_extension` has no Lava-free semantics.
"""

from __future__ import annotations

from typing import Any, Callable

import nir

from export.ir.extensions import is_extension
from hardware_sims.extensions.semantics import SEMANTICS
from hardware_sims.plan.neurons import NEURON_TYPES

__all__ = ["ROLES", "SUPPORTED", "role_of", "register_extension", "registered_builder",
           "extension_semantics", "known_extensions"]

LINEAR_TYPES: tuple[type, ...] = (nir.Affine, nir.Linear, nir.Conv1d, nir.Conv2d, nir.SumPool2d, nir.AvgPool2d)

ROLES: dict[type, str] = {
    nir.Flatten: "flatten",
    nir.Scale: "scale",
    nir.Delay: "delay",
    nir.ir.graph.Identity: "identity",
    **{cls: "linear" for cls in LINEAR_TYPES},
    **{cls: "neuron" for cls in NEURON_TYPES},
}

SUPPORTED: tuple[str, ...] = ("Input", "Output", *(cls.__name__ for cls in ROLES))
"""Names of the standard NIR types the backend maps (extension nodes: see `register_extension`)."""

_EXTRA_EXTENSIONS: dict[str, Callable[..., Any]] = {}


def register_extension(type_name: str, builder: Callable[..., Any] | None) -> None:
    """Register (or replace) the Lava builder of an extension node type, e.g. ``"snnav.Gate"``.

    Args:
        type_name: the extension's ``type_name``.
        builder: ``builder(node, name, **fixed) -> ExtensionBuild`` (see the module docstring); None removes an
            earlier registration.
    """
    if builder is None:
        _EXTRA_EXTENSIONS.pop(type_name, None)
    else:
        _EXTRA_EXTENSIONS[type_name] = builder


def registered_builder(node: Any) -> Callable[..., Any] | None:
    """The builder registered with `register_extension` for an extension node's type, or None (snnav's own types are
    built by ``hardware_sims.lava.build.extension_builder`` from ``hardware_sims.lava.procs.builders``)."""
    return _EXTRA_EXTENSIONS.get(getattr(node, "type_name", None))


def extension_semantics(node: Any, name: str | None = None, **fixed: Any) -> Any:
    """The Lava-free `ExtensionSemantics` of one of snnav's extension nodes (``extensions.semantics``), or None for
    a type registered with `register_extension` (its Lava builder is the only description) or unknown."""

    type_name = getattr(node, "type_name", None)
    if type_name in _EXTRA_EXTENSIONS or type_name not in SEMANTICS:
        return None
    return SEMANTICS[type_name](node, name=name, **fixed)


def known_extensions() -> list[str]:
    """Type names of every extension node the backend maps (snnav's, whether or not Lava is installed, and the
    registered ones)."""

    return sorted({*SEMANTICS, *_EXTRA_EXTENSIONS})


def _is_known_extension(node: Any) -> bool:

    type_name = getattr(node, "type_name", None)
    return type_name in _EXTRA_EXTENSIONS or type_name in SEMANTICS


def role_of(name: str, node: Any, top_inputs: tuple[str, ...], top_outputs: tuple[str, ...]) -> str | None:
    """The role of a flattened node (module table), or None if the backend does not map its type."""
    if isinstance(node, nir.Input):
        return "input" if name in top_inputs else "identity"
    if isinstance(node, nir.Output):
        return "output" if name in top_outputs else "identity"
    if is_extension(node):
        return "extension" if _is_known_extension(node) else None
    for cls in type(node).__mro__:
        if cls in ROLES:
            return ROLES[cls]
    return None

"""NIR graph -> `Plan`, without Lava: the compiler IR every backend (Lava, the emulator), the quantizer, the counts
and the netx writer read.

* `build_plan` (`lowering`, with `exprs` and `materialize`): lower a graph into a `Plan` -- processes, folded
  weights, latencies, inserted delays, readouts -- plain numpy data (`plan`).
* node types: standard NIR nodes map through `linear` (synapses) and `neurons` (neuron parameters); `registry`
  says each node type's role and holds the ``type name -> builder`` table of snnav's extension nodes
  (`register_extension`).
* `errors`: what lowering and running a plan raise.

The timing model, the node mapping and where Lava differs from NIR are in ``SEMANTICS.md`` in this folder. This
package imports nir, numpy, scipy and ``export``'s torch-free IR, never Lava.
"""

from hardware_sims.plan.errors import (
    InputBindingError,
    LatencyError,
    LavaBackendError,
    LavaRunError,
    UnsupportedGraphError,
)
from hardware_sims.plan.lowering import build_plan
from hardware_sims.plan.plan import Connection, Plan, ProcessSpec, Readout, ReadTerm
from hardware_sims.plan.registry import SUPPORTED, register_extension

__all__ = [
    "build_plan",
    "Plan",
    "ProcessSpec",
    "Connection",
    "Readout",
    "ReadTerm",
    "register_extension",
    "SUPPORTED",
    "LavaBackendError",
    "UnsupportedGraphError",
    "LatencyError",
    "InputBindingError",
    "LavaRunError",
]

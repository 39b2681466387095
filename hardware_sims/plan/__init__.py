"""NIR graph -> Lava processes on ``Loihi2SimCfg``: the snnav Lava backend.

* `build_plan` (`plan`, no Lava): lower a graph into a `Plan` -- processes, folded weights, latencies, inserted
  delays, readouts -- plain numpy data shared with the quantizer and the emulator.
* `run_lava` (`run`): build the plan's processes, run samples back to back, return a `LavaResult` aligned to NIR
  steps.
* `register_extension` (`registry`): the ``type name -> builder`` table for extension node processes.

The timing model, the node mapping and where Lava differs from NIR are in ``SEMANTICS.md`` in this folder. This
package imports only nir, numpy, scipy, Lava and ``export``'s torch-free modules; `run` and `build` import Lava,
`plan` does not.
"""

from hardware_sims.lava_backend.errors import (
    InputBindingError,
    LatencyError,
    LavaBackendError,
    LavaRunError,
    UnsupportedGraphError,
)
from hardware_sims.lava_backend.plan import Connection, Plan, ProcessSpec, Readout, ReadTerm, build_plan
from hardware_sims.lava_backend.registry import SUPPORTED, register_extension

__all__ = [
    "build_plan",
    "run_lava",
    "LavaResult",
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


def __getattr__(name: str):
    if name in ("run_lava", "LavaResult"):  # imports Lava: only on use
        from hardware_sims.lava_backend import run  # noqa: PLC0415

        return getattr(run, name)
    raise AttributeError(name)

"""Facts measured from a run: spikes, synaptic events, dense MACs, neuron updates and extension operations.

* `count_activity(result, graph)` (`activity`): per node and sample, from a `RunResult` of ``run_lava`` or
  ``emulate`` run with ``record=True``; identical for both backends on the same run.
* `ActivityCounts` (`record`): the frozen result, JSON ``snnav.activity-counts`` v1 (`to_dict`/`from_dict`),
  `merge` for chunks of a test set; NeuroBench's figures included.
* `spike_raster(result, sample)`: ``(step, neuron)`` pairs per node for a raster plot.
* `restrict_run(result, steps, samples)`: a run seen through its first steps and some samples; `ActivityCounter`
  counts such prefixes (``steps=``) and gives counts per sample (`ActivityCounter.by_sample`).

Definitions (what counts as an event, an active update, an AC or a MAC, per extension node): ``hardware_sims/
COUNTS.md``. Energy from counts: `hardware_sims.cost.energy`.
"""

from hardware_sims.counts.activity import (
    COUNTED_SYNAPSE_ROLES,
    ActivityCounter,
    MissingRecordError,
    count_activity,
    restrict_run,
    spike_raster,
)
from hardware_sims.counts.extensions import EXTENSION_COUNTERS, extension_ops, register_extension_counter
from hardware_sims.counts.record import (
    COUNT_FIELDS,
    NODE_FIELDS,
    ActivityCounts,
    NeuroBenchCounts,
    NodeCounts,
    RunInfo,
    merge_all,
)

__all__ = [
    "count_activity",
    "ActivityCounter",
    "spike_raster",
    "restrict_run",
    "ActivityCounts",
    "NodeCounts",
    "RunInfo",
    "NeuroBenchCounts",
    "merge_all",
    "COUNT_FIELDS",
    "NODE_FIELDS",
    "COUNTED_SYNAPSE_ROLES",
    "MissingRecordError",
    "EXTENSION_COUNTERS",
    "extension_ops",
    "register_extension_counter",
]

"""Custom Lava processes for snnav's NIR extension nodes (``export/EXTENSIONS.md``), float and bit-accurate fixed point.

One process per extension node, InPorts named like the node's ports, one graded OutPort ``s_out``:

==========================  ===================================  =========  =========================================
process                     node                                 latency    state Vars (reset with ``Var.set``)
==========================  ===================================  =========  =========================================
SpikeAttentionProcess       snnav.SpikeAttention                 0 / W      time axis: steps_seen, q/k/v_buf, out_buf
AttentionScoresProcess      snnav.AttentionScores                0          none
AttentionApplyProcess       snnav.AttentionApply                 0          none
ComplementaryFusionProcess  snnav.ComplementaryFusion            W          steps_seen, spatial/temporal_buf, out_buf
GateProcess                 snnav.Gate                           0          none
==========================  ===================================  =========  =========================================

Models: ``@tag("floating_pt")`` (float64) and ``@tag("fixed_pt", "bit_accurate_loihi")`` (int64 accumulators,
24-bit saturated graded outputs, formats in :mod:`hardware_sims.lava_procs.fixed`). The compiler uses
:data:`EXTENSION_BUILDERS` (type name -> builder). The arithmetic lives in :mod:`hardware_sims.lava_procs.kernels`
(pure numpy). See ``README.md`` in this folder.
"""

from hardware_sims.lava_procs.attention_apply import AttentionApplyProcess
from hardware_sims.lava_procs.attention_scores import AttentionScoresProcess
from hardware_sims.lava_procs.base import ExtensionProcess
from hardware_sims.lava_procs.builders import EXTENSION_BUILDERS, PROCESS_CLASSES, ExtensionBuild, build_extension
from hardware_sims.lava_procs.complementary_fusion import ComplementaryFusionProcess
from hardware_sims.lava_procs.fixed import OUT_BITS, SPIKE, FixedPlan, PortFormat, graded
from hardware_sims.lava_procs.gate import GateProcess
from hardware_sims.lava_procs.spike_attention import SpikeAttentionProcess

__all__ = [
    "EXTENSION_BUILDERS",
    "PROCESS_CLASSES",
    "ExtensionBuild",
    "build_extension",
    "ExtensionProcess",
    "SpikeAttentionProcess",
    "AttentionScoresProcess",
    "AttentionApplyProcess",
    "ComplementaryFusionProcess",
    "GateProcess",
    "PortFormat",
    "SPIKE",
    "graded",
    "OUT_BITS",
    "FixedPlan",
]

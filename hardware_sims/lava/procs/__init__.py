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
(pure numpy), the processes' parameters and ``evaluate`` functions in :mod:`hardware_sims.lava_procs.semantics` (no
Lava: the batched emulator uses them on machines without Lava). See ``README.md`` in this folder.

Importing this package imports no Lava: the process classes and the builder table are loaded on first access
(``hardware_sims.lava_procs.SpikeAttentionProcess``), so ``fixed``, ``kernels`` and ``semantics`` work without Lava.
"""

from hardware_sims.lava_procs.fixed import OUT_BITS, SPIKE, FixedPlan, PortFormat, graded

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

_LAZY = {
    "AttentionApplyProcess": "attention_apply",
    "AttentionScoresProcess": "attention_scores",
    "ExtensionProcess": "base",
    "EXTENSION_BUILDERS": "builders",
    "PROCESS_CLASSES": "builders",
    "ExtensionBuild": "builders",
    "build_extension": "builders",
    "ComplementaryFusionProcess": "complementary_fusion",
    "GateProcess": "gate",
    "SpikeAttentionProcess": "spike_attention",
}


def __getattr__(name: str):
    if name in _LAZY:  # imports Lava: only on use
        import importlib  # noqa: PLC0415

        return getattr(importlib.import_module(f"hardware_sims.lava_procs.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'hardware_sims.lava_procs' has no attribute {name!r}")

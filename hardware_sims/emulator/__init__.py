"""A batched emulator of the Lava backend's compiled semantics (fixed and floating point), without Lava's runtime.

`emulate(graph_or_plan, inputs, precision="fixed" | "float", record=...)` runs the same `Plan`
(`hardware_sims.plan.build_plan`), quantized by the same call (`hardware_sims.fixed_point.prepare.
prepare_fixed`), with the same latency alignment and the same extension processes' code, and returns a
`hardware_sims.runs.RunResult` aligned like `run_lava`'s -- for all samples of a batch at once, in
vectorised numpy. Fixed point reproduces Lava's bit-accurate models bit for bit (`arith`: int32 channels, 24-bit
``u`` wrap, ``v`` saturation, decays rounding toward zero, the Conv's 24-bit wrap); float reproduces Lava's float
models' operations (sums may associate differently: last-bit differences).

Modules: `engine` (`emulate`, the step schedule, the optional per-kind profile), `procs` (input, synapse, neuron,
delay), `extensions` (extension processes through the ``evaluate`` functions their Lava models call), `arith` (the
fixed-point arithmetic), `torch_procs` (the same processes on torch tensors: ``emulate(..., device="cuda")``).

Importing this package, and emulating a graph made of standard NIR nodes and snnav's extension nodes, imports no
Lava (the path a GPU machine without Lava takes); torch is imported only for ``device=...``.
"""

from hardware_sims.emulator.engine import DEFAULT_BATCH, Network, emulate, with_membrane_readouts

__all__ = ["emulate", "with_membrane_readouts", "Network", "DEFAULT_BATCH"]

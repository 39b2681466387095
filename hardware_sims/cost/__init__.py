"""What a network costs: energy from counted activity, the mapping onto a chip, time, energy with data movement and
static power, and the GPU side. Torch-free (numpy only); import the modules directly (this file imports nothing).

* ``energy``: per-operation cost models (``models/*.json``: Loihi 1 per-op figures, Horowitz 45 nm) applied to
  `hardware_sims.counts` records (the report's conventions).
* ``chip``: chip descriptions (``chips/*.json``): every figure with unit, source and status; `load_chip`.
* ``mapping``: `map_plan` places a compiled plan (or a NIR graph) onto a chip's cores: cores per layer, chips,
  utilisation, violated constraints, extension nodes without a neurocore primitive.
* ``chip_cost``: `chip_cost` -- per-step latency, time per inference, throughput, dynamic energy (operations incl.
  the memory traffic inside them, routing hops) and static energy, with lower/upper bounds.
* ``gpu``: the same network as a dense workload (FLOPs, bytes, kernels) on a roofline with launch overhead;
  GPU descriptions (``gpus/*.json``); calibration from NVML measurement files; prediction.
* ``dense45``: a 45 nm dense accelerator with memory traffic (Horowitz 2014 figures, Lemaire et al. 2022 model).
* ``headline``: `headline_rows` -- one row per target with everything the report's headline table needs.
"""

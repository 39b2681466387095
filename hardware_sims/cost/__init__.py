"""Cost models: energy (and later other costs) from counted activity.

* `energy`: a cost model (energy per operation) applied to `hardware_sims.counts` records; the built-in models are
  the JSON files in ``models/``.
"""

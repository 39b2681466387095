"""The Lava backend: a `Plan` (``hardware_sims.plan``) as Lava processes on ``Loihi2SimCfg``.

* `compat`: fixes that let Lava import on Python >= 3.11 (applied by ``import hardware_sims``);
* `check`: a one-neuron smoke run of the installed Lava (``snnav info``);
* `layout`: the only (C, H, W) <-> (X, Y, C) conversion;
* `build`: plan -> Lava processes and connections; `run`: ``run_lava``, samples back to back;
* `procs/`: every Lava process snnav defines (memory-mapped I/O, ``Delay``, one per extension node).

This ``__init__`` imports nothing: ``hardware_sims.lava.compat`` is imported before Lava is, and Lava itself is
imported only inside the functions that build or run processes (it is optional and heavy).
"""

"""The semantics of snnav's extension nodes (``export/EXTENSIONS.md``), shared by their Lava processes
(``hardware_sims.lava.procs``) and the emulator, without Lava.

* `kernels`: the arithmetic (pure numpy), float and fixed point, and the window stepping;
* `ports`: the fixed-point formats of the graded messages between extension ports and their dyadic requantization;
* `semantics`: per node type, the process parameters, port shapes, window and ``evaluate`` functions.

A new extension node type: its semantics here, its Lava process in ``hardware_sims/lava/procs/``, its role in
``hardware_sims.plan.registry``. See ``README.md`` in this folder.
"""

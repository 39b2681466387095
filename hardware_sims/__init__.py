"""Everything that consumes a NIR graph, one folder per concept:

* ``plan/``: NIR graph -> `Plan`, the compiler IR, without Lava (a new standard node type goes here);
* ``extensions/``: the semantics of snnav's extension nodes, shared by the Lava processes and the emulator;
* ``fixed_point/``: Loihi formats, reference arithmetic and the quantizers;
* ``runs.py``: the run set-up and the result record every backend shares;
* ``lava/``: the Lava backend (compatibility fixes, build, run, all Lava processes in ``lava/procs/``);
* ``emulator/``: the batched, bit-exact emulator of the Lava backend (a new backend goes beside these two);
* ``netx/``: lava-dl netx ``.net`` files (limits, writing, reading, running);
* ``counts/``: activity counts per node and sample;
* ``cost/``: cost models over the counts (energy; a new cost model goes here).

This package never imports ``snnav`` models or training code. Importing it installs the lava compatibility fixes
(:mod:`hardware_sims.lava.compat`) so that any later ``import lava...`` works on Python >= 3.11.
"""

from hardware_sims.lava import compat as _lava_compat

_lava_compat.apply()

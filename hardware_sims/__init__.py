"""Everything that consumes a NIR graph: the Lava backend, the Loihi quantizer, the emulator, counts and cost models.

This package never imports ``snnav`` models or training code. Importing it installs the lava compatibility fixes
(:mod:`hardware_sims.lava_compat`) so that any later ``import lava...`` works on Python >= 3.11.
"""

from hardware_sims import lava_compat as _lava_compat

_lava_compat.apply()

"""Puts the shared test helpers on ``sys.path``: ``lava_graphs`` (this folder) and ``test_emulator``
(``emulator/``, whose cases other tests reuse), so every test file imports them however it is run."""

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _folder in (_HERE, _HERE / "emulator"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

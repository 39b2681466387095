"""``python -m snnav`` is the same as the ``snnav`` command."""

import sys

from snnav.app.cli import main

sys.exit(main())

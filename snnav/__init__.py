"""snnav: train spiking audio-visual models, export them to NIR, run them on Loihi-style simulators, report cost."""

from snnav._version import __version__
from snnav.errors import SnnavError

__all__ = ["__version__", "SnnavError"]

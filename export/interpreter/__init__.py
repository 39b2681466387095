"""The reference NIR interpreter in torch (NIR's, snnTorch's and Norse's stepping conventions; every snnav extension
node). ``interpreter`` holds the stepping, ``nodes``/``neurons``/``extensions`` the ops by node family; the graph's
schedule is :mod:`export.ir.graph` (torch-free, shared with hardware_sims)."""

from export.interpreter.interpreter import Interpreter, run_graph

__all__ = ["Interpreter", "run_graph"]

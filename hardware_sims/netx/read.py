"""Read back a ``.net`` file written by `hardware_sims.netx.write`: its layers and attributes (h5py only).
"""

from __future__ import annotations

import os
from typing import Any

import h5py

__all__ = ['read_netx_layers']

def read_netx_layers(path: str | os.PathLike) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The layers of a ``.net`` file written here and the file's attributes.

    Returns:
        ``(layers, attrs)``: per layer ``type``, ``nir_node`` and ``nir_shape`` (None for input/flatten layers);
        ``attrs`` with ``input_exp``, ``nir_input``, ``nir_input_shape``, ``quant``, ``dt``, ``time_steps``.
    """
    with h5py.File(path, "r") as f:
        layers = []
        for i in range(len(f["layer"])):
            h = f["layer"][str(i)]
            node = h.attrs.get("nir_node") if "neuron" in h else None
            layers.append({"type": h["type"][0].decode("ascii"), "nir_node": node,
                           "nir_shape": tuple(int(d) for d in h.attrs["nir_shape"]) if node is not None else None})
        attrs = dict(f.attrs)
    if "nir_input_shape" not in attrs:
        raise ValueError(f"{os.fspath(path)!r} was not written by hardware_sims.netx.write (no nir_input_shape "
                         "attribute); run it with lava.lib.dl.netx.hdf5.Network directly")
    return layers, attrs

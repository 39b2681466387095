"""Read back a ``.net`` file written by `hardware_sims.netx.write` (or a dense one written by slayer): its layers and
attributes (h5py only).
"""

from __future__ import annotations

import os
from typing import Any

import h5py
import numpy as np

from hardware_sims.netx.importer import first_input_shape

__all__ = ['read_netx_layers']

def read_netx_layers(path: str | os.PathLike) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The layers of a ``.net`` file written here and the file's attributes.

    Returns:
        ``(layers, attrs)``: per layer ``type``, ``nir_node`` and ``nir_shape`` (None for input/flatten layers);
        ``attrs`` with ``input_exp``, ``nir_input``, ``nir_input_shape``, ``quant``, ``dt``, ``time_steps``.
    """
    with h5py.File(path, "r") as f:
        layers = []
        foreign = "nir_input_shape" not in f.attrs
        for i in range(len(f["layer"])):
            h = f["layer"][str(i)]
            kind = h["type"][0].decode("ascii")
            if foreign and kind not in ("input", "dense", "flatten"):
                raise ValueError(f"{os.fspath(path)!r} was not written by hardware_sims.netx.write and has a {kind!r} "
                                 "layer, whose NIR layout this reader does not know; run it with "
                                 "lava.lib.dl.netx.hdf5.Network directly")
            node = (f"layer{i}" if foreign else h.attrs.get("nir_node")) if "neuron" in h else None
            shape = (tuple(int(d) for d in np.atleast_1d(h["shape"][()])) if foreign
                     else tuple(int(d) for d in h.attrs["nir_shape"])) if node is not None else None
            layers.append({"type": kind, "nir_node": node, "nir_shape": shape})
        attrs = dict(f.attrs)
        if foreign:  # a file written elsewhere (slayer): its input as read_netx names and shapes it
            first = f["layer"]["0"]
            kind = first["type"][0].decode("ascii")
            attrs["nir_input_shape"] = (np.atleast_1d(first["shape"][()]) if kind == "input"
                                        else np.array(first_input_shape(first, kind, "layer 0")))
    return layers, attrs

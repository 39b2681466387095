"""Run a ``.net`` file with lava-dl netx's own loader on Lava (`run_netx`); Lava is imported only inside it.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from hardware_sims.netx.limits import NETX_MESSAGE_BITS
from hardware_sims.netx.read import read_netx_layers

__all__ = ['NetxRun', 'run_netx']

@dataclass(frozen=True)
class NetxRun:
    """Spikes of every netx layer, aligned to NIR steps like ``run_lava``'s records.

    Attributes:
        records: NIR neuron node -> ``[T, B, *shape]`` spikes (0/1).
        latency: NIR neuron node -> Lava step of its NIR step 0 within a sample.
        steps_per_sample: ``T + number of spiking layers``.
        table: netx's own layer table (``str(Network)``).
        timing: ``build_s``, ``run_s``, ``lava_steps``.
    """

    records: dict[str, np.ndarray]
    latency: dict[str, int]
    steps_per_sample: int
    table: str
    timing: dict[str, float]


def _to_lava(x: np.ndarray) -> np.ndarray:
    """``[N, *nir]`` -> ``[N, *lava]``: (C, H, W) -> (W, H, C) for conv inputs, C-order flatten otherwise."""
    return x.transpose(0, 3, 2, 1) if x.ndim == 4 else x.reshape(x.shape[0], -1)


def run_netx(path: str | os.PathLike, x: Any) -> NetxRun:
    """Load a ``.net`` written by `write_netx` with ``lava.lib.dl.netx.hdf5.Network`` and run it on Lava.

    Samples run back to back as in ``run_lava``: sample b on Lava steps ``[bP, (b+1)P)``, ``P = T + L`` (L spiking
    layers), inputs zero after T; netx's ``reset_interval = P``, ``reset_offset = 1`` zeroes layer k's neurons at
    the step its input carries NIR step 0 (snnav's compiler resets at the same step). Input: a
    ``lava.proc.io.source.RingBuffer``; every layer's spikes go to a ``lava.proc.io.sink.RingBuffer``;
    ``Loihi2SimCfg(select_tag="fixed_pt")`` (netx's block models exist only in fixed point).

    Args:
        path: the ``.net`` file.
        x: ``[T, B, *input shape]`` real input; sent as ``rint(x * 2**input_exp)`` (binary data as 1-bit spikes,
            anything else with ``input_message_bits = 24``).
    """
    from lava.lib.dl.netx.hdf5 import Network  # noqa: PLC0415  (lava: optional, heavy)
    from lava.magma.core.run_conditions import RunSteps  # noqa: PLC0415  (lava: optional, heavy)
    from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: PLC0415  (lava: optional, heavy)
    from lava.proc.io.sink import RingBuffer as Sink  # noqa: PLC0415  (lava: optional, heavy)
    from lava.proc.io.source import RingBuffer as Source  # noqa: PLC0415  (lava: optional, heavy)

    layers, attrs = read_netx_layers(path)
    spiking = [layer for layer in layers if layer["nir_node"] is not None]
    x = np.asarray(x, dtype=np.float64)
    in_shape = tuple(int(d) for d in attrs["nir_input_shape"])
    if x.ndim != len(in_shape) + 2 or tuple(x.shape[2:]) != in_shape:
        raise ValueError(f"expected the input as [T, B, *{in_shape}], found shape {x.shape}")
    steps, batch = x.shape[:2]
    period = steps + len(spiking)
    m = np.rint(x * 2.0 ** int(attrs.get("input_exp", 0))).astype(np.int64)
    bits = 0 if np.isin(m, (0, 1)).all() else NETX_MESSAGE_BITS
    rows = np.zeros((batch, period, *in_shape), dtype=np.int64)
    rows[:, :steps] = m.swapaxes(0, 1)  # (B, P, *in)
    data = _to_lava(rows.reshape(batch * period, *in_shape))  # (B P, *lava)
    root = logging.getLogger()
    handlers = list(root.handlers)
    t0 = time.perf_counter()
    net = Network(net_config=os.fspath(path), reset_interval=period, reset_offset=1, input_message_bits=bits)
    if len(net.layers) != len(spiking):
        raise ValueError(f"netx built {len(net.layers)} layers, the file lists {len(spiking)} spiking layers")
    source = Source(data=np.moveaxis(data, 0, -1))
    source.s_out.connect(net.inp)
    sinks = []
    for block in net.layers:
        sinks.append(Sink(shape=block.out.shape, buffer=batch * period))
        block.out.connect(sinks[-1].a_in)
    timing = {"build_s": time.perf_counter() - t0}
    try:
        t0 = time.perf_counter()
        net.run(condition=RunSteps(num_steps=batch * period), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        raw = [np.asarray(s.data.get()) for s in sinks]
        timing.update(run_s=time.perf_counter() - t0, lava_steps=batch * period)
    finally:
        try:
            if net.runtime is not None:
                net.stop()
        finally:
            for handler in root.handlers[:]:
                if handler not in handlers:
                    root.removeHandler(handler)
    records, latency = {}, {}
    for k, (layer, rec) in enumerate(zip(spiking, raw)):
        rec = np.moveaxis(rec, -1, 0)  # (B P, *lava)
        shape = layer["nir_shape"]
        rec = rec.transpose(0, 3, 2, 1) if rec.ndim == 4 else rec.reshape(rec.shape[0], *shape)  # NIR layout
        rec = rec.reshape(batch, period, *shape)[:, k + 1 : k + 1 + steps]  # layer k's NIR step 0 at Lava step k+1
        records[layer["nir_node"]] = (rec.swapaxes(0, 1) != 0).astype(np.float64)
        latency[layer["nir_node"]] = k + 1
    return NetxRun(records, latency, period, str(net), timing)

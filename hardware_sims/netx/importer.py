"""lava-dl netx ``.net`` files -> NIR graphs: bring a network trained with lava-dl (slayer) to snnav's backends.

`read_netx(path)` reads the layers ``hdf5.Network`` loads -- ``input``, ``dense``, ``conv``, ``flatten`` with
``CUBA`` neurons; a file without an ``input`` layer (as slayer's blocks' ``export_hdf5`` write it) gets its input
from the first dense layer's ``inFeatures`` -- and builds the NIR chain that snnav's compiler lowers back to the same Lava LIF integers
(NETX.md gives netx's arithmetic). A layer with state scale ``S = 2**(12 + se)`` (``se`` = the layer's ``state_exp``
attribute in snnav's files, else 0: netx's documented convention, as slayer writes it) holds, in real units:

* weights ``w / 2**(6 + se)`` per unit of input message (spikes: 1; the first layer's graded input: ``2**input_exp``);
* threshold ``vThMant / 2**(6 + se)``, bias on v ``bias / 2**(6 + se)`` per step (netx's ``bias_exp = 6``);
* decays ``dv = vDecay / 4096`` and, for a current with memory (``iDecay < 4096``), ``du = iDecay / 4096`` (netx
  passes ``du = iDecay - 1`` to Lava, whose ``u * (4096 - (du + 1)) >> 12`` decays by ``iDecay / 4096``).

Mapping (dt from the file's ``dt`` attribute, else 1e-3; ``c = dt/tau``; each synapse's folded gain is 1, so the
weights above are the NIR weights):

=====================  ===============================================================================
netx neuron            NIR
=====================  ===============================================================================
iDecay 4096, vDecay>0  ``Affine(w, bias)`` -> ``LIF(tau = dt/dv, r = 1/dv, v_threshold)``
iDecay 4096, vDecay 0  ``Affine(w, bias)`` -> ``IF(r = 1/dt, v_threshold)``
iDecay < 4096          ``Linear(w)`` -> ``CubaLIF(tau_syn = dt/du, tau_mem = dt/dv, w_in = 1, r = 1/(du dv),
                       v_leak = bias/dv)`` (netx's bias is on v: NIR's ``cm v_leak``); vDecay 0 is refused
=====================  ===============================================================================

Conv layers become ``Conv2d`` (weights as stored, torch cross-correlation layout), ``flatten`` a NIR ``Flatten`` of
(C, H, W). What netx itself refuses (``pool``, ``concat``, ...) and what the mapping cannot hold (recurrent
``dense_rec``, graded spikes, ``refDelay`` other than 1, ``SDNN``/``RF`` neurons) raise `NetxImportError` naming
the layer. Written back with ``write_netx(graph, quant="slayer")`` (``se = 0`` files) the integers are the file's
(``tests/hardware_sims/netx/test_netx_import.py``).
"""

from __future__ import annotations

import os
from typing import Any

import h5py
import nir
import numpy as np

import snnav.errors as snnav_errors

__all__ = ["read_netx", "NetxImportError", "first_input_shape"]

FULL_DECAY = 4096


class NetxImportError(snnav_errors.FileFormatError, ValueError):
    """A ``.net`` file, or a layer of it, that cannot be brought to a NIR graph; the message names the layer."""


def _get(h: h5py.Group, key: str, default: Any = None) -> Any:
    if key not in h:
        return default
    value = h[key][()]
    if isinstance(value, np.ndarray) and value.dtype.kind == "S":
        return value[0].decode("ascii")
    if isinstance(value, bytes):
        return value.decode("ascii")
    return value


def _neuron(h: h5py.Group, where: str) -> dict[str, float]:
    if "neuron" not in h:
        raise NetxImportError(f"{where}: no neuron group; every netx dense/conv layer has one")
    n = h["neuron"]
    kind = _get(n, "type", "CUBA")
    if kind != "CUBA":
        raise NetxImportError(f"{where}: neuron type {kind!r}; only CUBA (Lava's LIF) maps to a NIR neuron")
    if bool(_get(n, "gradedSpike", False)):
        raise NetxImportError(f"{where}: graded spikes; NIR neurons send binary spikes")
    if int(_get(n, "refDelay", 1)) != 1:
        raise NetxImportError(f"{where}: refDelay {int(_get(n, 'refDelay'))}; Lava's LIF that netx builds has no "
                              "refractory period, and NIR's neurons neither")
    return {k: float(_get(n, k)) for k in ("iDecay", "vDecay", "vThMant")}


def _layer_nodes(name: str, h: h5py.Group, kind: str, se: int, in_scale: float, dt: float, where: str):
    """``{synapse_name: node, neuron_name: node}`` of one dense/conv layer."""
    n = _neuron(h, where)
    unit = 2.0 ** (6 + se)
    w = np.asarray(h["weight"][()], dtype=np.float64) * in_scale / unit
    shape = tuple(int(d) for d in np.atleast_1d(h["shape"][()]))
    bias = None
    if "bias" in h:
        b = np.asarray(h["bias"][()], dtype=np.float64) / unit
        if kind == "conv" and b.ndim == 3:  # per neuron, Lava's (x, y, z) order
            b = b.transpose(2, 1, 0)
        bias = np.broadcast_to(b.reshape((-1,) + (1,) * (len(shape) - 1)) if b.ndim == 1 and kind == "conv" else b,
                               shape).copy()
    vth = np.full(shape, n["vThMant"] / unit)
    dv = n["vDecay"] / FULL_DECAY
    current = n["iDecay"] < FULL_DECAY
    own_bias = None if current else bias
    if kind == "dense":
        syn = nir.Affine(weight=w, bias=own_bias if own_bias is not None else np.zeros(w.shape[0]))
    else:
        out_c = w.shape[0]
        syn_bias = np.zeros(out_c) if own_bias is None else own_bias.reshape(out_c, -1)[:, 0]
        if own_bias is not None and not np.all(own_bias.reshape(out_c, -1) == syn_bias[:, None]):
            raise NetxImportError(f"{where}: a per-neuron bias on a conv layer with a memoryless current; NIR's "
                                  "Conv2d bias is per channel")
        syn = nir.Conv2d(input_shape=None, weight=w, stride=tuple(int(s) for s in h["stride"][()]),
                         padding=tuple(int(p) for p in h["padding"][()]),
                         dilation=tuple(int(d) for d in h["dilation"][()]), groups=int(_get(h, "groups", 1)),
                         bias=syn_bias)
    if current:
        du = n["iDecay"] / FULL_DECAY  # Lava: u * (4096 - (du_fx + 1)) >> 12, netx du_fx = iDecay - 1
        if dv == 0:
            raise NetxImportError(f"{where}: a current with memory (iDecay {int(n['iDecay'])}) and no voltage decay "
                                  "(vDecay 0): NIR's CubaLIF needs dt/tau_mem > 0 to scale its current into v")
        v_leak = np.zeros(shape) if bias is None else bias / dv
        neuron = nir.CubaLIF(tau_syn=np.full(shape, dt / du), tau_mem=np.full(shape, dt / dv), r=np.full(shape, 1 / (du * dv)),
                             v_leak=v_leak, v_threshold=vth, w_in=np.ones(shape), v_reset=np.zeros(shape))
    elif dv > 0:
        neuron = nir.LIF(tau=np.full(shape, dt / dv), r=np.full(shape, 1 / dv), v_leak=np.zeros(shape),
                         v_threshold=vth, v_reset=np.zeros(shape))
    else:
        neuron = nir.IF(r=np.full(shape, 1 / dt), v_threshold=vth, v_reset=np.zeros(shape))
    return syn, neuron, shape


def first_input_shape(h: h5py.Group, kind: str, where: str) -> tuple[int, ...]:
    """The input shape of a file without an ``input`` layer, from its first layer (netx builds its input port from
    it): a dense layer's ``inFeatures`` (else its weight's columns); a conv layer needs the input's height and width,
    which the file does not hold."""
    if kind == "dense":
        return (int(_get(h, "inFeatures", np.shape(h["weight"][()])[-1])),)
    raise NetxImportError(f"{where}: the file has no 'input' layer and starts with a {kind!r} layer, whose input "
                          "height and width it does not store; add an input layer with its shape")


def read_netx(path: str | os.PathLike, *, dt: float | None = None) -> nir.NIRGraph:
    """The NIR graph of a netx ``.net`` file (module docstring); ``metadata`` has ``dt``, ``source = "netx"``.

    Raises:
        NetxImportError: not an HDF5 netx file, or a layer netx or NIR cannot express (named).
    """
    path = os.fspath(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as exc:
        raise NetxImportError(f"cannot read {path!r} as a netx HDF5 file: {exc}") from exc
    with f:
        if "layer" not in f:
            raise NetxImportError(f"{path!r} has no /layer group: not a netx network file")
        attrs = dict(f.attrs)
        dt = float(dt if dt is not None else attrs.get("dt", 1e-3))
        ie = int(attrs.get("input_exp", 0))
        keys = sorted(f["layer"], key=int)
        nodes: dict[str, Any] = {}
        edges: list[tuple[str, str]] = []
        prev, shape = None, None
        for k in keys:
            h = f["layer"][k]
            kind = _get(h, "type")
            where = f"layer {k} ({kind})"
            if kind == "input":
                if prev is not None:
                    raise NetxImportError(f"{where}: an input layer after layer 0")
                shape = tuple(int(d) for d in np.atleast_1d(h["shape"][()]))
                if "nir_input_shape" in attrs:
                    shape = tuple(int(d) for d in attrs["nir_input_shape"])
                if "neuron" in h:
                    raise NetxImportError(f"{where}: an input layer with a neuron (netx feeds it through its bias); "
                                          "not mapped")
                name = str(attrs.get("nir_input", "input"))
                nodes[name] = nir.Input(input_type=np.array(shape))
                prev = name
                continue
            if prev is None:  # no input layer (slayer's export_hdf5 writes none): netx feeds the first layer
                shape = first_input_shape(h, kind, where)
                name = str(attrs.get("nir_input", "input"))
                nodes[name] = nir.Input(input_type=np.array(shape))
                prev = name
            if kind == "flatten":
                name = f"flatten_{k}"
                nodes[name] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=len(shape) - 1)
                edges.append((prev, name))
                prev, shape = name, (int(np.prod(shape)),)
                continue
            if kind not in ("dense", "conv"):
                raise NetxImportError(f"{where}: netx layer type {kind!r} is not mapped (netx loads input, dense, "
                                      "conv, flatten; its loader raises NotImplementedError for pool, convT, unpool, "
                                      "average, concat; dense_rec/dense_comp are not mapped here)")
            se = int(h.attrs.get("state_exp", 0))
            in_scale = 2.0 ** ie if prev in nodes and isinstance(nodes[prev], nir.Input) else 1.0
            syn, neuron, shape = _layer_nodes(prev, h, kind, se, in_scale, dt, where)
            base = str(h.attrs.get("nir_node", f"layer{k}"))
            syn_name = str(h.attrs.get("nir_synapse", f"{base}_synapse"))
            nodes[syn_name], nodes[base] = syn, neuron
            edges += [(prev, syn_name), (syn_name, base)]
            prev = base
        if prev is None or isinstance(nodes[prev], nir.Input):
            raise NetxImportError(f"{path!r} has no layer after its input")
        nodes["output"] = nir.Output(output_type=np.array(shape))
        edges.append((prev, "output"))
    meta = {"dt": dt, "source": "netx", "netx_file": os.path.basename(path)}
    if attrs.get("time_steps"):
        meta["time_steps"] = int(attrs["time_steps"])
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)

"""What every process of a `Plan` sent during a run, rebuilt from the run's records, in NIR steps.

A `RunResult` (from ``run_lava`` or ``emulate``) records the signal nodes (Inputs, neurons, extensions) aligned to
NIR steps. Everything a synapse or an extension port received follows from those records and the plan:

* a **signal process** sends its record: its output at NIR step u is ``record[u]`` (zeros outside ``[0, T)``: what
  Lava computes before a live step or after the sample's last step is discarded, see ``SEMANTICS.md`` §1);
* a **delay** (alignment or gate) of ``k`` Lava steps (per element) on a source whose latency is ``align`` steps
  below its own sends the source's step ``u - (k - align)``: ``k - align`` is the NIR ``Delay`` merged into it;
* a **synapse** sends ``W x`` of its input's step u (used only where a linear layer feeds another linear layer or
  an extension port: graded values, computed here in float64 with the run's weights -- the quantized weights of a
  fixed-point plan, `weights_of`).

A connection ``src -> dst`` delivers at dst's NIR step t the value of src's step ``t + live(dst) - latency(src)``
(0 on aligned paths, -1 over a recurrent edge, whose synapse carries NIR's one step of delay).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp

from hardware_sims.emulator.procs import ConvOp
from hardware_sims.plan.linear import ConvGeometry, LinearOp, op_matrix
from hardware_sims.plan.plan import SYNAPSE_KINDS, Connection, Plan, ProcessSpec

__all__ = ["PlanSignals", "weights_of", "binary_matrix", "record_values", "reaches", "shifted", "SIGNAL_KINDS"]

SIGNAL_KINDS: tuple[str, ...] = ("input", "neuron", "extension")


def shifted(x: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Rows ``[start, stop)`` of ``x`` (``[T, ...]``), zeros where the index falls outside ``[0, T)`` (``x`` itself,
    not a copy, when the rows are exactly its own)."""
    if start == 0 and stop == x.shape[0]:
        return x
    out = np.zeros((stop - start, *x.shape[1:]), dtype=x.dtype)
    lo, hi = max(start, 0), min(stop, x.shape[0])
    if hi > lo:
        out[lo - start : hi - start] = x[lo:hi]
    return out


def _conv_matrix(spec: ProcessSpec, weight: np.ndarray) -> sp.csr_matrix:
    p = spec.params
    ph, pw = p["padding"]
    geom = ConvGeometry(np.asarray(weight, dtype=np.float64), tuple(p["stride"]), (ph, ph, pw, pw),
                        tuple(p["dilation"]), int(p["groups"]))
    return op_matrix(LinearOp(spec.node, "conv", tuple(spec.in_shape), tuple(spec.shape), conv=geom))


def weights_of(plan: Plan, name: str) -> sp.csr_matrix:
    """The real weights a synapse process ran with, as an ``(out_size, in_size)`` CSR matrix in NIR layout.

    Float plans: the plan's folded weights. Fixed-point plans: the quantized weights (mantissa times step), so a
    weight that rounded to 0 is no synapse.
    """
    spec = plan.processes[name]
    if spec.kind not in SYNAPSE_KINDS:
        raise ValueError(f"process {name!r} is a {spec.kind}, not a synapse")
    if plan.precision == "fixed":
        w = plan.quant.synapses[name].dequantize()
    else:
        w = spec.params["weight"] if spec.kind == "conv" else spec.params["weights"]
    if spec.kind == "conv":
        m = _conv_matrix(spec, w)
    else:
        m = sp.csr_matrix(w, dtype=np.float64)
    m = sp.csr_matrix(m)
    m.eliminate_zeros()
    return m


def record_values(record: object) -> np.ndarray:
    """A run's record as counting reads it: the emulator's int8 spike records as they are (0 or 1; an eighth of
    the bytes to scan), every other record as float64."""
    rec = np.asarray(record)
    return rec if rec.dtype == np.int8 else rec.astype(np.float64, copy=False)


def binary_matrix(m: sp.spmatrix) -> sp.csr_matrix:
    """1 where ``m`` has a nonzero entry (a synapse), as a float64 CSR matrix without stored zeros."""
    b = sp.csr_matrix(m, dtype=np.float64, copy=True)
    b.data = (b.data != 0).astype(np.float64)
    b.eliminate_zeros()
    return b


def reaches(synapses: sp.csr_matrix, nonzero: np.ndarray, block: int = 1 << 22) -> np.ndarray:
    """Boolean ``[..., out_size]``: some nonzero input element has a synapse to the output element.

    Args:
        synapses: ``(out_size, in_size)``, 1 per synapse.
        nonzero: boolean ``[..., in_size]``.
        block: the most output values computed at once (memory bound).
    """
    flat = nonzero.reshape(-1, nonzero.shape[-1])
    out = np.zeros((flat.shape[0], synapses.shape[0]), dtype=bool)
    rows = max(1, block // max(1, synapses.shape[0]))
    for r0 in range(0, flat.shape[0], rows):
        part = flat[r0 : r0 + rows].astype(np.float64)
        out[r0 : r0 + rows] = np.asarray(synapses @ part.T).T > 0
    return out.reshape(*nonzero.shape[:-1], synapses.shape[0])


def _depthwise(conv: ConvOp) -> bool:
    return conv.weight.shape[1] == 1 and conv.weight.shape[0] == conv.groups


def depthwise_reach(conv: ConvOp, mask: np.ndarray) -> np.ndarray:
    """Boolean ``[rows, C*Ho*Wo]``: for a depthwise convolution (pools: one kernel per channel), whether some
    nonzero input element has a nonzero-weight tap to the output element. ``conv``'s weight is 1 per synapse (as
    `PlanSignals._conv_reach` builds it), ``mask`` a boolean ``[rows, C*H*W]``. The same answer as the float32 conv
    of the mask, computed with boolean ORs of the kernel's shifted windows (a pool's 9 taps)."""
    b = mask.shape[0]
    c, h, w = conv.in_shape
    _, ho, wo = conv.out_shape
    kh, kw = conv.weight.shape[2:]
    (sh, sw), (ph, pw), (dh, dw) = conv.stride, conv.padding, conv.dilation
    xp = np.pad(mask.reshape(b, c, h, w), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    taps = np.asarray(conv.weight)[:, 0] != 0  # [C, kh, kw]
    out = np.zeros((b, c, ho, wo), dtype=bool)
    for i in range(kh):
        for j in range(kw):
            part = xp[:, :, i * dh : i * dh + sh * (ho - 1) + 1 : sh, j * dw : j * dw + sw * (wo - 1) + 1 : sw]
            if taps[:, i, j].all():
                out |= part
            elif taps[:, i, j].any():
                out |= part & taps[:, i, j][None, :, None, None]
    return out.reshape(b, -1)


class PlanSignals:
    """Values sent by the processes of ``plan`` during a run of ``steps`` NIR steps and ``batch`` samples.

    Args:
        plan: the plan the run executed (``result.plan``).
        records: NIR node -> ``[T, B, *shape]`` (``result.records``); every signal process must be present.
    """

    def __init__(self, plan: Plan, records: Mapping[str, np.ndarray], steps: int, batch: int,
                 cache: dict | None = None) -> None:
        self.plan, self.records, self.steps, self.batch = plan, records, int(steps), int(batch)
        self.inbound: dict[str, list[Connection]] = {n: [] for n in plan.processes}
        self.outbound: dict[str, list[Connection]] = {n: [] for n in plan.processes}
        for c in plan.connections:
            self.inbound[c.dst].append(c)
            self.outbound[c.src].append(c)
        self._values: dict[tuple[str, int, int], np.ndarray] = {}
        # what depends on the plan only (weights, synapse matrices): shared across runs of the same plan (`cache`)
        cache = {} if cache is None else cache
        self._weights: dict[str, sp.csr_matrix] = cache.setdefault("weights", {})
        self._binary: dict[str, sp.csr_matrix] = cache.setdefault("binary", {})
        self._binary_rows: dict[tuple[str, bytes], sp.csr_matrix] = cache.setdefault("binary_rows", {})
        self._conv_ops: dict[str, ConvOp] = cache.setdefault("conv_ops", {})

    # ------------------------------------------------------------------------------------------------ weights
    def weights(self, syn: str) -> sp.csr_matrix:
        """`weights_of` the synapse (cached)."""
        if syn not in self._weights:
            self._weights[syn] = weights_of(self.plan, syn)
        return self._weights[syn]

    def synapses_of(self, syn: str) -> sp.csr_matrix:
        """1 per synapse (nonzero weight) of a synapse process, ``(out_size, in_size)`` (cached)."""
        if syn not in self._binary:
            self._binary[syn] = binary_matrix(self.weights(syn))
        return self._binary[syn]

    def fan_out(self, syn: str) -> np.ndarray:
        """Synapses driven by each input element: the nonzero weights of each column, ``(in_size,)``."""
        return np.asarray(self.synapses_of(syn).sum(axis=0)).reshape(-1)

    # ------------------------------------------------------------------------------------------------ values
    def _size(self, proc: str) -> int:
        return int(np.prod(self.plan.processes[proc].shape))

    def value(self, proc: str, start: int, stop: int) -> np.ndarray:
        """What `proc` sent at its aligned NIR steps ``[start, stop)``: ``[stop - start, B, size]`` (real units)."""
        key = (proc, start, stop)
        if key not in self._values:
            self._values[key] = self._compute(proc, start, stop)
        return self._values[key]

    def _compute(self, proc: str, start: int, stop: int) -> np.ndarray:
        spec = self.plan.processes[proc]
        if spec.kind == "neuron" and spec.role == "bias":  # a bias source spikes at every step (never recorded)
            return np.ones((stop - start, self.batch, self._size(proc)))
        if spec.kind in SIGNAL_KINDS:
            return shifted(record_values(self.records[proc]).reshape(self.steps, self.batch, -1), start, stop)
        (conn,) = self.inbound[proc]  # delays and synapses have exactly one input
        if spec.kind == "delay":
            lag = np.asarray(spec.params["steps"]).reshape(-1) - (spec.latency - spec.live_step)  # NIR Delay steps
            lo, hi = int(lag.min()), int(lag.max())
            src = self.value(conn.src, start - hi, stop - lo)  # covers every element's lag
            if lo == hi:
                return src
            rows = np.arange(stop - start)[:, None] + (hi - lag)[None, :]  # (steps, size) into src
            return src[rows, :, np.arange(lag.size)[None, :]].transpose(0, 2, 1)  # (steps, B, size)
        if spec.kind in SYNAPSE_KINDS:
            x = self.value(conn.src, start, stop)  # a synapse's output at its step u is W times its input's step u
            flat = x.reshape(-1, x.shape[-1])
            return np.asarray(self.weights(proc) @ flat.T).T.reshape(x.shape[0], x.shape[1], -1)
        raise ValueError(f"process {proc!r}: no value model for kind {spec.kind!r}")

    def delivered(self, conn: Connection) -> np.ndarray:
        """What `conn` delivers at its destination's NIR steps ``[0, T)``: ``[T, B, size of src]``."""
        off = self.plan.processes[conn.dst].live_step - self.plan.processes[conn.src].latency
        return self.value(conn.src, off, off + self.steps)

    def window(self, syn: str) -> int:
        """Offset of the input steps a synapse serves: its consumers read its input's steps ``[off, off + T)``.

        0 on an aligned path, -1 behind a gate (a recurrent edge). A synapse feeding another synapse inherits that
        one's offset; one that feeds nothing (a readout) serves ``[0, T)``.
        """
        offs = []
        for c in self.outbound[syn]:
            dst = self.plan.processes[c.dst]
            if dst.kind in SYNAPSE_KINDS:
                offs.append(self.window(c.dst))
            else:
                offs.append(dst.live_step - self.plan.processes[syn].latency)
        return min(offs) if offs else 0

    def synapse_input(self, syn: str) -> np.ndarray:
        """The input a synapse process handled during the run's T steps: ``[T, B, in_size]``."""
        (conn,) = self.inbound[syn]
        off = self.window(syn)
        return self.value(conn.src, off, off + self.steps)

    def _synapse_rows(self, syn: str, rows: np.ndarray | None) -> sp.csr_matrix:
        """`synapses_of` restricted to the output elements ``rows`` (all when None; cached)."""
        if rows is None:
            return self.synapses_of(syn)
        key = (syn, rows.tobytes())
        if key not in self._binary_rows:
            self._binary_rows[key] = sp.csr_matrix(self.synapses_of(syn)[rows])
        return self._binary_rows[key]

    def received(self, proc: str, rows: np.ndarray | None = None) -> np.ndarray:
        """Boolean ``[T, B, size]``: the element of a neuron process got at least one nonzero input at that step.

        Through a synapse: a nonzero input element with a nonzero weight to it (an event, whatever its value sums
        to); straight from a source (no synapse): a nonzero message. ``rows`` (flat element indices, int64):
        only those elements, ``[T, B, len(rows)]``.
        """
        size = self._size(proc) if rows is None else len(rows)
        got = np.zeros((self.steps, self.batch, size), dtype=bool)
        if size == 0:
            return got
        for conn in self.inbound[proc]:
            src = self.plan.processes[conn.src]
            if src.kind not in SYNAPSE_KINDS:
                sent = self.delivered(conn).reshape(self.steps, self.batch, -1)
                got |= (sent if rows is None else sent[..., rows]) != 0
                continue
            off = self.plan.processes[proc].live_step - src.latency
            (inner,) = self.inbound[conn.src]
            xin = self.value(inner.src, off, off + self.steps)
            if src.kind == "conv":  # the kernel's taps over the input (im2col), not a sparse matrix product
                conv = self._conv_reach(conn.src)
                mask = xin.reshape(-1, xin.shape[-1]) != 0
                hit = depthwise_reach(conv, mask) if _depthwise(conv) else conv(mask, np.float32) > 0
                got |= (hit if rows is None else hit[:, rows]).reshape(got.shape)
                continue
            got |= reaches(self._synapse_rows(conn.src, rows), xin != 0).reshape(got.shape)
        return got

    def _conv_reach(self, syn: str) -> ConvOp:
        """The convolution of a conv synapse process with 1 per nonzero weight (cached): applied to nonzero masks
        it counts the nonzero inputs with a synapse to each output (exact in float32: at most the fan-in)."""
        if syn not in self._conv_ops:
            spec = self.plan.processes[syn]
            p = spec.params
            w = self.plan.quant.synapses[syn].dequantize() if self.plan.precision == "fixed" else p["weight"]
            self._conv_ops[syn] = ConvOp((np.asarray(w) != 0).astype(np.float32), spec.in_shape, spec.shape,
                                         p["stride"], p["padding"], p["dilation"], p["groups"])
        return self._conv_ops[syn]

    def port_values(self, proc: str) -> dict[str, np.ndarray]:
        """An extension process's inputs per port, ``[T, B, port size]``: the sum of what its connections deliver
        plus the port's constant (``params["bias"]``, real units)."""
        spec = self.plan.processes[proc]
        node = spec.params["node"]
        out: dict[str, np.ndarray] = {}
        for port in node.PORTS:
            size = int(np.prod(node.input_type[port]))
            total = np.zeros((self.steps, self.batch, size))
            for conn in self.inbound[proc]:
                if conn.port == port:
                    total = total + self.delivered(conn)
            bias = (spec.params.get("bias") or {}).get(port)
            if bias is not None:
                total = total + np.asarray(bias, dtype=np.float64).reshape(-1)
            out[port] = total
        return out

"""Extension processes on a batch, through the very code Lava runs, without Lava.

snnav's extension types: `ExtensionEmu` takes the process's `ExtensionSemantics`
(``hardware_sims.extensions.semantics``, the description the Lava process and its models are built from) with the
arguments `hardware_sims.lava.build` gives the builder (the fixed-point ``in_formats``/``out_exp``), and
calls its float or fixed ``evaluate`` -- the functions the Lava models' ``evaluate`` call -- on the same parameters.
This path imports no Lava. A type registered with ``register_extension`` (a third-party process) is built with its
builder and run through its Lava model's ``evaluate`` (found like Lava finds it: ``@implements(proc=...)`` and the
``floating_pt`` / ``fixed_pt`` tag) with a stand-in for ``self``; that path needs Lava. The window streaming is
`hardware_sims.extensions.kernels.window_step` itself, on buffers of Lava's dtypes (int32 in fixed point, so a
stored message wraps as it does in the Lava Var).

A batch reaches ``evaluate`` in one call where the kernel's math allows folding the batch into an axis it treats
independently (`BATCH_FOLDS`): heads for the per-step attentions (``num_heads`` passed as ``B * h``), tokens for the
time attention, channels for the complementary fusion; the RUNNING (causal) nodes' kernels take the batch as a
leading axis and keep their state per sample. Other extensions (``snnav.Gate``, third-party ones) run sample by
sample.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np

from hardware_sims.extensions.kernels import window_step
from hardware_sims.extensions.semantics import new_state
from hardware_sims.plan.plan import ProcessSpec
from hardware_sims.plan.registry import extension_semantics, registered_builder

__all__ = ["ExtensionEmu", "model_class", "BATCH_FOLDS"]


def model_class(process_type: type, fixed: bool) -> type:
    """The ``PyLoihiProcessModel`` Lava selects for `process_type` with ``select_tag`` fixed_pt / floating_pt."""
    tag = "fixed_pt" if fixed else "floating_pt"
    module = sys.modules[process_type.__module__]
    for obj in vars(module).values():
        if isinstance(obj, type) and getattr(obj, "implements_process", None) is process_type \
                and tag in getattr(obj, "tags", ()):
            return obj
    raise LookupError(f"no {tag} model for {process_type.__name__} in {module.__name__}")


Evaluate = Callable[..., np.ndarray]  # evaluate(overrides: dict, *inputs) -> output


def _fold_heads(evaluate: Evaluate, params: dict, xs: list[np.ndarray]) -> np.ndarray:
    """Per-step attention: ``(B, C, N)`` -> ``(B*C, N)`` (and ``(B, h, N, N)`` -> ``(B*h, N, N)``), ``B*h`` heads."""
    b = xs[0].shape[0]
    out = evaluate({"num_heads": b * int(params["num_heads"])}, *[x.reshape(b * x.shape[1], *x.shape[2:]) for x in xs])
    return out.reshape(b, -1, *out.shape[1:])


def _fold_tokens(evaluate: Evaluate, params: dict, xs: list[np.ndarray]) -> np.ndarray:
    """Time attention (per token): ``(W, B, C, N)`` -> ``(W, C, B*N)``."""
    w, b, c, n = xs[0].shape
    out = evaluate({}, *[x.transpose(0, 2, 1, 3).reshape(w, c, b * n) for x in xs])
    return out.reshape(w, out.shape[1], b, n).transpose(0, 2, 1, 3)


def _fold_channels(evaluate: Evaluate, params: dict, xs: list[np.ndarray]) -> np.ndarray:
    """Complementary fusion (per channel): ``(W, B, C, N)`` -> ``(W, B*C, N)``."""
    w, b = xs[0].shape[:2]
    out = evaluate({}, *[x.reshape(w, b * x.shape[2], *x.shape[3:]) for x in xs])
    return out.reshape(w, b, -1, *out.shape[2:])


BATCH_FOLDS: dict[str, Callable[[Any], Callable | None]] = {
    "snnav.SpikeAttention": lambda node: _fold_heads if node.axis == "tokens" else _fold_tokens,
    "snnav.AttentionScores": lambda node: _fold_heads,
    "snnav.AttentionApply": lambda node: _fold_heads,
    "snnav.ComplementaryFusion": lambda node: _fold_channels,
}
"""Extension type -> (node -> fold function or None): how to pass a whole batch to ``evaluate`` in one call."""


class ExtensionEmu:
    """One extension process over a batch: per step (window 0) or windowed (latency W)."""

    def __init__(self, spec: ProcessSpec, fixed: bool, args: dict | None) -> None:
        self.spec, self.fixed = spec, fixed
        node = spec.params["node"]
        fixed_args = dict(args or {})
        bias = fixed_args.pop("bias", None) if fixed else spec.params.get("bias")  # mantissas / real values
        sem = extension_semantics(node, f"emulator:{spec.name}", **fixed_args)
        if sem is not None:  # snnav's extension types: no Lava
            self.ports, self.out_shape, self.window = tuple(sem.ports), tuple(sem.out_shape), int(sem.window)
            self.in_shapes = {p: tuple(int(d) for d in sem.in_shapes[p]) for p in self.ports}
            self.params = dict(sem.params)
            evaluate = sem.evaluate(fixed)
            self._call = lambda params, *xs: evaluate(params, *xs)
            self.sem = sem
        else:
            self.sem = None
            built = registered_builder(node)(node, f"emulator:{spec.name}",
                                            **({"bias": bias} if bias else {}), **fixed_args)
            proc = built.process
            self.ports = tuple(built.in_ports)
            self.in_shapes = {p: tuple(int(d) for d in built.in_ports[p].shape) for p in self.ports}
            self.out_shape = tuple(int(d) for d in built.out_port.shape)
            self.window = int(built.latency)
            self.params = {k: v for k, v in proc.proc_params._parameters.items() if k != "bias"}
            model = model_class(type(proc), fixed)
            self._call = lambda params, *xs: model.evaluate(SimpleNamespace(proc_params=params), *xs)
        self.bias = {p: np.broadcast_to(np.asarray(b), self.in_shapes[p]) for p, b in (bias or {}).items()}
        fold = BATCH_FOLDS.get(node.type_name)
        self.fold = fold(node) if fold is not None else None
        self.dtype = np.int32 if fixed else np.float64  # the Lava Vars' dtype (window buffers)
        self.steps_seen = self.in_bufs = self.out_buf = None
        self.running = self.sem is not None and self.sem.stateful
        self.state: dict[str, np.ndarray] | None = None  # RUNNING: state arrays with a batch axis, steps_seen

    def _evaluate(self, overrides: dict, *inputs: np.ndarray) -> np.ndarray:
        return self._call({**self.params, **overrides}, *inputs)

    def _batched(self, xs: list[np.ndarray], batch_axis: int) -> np.ndarray:
        if self.fold is not None:
            return self.fold(self._evaluate, self.params, xs)
        outs = [self._evaluate({}, *[np.take(x, b, axis=batch_axis) for x in xs])
                for b in range(xs[0].shape[batch_axis])]
        return np.stack(outs, axis=batch_axis)

    def start(self, batch: int) -> None:
        if self.running:  # zero state at the live step, as Lava's reset (the first step overwrites it anyway)
            self.state = new_state(self.sem, self.fixed, (batch,))
        if self.window:
            w = self.window
            self.steps_seen = np.zeros(1, dtype=np.int32)
            self.in_bufs = [np.zeros((w, batch, *self.in_shapes[p]), dtype=self.dtype) for p in self.ports]
            self.out_buf = np.zeros((w, batch, *self.out_shape), dtype=self.dtype)

    def step(self, received: dict[str, np.ndarray]) -> np.ndarray:
        """``received``: port -> ``[B, port size]`` (the InPort's sum) -> ``[B, out size]``."""
        b = next(iter(received.values())).shape[0]
        xs = []
        for p in self.ports:
            x = received[p].reshape(b, *self.in_shapes[p])
            xs.append(x + self.bias[p] if p in self.bias else x)  # ExtensionModel.run_spk
        if self.running:  # the running kernels take the batch as a leading axis
            out = self._call(self.params, self.state, *xs)
        elif self.window:
            out = window_step(self.steps_seen, self.in_bufs, self.out_buf, xs,
                              lambda *bufs: self._batched(list(bufs), 1))
        else:
            out = self._batched(xs, 0)
        out = np.asarray(out).reshape(b, math.prod(self.out_shape))
        return out.astype(np.int32) if self.fixed else out.astype(np.float64, copy=False)

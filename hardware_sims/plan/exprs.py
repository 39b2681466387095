"""Symbolic values of NIR nodes during lowering: sums of terms from signal sources, plus a constant.

A *signal* node owns a Lava process whose output port carries its value: a graph Input, a neuron, an extension.
Every other node (Flatten, Scale, Delay, Identity, Output and the linear layers) is *wiring*: its value is an `Expr`,

    value = sum over terms of  factor * shift(ops(source))  +  bias

where each `Term` starts at a signal node, passes through a chain of linear layers (`OpStep`, each with a column
factor from a Scale before it), ends with an elementwise `factor` (Scales after the last layer), and is delayed by
`shift` NIR steps (Delay nodes; a per-step time shift commutes with linear layers and Scales). ``delayed`` marks a
term that crossed a recurrent edge (the interpreter's one-step delay on edges leaving a neuron inside a cycle).
The lowering turns each term into synapse processes (one per source path, factors folded into the weights), a
delay where needed, and a connection into the consuming signal node.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from hardware_sims.plan.errors import UnsupportedGraphError
from hardware_sims.plan.linear import LinearOp, apply_op

__all__ = ["OpStep", "Term", "Expr", "leaf", "add", "flatten", "scale", "delay", "through_linear", "flatten_shape"]


@dataclass(frozen=True)
class OpStep:
    """A linear layer on a term's path; `col` (None = 1) multiplies the layer's input elementwise."""

    node: str
    col: np.ndarray | None = None


@dataclass(frozen=True)
class Term:
    """One source path (module docstring). `factor` and an array `shift` are over `shape`."""

    source: str
    shape: tuple[int, ...]
    delayed: bool = False
    ops: tuple[OpStep, ...] = ()
    factor: np.ndarray | None = None
    shift: int | np.ndarray = 0

    @property
    def uniform_shift(self) -> bool:
        return np.ndim(self.shift) == 0

    def max_shift(self) -> int:
        return int(np.max(self.shift))


@dataclass(frozen=True)
class Expr:
    """The value of a node: the sum of `terms` plus `bias` (None = 0), NIR shape `shape`."""

    terms: tuple[Term, ...]
    shape: tuple[int, ...]
    bias: np.ndarray | None = None


def leaf(source: str, shape: tuple[int, ...]) -> Expr:
    """The value of a signal node: its own output."""
    return Expr((Term(source, tuple(shape)),), tuple(shape))


def _check_shape(expected: tuple[int, ...], found: tuple[int, ...], where: str) -> None:
    if tuple(expected) != tuple(found):
        raise UnsupportedGraphError(f"node {where!r}: fan-in terms have shapes {expected} and {found}; NIR sums "
                                    "fan-in elementwise, so they must be equal")


def add(exprs: list[Expr], where: str) -> Expr:
    """Fan-in: the sum of several values (same shape)."""
    shape = exprs[0].shape
    terms: list[Term] = []
    bias = None
    for e in exprs:
        _check_shape(shape, e.shape, where)
        terms.extend(e.terms)
        if e.bias is not None:
            bias = e.bias if bias is None else bias + e.bias
    return Expr(tuple(terms), shape, bias)


def _reshape(value, old: tuple[int, ...], new: tuple[int, ...]):
    if value is None or np.ndim(value) == 0:
        return value
    return np.broadcast_to(value, old).reshape(new)


def flatten_shape(shape: tuple[int, ...], start: int, end: int, where: str) -> tuple[int, ...]:
    """NIR Flatten over per-sample axes ``start..end`` (negative from the end)."""
    n = len(shape)
    s, e = (start + n if start < 0 else start), (end + n if end < 0 else end)
    if not (0 <= s <= e < n):
        raise UnsupportedGraphError(f"node {where!r}: Flatten start_dim={start}, end_dim={end} do not fit shape "
                                    f"{shape}")
    return (*shape[:s], int(np.prod(shape[s : e + 1])), *shape[e + 1 :])


def flatten(expr: Expr, new_shape: tuple[int, ...]) -> Expr:
    """A reshape (C-order): factors, per-element shifts and the bias follow."""
    old = expr.shape
    terms = tuple(
        replace(t, shape=new_shape, factor=_reshape(t.factor, old, new_shape), shift=_reshape(t.shift, old, new_shape))
        for t in expr.terms
    )
    return Expr(terms, tuple(new_shape), _reshape(expr.bias, old, new_shape))


def scale(expr: Expr, s: np.ndarray, where: str) -> Expr:
    """Elementwise multiplication by a constant."""
    s = np.asarray(s, dtype=np.float64)
    if np.broadcast_shapes(s.shape, expr.shape) != tuple(expr.shape):
        raise UnsupportedGraphError(f"node {where!r}: scale of shape {s.shape} does not broadcast to the input "
                                    f"{expr.shape}")
    terms = tuple(replace(t, factor=s if t.factor is None else t.factor * s) for t in expr.terms)
    return Expr(terms, expr.shape, None if expr.bias is None else expr.bias * s)


def delay(expr: Expr, steps: np.ndarray, where: str) -> Expr:
    """A NIR Delay of `steps` (int, per element or uniform): ``y_t = x_{t - steps}``, zeros before."""
    if expr.bias is not None and np.any(expr.bias):
        raise UnsupportedGraphError(
            f"node {where!r}: a Delay whose input contains a constant (an upstream bias) outputs 0 for its first "
            "steps and the constant after; Lava cannot add a constant from a given step on. Move the bias after the "
            "Delay or export without it"
        )
    steps = np.asarray(steps, dtype=np.int64)
    if np.broadcast_shapes(steps.shape, expr.shape) != tuple(expr.shape):
        raise UnsupportedGraphError(f"node {where!r}: delay of shape {steps.shape} does not broadcast to {expr.shape}")
    flat = steps.reshape(-1)
    shift = int(flat[0]) if flat.size and np.all(flat == flat[0]) else np.broadcast_to(steps, expr.shape).copy()
    terms = tuple(replace(t, shift=t.shift + shift) for t in expr.terms)
    return Expr(terms, expr.shape, None)


def through_linear(expr: Expr, op: LinearOp, own_bias: np.ndarray | None, where: str) -> Expr:
    """The value after a linear layer: every term gains an `OpStep`, the constant goes through the layer."""
    terms = []
    for t in expr.terms:
        if not t.uniform_shift:
            raise UnsupportedGraphError(
                f"node {where!r}: a per-element Delay before a linear layer does not commute with it; Lava needs "
                "one delay per path here. Use a uniform delay or put the Delay after the layer"
            )
        step = OpStep(op.node, None if t.factor is None else np.broadcast_to(t.factor, op.in_shape).copy())
        terms.append(Term(t.source, op.out_shape, t.delayed, (*t.ops, step), None, t.shift))
    bias = None if expr.bias is None or not np.any(expr.bias) else apply_op(op, expr.bias)
    if own_bias is not None:
        bias = own_bias if bias is None else bias + own_bias
    return Expr(tuple(terms), op.out_shape, bias)

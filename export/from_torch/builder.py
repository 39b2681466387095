"""The exporter's building blocks: the export config, values (summed node outputs), the graph builder and the
converter table ``module type -> converter`` that :mod:`export.from_torch.converters` fills."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import nir
import numpy as np
import torch
from torch import nn

from export.from_torch.fold import fold_bn, lif_params, linear_as_conv1d
from snnav.errors import UnsupportedGraphError

__all__ = ["CONVERTERS", "Builder", "ExportConfig", "ExportError", "Value", "convert", "converter", "sum_values"]


class ExportError(UnsupportedGraphError, ValueError):
    """The model (or a part of it) cannot be exported as configured; the message says why and what to change."""


@dataclass(frozen=True)
class ExportConfig:
    """What the model alone does not say.

    Attributes:
        dt_s: seconds per discrete step (recorded in the graph; sets tau of every LIF).
        time_steps: T, the window the model runs over (readout step T-1; window nodes buffer T steps).
        audio_shape: ``(C, H, W)`` of one audio frame, or None for a visual-only model.
        visual_shape: ``(C, H, W)`` of one visual frame, or None for an audio-only model.
        dtype: ``"float32"`` (default) or ``"float64"`` for weights and the exactness of thresholds.
        data: what the model was trained on, recorded as ``metadata["data"]`` so a simulator can open the same
            views (``{"dataset": "av-digits", "input_size": 64, "audio_view": ...}``; strings and numbers only).
    """

    dt_s: float
    time_steps: int
    audio_shape: tuple[int, int, int] | None = None
    visual_shape: tuple[int, int, int] | None = None
    dtype: str = "float32"
    data: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.dt_s, (int, float)) and np.isfinite(self.dt_s) and self.dt_s > 0):
            raise ExportError(f"dt_s must be a positive number of seconds; got {self.dt_s!r}. Pass e.g. --dt-s 1e-3.")
        if int(self.time_steps) < 1:
            raise ExportError(f"time_steps must be >= 1; got {self.time_steps!r}.")
        if self.dtype not in ("float32", "float64"):
            raise ExportError(f"dtype must be float32 or float64; got {self.dtype!r}.")


@dataclass(frozen=True)
class Value:
    """A per-sample tensor in the graph: the sum of the outputs of ``terms`` (node names), of shape ``shape``."""

    terms: tuple[str, ...]
    shape: tuple[int, ...]


@dataclass
class Builder:
    config: ExportConfig
    nodes: dict[str, nir.NIRNode] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    omitted: dict[str, str] = field(default_factory=dict)  # module path -> why it has no node

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.config.dtype)

    def add(self, name: str, node: nir.NIRNode, source: str, inputs: Value | dict[str, Value] | None) -> str:
        """Add ``node`` as ``name`` fed by ``inputs`` (a Value, or {port: Value} for extension nodes)."""
        name = name.replace(".", "_")
        if name in self.nodes:
            raise ExportError(f"internal: node name {name!r} used twice")
        node.metadata = {**(node.metadata or {}), "source": source}
        self.nodes[name] = node
        if isinstance(inputs, Value):
            self.edges += [(src, name) for src in inputs.terms]
        elif inputs:
            for port, value in inputs.items():
                self.edges += [(src, f"{name}.{port}") for src in value.terms]
        return name

    # ------------------------------------------------------------------------------------------------ leaf ops
    def lif(self, path: str, module: nn.Module, x: Value, source_axes: tuple[int, ...] | None = None) -> Value:
        """``nir.LIF`` for snnav's neuron ``module``; ``source_axes``: the module sees this node's per-sample tensor
        permuted so (``(1, 0)`` for a neuron the model runs on ``(N, C)`` tokens), recorded for comparisons."""
        tau, theta = _neuron_params(module, path)
        node = nir.LIF(**lif_params(x.shape, tau, theta, self.config.dt_s, self.np_dtype))
        if source_axes is not None:
            node.metadata = {"source_axes": np.array(source_axes, dtype=np.int64)}
        return Value((self.add(path, node, path, x),), x.shape)

    def conv_bn_1d(self, path: str, conv: nn.Conv1d, bn: nn.BatchNorm1d, x: Value) -> Value:
        weight, bias = fold_bn(conv, bn, self.np_dtype)
        c, n = x.shape
        node = nir.Conv1d(input_shape=n, weight=weight, stride=1, padding=0, dilation=1, groups=1, bias=bias)
        return Value((self.add(path + ".conv", node, path + ".conv:bn folded", x),), (weight.shape[0], n))

    def token_linear(self, path: str, linear: nn.Linear, x: Value) -> Value:
        """``nn.Linear`` over the channels of every token, as a kernel-1 ``Conv1d``."""
        weight, bias = linear_as_conv1d(linear, self.np_dtype)
        node = nir.Conv1d(input_shape=x.shape[1], weight=weight, stride=1, padding=0, dilation=1, groups=1, bias=bias)
        return Value((self.add(path, node, path, x),), (weight.shape[0], x.shape[1]))

    def scale(self, path: str, factor: float, x: Value, source: str) -> Value:
        node = nir.Scale(scale=np.full(x.shape, factor, dtype=self.np_dtype))
        return Value((self.add(path, node, source, x),), x.shape)

    def flatten(self, path: str, x: Value, source: str) -> Value:
        node = nir.Flatten(input_type={"input": np.array(x.shape)}, start_dim=0, end_dim=len(x.shape) - 1)
        return Value((self.add(path, node, source, x),), (int(np.prod(x.shape)),))

    def token_mean_affine(self, path: str, weight: torch.Tensor, bias: torch.Tensor | None, x: Value,
                          source: str) -> Value:
        """``W mean_N(x) + b`` for tokens ``x`` ``(C, N)``: Flatten -> Affine with ``W/N`` repeated over tokens."""
        c, n = x.shape
        flat = self.flatten(path + ".flatten", x, source.split(":")[0] + ":flatten")
        w = weight.detach().to("cpu", torch.float64).numpy()  # (K, C)
        w_tok = np.repeat(w / n, n, axis=1).astype(self.np_dtype)  # (K, C*N), column c*N + m
        if bias is None:
            node: nir.NIRNode = nir.Linear(weight=w_tok)
        else:
            node = nir.Affine(weight=w_tok, bias=bias.detach().to("cpu", torch.float64).numpy().astype(self.np_dtype))
        return Value((self.add(path, node, source, flat),), (w.shape[0],))

    def time_mean(self, path: str, x: Value, source: str) -> Value:
        """Mean over the T steps of the window, read at the last step: ``I`` with ``dt r = 1/T``."""
        r = np.full(x.shape, 1.0 / (self.config.time_steps * self.config.dt_s), dtype=np.float64)
        return Value((self.add(path, nir.I(r=r), source, x),), x.shape)


def _neuron_params(module: nn.Module, path: str) -> tuple[float, float]:
    tau, theta = getattr(module, "tau", None), getattr(module, "threshold", None)
    if not isinstance(tau, float) or not isinstance(theta, float):
        raise ExportError(f"{path} is a {type(module).__name__}, not snnav's MultiStepLIF (tau, threshold); "
                          "only that neuron has a NIR mapping. Build the model with the default neuron_layer.")
    return tau, theta


def sum_values(*values: Value) -> Value:
    shapes = {v.shape for v in values}
    if len(shapes) != 1:
        raise ExportError(f"internal: summing values of different shapes {sorted(shapes)}")
    return Value(tuple(t for v in values for t in v.terms), values[0].shape)


# ---------------------------------------------------------------------------------------------------- converters
Converter = Callable[..., Value]
CONVERTERS: dict[type, Converter] = {}


def converter(*types: type) -> Callable[[Converter], Converter]:
    def register(fn: Converter) -> Converter:
        for t in types:
            CONVERTERS[t] = fn
        return fn

    return register


def convert(b: Builder, module: nn.Module, path: str, *args: Value) -> Value:
    """Emit the nodes of ``module`` (found at ``path``) fed by ``args``; the most specific registered type wins."""
    for cls in type(module).__mro__:
        if cls in CONVERTERS:
            return CONVERTERS[cls](b, module, path, *args)
    raise ExportError(f"no NIR export for {type(module).__name__} at {path}; export supports snnav's registered models.")



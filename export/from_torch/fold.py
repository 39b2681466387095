"""Batch-norm folding and neuron parameters: the numeric pieces of the torch -> NIR mapping.

Folding happens in float64 from the module's parameters and running statistics (eval-mode batch norm), then the
result is cast to the export dtype: ``BN(conv(x) + b0) = conv_{W s}(x) + (b0 - mu) s + beta`` with
``s = gamma / sqrt(var + eps)``. The model is only read, never modified.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["fold_bn", "linear_as_conv1d", "lif_params", "nir_threshold"]


def _f64(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy().copy()


def fold_bn(conv: nn.Conv1d | nn.Conv2d, bn: nn.BatchNorm1d | nn.BatchNorm2d, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """``(weight, bias)`` of the convolution with ``bn`` (eval mode: running statistics) folded in.

    Raises:
        ValueError: the batch norm has no running statistics (``track_running_stats=False``), so eval mode would
            normalise with batch statistics, which no fixed weight can express.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"{bn} has no running statistics; it cannot be folded. Export needs track_running_stats.")
    w = _f64(conv.weight)  # (C_out, C_in, *k)
    b0 = _f64(conv.bias) if conv.bias is not None else np.zeros(w.shape[0])
    gamma = _f64(bn.weight) if bn.weight is not None else np.ones(w.shape[0])
    beta = _f64(bn.bias) if bn.bias is not None else np.zeros(w.shape[0])
    s = gamma / np.sqrt(_f64(bn.running_var) + bn.eps)  # (C_out,)
    weight = w * s.reshape(-1, *([1] * (w.ndim - 1)))
    bias = (b0 - _f64(bn.running_mean)) * s + beta
    return weight.astype(dtype), bias.astype(dtype)


def linear_as_conv1d(linear: nn.Linear, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """A channel-wise ``nn.Linear(D_in, D_out)`` applied to every token as a kernel-1 Conv1d ``(D_out, D_in, 1)``."""
    w = _f64(linear.weight)[:, :, None]
    b = _f64(linear.bias) if linear.bias is not None else np.zeros(w.shape[0])
    return w.astype(dtype), b.astype(dtype)


def nir_threshold(theta: float, dtype: np.dtype = np.float32) -> float:
    """The NIR threshold theta' with ``v > theta'`` equal to the model's ``v >= theta`` for every ``v`` of ``dtype``.

    NIR (like snnTorch and Norse) spikes on ``v > v_threshold``; snnav's neuron on ``H >= theta``. The largest
    number of the membrane's dtype below theta is the threshold that makes the two agree (no number of that dtype
    lies strictly between it and theta). A float32 export's theta' (1 - 2^-24 for theta = 1) is stored exactly in
    the file's float64 parameters.
    """
    dtype = np.dtype(dtype)
    return float(np.nextafter(dtype.type(theta), dtype.type(-np.inf)))


def lif_params(shape: tuple[int, ...], tau_steps: float, theta: float, dt_s: float,
               dtype: np.dtype = np.float32) -> dict[str, np.ndarray]:
    """Parameters of ``nir.LIF`` whose forward Euler step at ``dt_s`` is snnav's neuron.

    ``v + dt/tau ((v_leak - v) + r I)`` with ``tau = tau_steps dt``, ``r = 1``, ``v_leak = 0`` is
    ``V + (X - V) / tau_steps``. Stored as float64 so a backend computing ``dt / tau`` gets ``1 / tau_steps`` exactly
    for power-of-two ``tau_steps`` (2 in S-CMRL); ``dtype`` is the membrane dtype the threshold is exact for.
    """
    full = lambda value: np.full(shape, value, dtype=np.float64)  # noqa: E731
    return {
        "tau": full(tau_steps * dt_s),
        "r": full(1.0),
        "v_leak": full(0.0),
        "v_threshold": full(nir_threshold(theta, dtype)),
        "v_reset": full(0.0),
    }

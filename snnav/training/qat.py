"""Quantization-aware fine-tuning: the forward pass through the fixed-point formats the chip runs, as plain data.

The library does not know Loihi: it applies a :class:`QATSpec`, numbers that the application layer derives from the
deployment quantizer (``snnav.app.qat`` runs ``hardware_sims``' plan quantizer on the exported model and maps every
synapse and neuron back to the module it came from through the export's ``metadata["source"]``). Applied to a model
(:func:`apply_qat`):

* **Weights** (:class:`WeightQuant`): a parametrization replaces ``module.weight`` by ``m * step`` with the mantissa
  ``m = clamp(q * round(w / (q * step)), lo, hi)`` -- the grid Lava's clip and truncate leave unchanged (``q`` is the
  mantissa spacing of ``weight_bits``), ``step`` per output channel the real value of one mantissa unit *in this
  module's own weight* (the deployed weight is this one times the folds the exporter applies: batch norm, ``1/tau``,
  ``Scale`` nodes, which the spec divides out). Gradients pass straight through (STE).
* **Neurons** (:class:`NeuronQuant`): the module's forward becomes the integer LIF the chip runs: the synaptic input
  ``c x`` (``c = 1/tau``) minus the exporter's float bias, on the grid of the synapses' integer output (``a_in << 6``
  units of ``1/scale``), wrapped as the 24-bit current; then ``v <- trunc(v (4096 - dv) / 4096) + u + bias_int``,
  saturated to 24 bits, a spike when ``v > vth_int``, reset to 0. The spikes are the integer model's; the gradient
  is the float neuron's sigmoid surrogate at ``v / scale`` (detached membrane, as S-CMRL trains).
* **Inputs**: graded model inputs are rounded to ``2**-input_exp``, as the chip's input messages are.
* **Batch norm** is frozen (eval statistics, no trainable affine), and so are the biases of quantized layers: the
  fold into the deployed weights must not move while the grid is defined through it, and the constant parts land
  in the neurons' integer biases, which the spec holds.

Checkpoints keep plain parameter names (:func:`plain_state_dict`, :func:`load_plain_state_dict`), so a fine-tuned
checkpoint loads into an unmodified model (its weights are the latent float ones; :func:`snap_weights` writes the
quantized values into the weights for export).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from snnav.errors import ConfigError
from snnav.neurons import MultiStepLIF

__all__ = ["WeightQuant", "NeuronQuant", "QATSpec", "apply_qat", "remove_qat", "snap_weights", "plain_state_dict",
           "load_plain_state_dict", "fixed_point_lif", "freeze_batchnorm", "DECAY_UNITY", "STATE_LIMIT"]

DECAY_UNITY = 4096
"""Loihi's decays are 12-bit fractions of 4096 (``hardware_sims.fixed_point.formats.DECAY_UNITY``)."""
STATE_LIMIT = 2**23
"""``u`` wraps past +-2**23, ``v`` saturates at +-(2**23 - 1) (24-bit state)."""
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
ACT_UNIT = 64
FLOOR_MARGIN = 2.0**-12
"""A synapse's integer output enters ``u`` shifted left by 6 (``a_in << 6``)."""


@dataclass(frozen=True)
class WeightQuant:
    """One weight tensor's deployed grid: ``step`` (per output channel, or one value) and the mantissa range."""

    step: Tensor  # (C_out,) real value of one mantissa unit in the module's own weight
    lo: int
    hi: int
    q: int  # mantissas are multiples of q (Loihi's numWeightBits)
    exp: int = 0  # the layer's weight exponent (informational; pinned in the export's metadata)

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step.double().cpu(), "lo": self.lo, "hi": self.hi, "q": self.q, "exp": self.exp}


@dataclass(frozen=True)
class NeuronQuant:
    """One neuron population's integer parameters, in the module's own layout (per sample, per step)."""

    scale: float  # integer state units per real unit: 2**(12 + state_exp)
    dv: int  # Loihi's 12-bit voltage decay: v <- trunc(v * (4096 - dv) / 4096)
    du: int  # current decay (4095: u = a_in, S-CMRL's neuron)
    vth_int: int  # spike iff v > vth_int (= vth_mant << 6)
    c: float  # the fold of the neuron's input into the synapses: dt / tau
    bias_float: Tensor  # the exporter's real bias of the population (c * folded bias), module layout or scalar
    bias_int: Tensor  # bias_mant << bias_exp, same shape
    floor: bool = False  # one synapse with a negative weight exponent feeds it: its output is floored, not rounded

    def to_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "dv": self.dv, "du": self.du, "vth_int": self.vth_int, "c": self.c,
                "bias_float": self.bias_float.double().cpu(), "bias_int": self.bias_int.double().cpu(),
                "floor": self.floor}


@dataclass(frozen=True)
class QATSpec:
    """Everything :func:`apply_qat` needs, keyed by module path (``model.get_submodule``)."""

    weights: Mapping[str, WeightQuant] = field(default_factory=dict)
    neurons: Mapping[str, NeuronQuant] = field(default_factory=dict)
    input_exps: tuple[int, ...] = ()  # per positional model input: round to 2**-exp (empty: no rounding)
    settings: Mapping[str, Any] = field(default_factory=dict)  # the quantizer settings (weight_bits, weight_exps, ...)
    # plus "inexact": NIR nodes whose fan-in paths' folds have no small rational ratio (their spikes may differ)

    def to_dict(self) -> dict[str, Any]:
        return {"weights": {k: w.to_dict() for k, w in self.weights.items()},
                "neurons": {k: n.to_dict() for k, n in self.neurons.items()},
                "input_exps": list(self.input_exps), "settings": dict(self.settings)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "QATSpec":
        try:
            weights = {k: WeightQuant(torch.as_tensor(w["step"], dtype=torch.float64), int(w["lo"]), int(w["hi"]),
                                      int(w["q"]), int(w.get("exp", 0))) for k, w in data["weights"].items()}
            neurons = {k: NeuronQuant(float(n["scale"]), int(n["dv"]), int(n["du"]), int(n["vth_int"]),
                                      float(n["c"]), torch.as_tensor(n["bias_float"], dtype=torch.float64),
                                      torch.as_tensor(n["bias_int"], dtype=torch.float64), bool(n.get("floor", False)))
                       for k, n in data["neurons"].items()}
            return cls(weights, neurons, tuple(int(e) for e in data.get("input_exps", ())),
                       dict(data.get("settings", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a quantization-aware training spec ({type(exc).__name__}: {exc}); write it with "
                              "snnav train --finetune RUN --fixed-point.") from exc


# --------------------------------------------------------------------------------------------------------- weights
class _WeightFakeQuant(nn.Module):
    """``w -> m * step`` on the deployed mantissa grid, straight-through gradient."""

    def __init__(self, wq: WeightQuant) -> None:
        super().__init__()
        self.step = wq.step.double().reshape(-1)  # not a buffer: model.to(float32) must not round it
        self.lo, self.hi, self.q = float(wq.lo), float(wq.hi), float(wq.q)

    def quantize(self, w: Tensor) -> Tensor:
        step = self.step.to(w.device).reshape(-1, *([1] * (w.dim() - 1)))
        mant = torch.clamp(self.q * torch.round(w.double() / (self.q * step)), self.lo, self.hi)
        return (mant * step).to(w.dtype)

    def forward(self, w: Tensor) -> Tensor:
        return w + (self.quantize(w) - w).detach()


# --------------------------------------------------------------------------------------------------------- neurons
class _FixedPointLIF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, nq: NeuronQuant, tau: float, slope: float) -> Tensor:  # type: ignore[override]
        shape = x.shape
        xs = x.detach().double()
        bias_f, bias_i = nq.bias_float.to(xs.device), nq.bias_int.to(xs.device)
        if bias_f.dim() and tuple(xs.shape[2:]) != tuple(bias_f.shape):
            if xs[0, 0].numel() != bias_f.numel():
                raise ConfigError(f"quantization spec of a neuron has {bias_f.numel()} neurons per sample; the "
                                  f"module receives {tuple(xs.shape[2:])}: the spec is of another model")
            xs = xs.reshape(*xs.shape[:2], *bias_f.shape)
        s = nq.scale
        # The synapses' integer output: c x minus the float bias the exporter folded into the neuron, on the grid of
        # a_in << 6; rint removes the float rounding of the model's (non-dyadic) batch-norm arithmetic.
        a = (xs * nq.c - bias_f) * (s / ACT_UNIT)
        # A right-shifted synapse floors its sum (exact multiples of 2**exp in a; the margin absorbs float error).
        a = (torch.floor(a + FLOOR_MARGIN) if nq.floor else torch.round(a)) * ACT_UNIT
        m = float(STATE_LIMIT)
        if nq.du + 1 == DECAY_UNITY:  # u = a_in each step (S-CMRL's neuron): the wrap of every step at once
            u_all = torch.where(a > m, a - 2 * m, a)
            u_all = torch.where(u_all <= -m, a + 2 * m, u_all)
        else:
            u_all = _decayed_current(a, DECAY_UNITY - (nq.du + 1), m)
        # v <- trunc(v * (4096 - dv) / 4096) + u + bias: the product and the division by 2**12 are exact in float64
        # (|v| < 2**23), so multiplying by the exact dyadic (4096 - dv) / 4096 gives the same value in one op.
        h_all = u_all.add_(bias_i)  # u + bias of every step, overwritten step by step with the membrane h
        v_factor = (DECAY_UNITY - nq.dv) / DECAY_UNITY
        vth = float(nq.vth_int)
        v = torch.zeros_like(a[0])
        for t in range(a.shape[0]):
            h = h_all[t]
            h.add_(torch.trunc_(v.mul_(v_factor))).clamp_(-(m - 1), m - 1)
            v = h.masked_fill(h > vth, 0.0)
        spikes = h_all > vth
        ctx.save_for_backward(h_all.div_(s).to(x.dtype))
        ctx.vth, ctx.tau, ctx.slope, ctx.shape = vth / s, tau, slope, shape
        return spikes.to(x.dtype).reshape(shape)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (h,) = ctx.saved_tensors
        sig = torch.sigmoid((h - ctx.vth) * ctx.slope)
        g = grad.reshape(h.shape) * ctx.slope * sig * (1 - sig) / ctx.tau
        return g.reshape(ctx.shape), None, None, None


def _decayed_current(a: Tensor, u_factor: int, m: float) -> Tensor:
    """``u <- wrap(trunc(u * u_factor / 4096) + a_t)`` step by step (a decaying current; 24-bit wrap)."""
    out = torch.empty_like(a)
    u = torch.zeros_like(a[0])
    for t in range(a.shape[0]):
        cur = torch.trunc(u * u_factor / DECAY_UNITY) + a[t]
        wrapped = torch.where(cur > m, cur - 2 * m, cur)
        u = torch.where(wrapped <= -m, cur + 2 * m, wrapped)
        out[t] = u
    return out


def fixed_point_lif(x: Tensor, nq: NeuronQuant, tau: float = 2.0, slope: float = 4.0) -> Tensor:
    """Spikes ``[T, B, ...]`` of the integer LIF of `nq` for input current `x` (module docstring)."""
    return _FixedPointLIF.apply(x, nq, tau, slope)


def _quantized_forward(module: MultiStepLIF, nq: NeuronQuant):
    def forward(x: Tensor) -> Tensor:
        return fixed_point_lif(x, nq, module.tau, module.surrogate_slope)

    return forward


# ----------------------------------------------------------------------------------------------------------- model
def _input_hook(exps: tuple[int, ...]):
    def hook(_module, args):
        out = list(args)
        for i, e in enumerate(exps):
            if i < len(out) and isinstance(out[i], Tensor) and out[i].is_floating_point():
                k = float(2**e)
                out[i] = torch.round(out[i] * k) / k
        return tuple(out)

    return hook


def apply_qat(model: nn.Module, spec: QATSpec) -> nn.Module:
    """Make `model`'s forward the deployed fixed point of `spec` (in place; module docstring). Returns `model`.

    Raises:
        ConfigError: the spec names a module the model lacks, or one of the wrong kind.
    """
    if getattr(model, "_qat_applied", False):
        return model
    for path, wq in spec.weights.items():
        mod = _submodule(model, path)
        if not isinstance(getattr(mod, "weight", None), nn.Parameter):
            raise ConfigError(f"quantization spec names {path!r}, which has no weight parameter")
        if wq.step.numel() not in (1, mod.weight.shape[0]):
            raise ConfigError(f"quantization spec of {path!r} has {wq.step.numel()} steps for "
                              f"{mod.weight.shape[0]} output channels: the spec is of another model")
        parametrize.register_parametrization(mod, "weight", _WeightFakeQuant(wq))
        if isinstance(getattr(mod, "bias", None), nn.Parameter):
            mod.bias.requires_grad_(False)  # it lands in a neuron's bias, which the spec holds as integers
    for path, nq in spec.neurons.items():
        mod = _submodule(model, path)
        if not isinstance(mod, MultiStepLIF):
            raise ConfigError(f"quantization spec names {path!r} as a neuron; it is a {type(mod).__name__}")
        mod.forward = _quantized_forward(mod, nq)
    for mod in model.modules():
        if isinstance(mod, _BATCHNORMS):
            for p in mod.parameters(recurse=False):
                p.requires_grad_(False)
    model._qat_handles = [model.register_forward_pre_hook(_input_hook(tuple(spec.input_exps)))]
    model._qat_applied = True
    return model


def freeze_batchnorm(model: nn.Module) -> None:
    """Batch norm in eval mode (call after ``model.train()``): the fold into the deployed weights stays fixed."""
    for mod in model.modules():
        if isinstance(mod, _BATCHNORMS):
            mod.eval()


def remove_qat(model: nn.Module, *, snap: bool = True) -> nn.Module:
    """Undo :func:`apply_qat`; with `snap` the weights keep their quantized values (what is deployed)."""
    for mod in model.modules():
        if parametrize.is_parametrized(mod, "weight"):
            parametrize.remove_parametrizations(mod, "weight", leave_parametrized=snap)
        if isinstance(mod, MultiStepLIF) and "forward" in vars(mod):
            del mod.forward
    for h in getattr(model, "_qat_handles", []):
        h.remove()
    model._qat_applied = False
    return model


def snap_weights(model: nn.Module) -> nn.Module:
    """The quantized weights written into the parameters, parametrizations removed (the neurons stay quantized)."""
    for mod in model.modules():
        if parametrize.is_parametrized(mod, "weight"):
            parametrize.remove_parametrizations(mod, "weight", leave_parametrized=True)
    return model


_ORIGINAL = ".parametrizations.weight.original"


def plain_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """``model.state_dict()`` with the latent weights under their plain names (the fake-quantizers' buffers dropped)."""
    out = {}
    for key, value in model.state_dict().items():
        if key.endswith(_ORIGINAL):
            out[key[: -len(_ORIGINAL)] + ".weight"] = value
        elif ".parametrizations.weight." not in key:
            out[key] = value
    return out


def load_plain_state_dict(model: nn.Module, state: Mapping[str, Tensor]) -> None:
    """Load a plain state dict into a model with or without :func:`apply_qat` (strict)."""
    own = model.state_dict()
    mapped = {}
    for key, value in state.items():
        alt = key[: -len(".weight")] + _ORIGINAL if key.endswith(".weight") else None
        mapped[alt if alt in own and key not in own else key] = value
    model.load_state_dict(mapped)


def _submodule(model: nn.Module, path: str) -> nn.Module:
    try:
        return model.get_submodule(path)
    except AttributeError as exc:
        raise ConfigError(f"quantization spec names module {path!r}, which the model does not have: the spec is of "
                          "another model") from exc

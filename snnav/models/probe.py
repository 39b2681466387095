"""Firing-rate probe: forward hooks on spiking layers, so neurons never keep global counters."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from snnav.neurons import MultiStepLIF

__all__ = ["FiringRates"]


class FiringRates:
    """Context manager recording the mean output of every spiking layer of ``model`` in its last forward pass.

    Example::

        with FiringRates(model) as probe:
            model(audio, visual)
        probe.rates  # {"stem_audio.stages.0.lif": 0.12, ...}

    The mean of a binary spike tensor is its firing rate (spikes per neuron per step). Hooks are removed on exit;
    the last recorded values stay readable. A forward pre-hook on ``model`` clears the record at the start of each
    forward, so ``rates`` only ever describes one pass.

    Args:
        model: the module to probe.
        neuron_types: the layer classes to hook (default :class:`MultiStepLIF`); pass others for injected neurons.
    """

    def __init__(self, model: nn.Module, neuron_types: tuple[type[nn.Module], ...] = (MultiStepLIF,)) -> None:
        self.model = model
        self.neuron_types = neuron_types
        self._spikes: dict[str, float] = {}
        self._elements: dict[str, int] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> "FiringRates":
        self._handles.append(self.model.register_forward_pre_hook(lambda *_: self._clear()))
        for name, module in self.model.named_modules():
            if isinstance(module, self.neuron_types):
                self._handles.append(module.register_forward_hook(self._hook(name or type(module).__name__)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _clear(self) -> None:
        self._spikes.clear()
        self._elements.clear()

    def _hook(self, name: str):
        def record(_module: nn.Module, _inputs: tuple[Tensor, ...], out: Tensor) -> None:
            with torch.no_grad():
                # Accumulate, so a layer called twice in one forward reports its mean over both calls.
                self._spikes[name] = self._spikes.get(name, 0.0) + float(out.detach().sum())
                self._elements[name] = self._elements.get(name, 0) + out.numel()

        return record

    @property
    def rates(self) -> dict[str, float]:
        """``{qualified module name: mean spike rate}`` for the last forward pass."""
        return {name: self._spikes[name] / max(self._elements[name], 1) for name in self._spikes}

    @property
    def spike_counts(self) -> dict[str, float]:
        """``{qualified module name: total spikes}`` in the last forward pass (all T, B and neurons)."""
        return dict(self._spikes)

"""Spiking audio-visual models: S-CMRL, its ablations and baselines, behind a registry.

``create_model(name, **config)`` builds any of ``list_models()``; ``model_preset(dataset)`` gives per-dataset sizes.
Every model's ``forward(audio, visual)`` takes time-first ``[T, B, C, H, W]`` tensors and returns a
:class:`ModelOutput`.
"""

from snnav.models.output import ModelOutput
from snnav.models.probe import FiringRates
from snnav.models.registry import (
    DatasetPreset,
    create_model,
    list_models,
    list_presets,
    model_defaults,
    model_preset,
    register_model,
)

__all__ = [
    "ModelOutput",
    "FiringRates",
    "DatasetPreset",
    "create_model",
    "list_models",
    "list_presets",
    "model_defaults",
    "model_preset",
    "register_model",
]

"""From a :class:`TrainConfig` to objects: the model, the datasets, the checks that they fit, and evaluation.

Bad input is caught here before any training step: an unknown model or dataset, a missing data path, data whose
channels, frame size or labels do not fit the model (a 2-sample forward pass in eval mode), each with a one-line
:class:`ConfigError`/:class:`DatasetError` that names the fix.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from snnav.data.datasets import DATASETS, open_dataset, time_first
from snnav.errors import ConfigError, DatasetError, InputError
from snnav.models import FiringRates, create_model, list_models, model_preset
from snnav.neurons import MultiStepLIF
from snnav.training.config import TrainConfig
from snnav.training.distributed import DistContext, eval_indices

__all__ = ["preset_name", "resolve_model_kwargs", "resolve_input_size", "build_model", "open_datasets",
           "check_data_matches_model", "batch_to", "evaluate_model"]


def preset_name(config: TrainConfig) -> str:
    if config.preset:
        return config.preset
    if config.dataset == "av-digits" and config.data_options.get("visual_view") == "events":
        return "av-digits-events"
    return config.dataset


def resolve_model_kwargs(config: TrainConfig) -> dict[str, Any]:
    """The dataset preset's model keys overridden by ``config.model_config``."""
    return {**model_preset(preset_name(config)).model_kwargs(), **config.model_config}


def resolve_input_size(config: TrainConfig) -> int:
    """H = W of the inputs: ``config.input_size`` or the preset's."""
    return config.input_size or model_preset(preset_name(config)).input_size


def build_model(config: TrainConfig) -> nn.Module:
    """``create_model(config.model, **resolve_model_kwargs(config))``; unknown names/keys raise ConfigError."""
    if config.model not in list_models():
        raise ConfigError(f"unknown model {config.model!r}; expected one of: {', '.join(list_models())} "
                          "(set model in the config or --model).")
    return create_model(config.model, **resolve_model_kwargs(config))


def open_datasets(config: TrainConfig, splits: tuple[str, ...] = ("train", "test")) -> list[Dataset]:
    """Open the config's dataset splits with T from the config or the preset."""
    if config.dataset not in DATASETS:
        raise DatasetError(f"unknown dataset {config.dataset!r}; known datasets: {', '.join(DATASETS)} "
                           "(set dataset in the config or --dataset).")
    if not config.data:
        raise ConfigError(f"no data path for dataset {config.dataset!r}; pass --data PATH (the AV-Digits .h5 file "
                          "or the dataset's root folder) or set data in the config.")
    steps = config.time_steps or model_preset(preset_name(config)).time_steps
    options = {"time_steps": steps, **config.data_options}
    try:
        return [open_dataset(config.dataset, config.data, split, **options) for split in splits]
    except TypeError as exc:
        raise ConfigError(f"bad data_options {dict(config.data_options)} for {config.dataset!r}: {exc}; "
                          "fix data_options in the config.") from exc


def check_data_matches_model(model: nn.Module, dataset: Dataset, input_size: int | None = None) -> None:
    """Check channels, frame size and labels of ``dataset`` against ``model`` with a 2-sample eval forward.

    Args:
        model: the built model.
        dataset: items ``(audio [T, C, H, W], visual [T, C, H, W], label)``.
        input_size: the H = W the model is set up for (``None``: not checked).

    Raises:
        ConfigError: the model cannot take the data (the message names both shapes and the fix).
    """
    if len(dataset) == 0:
        raise DatasetError("the training split is empty; check the data path and split.")
    audio, visual, _ = dataset[0]
    name, cfg = getattr(model, "model_name", type(model).__name__), getattr(model, "config", {})
    if input_size is not None:
        for modality, x in (("audio", audio), ("visual", visual)):
            if tuple(x.shape[-2:]) != (input_size, input_size):
                raise ConfigError(f"the data's {modality} frames are {x.shape[-2]}x{x.shape[-1]} but the model is set "
                                  f"up for {input_size}x{input_size}; use data of that size (e.g. `snnav data make "
                                  f"av-digits --frame-size {input_size}`), or set input_size = {x.shape[-1]} "
                                  "(and a fitting model_config) in the config.")
    for modality, x in (("audio", audio), ("visual", visual)):
        want = cfg.get(f"in_channels_{modality}")
        used = modality in getattr(model, "modalities", (modality,))
        if used and want is not None and x.dim() == 4 and x.shape[1] != want:
            raise ConfigError(f"the data's {modality} has {x.shape[1]} channels (item shape [T, C, H, W] = "
                              f"{list(x.shape)}) but model {name!r} expects {want}; set model_config."
                              f"in_channels_{modality} = {x.shape[1]}, a matching preset, or matching data options.")
    n = min(2, len(dataset))
    items = [dataset[i] for i in range(n)]
    param = next(model.parameters())
    a = torch.stack([it[0] for it in items], dim=1).to(param.device, param.dtype)  # (T, B, C, H, W)
    v = torch.stack([it[1] for it in items], dim=1).to(param.device, param.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(a, v)
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:300]
        raise ConfigError(f"model {name!r} ({cfg.get('stem')} stem, preset input sizes) cannot take the data: "
                          f"audio item {list(audio.shape)}, visual item {list(visual.shape)} ([T, C, H, W]): "
                          f"{first}; use the preset that matches the data (preset = ...) or adjust model_config."
                          ) from exc
    finally:
        model.train(was_training)
    classes = out.logits.shape[-1]
    labels = getattr(dataset, "labels", None)
    top = int(torch.as_tensor(labels).max()) if labels is not None and len(labels) else -1
    if top >= classes:
        raise ConfigError(f"the data has labels up to {top} but model {name!r} has {classes} classes; "
                          f"set model_config.num_classes = {top + 1} or use the dataset's preset.")


def _spiking_layers(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, MultiStepLIF)]


def batch_to(batch: tuple[Tensor, Tensor, Tensor], device: str, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    audio, visual, labels = batch
    for name, values in (("audio", audio), ("visual", visual)):
        if values.is_floating_point() and not bool(torch.isfinite(values).all()):
            rows = (~torch.isfinite(values.reshape(len(values), -1))).any(dim=1).nonzero().flatten().tolist()
            raise InputError(f"a batch of {name} data holds NaN or infinite values (rows {rows[:5]} of the batch); "
                             "stopped before they reach the weights; check or regenerate the data")
    return (time_first(audio).to(device, dtype), time_first(visual).to(device, dtype),  # (T, B, C, H, W)
            labels.to(device))


def evaluate_model(model: nn.Module, dataset: Dataset, ctx: DistContext, batch_size: int, dtype: torch.dtype,
                   num_workers: int = 0) -> dict[str, Any]:
    """Test loss (plain CE, as the reference validates), accuracy and per-layer firing rates over ``dataset``."""
    layers = _spiking_layers(model)
    # A private generator: DataLoader draws its worker seed from it, never from the global RNG.
    loader = DataLoader(Subset(dataset, eval_indices(len(dataset), ctx.rank, ctx.world_size)),
                        batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        generator=torch.Generator().manual_seed(0))
    sums = torch.zeros(3 + len(layers), dtype=torch.float64)  # loss, correct, count, rate x samples per layer
    was_training = model.training
    model.eval()
    with torch.no_grad(), FiringRates(model) as probe:
        for batch in loader:
            audio, visual, labels = batch_to(batch, ctx.device, dtype)
            logits = model(audio, visual).logits
            b = labels.shape[0]
            sums[0] += float(F.cross_entropy(logits, labels, reduction="sum"))
            sums[1] += float((logits.argmax(dim=1) == labels).sum())
            sums[2] += b
            rates = probe.rates
            for i, name in enumerate(layers):
                sums[3 + i] += rates.get(name, 0.0) * b  # every layer's size is proportional to B
    model.train(was_training)
    ctx.all_reduce_sum(sums)
    n = max(float(sums[2]), 1.0)
    return {"test_loss": float(sums[0]) / n, "test_acc": float(sums[1]) / n,
            "firing_rate": {name: float(sums[3 + i]) / n for i, name in enumerate(layers)}}

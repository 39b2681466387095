"""Rebuild a trained model from a snnav checkpoint (or run directory) and derive its :class:`ExportConfig`."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from export.from_torch.exporter import ExportConfig, ExportError
from snnav.errors import SnnavError
from snnav.models import create_model
from snnav.models.registry import model_preset
from snnav.training.build import preset_name, resolve_input_size
from snnav.training.checkpoint import load_checkpoint
from snnav.training.config import TrainConfig

__all__ = ["load_trained_model", "export_config_for", "checkpoint_path"]


def checkpoint_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            if (p / name).is_file():
                return p / name
        raise ExportError(f"{p} is a directory without best.pt or last.pt; pass a training run directory "
                          "(snnav train --out DIR) or a checkpoint file.")
    if not p.is_file():
        raise ExportError(f"{p} does not exist; pass a training run directory or a .pt checkpoint.")
    return p


def load_trained_model(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """``(model in eval mode, checkpoint)`` from a run directory (best.pt, else last.pt) or a ``.pt`` file."""

    ckpt_path = checkpoint_path(path)
    try:
        ckpt = load_checkpoint(ckpt_path)
        model = create_model(ckpt["model_name"], **ckpt["model_config"])
        model.load_state_dict(ckpt["model"])
    except SnnavError:
        raise
    except (KeyError, RuntimeError) as exc:
        raise ExportError(f"{ckpt_path} is not a snnav training checkpoint this version can rebuild ({exc}); "
                          "export a checkpoint written by snnav train.") from exc
    return model.eval(), ckpt


def export_config_for(ckpt: dict, dt_s: float, dtype: str = "float32") -> ExportConfig:
    """Input shapes and T from the checkpoint's training config; ``dt_s`` is the user's."""

    config = TrainConfig.from_dict(ckpt["config"])
    size = resolve_input_size(config)
    steps = config.time_steps or model_preset(preset_name(config)).time_steps
    cfg = ckpt["model_config"]
    return ExportConfig(
        dt_s=dt_s,
        time_steps=int(steps),
        audio_shape=(int(cfg["in_channels_audio"]), size, size) if "in_channels_audio" in cfg else None,
        visual_shape=(int(cfg["in_channels_visual"]), size, size) if "in_channels_visual" in cfg else None,
        dtype=dtype,
        data={"dataset": config.dataset, "input_size": int(size), "time_steps": int(steps),
              **{k: v for k, v in config.data_options.items() if isinstance(v, (str, int, float)) and k != "size"}},
    )

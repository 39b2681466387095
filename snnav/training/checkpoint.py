"""Checkpoints and the other files of a run directory, all written atomically.

A run directory holds::

    config.json        the effective TrainConfig
    last.pt            the latest checkpoint (every epoch, and every N steps if asked)
    best.pt            the checkpoint of the best test accuracy so far
    metrics.json       per-epoch metrics, best and last accuracy
    metrics.csv        the same per-epoch metrics, one row per epoch (firing rates as rate:<layer> columns)
    iemf_steps.csv     per-step IEMF records (when IEMF is on)

A checkpoint is a dict loadable with ``torch.load(weights_only=True)``: the config, the model's registry name and
config (enough to rebuild it with ``create_model``), the state dicts of model, optimizer and IEMF, the schedule
position, the epoch/step counters (with the partial sums of an epoch interrupted by a step checkpoint), the RNG
states of torch/numpy/python, the metrics history, the best accuracy and the snnav version.
"""

from __future__ import annotations

import csv
import io
import os
import random
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch

from snnav._version import __version__
from snnav.errors import FileFormatError
from snnav.io import atomic_path, write_json

__all__ = [
    "CheckpointError",
    "FORMAT",
    "capture_rng",
    "restore_rng",
    "save_checkpoint",
    "load_checkpoint",
    "check_model_matches",
    "resolve_checkpoint",
    "write_json",
    "write_metrics",
    "write_step_rows",
    "read_step_rows",
]

FORMAT = "snnav-train-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(FileFormatError):
    """A checkpoint is missing, unreadable, or does not belong to the model/config at hand."""


def capture_rng() -> dict[str, Any]:
    """The global RNG states (torch CPU and CUDA, numpy, python) in a form ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(gauss)],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"].cpu())
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def save_checkpoint(path: str | os.PathLike, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` (plus format tag and snnav version) to ``path`` atomically."""
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, "snnav_version": __version__, **payload}
    buffer = io.BytesIO()  # serialised in memory first: a full disk is then a plain OSError from write, not a
    torch.save(data, buffer)  # RuntimeError from torch's C++ stream ("basic_ios::clear")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(buffer.getbuffer())
    return Path(path)


def resolve_checkpoint(path: str | os.PathLike, prefer: str = "best.pt") -> Path:
    """A checkpoint file from a file path or a run directory (``prefer`` there, else ``last.pt``)."""
    path = Path(path)
    if path.is_dir():
        for name in (prefer, "last.pt"):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path} holds no checkpoint ({prefer} or last.pt); train into it with "
                              f"`snnav train --out {path}` first, or give the path of a .pt file.")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; give a .pt file or a run directory.")
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and validate a checkpoint written by :func:`save_checkpoint`.

    Raises:
        CheckpointError: unreadable, or not an snnav training checkpoint.
    """
    path = resolve_checkpoint(path)
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt/foreign files
        raise CheckpointError(f"cannot read checkpoint {path} ({type(exc).__name__}: {str(exc)[:200]}); "
                              "it is corrupt or not a torch file; use another checkpoint or retrain.") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an snnav training checkpoint (no '{FORMAT}' tag); "
                              "give a file written by `snnav train`.")
    if data.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {data['format_version']}, newer than this snnav "
                              f"({__version__}) reads ({FORMAT_VERSION}); upgrade snnav.")
    return data


def check_model_matches(ckpt: Mapping[str, Any], model_name: str, model_config: Mapping[str, Any],
                        where: str = "the checkpoint") -> None:
    """Raise :class:`CheckpointError` unless ``ckpt`` holds model ``model_name`` built with ``model_config``."""
    if ckpt["model_name"] != model_name:
        raise CheckpointError(f"{where} holds model {ckpt['model_name']!r} but {model_name!r} was asked for; "
                              f"use --model {ckpt['model_name']} to continue it, or a new --out directory.")
    saved = dict(ckpt["model_config"])
    diff = sorted(k for k in set(saved) | set(model_config) if saved.get(k) != model_config.get(k))
    if diff:
        detail = ", ".join(f"{k}: {saved.get(k)!r} vs {model_config.get(k)!r}" for k in diff)
        raise CheckpointError(f"{where} holds a {model_name!r} built differently ({detail}; saved vs asked); "
                              "use the config it was trained with, or a new --out directory.")



def _flatten(row: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, Mapping):
            prefix = "rate" if key == "firing_rate" else key
            out.update({f"{prefix}:{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def _write_csv(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    rows = [dict(r) for r in rows]
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)


def write_metrics(run_dir: str | os.PathLike, history: list[Mapping[str, Any]], summary: Mapping[str, Any]) -> None:
    """``metrics.json`` (``{"epochs": history, **summary}``) and ``metrics.csv`` (one flattened row per epoch)."""
    run_dir = Path(run_dir)
    write_json(run_dir / "metrics.json", {"epochs": list(history), **summary})
    _write_csv(run_dir / "metrics.csv", [_flatten(row) for row in history])


def read_step_rows(path: str | os.PathLike, up_to_step: int) -> list[dict[str, Any]]:
    """Rows of a step CSV with ``step <= up_to_step`` (drops rows of an interrupted, uncheckpointed stretch)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            try:
                if int(row["step"]) <= up_to_step:
                    rows.append(row)
            except (KeyError, TypeError, ValueError):
                continue  # a torn line from a killed writer
    return rows


def write_step_rows(path: str | os.PathLike, kept: list[Mapping[str, Any]], new: list[Mapping[str, Any]]) -> None:
    """Rewrite the step CSV atomically as ``kept + new``."""
    _write_csv(Path(path), [*kept, *new])

"""Measure a trained model's energy and time per inference on a CUDA GPU with NVML (``scripts/measure_gpu.py`` and
``snnav run`` on a machine with a GPU call `measure_gpu`).

The record holds, per target (the torch model; its NIR export through the reference interpreter, when given) and batch
size, the wall time and the board energy per sample over a window of at least ``window_s`` seconds, the idle power
measured before and after with the models loaded, and dynamic energy = board energy - idle power x window. Inputs are
the first ``batch`` test samples, resident on the GPU; float32 without TF32 unless ``allow_tf32``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import subprocess
from pathlib import Path
from typing import Any, Callable

import torch

from export.from_torch.exporter import ExportConfig, export_model
from export.interpreter import Interpreter
from export.ir.nirfile import read_graph
from snnav.app.gpu_energy import (
    METHOD,
    GPUUnavailableError,
    gpu_available,
    gpu_info,
    measure_idle_power,
    measure_inference,
)
from snnav.app.report.results import sha256_of
from snnav.errors import InputError
from snnav.models import create_model
from snnav.models.registry import model_preset
from snnav.training.build import check_data_matches_model, open_datasets, preset_name, resolve_input_size
from snnav.training.checkpoint import load_checkpoint
from snnav.training.config import TrainConfig

__all__ = ["FORMAT", "FORMAT_VERSION", "measure_gpu", "default_out", "measured_structure"]

FORMAT = "snnav.gpu-measurement"
FORMAT_VERSION = 1


def load_run(run: Path, data: Path):
    """``(model on CPU in eval mode, checkpoint, test split, T)``: the model and data as snnav.training builds them."""

    ckpt = load_checkpoint(run)
    model = create_model(ckpt["model_name"], **ckpt["model_config"])
    model.load_state_dict(ckpt["model"])
    model.eval()
    config = dataclasses.replace(TrainConfig.from_dict(ckpt["config"]), data=str(data))
    (test,) = open_datasets(config, splits=("test",))
    check_data_matches_model(model, test, resolve_input_size(config))
    steps = config.time_steps or model_preset(preset_name(config)).time_steps
    return model, ckpt, test, int(steps)


def first_samples(dataset, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if n > len(dataset):
        raise InputError(f"batch size {n} is larger than the test split ({len(dataset)} samples); use smaller "
                         "--batch-sizes")
    items = [dataset[i] for i in range(n)]
    audio = torch.stack([it[0] for it in items], dim=1).float()  # (T, B, C, H, W)
    visual = torch.stack([it[1] for it in items], dim=1).float()
    return audio, visual, torch.as_tensor([int(it[2]) for it in items])


def torch_target(model, audio, visual) -> tuple[Callable[[], Any], Callable[[], torch.Tensor]]:
    def call():
        with torch.inference_mode():
            return model(audio, visual).logits  # (B, K)

    return call, lambda: call().argmax(-1)


def nir_target(interpreter, audio, visual, readout_step: int) -> tuple[Callable[[], Any], Callable[[], torch.Tensor]]:
    inputs = {k: v for k, v in {"audio": audio, "visual": visual}.items() if k in interpreter.inputs}

    def call():
        return interpreter.run(inputs, record=False).outputs["logits"]  # (T, B, K)

    return call, lambda: call()[readout_step].argmax(-1)


def load_graph(path: Path, ckpt: dict, steps: int, device: str):
    """The NIR export and its interpreter (float32 on ``device``), checked against the checkpoint."""

    graph = read_graph(path)
    meta = graph.metadata if isinstance(graph.metadata, dict) else {}
    if meta.get("model") not in (None, ckpt["model_name"]) or int(meta.get("time_steps", steps)) != steps:
        raise InputError(f"{path} was exported from model {meta.get('model')!r} with T={meta.get('time_steps')}, but "
                         f"the run holds {ckpt['model_name']!r} with T={steps}; pass the run's own export")
    return graph, Interpreter(graph, dtype=torch.float32, device=device)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)  # the package's checkout, if any
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def default_out(gpu_name: str) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-") or "gpu"
    return Path("results") / f"gpu_measurement_{slug}.json"


def measure_gpu(run: Path, data: Path, *, nir_path: Path | None = None, batch_sizes: tuple[int, ...] = (1, 64),
                window_s: float = 2.0, idle_s: float = 2.0, warmup: int = 3, device_index: int = 0,
                allow_tf32: bool = False,
                command: str = "", progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure the trained model (and its NIR export, if given) on a CUDA GPU with NVML: one record (module docstring).

    Raises:
        GPUUnavailableError: no CUDA GPU or no NVML energy counter. InputError: a batch size below 1 or above the
            test split.
    """
    ok, why = gpu_available(device_index)
    if not ok:
        raise GPUUnavailableError(f"no GPU measurement: {why}")
    if min(batch_sizes) < 1:
        raise InputError(f"batch sizes must be >= 1; got {list(batch_sizes)}")
    device = f"cuda:{device_index}"
    torch.cuda.set_device(device_index)
    # torch lets cuDNN convolve in TF32 by default; spikes then flip where the CPU's float32 does not
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    info = gpu_info(device_index)
    progress(f"GPU {device_index}: {info.gpu_name}, driver {info.driver_version}, torch {info.torch_version} "
             f"(CUDA {info.cuda_version})")
    model, ckpt, test, steps = load_run(run, data)
    model = model.to(device)
    targets = {"torch": "the trained torch model, eval mode, float32, torch.inference_mode"}
    graph = interpreter = None
    if nir_path is not None:
        graph, interpreter = load_graph(nir_path, ckpt, steps, device)
        targets["nir-interpreter"] = "export.interpreter.Interpreter on the NIR export, float32"
    readout = int((graph.metadata or {}).get("readout_step", -1)) if graph is not None else -1
    audio, visual, labels = (x.to(device) for x in first_samples(test, max(batch_sizes)))
    torch.cuda.synchronize(device_index)

    idle = measure_idle_power(device_index, idle_s)
    progress(f"idle: {idle.power_w:.1f} W over {idle.window_s:.2f} s (counter refresh {idle.counter_refresh_s} s)")
    rows = []
    for b in batch_sizes:
        a, v, y = audio[:, :b], visual[:, :b], labels[:b]
        predictions = {}
        for target in targets:
            call, predict = (torch_target(model, a, v) if target == "torch"
                             else nir_target(interpreter, a, v, readout))
            pred = predict()
            predictions[target] = pred
            m = measure_inference(call, b, min_window_s=window_s, warmup=warmup, device_index=device_index,
                                  idle=idle)
            row = {"target": target, "description": targets[target], "batch_size": b,
                   "accuracy": float((pred == y).float().mean()), "accuracy_samples": b, **m.to_dict()}
            if target != "torch":
                row["same_prediction_as_torch"] = float((pred == predictions["torch"]).float().mean())
            rows.append(row)
            progress(f"{target:>16} B={b:<4} {1e3 * m.wall_s_per_sample:9.3f} ms/sample {m.samples_per_s:10.1f} "
                  f"samples/s {1e3 * m.energy_j_per_sample:9.3f} mJ/sample (dynamic "
                  f"{1e3 * m.dynamic_energy_j_per_sample:.3f}) {m.mean_power_w:6.1f} W, {m.calls} calls "
                  f"in {m.window_s:.2f} s (+-{100 * (m.relative_uncertainty or float('nan')):.2f} % timing, aligned "
                  f"{m.aligned}); accuracy {row['accuracy']:.2f}")
    idle_after = measure_idle_power(device_index, idle_s)
    progress(f"idle after: {idle_after.power_w:.1f} W")
    meta = dict(graph.metadata) if graph is not None else {}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "method": METHOD,
        "command": command,
        "git_commit": _git_commit(),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hardware": info.to_dict(),
        "idle": idle.to_dict(),
        "idle_after": idle_after.to_dict(),
        "run": {"checkpoint": str(run), "model_name": ckpt["model_name"], "model_config": ckpt["model_config"],
                "epoch": ckpt.get("epoch"), "best_acc": ckpt.get("best_acc"),
                "nir": None if nir_path is None else str(nir_path),
                "nir_sha256": None if nir_path is None else sha256_of(nir_path),
                "nir_metadata": {k: meta[k] for k in ("model", "dt", "time_steps", "readout_step", "extensions")
                                 if k in meta}},
        "inputs": {"data": str(data), "split": "test", "samples": "the first batch_size samples",
                   "time_steps": steps, "audio_shape": list(audio.shape[2:]), "visual_shape": list(visual.shape[2:]),
                   "dtype": "float32", "tf32": allow_tf32, "resident_on_gpu": True},
        "notes": ["Energy is the whole board's (NVML), idle power measured with the models loaded and nothing "
                  "running; dynamic = total - idle power x window.",
                  "Wall time per sample includes Python and kernel-launch overhead; at batch 1 that dominates."],
        "measurements": rows,
    }




def measured_structure(measurement_file: Path):
    """The NIR graph of the model a measurement file names, re-exported with fresh (random) weights from the model
    config it recorded: the same nodes, shapes and names as the measured model's export (mapping, dense workloads and
    node-by-node counts line up), not its trained weights."""
    data = json.loads(Path(measurement_file).read_text())
    run, inputs = data["run"], data["inputs"]
    model = create_model(run["model_name"], **run["model_config"]).eval()
    cfg = ExportConfig(dt_s=float(run["nir_metadata"]["dt"]), time_steps=int(inputs["time_steps"]),
                       audio_shape=tuple(inputs["audio_shape"]), visual_shape=tuple(inputs["visual_shape"]))
    return export_model(model, cfg)

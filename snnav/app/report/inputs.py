"""Collect what a report is made from: a training run, simulation results, cost models, a GPU measurement.

Layout of a RUN_DIR that ``snnav report`` understands (the main job's work directory has it)::

    RUN_DIR/metrics.json  or  RUN_DIR/train/metrics.json     the training run (snnav train / snnav run)
    RUN_DIR/simulations/*.json                                simulation results (snnav simulate --out)

Further result files, cost-model files and a GPU measurement file (``scripts/measure_gpu.py``) are given explicitly.
Each input is recorded as a *source* (an id, a kind, the path and the SHA-256 of the file's bytes), and every number
in the report names the sources it came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from hardware_sims.cost.energy import available_cost_models, builtin_cost_model, load_cost_model
from snnav.app.report.results import (
    ResultFileError,
    check_field,
    read_json,
    read_simulation_result,
    sha256_of,
    simulate_command,
)

__all__ = ["SIMULATIONS_DIR", "GPU_FORMAT", "Source", "ReportInputs", "collect_inputs", "find_training_run"]

SIMULATIONS_DIR = "simulations"
GPU_FORMAT = "snnav.gpu-measurement"


@dataclass(frozen=True)
class Source:
    """One input of the report. ``id`` is what numbers cite (``run``, ``sim1``, ``cost:NAME``, ``gpu``)."""

    id: str
    kind: str  # training-run | simulation-result | cost-model | gpu-measurement
    path: str | None  # None for a cost model built into hardware_sims.cost.energy
    sha256: str | None
    description: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "path": self.path, "sha256": self.sha256,
                "description": self.description}


@dataclass(frozen=True)
class ReportInputs:
    """Everything read for one report (the files' contents and their sources)."""

    run_dir: Path
    training: dict[str, Any]  # {"dir", "metrics", "config"}
    results: list[tuple[Source, dict[str, Any]]]
    cost_models: list[tuple[Source, Any]]  # (source, hardware_sims.cost.energy.CostModel)
    gpu: tuple[Source, dict[str, Any]] | None
    sources: list[Source] = field(default_factory=list)


def find_training_run(run_dir: Path) -> Path:
    """The training run inside ``run_dir`` (itself, or its ``train/`` folder, as the main job writes it)."""
    for candidate in (run_dir, run_dir / "train"):
        if (candidate / "metrics.json").is_file():
            return candidate
    raise ResultFileError(
        f"{run_dir} holds no training run (no metrics.json in it or in {run_dir / 'train'}); give the folder of a "
        f"training run (snnav train ... --out RUN_DIR) or the main job's work folder (snnav run --workdir RUN_DIR)")


def _read_training(run_dir: Path) -> tuple[Source, dict[str, Any]]:
    train_dir = find_training_run(run_dir)
    hint = f"retrain with snnav train --out {train_dir}, or run snnav run"
    metrics = read_json(train_dir / "metrics.json", "training metrics file", hint)
    epochs = metrics.get("epochs")
    if not isinstance(epochs, list) or not epochs or not all(isinstance(e, dict) and "test_acc" in e for e in epochs):
        raise ResultFileError(f"{train_dir / 'metrics.json'} has no finished epoch with a test accuracy; {hint}")
    for i, epoch in enumerate(epochs):
        check_field(f"{train_dir / 'metrics.json'} (epochs[{i}])", epoch, "test_acc", "fraction", hint=hint)
    check_field(train_dir / "metrics.json", metrics, "best_acc", "fraction", optional=True, hint=hint)
    check_field(train_dir / "metrics.json", metrics, "best_epoch", "count0", optional=True, hint=hint)
    config_path = train_dir / "config.json"
    config = read_json(config_path, "training config", hint) if config_path.is_file() else {}
    source = Source("run", "training-run", str((train_dir / "metrics.json").resolve()),
                    sha256_of(train_dir / "metrics.json"),
                    f"training run {train_dir}: {config.get('model', '?')} on {config.get('dataset', '?')}, "
                    f"{len(epochs)} epochs")
    return source, {"dir": str(train_dir), "metrics": metrics, "config": config}


def _result_files(run_dir: Path, extra: Sequence[Path]) -> list[Path]:
    folder = run_dir / SIMULATIONS_DIR
    found = sorted(folder.glob("*.json")) if folder.is_dir() else []
    files = list(dict.fromkeys(Path(f).resolve() for f in [*found, *extra]))  # a file given twice counts once
    if not files:
        model = run_dir / "model.nir" if (run_dir / "model.nir").is_file() else Path("MODEL.nir")
        raise ResultFileError(
            f"no simulation results in {folder}; write one with "
            + simulate_command(model, "emulator", "fixed", 1000, "DATA.h5", folder / "emulator-fixed.json")
            + " (or give result files with --result)")
    return files


def _describe_result(data: dict[str, Any]) -> str:
    model = data["model"]
    return (f"{data['backend']} {data['precision']} point, {data['samples']} test samples of {data['data']['path']}, "
            f"model {model.get('path')} (sha256 {str(model.get('sha256'))[:12]}...)")


def _read_gpu(path: Path) -> tuple[Source, dict[str, Any]]:
    hint = ("measure one on a machine with a GPU with python scripts/measure_gpu.py --run RUN_DIR --data DATA.h5 "
            f"--out {path}, or leave out --gpu-measurement to use the 45 nm estimate")
    data = read_json(path, "GPU measurement", hint)
    if data.get("format") != GPU_FORMAT:
        raise ResultFileError(f"{path} is not a GPU measurement (format {data.get('format')!r}, expected "
                              f"{GPU_FORMAT!r}); {hint}")
    rows = data.get("measurements")
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise ResultFileError(f"{path} has no measurements with target, batch_size and energy_j_per_sample; {hint}")
    for i, row in enumerate(rows):
        where = f"{path} (measurements[{i}])"
        check_field(where, row, "target", "text")
        check_field(where, row, "batch_size", "count", unit="samples per call")
        check_field(where, row, "energy_j_per_sample", "positive", unit="joules per sample, a number")
        check_field(where, row, "dynamic_energy_j_per_sample", "number", unit="joules per sample", optional=True)
        for key in ("wall_s_per_sample", "samples_per_s"):
            check_field(where, row, key, "positive", optional=True)
    for key in ("hardware", "idle", "run"):
        check_field(path, data, key, "object", optional=True)
    hardware = data.get("hardware") or {}
    check_field(path, hardware, "gpu_name", "text", optional=True)
    gpu = hardware.get("gpu_name") or "?"
    return Source("gpu", "gpu-measurement", str(path.resolve()), sha256_of(path),
                  f"{data.get('method', 'measured')} on {gpu}"), data


def _read_cost_models(files: Sequence[Path]) -> list[tuple[Source, Any]]:
    models = [(None, builtin_cost_model(m["name"])) for m in available_cost_models() if m["available"]]
    for path in files:
        try:
            models.append((Path(path), load_cost_model(path)))
        except FileNotFoundError as exc:
            raise ResultFileError(f"no cost model file at {path}: {exc}") from exc
        except (ValueError, OSError, json.JSONDecodeError) as exc:
            raise ResultFileError(f"cannot use the cost model {path}: {exc}") from exc
    out, seen = [], set()
    for path, model in models:
        if model.name in seen:  # a file may redefine a built-in: the file wins, and the report says which
            out = [(s, m) for s, m in out if m.name != model.name]
        seen.add(model.name)
        where = " (built into hardware_sims.cost.energy)" if path is None else ""
        out.append((Source(f"cost:{model.name}", "cost-model", None if path is None else str(path.resolve()),
                           None if path is None else sha256_of(path), f"{model.name}: {model.source.text()}{where}"),
                    model))
    return out


def collect_inputs(run_dir: str | Path, *, results: Sequence[Path] = (), cost_models: Sequence[Path] = (),
                   gpu_measurement: Path | None = None) -> ReportInputs:
    """Read and check every input of a report.

    Raises:
        ResultFileError: a missing or malformed input, with the command that writes a correct one.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResultFileError(f"{run_dir} is not a folder; give a training run folder or the main job's work folder "
                              "(snnav run --workdir RUN_DIR)")
    run_source, training = _read_training(run_dir)
    sims = []
    for i, path in enumerate(_result_files(run_dir, results), 1):
        data = read_simulation_result(path)
        sims.append((Source(f"sim{i}", "simulation-result", str(path.resolve()), sha256_of(path),
                            _describe_result(data)), data))
    models = _read_cost_models(cost_models)
    gpu = _read_gpu(Path(gpu_measurement)) if gpu_measurement is not None else None
    sources = [run_source, *(s for s, _ in sims), *(s for s, _ in models), *([gpu[0]] if gpu else [])]
    return ReportInputs(run_dir, training, sims, models, gpu, sources)

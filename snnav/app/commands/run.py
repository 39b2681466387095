"""``snnav run``: the main job, the whole pipeline, on the embedded default data.

Stages (each reuses its output from an earlier run unless ``--force``):
  1. data: generate AV-Digits with the default configuration into ``WORKDIR/av_digits.h5``, with the two views the
     default training reads (`training_views`; ``snnav data make av-digits`` stores all four: the cochlea view
     alone is three quarters of the work); a file of the same configuration that holds them is reused;
  2. train: train the default S-CMRL (the shipped config ``av-digits-scmrl``, ``snnav/configs/av-digits-scmrl.toml``) into ``WORKDIR/train`` and print its test
     accuracy. An interrupted training run continues from its last checkpoint.
  3. export: export the trained model to ``WORKDIR/model.nir`` (dt = 1 ms), print the graph summary, and check the
     NIR interpreter against the trained model on the first test samples (logit difference, spike mismatches);
  4. simulate: run the export on Lava's Loihi simulation in bit-accurate fixed point on the first test samples,
     print accuracy and agreement with floating point, and save the result with its activity counts to
     ``WORKDIR/simulations/lava-fixed.json``;
  5. emulate: evaluate the whole test split with the batched emulator of Lava in fixed point (bit-exact with Lava;
     its chunks shared among ``--workers`` processes)
     and the first 250 samples in floating point (the report's Lava float point), print both accuracies, and save
     ``WORKDIR/simulations/emulator-{fixed,float}.json``;
  6. report: write ``WORKDIR/report/`` (``snnav report WORKDIR``: JSON, CSV, Markdown and a self-contained HTML
     page with the plots) and print where it is. The GPU side is ``--gpu-measurement FILE`` (from
     ``scripts/measure_gpu.py``) when given, else the 45 nm estimate, labelled as such.

A simulation result is reused when its file names the same model (SHA-256 of ``model.nir``), data file, backend,
precision and number of samples; the report is rewritten every time (it takes a second).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import torch

from export.from_torch.equivalence import compare
from export.ir.nirfile import format_summary, read_graph
from hardware_sims.cost.gpu import get_gpu
from snnav.app.checkpoint_export import load_trained_model
from snnav.app.commands.data import describe, make_av_digits
from snnav.app.commands.export import export_checkpoint
from snnav.app.gpu_energy import gpu_available
from snnav.app.gpu_measure import measure_gpu
from snnav.app.progress import TrainingBars
from snnav.app.report import make_report
from snnav.app.report.compute import result_label
from snnav.app.report.headline import CALIBRATED_GPU, headline_lines
from snnav.app.report.results import (
    ResultFileError,
    quantizer_settings,
    read_simulation_result,
    same_quantizer,
    sha256_of,
    simulate_command,
    write_simulation_result,
)
from snnav.app.simulate import format_result, open_test_split, simulate
from snnav.data.av_digits import AVDigitsConfig
from snnav.data.av_digits_config import VIEW_NAMES
from snnav.data.av_digits_file import read_av_digits_info
from snnav.errors import ConfigError, DatasetError, OutputError, SnnavError
from snnav.io import write_json
from snnav.training import runtime
from snnav.training.build import open_datasets
from snnav.training.config import PACKAGED_CONFIGS, RESUME_IGNORED_KEYS, TrainConfig, load_config
from snnav.training.loop import read_metrics, train

DEFAULT_TRAIN_CONFIG = PACKAGED_CONFIGS / "av-digits-scmrl.toml"
STAGES = 6
LAVA_SAMPLES = 8
DT_S = 1e-3
CHECK_SAMPLES = 64
FLOAT_SAMPLES = 250  # the float emulator run of stage 5 (the report's Lava float point)
SIMULATIONS = "simulations"  # = snnav.app.report.inputs.SIMULATIONS_DIR, where snnav report looks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path, default=Path("runs/default"),
                        help="where every stage writes its outputs (default %(default)s)")
    parser.add_argument("--force", action="store_true", help="redo every stage even if its output exists")
    parser.add_argument("--no-fast-runtime", action="store_true",
                        help="do not apply the fast CPU process settings (glibc malloc keeps large blocks, denormal "
                        "floats flush to zero; see snnav/training/runtime.py); SNNAV_FAST_RUNTIME=0 does the same")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="worker processes of the data generation and of the fixed-point emulation of the whole "
                        "test split (its chunks shared as by snnav simulate --jobs; the same results); 1 runs both "
                        "in this process (default %(default)s)")
    parser.add_argument("--gpu-measurement", type=Path, default=None, metavar="FILE",
                        help="a GPU measurement of scripts/measure_gpu.py for the report (default: measure the "
                             "trained model on this machine's CUDA GPU at batch 1 and 64 if there is one, else the "
                             "GPU model calibrated on NVML measurements, labelled as an estimate)")
    parser.add_argument("--no-gpu", action="store_true", help="do not measure on a CUDA GPU even if there is one")


def training_views() -> tuple[str, ...] | None:
    """The AV-Digits views the default training config reads (its ``data_options``, else the dataset's defaults), or
    None (every view) when the config is missing (the training stage then says so)."""
    if not DEFAULT_TRAIN_CONFIG.is_file():
        return None
    options = load_config(DEFAULT_TRAIN_CONFIG).data_options
    return (f"audio_{options.get('audio_view', 'spectrogram')}", f"visual_{options.get('visual_view', 'static')}")


def _stage_data(workdir: Path, workers: int, force: bool) -> tuple[Path, bool]:
    """``(path, regenerated)``."""

    path = workdir / "av_digits.h5"
    config = AVDigitsConfig()
    views = training_views()
    if path.exists() and not force:
        try:
            info = read_av_digits_info(path)
            missing = [name for name in views or VIEW_NAMES if name not in info.views]
            if info.config == config and not missing:
                print(f"[1/{STAGES} data] reusing {path} (same configuration; --force regenerates)")
                describe(path)
                return path, False
            if missing:
                print(f"[1/{STAGES} data] {path} holds no {', '.join(missing)} view; regenerating")
        except DatasetError as exc:
            print(f"[1/{STAGES} data] {path} is unusable ({exc}); regenerating")
    stored = f" ({', '.join(views)}: the views the training reads)" if views else ""
    print(f"[1/{STAGES} data] generating AV-Digits into {path}{stored}")
    make_av_digits(path, config, workers, force=True, views=views)
    describe(path)
    return path, True


def _stale_run(run_dir: Path, config) -> str:
    """Why the run in ``run_dir`` does not belong to ``config`` ('' when it does, or when there is no run)."""

    saved_path = run_dir / "config.json"
    if not saved_path.is_file():
        return ""
    try:
        saved = TrainConfig.from_dict(json.loads(saved_path.read_text())).to_dict()
    except Exception as exc:  # noqa: BLE001 - any unreadable config makes the run unusable here
        return f"its config.json cannot be read: {exc}"
    current = config.to_dict()
    changed = sorted(k for k in set(saved) | set(current)
                     if k not in RESUME_IGNORED_KEYS and saved.get(k) != current.get(k))
    return f"changed: {', '.join(changed)}" if changed else ""


def _stage_train(workdir: Path, data: Path, force: bool, fresh_data: bool = False) -> Path:
    if not DEFAULT_TRAIN_CONFIG.is_file():
        raise ConfigError(f"the default training config {DEFAULT_TRAIN_CONFIG} is missing; run from a snnav checkout "
                          "installed with scripts/setup.sh")
    config = load_config(DEFAULT_TRAIN_CONFIG).replace(data=str(data.resolve()))
    run_dir = workdir / "train"
    if force and run_dir.exists():
        shutil.rmtree(run_dir)
    stale = "the data was regenerated" if fresh_data and run_dir.exists() else _stale_run(run_dir, config)
    if stale:
        keep = run_dir.with_name(f"{run_dir.name}.stale-{int(time.time())}")
        run_dir.rename(keep)
        print(f"[2/{STAGES} train] {run_dir} was trained with another configuration ({stale}); moved it to {keep} "
              "and training anew")
    history = read_metrics(run_dir).get("epochs", []) if (run_dir / "metrics.json").is_file() else []
    if len(history) >= config.epochs:
        print(f"[2/{STAGES} train] reusing {run_dir} ({config.model}, {config.epochs} epochs; --force retrains)")
    else:
        print(f"[2/{STAGES} train] training {config.model} on AV-Digits for {config.epochs} epochs into {run_dir} "
              f"(config {DEFAULT_TRAIN_CONFIG.name})")
        bars = TrainingBars(enabled=True)
        try:
            train(config, run_dir, progress=bars)
        finally:
            bars.close()
        history = read_metrics(run_dir)["epochs"]
    accs = [h["test_acc"] for h in history]
    print(f"[2/{STAGES} train] S-CMRL test accuracy: last {accs[-1]:.4f}, best {max(accs):.4f} "
          f"(epoch {accs.index(max(accs)) + 1} of {len(accs)}) on the AV-Digits test split")
    return run_dir


def _stage_export(workdir: Path, run_dir: Path, data: Path) -> Path:
    out = workdir / "model.nir"
    summary = export_checkpoint(run_dir, out, DT_S, force=True)
    print(f"[3/{STAGES} export] wrote {out} (dt {DT_S * 1e3:g} ms)")
    print(format_summary(summary, file_size_bytes=out.stat().st_size))
    model, ckpt = load_trained_model(run_dir)
    config = TrainConfig.from_dict(ckpt["config"])
    (test,) = open_datasets(config.replace(data=str(data)), ("test",))
    batch = [test[i] for i in range(min(CHECK_SAMPLES, len(test)))]  # items are time-first (T, C, H, W)
    audio = torch.stack([b[0] for b in batch], dim=1)  # (T, B, C, H, W)
    visual = torch.stack([b[1] for b in batch], dim=1)
    result = compare(model, read_graph(out), audio, visual)
    print(f"[3/{STAGES} export] NIR interpreter vs trained model on {len(batch)} test samples: "
          f"max |delta logit| {result.max_abs_logit_diff:.2e}, spike mismatches {result.spike_mismatches} of "
          f"{sum(layer.total for layer in result.layers)} in {len(result.layers)} neuron layers, "
          f"same prediction {100 * result.argmax_agreement:.1f}%")
    return out


def _reusable(out: Path, graph_path: Path, data: Path, backend: str, precision: str, samples: int,
              graph_metadata: dict | None = None) -> dict | None:
    """The result file at ``out`` if it holds this model, data, backend, precision, sample count and quantizer
    settings (the graph's own where it pins them: `quantizer_settings`), else None."""

    if not out.is_file():
        return None
    try:
        old = read_simulation_result(out)
    except ResultFileError as exc:
        print(f"  {out} is unusable ({exc}); simulating again")
        return None
    same = (old["backend"], old["precision"], old["samples"], old["model"].get("sha256"), old["data"].get("path")) \
        == (backend, precision, samples, sha256_of(graph_path), str(data.resolve()))
    return old if same and same_quantizer(old.get("quantizer"), quantizer_settings(precision, graph_metadata)) else None


def _simulate_to_file(stage: str, graph_path: Path, data: Path, out: Path, backend: str, precision: str,
                      samples: int | None, force: bool, jobs: int = 1) -> None:
    """Simulate (``samples`` None: the whole test split) with activity counts and save to ``out``, or reuse it.
    ``jobs`` > 1 (emulator): the chunks are shared among worker processes (identical results)."""

    graph = read_graph(graph_path)
    dataset = open_test_split(graph, data)
    n = len(dataset) if samples is None else min(samples, len(dataset))
    old = None if force else _reusable(out, graph_path, data, backend, precision, n, graph.metadata)
    if old is not None:
        print(f"{stage} reusing {out} (same model, data and samples; --force reruns): "
              f"{result_label(backend, precision)} accuracy {100 * old['accuracy']:.1f}% on {n} test samples (float reference "
              f"{100 * old['float_accuracy']:.1f}%); same prediction as float {100 * old['agreement']:.1f}%")
        return
    result = simulate(graph, dataset, n, precision, record_spikes=True, backend=backend, count=True,
                      progress=lambda line: print(f"{stage}{line}", flush=True), jobs=jobs, data=data)
    print(f"{stage} " + format_result(result, precision, backend).splitlines()[0])
    write_simulation_result(out, result, backend=backend, precision=precision, model_path=graph_path,
                            graph_metadata=graph.metadata, data_path=data,
                            command=simulate_command(graph_path, backend, precision, n, data, out))
    print(f"{stage} wrote {out} (accuracy, activity counts, a spike raster of sample 0)")


def _stage_simulate(workdir: Path, graph_path: Path, data: Path, force: bool) -> None:
    stage = f"[4/{STAGES} simulate]"
    print(f"{stage} running {graph_path} on Lava Loihi2SimCfg, bit-accurate fixed point, {LAVA_SAMPLES} test samples "
          "(a spot check: Lava runs one sample after another)")
    _simulate_to_file(stage, graph_path, data, workdir / SIMULATIONS / "lava-fixed.json", "lava", "fixed",
                      LAVA_SAMPLES, force)


def _stage_emulate(workdir: Path, graph_path: Path, data: Path, force: bool, workers: int = 1) -> None:
    stage = f"[5/{STAGES} emulate]"
    print(f"{stage} the whole test split with the batched emulator of Lava's fixed point, counting every node's "
          f"activity{f' ({workers} worker processes; --workers 1: this process only)' if workers > 1 else ''}")
    # Shared among the workers: 1.22x on 2 idle cores for the 1,000 samples (33 -> 27 s); the 250-sample float run
    # below gains nothing from a second process (16.4 vs 16.0 s), so it stays in this one.
    _simulate_to_file(stage, graph_path, data, workdir / SIMULATIONS / "emulator-fixed.json", "emulator", "fixed",
                      None, force, jobs=workers)
    # The float run only gives the report its "Lava float" point (accuracy and energy per inference); the float
    # accuracy of the whole split is already printed above (the interpreter), so a quarter of the split is enough.
    print(f"{stage} the first {FLOAT_SAMPLES} test samples with the emulator of Lava's float point, counting every "
          "node's activity")
    _simulate_to_file(stage, graph_path, data, workdir / SIMULATIONS / "emulator-float.json", "emulator", "float",
                      FLOAT_SAMPLES, force)


def _gpu_measurement(stage: str, workdir: Path, run_dir: Path, graph_path: Path, data: Path, force: bool) -> Path | None:
    """Measure the trained model on this machine's CUDA GPU (batch 1 and 64), or say why not; reuse a measurement
    of the same export unless ``force``."""
    ok, why = gpu_available(0)
    if not ok:
        gpu = get_gpu(CALIBRATED_GPU)
        print(f"{stage} no GPU measurement here ({why}); the report models the GPU with {CALIBRATED_GPU} "
              f"(calibrated from {gpu.calibrated_from})")
        return None
    out = workdir / "gpu_measurement.json"
    if out.is_file() and not force:
        try:
            if json.loads(out.read_text())["run"].get("nir_sha256") == sha256_of(graph_path):
                print(f"{stage} reusing {out} (same export; --force measures again)")
                return out
        except (OSError, ValueError, KeyError, TypeError):
            pass
    print(f"{stage} measuring the trained model and its export on the GPU with NVML at batch 1 and 64")
    record = measure_gpu(run_dir, data, nir_path=graph_path, batch_sizes=(1, 64),
                         command=f"snnav run --workdir {workdir}", progress=lambda line: print(f"{stage}   {line}"))
    write_json(out, record)
    print(f"{stage} wrote {out}")
    return out


def _stage_report(workdir: Path, gpu_measurement: Path | None) -> Path:
    stage = f"[6/{STAGES} report]"
    gpu = f"the GPU measurement {gpu_measurement}" if gpu_measurement else f"the GPU model {CALIBRATED_GPU}"
    print(f"{stage} writing the report of {workdir}: training run, simulation results, chip mapping and cost, {gpu}")
    report, files = make_report(workdir, workdir / "report", gpu_measurement=gpu_measurement)
    for line in headline_lines(report):
        print(f"{stage}   {line}")
    print(f"{stage} wrote {', '.join(files)} to {files['report.html'].parent}")
    return files["report.html"]


def run(args: argparse.Namespace) -> int:
    runtime.apply_runtime_settings(not args.no_fast_runtime)  # first: before large allocations and torch's threads
    t0 = time.perf_counter()
    if args.gpu_measurement is not None and not args.gpu_measurement.is_file():
        raise SnnavError(f"--gpu-measurement {args.gpu_measurement} is not a file; write one with python "
                         "scripts/measure_gpu.py on a machine with a GPU, or leave the option out (45 nm estimate)")
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1; got {args.workers}")
    if args.workdir.exists() and not args.workdir.is_dir():
        raise OutputError(f"--workdir {args.workdir} is a file; give a folder (it is created if missing)")
    try:
        args.workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the work folder {args.workdir}: {exc.strerror}") from exc
    times: dict[str, float] = {}

    def timed(name: str, stage, *stage_args):
        start = time.perf_counter()
        out = stage(*stage_args)
        times[name] = time.perf_counter() - start
        print(f"[{len(times)}/{STAGES} {name}] took {times[name]:.1f} s")
        return out

    data, fresh_data = timed("data", _stage_data, args.workdir, args.workers, args.force)
    run_dir = timed("train", _stage_train, args.workdir, data, args.force, fresh_data)
    graph_path = timed("export", _stage_export, args.workdir, run_dir, data)
    timed("simulate", _stage_simulate, args.workdir, graph_path, data, args.force)
    timed("emulate", _stage_emulate, args.workdir, graph_path, data, args.force, args.workers)

    def report() -> Path:
        gpu_file = args.gpu_measurement
        if gpu_file is None and not args.no_gpu:
            gpu_file = _gpu_measurement(f"[6/{STAGES} report]", args.workdir, run_dir, graph_path, data, args.force)
        return _stage_report(args.workdir, gpu_file)

    page = timed("report", report)
    print(f"main job done in {time.perf_counter() - t0:.1f} s ("
          + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in times.items()) + f"); outputs in {args.workdir}")
    print(f"report: {page} (open it in a browser; report.md, report.json and the CSV files are beside it)")
    return 0

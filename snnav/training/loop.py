"""The training loop: build model and data from a :class:`TrainConfig`, train with exact resume, evaluate.

``train(config, run_dir)`` runs (or continues) a run; ``evaluate(checkpoint_or_run_dir)`` rebuilds a model from a
checkpoint alone and measures its accuracy. Both return data and log through ``logging``; progress goes to an optional
callback (the CLI turns it into tqdm bars).

Exactness. Everything random is a function of state that a checkpoint carries: the data order of epoch e is drawn
from ``(seed, e)``; the global RNGs (torch, numpy, python) and IEMF's noise generator are saved and restored; a
checkpoint written inside an epoch records how many batches of that epoch's order were consumed and the epoch's
partial sums. So 2 epochs in one go, or 1 epoch + resume + 1 epoch, or a run killed with SIGKILL after a checkpoint
and resumed, all end with identical weights and metrics. Across processes this needs the same device and the same
number of intra-op threads (CPU kernels split reductions by thread, so 1 and 2 threads round differently); on a
heavily oversubscribed machine an occasional cross-process difference in float32 was seen, most likely from MKL's
dynamic threading (``MKL_DYNAMIC``); one thread per process (``OMP_NUM_THREADS=1``) removes it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from snnav.errors import ConfigError, InputError, OutputError
from snnav.io import atomic_path, write_json
from snnav.models import create_model
from snnav.training import checkpoint as ckpt_io
from snnav.training.build import (
    batch_to,
    build_model,
    check_data_matches_model,
    evaluate_model,
    open_datasets,
    resolve_input_size,
)
from snnav.training.config import TrainConfig, config_diff
from snnav.training.distributed import (
    DistContext,
    average_gradients,
    broadcast_module,
    convert_batchnorm,
    global_batches,
    init_distributed,
    rank_batches,
)
from snnav.training.iemf import IEMF
from snnav.training.losses import TrainingLoss
from snnav.training.qat import QATSpec, apply_qat, freeze_batchnorm, load_plain_state_dict, plain_state_dict
from snnav.training.schedule import apply_lr, build_optimizer, config_lr

logger = logging.getLogger(__name__)

__all__ = ["ProgressEvent", "TrainResult", "NonFiniteLossError", "train", "evaluate", "read_metrics", "load_qat_spec",
           "prepare_qat_model"]

_SUMS = ("loss", "ce", "aux", "align", "correct", "count", "s_audio", "s_visual", "s_fused", "iemf_n", "I", "r",
         "steps")


class NonFiniteLossError(InputError):
    """The training loss became NaN or infinite; the run stopped before applying that step."""


@dataclass(frozen=True)
class ProgressEvent:
    """What the loop reports: ``kind`` is ``epoch_start``, ``batch`` or ``epoch_end``.

    ``epoch`` is 0-based; ``step``/``steps`` count this epoch's batches (``step`` = batches done); ``loss`` is the
    last batch's loss; ``metrics`` is the epoch's record at ``epoch_end``.
    """

    kind: str
    epoch: int
    epochs: int
    step: int = 0
    steps: int = 0
    loss: float | None = None
    metrics: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train`: best/last test accuracy (fractions), epochs completed, per-epoch history."""

    run_dir: Path
    best_acc: float
    best_epoch: int
    last_acc: float
    epochs_completed: int
    history: list[dict[str, Any]] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------------ trainer
class Trainer:
    """One run's state; :func:`train` is the public entry."""

    def __init__(self, config: TrainConfig, run_dir: Path, ctx: DistContext, train_set: Dataset,
                 test_set: Dataset, progress: Callable[[ProgressEvent], None] | None) -> None:
        self.config, self.run_dir, self.ctx = config, run_dir, ctx
        self.train_set, self.test_set = train_set, test_set
        self.progress = progress if ctx.is_main else None
        self.dtype = torch.float64 if config.dtype == "float64" else torch.float32
        _seed_everything(config.seed)
        self.model = build_model(config).to(ctx.device, self.dtype)
        if config.qat.enabled:  # start from the float run's weights (a resumed run then loads its own)
            self.model = prepare_qat_model(self.model, config)
        check_data_matches_model(self.model, train_set, resolve_input_size(config))
        if ctx.distributed:
            convert_batchnorm(self.model)
        self.iemf = IEMF(config.iemf, self.model, config.optimizer, config.seed) if config.iemf.enabled else None
        if self.iemf is not None:
            self.iemf.to(ctx.device, self.dtype)
        named = list(self.model.named_parameters())
        if self.iemf is not None:
            named += list(self.iemf.named_parameters(prefix="iemf"))
        self.params = [p for _, p in named if p.requires_grad]
        for module in (self.model, self.iemf):
            if module is not None:
                broadcast_module(module, ctx)
        fusion = self.iemf.fusion_parameters() if self.iemf is not None else ()
        self.optimizer = build_optimizer(config, named, fusion)
        self.loss_fn = TrainingLoss(config.label_smoothing, config.align_loss, config.align_tau,
                                    config.align_weight, gather=ctx.gather if ctx.distributed else None,
                                    step_loss=config.step_loss)
        self.epoch, self.step, self.epoch_step = 0, 0, 0
        self.partial = dict.fromkeys(_SUMS, 0.0)
        self.history: list[dict[str, Any]] = []
        self.best_acc, self.best_epoch = -1.0, -1
        self.step_rows: list[dict[str, Any]] = []
        self.last_saved: tuple[int, int] | None = None

    # --------------------------------------------------------------------------------------- checkpoint state
    def state(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "model_name": self.model.model_name,
            "model_config": dict(self.model.config),
            "model": plain_state_dict(self.model),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {"kind": "cosine-warmup-per-epoch", "epoch": self.epoch},
            "iemf": self.iemf.state_dict() if self.iemf is not None else None,
            "epoch": self.epoch,
            "step": self.step,
            "epoch_step": self.epoch_step,
            "partial": dict(self.partial),
            "rng": ckpt_io.capture_rng(),
            "history": self.history,
            "best_acc": self.best_acc,
            "best_epoch": self.best_epoch,
        }

    def restore(self, ckpt: Mapping[str, Any]) -> None:
        ckpt_io.check_model_matches(ckpt, self.model.model_name, dict(self.model.config),
                                    where=f"{self.run_dir / 'last.pt'}")
        try:
            load_plain_state_dict(self.model, ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            if self.iemf is not None:
                self.iemf.load_state_dict(ckpt["iemf"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise ckpt_io.CheckpointError(f"{self.run_dir / 'last.pt'} does not fit this model/optimizer "
                                          f"({str(exc).splitlines()[0][:200]}); use a new --out directory."
                                          ) from exc
        self.epoch, self.step, self.epoch_step = ckpt["epoch"], ckpt["step"], ckpt["epoch_step"]
        self.partial = dict(ckpt["partial"])
        self.history = list(ckpt["history"])
        self.best_acc, self.best_epoch = ckpt["best_acc"], ckpt["best_epoch"]
        ckpt_io.restore_rng(ckpt["rng"])
        self.last_saved = (self.epoch, self.step)
        if self.ctx.is_main:
            self.step_rows = ckpt_io.read_step_rows(self.run_dir / "iemf_steps.csv", self.step)
        logger.info("resumed %s at epoch %d, step %d", self.run_dir, self.epoch, self.step)

    def _kept(self) -> str:
        if self.last_saved is None:
            return "No checkpoint had been written yet."
        return (f"The last good checkpoint {self.run_dir / 'last.pt'} ({self.last_saved[0]} epochs done, global step "
                f"{self.last_saved[1]}) is kept; continue from it with --resume.")

    def save(self, improved: bool) -> None:
        self.last_saved = (self.epoch, self.step)
        if not self.ctx.is_main:
            return
        last = ckpt_io.save_checkpoint(self.run_dir / "last.pt", self.state())
        if improved:
            _link_or_copy(last, self.run_dir / "best.pt")
        if self.iemf is not None:
            ckpt_io.write_step_rows(self.run_dir / "iemf_steps.csv", [], self.step_rows)
        ckpt_io.write_metrics(self.run_dir, self.history, self.summary())

    def summary(self) -> dict[str, Any]:
        last = self.history[-1]["test_acc"] if self.history else None
        return {"best_acc": self.best_acc if self.history else None,
                "best_epoch": self.best_epoch if self.history else None,
                "last_acc": last, "epochs_completed": len(self.history), "epochs_planned": self.config.epochs}

    # ----------------------------------------------------------------------------------------------- training
    def train_step(self, batch, epoch: int, lr: float, n_steps: int) -> float:
        audio, visual, labels = batch_to(batch, self.ctx.device, self.dtype)
        out = self.model(audio, visual)
        unimodal = self.iemf.unimodal_logits(out) if self.iemf is not None else {}
        loss, parts = self.loss_fn(out, labels, unimodal)
        stats = torch.zeros(10, dtype=torch.float64)
        stats[0] = float(loss.detach())
        for i, key in enumerate(("ce", "aux", "align"), 1):
            stats[i] = float(parts[key]) if key in parts else 0.0
        stats[4] = float((out.logits.detach().argmax(dim=1) == labels).sum())
        stats[5] = labels.shape[0]
        if self.iemf is not None:
            stats[6:10] = IEMF.local_scores(out, unimodal, labels).cpu()
        self.ctx.all_reduce_sum(stats)
        stats[:4] /= self.ctx.world_size  # mean of the processes' losses = the whole-batch loss
        if not math.isfinite(float(stats[0])):
            raise NonFiniteLossError(
                f"training loss is {float(stats[0])} at epoch {epoch}, step {self.epoch_step + 1}/{n_steps} "
                f"(global step {self.step + 1}); stopped before applying it. {self._kept()} Lower the learning "
                "rate (--lr), set grad_clip_norm, or check the data for NaN/inf.")
        record = self.iemf.coefficient(stats[6:10], epoch, self.step + 1) if self.iemf is not None else None
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(self.params, self.ctx)
        if not all(bool(torch.isfinite(p.grad).all()) for p in self.params if p.grad is not None):
            raise NonFiniteLossError(
                f"the gradients hold NaN or infinite values at epoch {epoch}, step {self.epoch_step + 1}/{n_steps} "
                f"(global step {self.step + 1}); stopped before applying them. {self._kept()} Lower the learning "
                "rate (--lr), set grad_clip_norm, or check the data for NaN/inf.")
        if self.config.grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip_norm)
        if record is not None:
            self.iemf.modulate_gradients(record)
        apply_lr(self.optimizer, lr, self.iemf.lr_factor(record) if record is not None else 1.0)
        self.optimizer.step()
        self._accumulate(stats, record, lr)
        return float(stats[0])

    def _accumulate(self, stats: Tensor, record, lr: float) -> None:
        p = self.partial
        for i, key in enumerate(("loss", "ce", "aux", "align", "correct", "count")):
            p[key] += float(stats[i])
        p["steps"] += 1
        if record is not None:
            for key, value in (("s_audio", record.s_audio), ("s_visual", record.s_visual),
                               ("s_fused", record.s_fused), ("I", record.I), ("r", record.r)):
                p[key] += value
            p["iemf_n"] += 1
            row = {**record.to_dict(), "applied": int(record.applied),
                   "lr_fusion": lr * self.iemf.lr_factor(record)}
            self.step_rows.append(row)
            logger.debug("IEMF step %d: I=%.4f r=%.4f", record.step, record.I, record.r)
        self.step += 1
        self.epoch_step += 1

    def _epoch_record(self, epoch: int, lr: float, test: Mapping[str, Any], seconds: float) -> dict[str, Any]:
        p, steps = self.partial, max(self.partial["steps"], 1)
        record: dict[str, Any] = {
            "epoch": epoch, "lr": lr, "steps": int(p["steps"]),
            "train_loss": p["loss"] / steps, "train_ce": p["ce"] / steps,
            "train_acc": p["correct"] / max(p["count"], 1),
            "test_loss": test["test_loss"], "test_acc": test["test_acc"],
        }
        if p["aux"]:
            record["train_aux"] = p["aux"] / steps
        if p["align"]:
            record["train_align"] = p["align"] / steps
        if p["iemf_n"]:
            n = p["iemf_n"]
            record.update({"iemf_I": p["I"] / n, "iemf_r": p["r"] / n, "iemf_s_audio": p["s_audio"] / n,
                           "iemf_s_visual": p["s_visual"] / n, "iemf_s_fused": p["s_fused"] / n,
                           "iemf_applied": self.config.iemf.active(epoch)})
        record["firing_rate"] = test["firing_rate"]
        record["time_s"] = round(seconds, 3)
        return record

    def run_epoch(self, epoch: int) -> None:
        cfg, t0 = self.config, time.perf_counter()
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(epoch)
        batches = rank_batches(global_batches(len(self.train_set), cfg.batch_size, cfg.seed, epoch),
                               self.ctx.rank, self.ctx.world_size)
        if not batches:
            raise ConfigError(f"batch_size {cfg.batch_size} is larger than the training split "
                              f"({len(self.train_set)} samples); lower --batch-size.")
        lr = config_lr(cfg, epoch)
        loader = DataLoader(self.train_set, batch_sampler=batches[self.epoch_step:], num_workers=cfg.num_workers,
                            generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
        self.model.train()
        if cfg.qat.enabled:
            freeze_batchnorm(self.model)
        self._emit("epoch_start", epoch, step=self.epoch_step, steps=len(batches))
        for batch in loader:
            loss = self.train_step(batch, epoch, lr, len(batches))
            self._emit("batch", epoch, step=self.epoch_step, steps=len(batches), loss=loss)
            every = cfg.checkpoint_every_steps
            if every and self.step % every == 0 and self.epoch_step < len(batches):
                self.save(improved=False)
        test = evaluate_model(self.model, self.test_set, self.ctx, cfg.eval_batch_size or cfg.batch_size,
                              self.dtype, cfg.num_workers)
        record = self._epoch_record(epoch, lr, test, time.perf_counter() - t0)
        if self.ctx.distributed:
            record["ranks"] = self._rank_check(record)
        self.history.append(record)
        improved = record["test_acc"] > self.best_acc
        if improved:
            self.best_acc, self.best_epoch = record["test_acc"], epoch
        self.epoch, self.epoch_step, self.partial = epoch + 1, 0, dict.fromkeys(_SUMS, 0.0)
        self.save(improved)
        logger.info("epoch %d/%d: train loss %.4f acc %.4f, test loss %.4f acc %.4f, lr %.3g%s", epoch + 1,
                    cfg.epochs, record["train_loss"], record["train_acc"], record["test_loss"], record["test_acc"],
                    lr, f", I {record['iemf_I']:.3f}" if "iemf_I" in record else "")
        self._emit("epoch_end", epoch, metrics=record)

    def _rank_check(self, record: Mapping[str, Any]) -> dict[str, list[float]]:
        """Every process's parameter checksum and mean I: data parallelism must keep them identical."""
        with torch.no_grad():
            checksum = sum(float(p.double().sum()) for p in self.params)
        mine = torch.tensor([[checksum, record.get("iemf_I", 0.0)]], dtype=torch.float64)
        if self.ctx.device.startswith("cuda"):
            mine = mine.to(self.ctx.device)
        allv, _, _ = self.ctx.gather(mine, 0)  # (W, 2)
        allv = allv.cpu()
        if not bool((allv == allv[0]).all()):
            logger.error("processes diverged at epoch %d: parameter checksums %s, mean I %s", record["epoch"],
                         allv[:, 0].tolist(), allv[:, 1].tolist())
        return {"param_checksum": allv[:, 0].tolist(), "iemf_I": allv[:, 1].tolist()}

    def _emit(self, kind: str, epoch: int, **kw: Any) -> None:
        if self.progress is not None:
            self.progress(ProgressEvent(kind, epoch, self.config.epochs, **kw))

    def fit(self, stop_after_epoch: int | None) -> TrainResult:
        end = self.config.epochs if stop_after_epoch is None else min(stop_after_epoch, self.config.epochs)
        if self.config.warmup_epochs >= self.config.epochs:
            logger.warning("warmup_epochs (%d) >= epochs (%d): the lr never leaves the warm-up ramp",
                           self.config.warmup_epochs, self.config.epochs)
        if self.ctx.is_main:
            write_json(self.run_dir / "config.json", self.config.to_dict())
        while self.epoch < end:
            self.run_epoch(self.epoch)
        self.ctx.barrier()
        s = self.summary()
        return TrainResult(self.run_dir, s["best_acc"] if s["best_acc"] is not None else float("nan"),
                           s["best_epoch"] if s["best_epoch"] is not None else -1,
                           s["last_acc"] if s["last_acc"] is not None else float("nan"),
                           len(self.history), list(self.history))


def load_qat_spec(path: str | os.PathLike) -> QATSpec:
    """The :class:`QATSpec` saved at `path` (``torch.save`` of its ``to_dict()``)."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"cannot read the quantization spec {path} ({str(exc).splitlines()[0][:200]}); write it "
                          "with snnav train --finetune RUN --fixed-point.") from exc
    return QATSpec.from_dict(data)


def prepare_qat_model(model: torch.nn.Module, config: TrainConfig, init: bool = True) -> torch.nn.Module:
    """`model` with the float run's weights (``config.qat.init``, when `init`) and the fixed-point forward of
    ``config.qat.spec`` applied."""
    if init and config.qat.init:
        start = ckpt_io.load_checkpoint(config.qat.init)
        ckpt_io.check_model_matches(start, model.model_name, dict(model.config), where=str(config.qat.init))
        load_plain_state_dict(model, start["model"])
    return apply_qat(model, load_qat_spec(config.qat.spec))


def _seed_everything(seed: int) -> None:


    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _link_or_copy(src: Path, dest: Path) -> None:
    """Make ``dest`` a complete copy of ``src`` atomically (a hard link when the filesystem allows)."""

    with atomic_path(dest) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:

            shutil.copyfile(src, tmp)


def train(config: TrainConfig, run_dir: str | os.PathLike, *, resume: bool | None = None,
          train_set: Dataset | None = None, test_set: Dataset | None = None,
          progress: Callable[[ProgressEvent], None] | None = None, stop_after_epoch: int | None = None,
          ctx: DistContext | None = None) -> TrainResult:
    """Train (or continue) the run in ``run_dir``.

    Args:
        config: the run's configuration.
        run_dir: output folder (created); see :mod:`snnav.training.checkpoint` for its files.
        resume: ``None`` continues when ``run_dir`` has ``last.pt`` with the same config and starts fresh
            otherwise; ``True`` requires a checkpoint; ``False`` refuses a folder that already holds one.
        train_set, test_set: datasets to use instead of opening ``config.dataset`` at ``config.data``.
        progress: called with :class:`ProgressEvent` in the main process.
        stop_after_epoch: stop once this many epochs are complete (the run can be resumed later).
        ctx: process context (default: from the torchrun environment, see :func:`init_distributed`).

    Raises:
        ConfigError: the folder holds a run with another config, or model and data do not fit.
        CheckpointError: ``resume=True`` without a checkpoint, or the checkpoint is of another model.
        NonFiniteLossError: the loss became NaN/inf (the last good checkpoint is kept).
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise OutputError(f"--out {run_dir} is a file; a run is a folder (it is created if missing)")
    ctx = ctx or init_distributed(config.device)
    last = run_dir / "last.pt"
    ckpt = None
    if last.is_file():
        if resume is False:
            raise ConfigError(f"{run_dir} already holds a run (last.pt); resume it (--resume) or choose a new --out.")
        ckpt = ckpt_io.load_checkpoint(last)  # on CPU: RNG states must stay there; load_state_dict moves the rest
        stored = TrainConfig.from_dict(ckpt["config"])
        diff = config_diff(stored, config)
        if diff:
            raise ConfigError(f"{run_dir} holds a run with a different config (differs in: {', '.join(diff)}); "
                              f"continue it with `snnav train --out {run_dir} --resume` and no overrides (the saved "
                              "config is reused), or choose a new --out.")
    elif resume is True:
        raise ckpt_io.CheckpointError(f"nothing to resume: {last} does not exist; drop --resume to start a new run.")
    if train_set is None or test_set is None:
        train_set, test_set = open_datasets(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(config, run_dir, ctx, train_set, test_set, progress)
    if ckpt is not None:
        trainer.restore(ckpt)
    return trainer.fit(stop_after_epoch)


def evaluate(checkpoint_or_run_dir: str | os.PathLike, data: str | os.PathLike | Dataset | None = None, *,
             split: str = "test", device: str = "cpu", batch_size: int | None = None) -> float:
    """Rebuild the model from a checkpoint alone and return its top-1 accuracy on a dataset split.

    Args:
        checkpoint_or_run_dir: a ``.pt`` file, or a run directory (``best.pt`` there, else ``last.pt``).
        data: a Dataset, or a data path for the checkpoint's dataset (default: the path it was trained on).
        split: the split opened from a path.
        device: torch device.
        batch_size: evaluation batch (default: the run's).
    """
    ckpt = ckpt_io.load_checkpoint(checkpoint_or_run_dir)
    config = TrainConfig.from_dict(ckpt["config"])
    model = create_model(ckpt["model_name"], **ckpt["model_config"])
    if config.qat.enabled:
        model = prepare_qat_model(model, config, init=False)
    load_plain_state_dict(model, ckpt["model"])
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    model.to(device, dtype)
    if isinstance(data, Dataset):
        dataset = data
    else:
        if data is not None:
            config = config.replace(data=str(data))
        (dataset,) = open_datasets(config, (split,))
    check_data_matches_model(model, dataset, resolve_input_size(config))
    result = evaluate_model(model, dataset, DistContext(device=device),
                            batch_size or config.eval_batch_size or config.batch_size, dtype)
    return result["test_acc"]


def read_metrics(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The ``metrics.json`` of a run directory."""
    return json.loads((Path(run_dir) / "metrics.json").read_text(encoding="utf-8"))

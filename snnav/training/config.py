"""Training configuration: frozen dataclasses, TOML loading at the edge, unknown keys rejected.

The defaults reproduce S-CMRL's recipe (``docs/scmrl.md`` §3): AdamW (0.9, 0.999), weight decay 1e-4 without decay
on 1-D parameters and biases, ``lr = 5e-3 * batch / 1024`` (timm's linear scaling; 6.25e-4 at the reference batch of
128), 5 warm-up epochs from 1e-6, cosine to 1e-5 over 100 epochs, label smoothing 0.1, semantic-alignment loss at
tau = 0.07. IEMF (``docs/iemf.md`` §1, §5) is off unless ``[iemf] enabled = true``.

``batch_size`` is the **global** batch: under ``torchrun`` each of W processes takes ``batch_size / W`` samples of
every global batch, so the same config gives the same training whatever the number of processes.

Epochs are indexed from 0 everywhere (schedule, IEMF window, metrics), as in the reference's ``range(epochs)``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import tomllib

from snnav.errors import ConfigError
from snnav.records import check_keys, coerce_types

logger = logging.getLogger(__name__)

__all__ = ["IEMFConfig", "QATConfig", "TrainConfig", "load_config", "config_diff", "RESUME_IGNORED_KEYS"]

OPTIMIZERS = ("adamw", "sgd")
ALIGN_LOSSES = ("exact", "symmetric", "off")
STEP_LOSSES = ("final", "every-step")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("float32", "float64")
IEMF_MODES = ("auto", "grad", "lr")
IEMF_SCOPES = ("head", "head+attention")

#: Keys that may differ between a run and its resumption: they change where and how fast, not what is computed
#: (``device`` can change float rounding, so a resumed run on another device is close but not bit-equal).
RESUME_IGNORED_KEYS = frozenset({"device", "num_workers"})


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}.")


def _positive(name: str, value: Any, allow_zero: bool = False) -> None:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0
            or (value == 0 and not allow_zero)):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be a finite number {bound}; got {value!r}.")


@dataclass(frozen=True)
class IEMFConfig:
    """Inverse-effectiveness driven multimodal fusion (``docs/iemf.md`` §1.2-§1.4, §5).

    Attributes:
        enabled: add the unimodal heads and their losses, and modulate the fusion parameters' update.
        start_epoch, end_epoch: epoch window (0-based, inclusive) in which I modulates the update; ``None`` = to the
            end. The unimodal losses are on at every epoch (the classification code's practice, §1.3 A).
        gain: kappa in ``I = kappa (1 + tanh(1 - r))`` (1.0 is the paper's best).
        mode: ``"grad"`` (``g <- I g + N(0, std(g)^2)``, for SGD), ``"lr"`` (the fusion group's lr is the schedule's
            times I, reset every step, for AdamW), or ``"auto"`` (grad under SGD, lr under AdamW).
        noise: add the Gaussian gradient noise in grad mode (ignored in lr mode, as in the reference).
        scope: the fusion parameters P_F: ``"head"`` (faithful) or ``"head+attention"`` (the ablation of §5).
    """

    enabled: bool = False
    start_epoch: int = 0
    end_epoch: int | None = None
    gain: float = 1.0
    mode: str = "auto"
    noise: bool = True
    scope: str = "head"

    def __post_init__(self) -> None:
        _choice("iemf.mode", self.mode, IEMF_MODES)
        _choice("iemf.scope", self.scope, IEMF_SCOPES)
        _positive("iemf.gain", self.gain)
        _positive("iemf.start_epoch", self.start_epoch, allow_zero=True)
        if self.end_epoch is not None and self.end_epoch < self.start_epoch:
            raise ConfigError(f"iemf.end_epoch ({self.end_epoch}) is before iemf.start_epoch ({self.start_epoch}); "
                              "the window is inclusive and 0-based.")

    def active(self, epoch: int) -> bool:
        """Whether I modulates the update in (0-based) ``epoch``."""
        return self.enabled and self.start_epoch <= epoch and (self.end_epoch is None or epoch <= self.end_epoch)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "IEMFConfig":
        check_keys(cls, data, "[iemf]")
        return cls(**coerce_types(cls, data, "iemf"))


@dataclass(frozen=True)
class QATConfig:
    """Quantization-aware fine-tuning (``snnav train --finetune RUN --fixed-point``; :mod:`snnav.training.qat`).

    Attributes:
        spec: the quantization spec file (``torch.save`` of ``QATSpec.to_dict()``) the forward pass applies;
            ``None``: ordinary float training.
        init: the checkpoint whose weights the run starts from (the trained float model).
    """

    spec: str | None = None
    init: str | None = None

    @property
    def enabled(self) -> bool:
        return self.spec is not None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "QATConfig":
        check_keys(cls, data, "[qat]")
        return cls(**coerce_types(cls, data, "qat"))


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (see the module docstring for the recipe).

    Attributes:
        model: registered model name (``snnav.models.list_models()``).
        model_config: extra ``create_model`` keys on top of the dataset preset (e.g. ``embed_dim``, ``alpha``).
        dataset: ``av-digits``, ``crema-d``, ``urbansound8k-av`` or ``mnistdvs-ntidigits``.
        data: the dataset file (AV-Digits) or root folder (real datasets).
        data_options: extra keyword arguments of the dataset (e.g. ``visual_view = "events"``, ``cache``).
        preset: model preset name (default: the dataset; ``av-digits-events`` for AV-Digits' event view).
        time_steps: T (default: the preset's).
        input_size: H = W the model is set up for (default: the preset's). Data of another size is refused before
            training: the stems accept any size, so a mismatch would silently change the token count.
        epochs: number of epochs (also the cosine's period).
        batch_size: global training batch (drop_last); must be divisible by the number of processes.
        eval_batch_size: test batch (default: ``batch_size``).
        optimizer: ``adamw`` or ``sgd`` (Nesterov momentum, the IEMF classification recipe).
        lr: base learning rate before linear scaling.
        lr_reference_batch: the effective lr is ``lr * batch_size / lr_reference_batch``; 0 disables scaling.
        warmup_epochs, warmup_lr: linear warm-up from ``warmup_lr`` over these epochs.
        min_lr: the cosine's floor.
        weight_decay: decoupled (AdamW) or L2 (SGD) decay, not applied to 1-D parameters and biases.
        betas, eps: AdamW's.
        momentum, nesterov: SGD's.
        label_smoothing: epsilon of the training cross-entropies (validation uses plain CE).
        align_loss: ``exact`` (docs/scmrl.md §2), ``symmetric`` (L2-normalised, both directions, per positive) or
            ``off``; used only by models that produce alignment features (S-CMRL).
        align_tau, align_weight: the alignment loss's temperature and weight.
        step_loss: ``final`` (CE of the logits after T steps, the reference) or ``every-step`` (the mean over t of
            the CE of ``step_logits[t]``, the decision readable at step t: rewards early correct decisions, for
            streaming models such as ``scmrl-causal``).
        grad_clip_norm: clip the global gradient norm (0 = off), before IEMF's edit (docs/iemf.md §5 pitfalls).
        seed: seeds torch, numpy, python, the data order (per epoch) and IEMF's noise.
        device: ``auto`` (cuda when available), ``cpu`` or ``cuda``.
        dtype: ``float32``, or ``float64`` for exactness checks.
        num_workers: DataLoader worker processes.
        checkpoint_every_steps: also write ``last.pt`` every N optimizer steps inside an epoch (0 = epoch ends only).
        iemf: :class:`IEMFConfig`.
        qat: :class:`QATConfig` (off by default).
    """

    model: str = "scmrl"
    model_config: Mapping[str, Any] = field(default_factory=dict)
    dataset: str = "av-digits"
    data: str | None = None
    data_options: Mapping[str, Any] = field(default_factory=dict)
    preset: str | None = None
    time_steps: int | None = None
    input_size: int | None = None
    epochs: int = 100
    batch_size: int = 128
    eval_batch_size: int | None = None
    optimizer: str = "adamw"
    lr: float = 5e-3
    lr_reference_batch: int = 1024
    warmup_epochs: int = 5
    warmup_lr: float = 1e-6
    min_lr: float = 1e-5
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    momentum: float = 0.9
    nesterov: bool = True
    label_smoothing: float = 0.1
    align_loss: str = "exact"
    align_tau: float = 0.07
    align_weight: float = 1.0
    step_loss: str = "final"
    grad_clip_norm: float = 0.0
    seed: int = 42
    device: str = "auto"
    dtype: str = "float32"
    num_workers: int = 0
    checkpoint_every_steps: int = 0
    iemf: IEMFConfig = field(default_factory=IEMFConfig)
    qat: QATConfig = field(default_factory=QATConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_config", MappingProxyType(dict(self.model_config)))
        object.__setattr__(self, "data_options", MappingProxyType(dict(self.data_options)))
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if isinstance(self.iemf, Mapping):
            object.__setattr__(self, "iemf", IEMFConfig.from_dict(self.iemf))
        if isinstance(self.qat, Mapping):
            object.__setattr__(self, "qat", QATConfig.from_dict(self.qat))
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("align_loss", self.align_loss, ALIGN_LOSSES)
        _choice("step_loss", self.step_loss, STEP_LOSSES)
        _choice("device", self.device, DEVICES)
        _choice("dtype", self.dtype, DTYPES)
        for name in ("epochs", "batch_size", "lr", "align_tau"):
            _positive(name, getattr(self, name))
        for name in ("warmup_epochs", "warmup_lr", "min_lr", "weight_decay", "eps", "momentum", "align_weight",
                     "grad_clip_norm", "num_workers", "checkpoint_every_steps", "lr_reference_batch"):
            _positive(name, getattr(self, name), allow_zero=True)
        for name in ("eval_batch_size", "time_steps", "input_size"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1); got {self.label_smoothing}.")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"betas must be two numbers in [0, 1); got {list(self.betas)}.")

    @property
    def effective_lr(self) -> float:
        """The peak lr after linear batch scaling (timm's ``lr * batch / 1024``)."""
        if self.lr_reference_batch == 0:
            return self.lr
        return self.lr * self.batch_size / self.lr_reference_batch

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``from_dict(to_dict())`` round-trips)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["model_config"] = dict(self.model_config)
        out["data_options"] = dict(self.data_options)
        out["betas"] = list(self.betas)
        out["iemf"] = self.iemf.to_dict()
        out["qat"] = self.qat.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        """Build from a dict (a parsed TOML/JSON file); unknown keys raise :class:`ConfigError`."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a training config must be a table of key = value; got {type(data).__name__}.")
        check_keys(cls, data, "training config")
        values = coerce_types(cls, data, "config")
        if "iemf" in values:
            if not isinstance(values["iemf"], Mapping):
                raise ConfigError(f"iemf must be a table ([iemf] in TOML); got {values['iemf']!r}.")
            values["iemf"] = IEMFConfig.from_dict(values["iemf"])
        if "qat" in values:
            if not isinstance(values["qat"], Mapping):
                raise ConfigError(f"qat must be a table ([qat] in TOML); got {values['qat']!r}.")
            values["qat"] = QATConfig.from_dict(values["qat"])
        return cls(**values)

    def __reduce__(self):
        # MappingProxyType fields do not pickle; rebuild from the plain dict (e.g. for spawned workers).
        return (TrainConfig.from_dict, (self.to_dict(),))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


PACKAGED_CONFIGS = Path(__file__).resolve().parent.parent / "configs"
"""The configs shipped inside the package (``snnav/configs/*.toml``): the main job's default and the papers' presets."""


def packaged_configs() -> list[str]:
    """Names (without ``.toml``) of the configs shipped with snnav."""
    return sorted(p.stem for p in PACKAGED_CONFIGS.glob("*.toml"))


def resolve_config_path(path: str | Path) -> Path:
    """The config file ``path`` names: an existing file, or the name of a shipped config (``av-digits-scmrl``).

    A path such as ``configs/av-digits-scmrl.toml`` (where the configs lived before they became package data) that
    does not exist but names a shipped config resolves to that config, with a one-line deprecation warning.

    Raises:
        ConfigError: neither a file nor a shipped config's name.
    """
    path = Path(path)
    if path.is_file():
        return path
    packaged = PACKAGED_CONFIGS / (path.name if path.suffix == ".toml" else f"{path.name}.toml")
    if packaged.is_file():
        if path.suffix == ".toml":
            logger.warning("config %s: no such file; using the shipped config %s (name it as --config %s)",
                           path, packaged.stem, packaged.stem)
        return packaged
    raise ConfigError(f"config file {path} does not exist and names no shipped config; pass a TOML file or one of: "
                      f"{', '.join(packaged_configs())}.")


def load_config(path: str | Path) -> TrainConfig:
    """Read a TOML (or JSON) training config.

    Raises:
        ConfigError: the file is missing, unparsable, or has unknown keys / bad values.
    """
    path = resolve_config_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start}); pass a TOML file.") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}.") from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot parse {path}: {exc}; fix the syntax (TOML, or JSON for .json files).") from exc
    return TrainConfig.from_dict(data)


def config_diff(a: TrainConfig, b: TrainConfig, ignore: frozenset[str] = RESUME_IGNORED_KEYS) -> list[str]:
    """Dotted names of the keys whose values differ between ``a`` and ``b`` (``iemf.gain`` etc.)."""
    da, db = a.to_dict(), b.to_dict()
    diffs = []
    for key in sorted(set(da) | set(db)):
        if key in ignore:
            continue
        va, vb = da.get(key), db.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            diffs += [f"{key}.{k}" for k in sorted(set(va) | set(vb)) if va.get(k) != vb.get(k)]
        elif va != vb:
            diffs.append(key)
    return diffs

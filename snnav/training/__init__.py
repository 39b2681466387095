"""Training: losses, IEMF, the optimisation recipe, the loop with exact resume, checkpoints, data parallelism.

``train(config, run_dir)`` trains or continues a run; ``evaluate(checkpoint_or_run_dir)`` rebuilds a model from a
checkpoint and measures its accuracy. The ``snnav train`` command (:mod:`snnav.app.commands.train`) wraps both.
"""

from snnav.training.checkpoint import CheckpointError, load_checkpoint
from snnav.training.config import IEMFConfig, TrainConfig, load_config
from snnav.training.iemf import IEMF, cue_strength, inverse_effectiveness
from snnav.training.loop import NonFiniteLossError, ProgressEvent, TrainResult, evaluate, train
from snnav.training.losses import LabelSmoothingCE, TrainingLoss, semantic_alignment_loss
from snnav.training.schedule import lr_at_epoch, scaled_lr

__all__ = [
    "CheckpointError",
    "IEMF",
    "IEMFConfig",
    "LabelSmoothingCE",
    "NonFiniteLossError",
    "ProgressEvent",
    "TrainConfig",
    "TrainResult",
    "TrainingLoss",
    "cue_strength",
    "evaluate",
    "inverse_effectiveness",
    "load_checkpoint",
    "load_config",
    "lr_at_epoch",
    "scaled_lr",
    "semantic_alignment_loss",
    "train",
]

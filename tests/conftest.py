"""Shared test configuration: deterministic threads, no process-wide runtime settings, the `gpu` marker skipped without
CUDA."""

from __future__ import annotations

import os

import pytest
import torch

# `snnav train/simulate/run` apply process-wide settings (malloc thresholds, denormals flushed to zero; see
# snnav/training/runtime.py). Tests call those commands in this one process, so by default they leave it alone;
# tests/snnav/training/test_runtime.py checks the settings themselves in fresh processes.
os.environ.setdefault("SNNAV_FAST_RUNTIME", "0")
torch.set_num_threads(2)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)

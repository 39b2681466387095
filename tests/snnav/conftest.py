"""Shared fixtures of the snnav tests (library and app): one tiny AV-Digits file per session, a tiny model config,
and a one-thread fixture."""

from __future__ import annotations

import pytest
import torch

from snnav.data.av_digits import AVDigitsConfig, generate_av_digits
from snnav.training.config import TrainConfig

# A model small enough that an epoch over 40 samples takes about a second on 2 cores.
TINY_MODEL = {"embed_dim": 16, "num_heads": 4, "mlp_ratio": 2}


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread: these models are too small to gain from two, and on a busy machine the OpenMP barriers
    of two threads cost a scheduler slice per op. It also matches the subprocesses (OMP_NUM_THREADS=1), so float
    results can be compared bit for bit across processes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def avd_file(tmp_path_factory):
    """40 train / 20 test pairs, 32x32 frames, 4 event bins."""
    path = tmp_path_factory.mktemp("avd") / "avd_tiny.h5"
    generate_av_digits(path, AVDigitsConfig(n_train=40, n_test=20, frame_size=32, time_steps=4, n_voices=6), workers=1)
    return path


def tiny_config(data, **changes) -> TrainConfig:
    """A 2-epoch S-CMRL config on the tiny file (batch 8 -> 5 steps per epoch)."""
    base = dict(data=None if data is None else str(data), epochs=2, batch_size=8, warmup_epochs=1, lr=0.05,
                model_config=TINY_MODEL, seed=3, device="cpu")
    base.update(changes)
    return TrainConfig(**base)


@pytest.fixture(scope="session")
def make_config(avd_file):
    return lambda **changes: tiny_config(**{"data": avd_file, **changes})


@pytest.fixture(scope="session")
def tiny_trained_run(tmp_path_factory):
    """``(run_dir, data)``: a 1-epoch S-CMRL run (D = 16) on 40 AV-Digits pairs with 16 test pairs (32x32 frames).
    Shared by the app tests; a test that changes the run works on a copy."""
    from snnav.training.loop import train

    root = tmp_path_factory.mktemp("tiny_trained_run")
    data = root / "avd.h5"
    generate_av_digits(data, AVDigitsConfig(n_train=40, n_test=16, frame_size=32, time_steps=4, n_voices=6), workers=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(TrainConfig(data=str(data), epochs=1, batch_size=8, warmup_epochs=0, lr=0.05, seed=3, device="cpu",
                          model_config={"embed_dim": 16, "num_heads": 4, "mlp_ratio": 2}), root / "run")
    finally:
        torch.set_num_threads(threads)
    return root / "run", data

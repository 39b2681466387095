"""Fixtures of the export tests (the small models themselves are in export_models.py)."""

from __future__ import annotations

import pytest
from export_models import SIZE, T

from export.from_torch.exporter import ExportConfig


@pytest.fixture
def export_config():
    return ExportConfig(dt_s=1e-3, time_steps=T, audio_shape=(1, SIZE, SIZE), visual_shape=(2, SIZE, SIZE))

"""The training tests run on one intra-op thread (see ``one_thread`` in tests/snnav/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_thread_for_training_tests(one_thread):
    yield

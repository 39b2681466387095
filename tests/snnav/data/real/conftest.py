"""Session-wide, read-only tiny datasets for the real-dataset loader tests (built once under a temp folder).

Tests that damage a layout build their own copy in ``tmp_path`` with the builders in ``real_fixtures``.
"""

from __future__ import annotations

import pytest
import real_fixtures as rf


@pytest.fixture(scope="session")
def crema_processed_root(tmp_path_factory):
    return rf.build_crema_processed(tmp_path_factory.mktemp("crema_processed"))


@pytest.fixture(scope="session")
def crema_csv_root(tmp_path_factory):
    return rf.build_crema_csv(tmp_path_factory.mktemp("crema_csv"))


@pytest.fixture(scope="session")
def us8k_root(tmp_path_factory):
    return rf.build_us8k(tmp_path_factory.mktemp("us8k"))


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnistdvs")
    rf.build_mnist_dvs(root)
    rf.build_ntidigits(root / "n-tidigits.hdf5")
    return root

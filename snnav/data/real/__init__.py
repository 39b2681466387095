"""Loaders for the three real datasets of the S-CMRL paper (``docs/scmrl.md`` §4).

Each loader is a ``torch.utils.data.Dataset`` of ``(audio [T, C, H, W], visual [T, C, H, W], label)`` with a
``check_layout(root)`` that names exactly what is missing or malformed. The on-disk layouts and every deliberate
deviation from the reference code are listed in ``README.md`` in this folder.

Example:
    >>> ds = open_real_dataset("crema-d", "/data/CREMA-D", "test")        # doctest: +SKIP
    >>> audio, visual, label = ds[0]  # (4, 1, 128, 128), (4, 3, 128, 128), int
"""

from __future__ import annotations

import os
from typing import Any, Callable

from torch.utils.data import Dataset

from snnav.data.real.crema_d import CremaD
from snnav.data.real.mnistdvs_ntidigits import MnistDvsNTidigits
from snnav.data.real.urbansound8k_av import UrbanSound8KAV
from snnav.errors import DatasetError

#: name -> dataset class; each class has ``check_layout`` (a staticmethod), ``CLASSES`` and ``DATASET``.
REAL_DATASETS: dict[str, Any] = {
    "crema-d": CremaD,
    "urbansound8k-av": UrbanSound8KAV,
    "mnistdvs-ntidigits": MnistDvsNTidigits,
}


def _lookup(name: str) -> Any:
    try:
        return REAL_DATASETS[name]
    except KeyError:
        raise DatasetError(f"unknown real dataset {name!r}; known: {', '.join(sorted(REAL_DATASETS))}") from None


def open_real_dataset(name: str, root: str | os.PathLike, split: str = "train", **kw: Any) -> Dataset:
    """Build the dataset ``name`` over ``root``; ``kw`` goes to its constructor (``T``, ``seed``, ``cache``, ...).

    Raises:
        DatasetError: ``name`` is unknown (the message lists the known names) or the layout is incomplete.
    """
    return _lookup(name)(root, split=split, **kw)


def check_real_layout(name: str, root: str | os.PathLike, **kw: Any) -> None:
    """Run the full layout check of dataset ``name`` (decodes every file; may take a while on the full data)."""
    check: Callable[..., None] = _lookup(name).check_layout
    check(root, **kw)


__all__ = ["REAL_DATASETS", "open_real_dataset", "check_real_layout", "CremaD", "UrbanSound8KAV",
           "MnistDvsNTidigits"]

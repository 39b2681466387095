"""A mixin for snnav's records (configs, reports): frozen dataclasses persisted as plain JSON-compatible data."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

import numpy as np

from snnav.errors import ConfigError

R = TypeVar("R", bound="Record")


def _plain(value: Any) -> Any:
    """Tuples to lists and NumPy scalars to Python numbers, recursively, so the result serialises as JSON."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


class Record:
    """``to_dict``/``from_dict`` for a frozen dataclass; ``from_dict`` rejects unknown and missing keys.

    Validation of values belongs in the dataclass's ``__post_init__``, which ``from_dict`` runs as usual.
    """

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any]) -> R:
        fields = dataclasses.fields(cls)
        names = {f.name for f in fields}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} keys {unknown}; valid keys: {sorted(names)}")
        required = {f.name for f in fields
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        missing = sorted(required - set(data))
        if missing:
            raise ConfigError(f"{cls.__name__} needs the keys {missing}")
        values = dict(data)
        for f in fields:  # JSON has no tuples: restore them where the default is one
            if f.name in values and isinstance(f.default, tuple) and isinstance(values[f.name], list):
                values[f.name] = tuple(values[f.name])
        return cls(**values)

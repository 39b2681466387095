"""A mixin for snnav's records (configs, reports): frozen dataclasses persisted as plain JSON-compatible data."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, ClassVar, Mapping, TypeVar

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


def check_keys(cls: type, data: Mapping[str, Any], where: str, required: bool = False) -> None:
    """Reject keys of ``data`` that are not fields of the dataclass ``cls`` (with a "did you mean" hint), and, with
    ``required``, fields without a default that ``data`` lacks.

    Raises:
        ConfigError: naming every unknown (or missing) key and the valid ones.
    """
    fields = dataclasses.fields(cls)
    valid = [f.name for f in fields]
    unknown = sorted(set(data) - set(valid))
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, valid, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(f"unknown {where} keys {', '.join(hints)}; valid keys: {', '.join(valid)}. "
                          "Fix or remove them.")
    if required:
        needed = [f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [k for k in needed if k not in data]
        if missing:
            raise ConfigError(f"{where} needs the key(s) {', '.join(missing)}")


def coerce_types(cls: type, data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``data`` with each value checked against the type of its field's default (ints accepted for floats, lists for
    tuples); fields whose default is None or a dataclass are not checked.

    Raises:
        ConfigError: ``where.key must be of type ...; got ...``.
    """
    out = dict(data)
    for f in dataclasses.fields(cls):
        if f.name not in out:
            continue
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            continue
        value, default = out[f.name], (f.default if f.default is not dataclasses.MISSING else f.default_factory())
        if default is None or value is None or dataclasses.is_dataclass(default):
            continue
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{where}.{f.name} must be true or false; got {value!r}.")
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            out[f.name] = float(value)
        elif isinstance(default, tuple) and isinstance(value, list):
            out[f.name] = tuple(value)
        elif isinstance(default, Mapping) and not isinstance(value, Mapping):
            raise ConfigError(f"{where}.{f.name} must be a table of key = value; got {value!r}.")
        elif not isinstance(default, (Mapping, tuple)) and type(default) is not type(out[f.name]):
            if not (isinstance(default, float) and isinstance(out[f.name], float)):
                raise ConfigError(f"{where}.{f.name} must be of type {type(default).__name__}; got {value!r}.")
    return out


class Record:
    """``to_dict``/``from_dict`` for a frozen dataclass; ``from_dict`` rejects unknown, missing and wrongly typed keys.

    ``RENAMED_KEYS`` maps keys of files written by earlier versions to today's names (read, never written).
    Validation of values belongs in the dataclass's ``__post_init__``, which ``from_dict`` runs as usual.
    """

    RENAMED_KEYS: ClassVar[dict[str, str]] = {}

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any]) -> R:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{cls.__name__} must be a table of key = value; got {type(data).__name__}")
        data = {cls.RENAMED_KEYS.get(k, k): v for k, v in data.items()}
        check_keys(cls, data, cls.__name__, required=True)
        return cls(**coerce_types(cls, data, cls.__name__))

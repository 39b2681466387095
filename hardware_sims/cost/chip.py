"""Chip descriptions as cited data: every figure has a value, a unit, a status and a source.

A chip file (``hardware_sims/cost/chips/<name>.json`` or a user's path) has the form::

    {"format": "snnav.chip", "version": 1, "name": ..., "description": ...,
     "sources": {"key": "citation text", ...},
     "figures": {"cores_per_chip": {"value": 128, "unit": "cores", "status": "measured", "source": "key",
                                    "where": "table/page", "note": "...", "lower": ..., "upper": ...}, ...}}

Every field of `CHIP_FIELDS` is required, with the unit given there; ``lower``/``upper`` (optional) bound the
value where a source gives a range or where it is an assumption. Statuses: `STATUSES`. A bad file raises
`snnav.errors.CostModelError` with one line naming the field.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from hardware_sims.cost.errors import CostModelError

__all__ = ["Figure", "Chip", "CHIP_FIELDS", "STATUSES", "BUILTIN_CHIPS", "load_chip", "chip_from_dict",
           "get_chip", "parse_figures", "CostModelError"]

CHIP_FORMAT = "snnav.chip"
STATUSES: tuple[str, ...] = ("measured", "simulated", "vendor claim", "assumption")
BUILTIN_CHIPS: tuple[str, ...] = ("loihi1", "loihi2")

CHIP_FIELDS: dict[str, str] = {
    # resources
    "cores_per_chip": "cores", "compartments_per_core": "compartments", "synaptic_memory_per_core": "bytes",
    "fan_in_axons_per_core": "axons", "fan_out_axons_per_core": "axons", "max_weight_bits": "bits",
    "synapse_overhead_bits": "bits", "conv_weight_sharing": "flag", "cores_per_tile": "cores",
    "mesh_tiles_x": "tiles", "mesh_tiles_y": "tiles", "chips_per_system": "chips", "max_synaptic_delay": "steps",
    "graded_spikes": "flag", "programmable_neurons": "flag", "embedded_cores": "cores",
    # energy per operation (the memory traffic of each operation is inside the figure: see chip_cost)
    "e_synaptic_op": "pJ", "e_neuron_update_active": "pJ", "e_neuron_update_idle": "pJ",
    "e_spike_within_tile": "pJ", "e_hop_ew": "pJ", "e_hop_ns": "pJ", "e_ext_op": "pJ",
    # time per operation
    "t_synaptic_op": "ns", "t_neuron_update_active": "ns", "t_neuron_update_idle": "ns",
    "t_spike_within_tile": "ns", "t_hop_ew": "ns", "t_hop_ns": "ns", "t_barrier_min": "ns", "t_barrier_max": "ns",
    "barrier_tiles_max": "tiles",
    # static power, embedded cores
    "p_static_chip": "W", "x86_ops_per_s": "op/s", "x86_power": "W",
}
"""Every figure a chip needs, with its unit."""


@dataclass(frozen=True)
class Figure:
    """One cited number: ``value`` (with ``lower`` <= value <= ``upper``; both equal to value when not given)."""

    name: str
    value: float
    unit: str
    status: str
    source: str
    where: str
    note: str
    lower: float
    upper: float

    def citation(self, sources: Mapping[str, str]) -> str:
        return f"{sources.get(self.source, self.source)}, {self.where}" if self.where not in ("", "-") else \
            sources.get(self.source, self.source)

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "lower": self.lower, "upper": self.upper, "unit": self.unit,
                "status": self.status, "source": self.source, "where": self.where, "note": self.note}


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CostModelError(f"{where}: expected a finite number, found {value!r}")
    if value < 0:
        raise CostModelError(f"{where}: must not be negative, found {value!r}")
    return float(value)


def _string(where: str, value: Any, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise CostModelError(f"{where}: expected a{'' if allow_empty else ' non-empty'} string, found {value!r}")
    return value


def parse_figures(label: str, data: Mapping[str, Any], fields: Mapping[str, str],
                  sources: Mapping[str, str]) -> dict[str, Figure]:
    """Validate ``data["figures"]``-style entries against `fields` (name -> unit). One error per bad field."""
    if not isinstance(data, Mapping):
        raise CostModelError(f"{label}: figures: expected an object, found {type(data).__name__}")
    missing = [k for k in fields if k not in data]
    if missing:
        raise CostModelError(f"{label}: figures.{missing[0]}: missing (every chip needs {', '.join(missing)})")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise CostModelError(f"{label}: figures.{unknown[0]}: unknown field (known: {', '.join(fields)})")
    out: dict[str, Figure] = {}
    for name, unit in fields.items():
        where = f"{label}: figures.{name}"
        entry = data[name]
        if not isinstance(entry, Mapping):
            raise CostModelError(f"{where}: expected an object with value, unit, status, source, where, note; "
                                 f"found {entry!r}")
        for key in ("value", "unit", "status", "source"):
            if key not in entry:
                raise CostModelError(f"{where}.{key}: missing" + (" (a number without a unit is ambiguous)"
                                                                  if key == "unit" else ""))
        extra = sorted(set(entry) - {"value", "unit", "status", "source", "where", "note", "lower", "upper"})
        if extra:
            raise CostModelError(f"{where}.{extra[0]}: unknown key")
        value = _number(f"{where}.value", entry["value"])
        got_unit = _string(f"{where}.unit", entry["unit"])
        if got_unit != unit:
            raise CostModelError(f"{where}.unit: expected {unit!r}, found {got_unit!r}")
        status = entry["status"]
        if status not in STATUSES:
            raise CostModelError(f"{where}.status: {status!r} is not one of {list(STATUSES)}")
        source = _string(f"{where}.source", entry["source"])
        if source not in sources:
            raise CostModelError(f"{where}.source: {source!r} is not a key of 'sources' ({', '.join(sources)})")
        lower = _number(f"{where}.lower", entry.get("lower", value))
        upper = _number(f"{where}.upper", entry.get("upper", value))
        if not lower <= value <= upper:
            raise CostModelError(f"{where}: needs lower <= value <= upper, found {lower} / {value} / {upper}")
        out[name] = Figure(name, value, unit, status, source, _string(f"{where}.where", entry.get("where", "-"),
                                                                      True),
                           _string(f"{where}.note", entry.get("note", ""), True), lower, upper)
    return out


@dataclass(frozen=True)
class Description:
    """A validated hardware description: cited figures by name (chips here, GPUs in ``gpu.py``)."""

    FORMAT = ""

    name: str
    description: str
    sources: Mapping[str, str]
    figures: Mapping[str, Figure]

    def __getitem__(self, name: str) -> float:
        return self.figures[name].value

    def lo(self, name: str) -> float:
        return self.figures[name].lower

    def hi(self, name: str) -> float:
        return self.figures[name].upper

    def cite(self, name: str) -> str:
        f = self.figures[name]
        return f"{f.citation(self.sources)} [{f.status}]"

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.FORMAT, "version": 1, "name": self.name, "description": self.description,
                "sources": dict(self.sources), "figures": {k: f.to_dict() for k, f in self.figures.items()}}


@dataclass(frozen=True)
class Chip(Description):
    """A validated chip description (see the module docstring)."""

    FORMAT = CHIP_FORMAT

    path: str | None = None


def read_header(label: str, data: Any, kind: str) -> tuple[str, str, dict[str, str]]:
    if not isinstance(data, Mapping):
        raise CostModelError(f"{label}: expected a JSON object, found {type(data).__name__}")
    for key in ("format", "version", "name", "description", "sources", "figures"):
        if key not in data:
            raise CostModelError(f"{label}: {key}: missing")
    if data["format"] != kind or data["version"] != 1:
        raise CostModelError(f"{label}: format: expected {kind!r} version 1, found {data['format']!r} version "
                             f"{data['version']!r}")
    sources = data["sources"]
    if not isinstance(sources, Mapping) or not sources:
        raise CostModelError(f"{label}: sources: expected a non-empty object of key -> citation")
    for k, v in sources.items():
        _string(f"{label}: sources.{k}", v)
    return _string(f"{label}: name", data["name"]), _string(f"{label}: description", data["description"]), \
        dict(sources)


def chip_from_dict(data: Mapping[str, Any], label: str = "chip", path: str | None = None) -> Chip:
    """Validate and build a `Chip` (raises `CostModelError` naming the first bad field)."""
    name, description, sources = read_header(label, data, CHIP_FORMAT)
    return Chip(name, description, sources, parse_figures(label, data["figures"], CHIP_FIELDS, sources), path)


def read_json_file(path: Path) -> Any:
    if not path.is_file():
        raise CostModelError(f"{path}: no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CostModelError(f"{path}: not valid JSON ({exc})") from None


def load_chip(path: str | os.PathLike) -> Chip:
    """Read and validate a chip JSON file."""
    path = Path(path)
    return chip_from_dict(read_json_file(path), label=path.name, path=str(path))


def get_chip(name_or_path: str | os.PathLike | Chip) -> Chip:
    """A `Chip` as given, a built-in one by name (`BUILTIN_CHIPS`), or a user's from a JSON path."""
    if isinstance(name_or_path, Chip):
        return name_or_path
    text = os.fspath(name_or_path)
    if text in BUILTIN_CHIPS:
        ref = resources.files("hardware_sims.cost").joinpath("chips", f"{text}.json")
        return chip_from_dict(json.loads(ref.read_text(encoding="utf-8")), label=f"{text}.json")
    if text.endswith(".json") or os.sep in text:
        return load_chip(text)
    raise CostModelError(f"chip {text!r}: not a built-in chip ({', '.join(BUILTIN_CHIPS)}) nor a .json path")

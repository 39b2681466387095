"""Energy per inference as a pure function of activity counts and a cost model (an estimate, always labelled so).

A `CostModel` is data with a named source: an energy in pJ per operation, each with a status (``measured``,
``simulated``, ``estimate``, ``unavailable``) and a note, and a mapping from every count of
`hardware_sims.counts.COUNT_FIELDS` to the operation that prices it (or to none: not costed), with the assumptions
the mapping makes written next to it. Operations:

====================  ===================================================================================
operation             meaning
====================  ===================================================================================
synaptic_op           one synaptic event: a spike delivered through one synapse and accumulated
neuron_update_active  one update of a neuron compartment that has input, a spike or a bias current
neuron_update_idle    one update of a compartment with none of those
spike                 one spike sent (within a tile / core)
mac                   one multiply-accumulate of two graded values
ac                    one accumulate (an addition)
====================  ===================================================================================

Built-in models (``hardware_sims/cost/models/*.json``): ``loihi1`` (Davies et al. 2018, Table 2) and
``horowitz45nm`` (Horowitz, ISSCC 2014). Loihi 2 has no public per-operation energy table: it is listed by
`available_cost_models` as unavailable, with the reason, and asking for it raises `CostModelUnavailableError`.
A user model is a JSON file of the same form (`load_cost_model`, `CostModel.from_dict`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from hardware_sims.cost.errors import CostModelError, CostModelUnavailableError
from hardware_sims.counts.record import COUNT_FIELDS, ActivityCounts

__all__ = ["CostModel", "OperationCost", "CountCost", "Citation", "EnergyEstimate", "UncostedCount",
           "CostModelError", "CostModelUnavailableError", "OPERATIONS", "STATUSES", "FORMAT", "VERSION",
           "available_cost_models", "builtin_cost_model", "get_cost_model", "load_cost_model", "estimate_energy"]

FORMAT = "snnav.cost-model"
VERSION = 1
OPERATIONS: tuple[str, ...] = ("synaptic_op", "neuron_update_active", "neuron_update_idle", "spike", "mac", "ac")
STATUSES: tuple[str, ...] = ("measured", "simulated", "estimate", "unavailable")
PJ_PER_J = 1e12

BUILTIN_MODELS: tuple[str, ...] = ("loihi1", "horowitz45nm")
UNAVAILABLE_MODELS: dict[str, str] = {
    "loihi2": (
        "no public per-operation energy table exists for Loihi 2: Intel's technology brief (2021), the Lava "
        "repositories and Orchard et al. (SiPS 2021, arXiv:2111.03746) give no pJ per synaptic op or neuron update; "
        "published Loihi 2 energies are workload measurements on hardware with lava-loihi's profiler, which open Lava "
        "lacks, and per-op figures circulating in code could not be traced to a paper. Use loihi1 or a user model "
        "with its own source"
    ),
}


def _keys(where: str, data: Any, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    if not isinstance(data, Mapping):
        raise CostModelError(f"{where}: expected an object, found {type(data).__name__}")
    missing = [k for k in required if k not in data]
    unknown = sorted(set(data) - set(required) - set(optional))
    if missing or unknown:
        raise CostModelError(f"{where}: missing keys {missing}, unknown keys {unknown}; expected {list(required)}"
                             f"{' (optional ' + str(list(optional)) + ')' if optional else ''}")


def _text(where: str, value: Any, allow_none: bool = False) -> str | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or not value.strip():
        raise CostModelError(f"{where}: expected a non-empty string, found {value!r}")
    return value


@dataclass(frozen=True)
class Citation:
    """Where a cost model's figures come from."""

    authors: str
    title: str
    venue: str
    year: int
    table: str | None = None
    page: str | None = None
    doi: str | None = None

    def text(self) -> str:
        """One line: authors (year), title, venue, table, page, doi."""
        parts = [f"{self.authors} ({self.year}), \"{self.title}\", {self.venue}"]
        parts += [x for x in (self.table, f"p. {self.page}" if self.page else None,
                              f"doi:{self.doi}" if self.doi else None) if x]
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"authors": self.authors, "title": self.title, "venue": self.venue, "year": self.year,
                "table": self.table, "page": self.page, "doi": self.doi}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Citation:
        _keys("source", data, ("authors", "title", "venue", "year"), ("table", "page", "doi"))
        year = data["year"]
        if isinstance(year, bool) or not isinstance(year, int):
            raise CostModelError(f"source.year: expected an integer, found {year!r}")
        return cls(_text("source.authors", data["authors"]), _text("source.title", data["title"]),
                   _text("source.venue", data["venue"]), year,
                   *(_text(f"source.{k}", data.get(k), allow_none=True) for k in ("table", "page", "doi")))


@dataclass(frozen=True)
class OperationCost:
    """Energy of one operation: ``energy_pj`` (None when ``status == "unavailable"``), its status and a note."""

    energy_pj: float | None
    status: str
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {"energy_pj": self.energy_pj, "status": self.status, "note": self.note}

    @classmethod
    def from_dict(cls, where: str, data: Mapping[str, Any]) -> OperationCost:
        _keys(where, data, ("energy_pj", "status", "note"))
        status, value = data["status"], data["energy_pj"]
        if status not in STATUSES:
            raise CostModelError(f"{where}.status: {status!r} is not one of {list(STATUSES)}")
        if status == "unavailable":
            if value is not None:
                raise CostModelError(f"{where}: status 'unavailable' needs energy_pj null, found {value!r}")
            return cls(None, status, _text(f"{where}.note", data["note"]))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise CostModelError(f"{where}.energy_pj: expected a finite number >= 0 (pJ) for status {status!r}, "
                                 f"found {value!r}")
        return cls(float(value), status, _text(f"{where}.note", data["note"]))


@dataclass(frozen=True)
class CountCost:
    """How one count is priced: by ``operation`` (None: not costed); ``assumption`` marks a mapping that is an
    assumption rather than what the source measures, explained in ``note``."""

    operation: str | None
    note: str
    assumption: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"operation": self.operation, "note": self.note, "assumption": self.assumption}

    @classmethod
    def from_dict(cls, where: str, data: Mapping[str, Any]) -> CountCost:
        _keys(where, data, ("operation", "note"), ("assumption",))
        op = data["operation"]
        if op is not None and op not in OPERATIONS:
            raise CostModelError(f"{where}.operation: {op!r} is not one of {list(OPERATIONS)} (or null)")
        assumption = data.get("assumption", False)
        if not isinstance(assumption, bool):
            raise CostModelError(f"{where}.assumption: expected true or false, found {assumption!r}")
        return cls(op, _text(f"{where}.note", data["note"]), assumption)


@dataclass(frozen=True)
class CostModel:
    """Energy per operation with its source, and how each count of a run is priced (module docstring).

    Attributes:
        name: identifier (``loihi1``, ``horowitz45nm``, a user's).
        description: what the model includes and leaves out.
        technology: the chip or process.
        source: the citation of the figures.
        operations: each of `OPERATIONS` -> `OperationCost`.
        counts: each of `COUNT_FIELDS` -> `CountCost`.
    """

    name: str
    description: str
    technology: str
    source: Citation
    operations: Mapping[str, OperationCost]
    counts: Mapping[str, CountCost]

    def energy_of(self, count: str) -> float | None:
        """pJ per unit of `count`, or None when the model does not cost it."""
        op = self.counts[count].operation
        return None if op is None else self.operations[op].energy_pj

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "name": self.name, "description": self.description,
                "technology": self.technology, "source": self.source.to_dict(),
                "operations": {k: v.to_dict() for k, v in self.operations.items()},
                "counts": {k: v.to_dict() for k, v in self.counts.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CostModel:
        """Validate and build a model.

        Raises:
            CostModelError: wrong format or version, missing or unknown keys (operations and counts included),
                negative, infinite or NaN energies, unknown statuses or operations.
        """
        _keys("cost model", data, ("format", "version", "name", "description", "technology", "source", "operations",
                                   "counts"))
        if data["format"] != FORMAT or data["version"] != VERSION:
            raise CostModelError(f"cost model: format {data['format']!r} version {data['version']!r}; expected "
                                 f"{FORMAT!r} version {VERSION}")
        _keys("operations", data["operations"], OPERATIONS)
        _keys("counts", data["counts"], COUNT_FIELDS)
        return cls(_text("name", data["name"]), _text("description", data["description"]),
                   _text("technology", data["technology"]), Citation.from_dict(data["source"]),
                   {k: OperationCost.from_dict(f"operations.{k}", data["operations"][k]) for k in OPERATIONS},
                   {k: CountCost.from_dict(f"counts.{k}", data["counts"][k]) for k in COUNT_FIELDS})


def load_cost_model(path: str | os.PathLike) -> CostModel:
    """Read a cost model JSON file (the form of ``hardware_sims/cost/models/loihi1.json``).

    Raises:
        FileNotFoundError: no such file. CostModelError: not JSON, or not a valid model (`CostModel.from_dict`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cost model file {str(path)!r} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CostModelError(f"{path}: not valid JSON ({exc})") from exc
    try:
        return CostModel.from_dict(data)
    except CostModelError as exc:
        raise CostModelError(f"{path}: {exc}") from None


def available_cost_models() -> list[dict[str, Any]]:
    """Every built-in model name with ``available`` and its description, or the reason it is not shipped."""
    out: list[dict[str, Any]] = []
    for name in BUILTIN_MODELS:
        model = builtin_cost_model(name)
        out.append({"name": name, "available": True, "description": model.description,
                    "source": model.source.text()})
    for name, reason in UNAVAILABLE_MODELS.items():
        out.append({"name": name, "available": False, "reason": reason})
    return out


def builtin_cost_model(name: str) -> CostModel:
    """A model shipped with snnav (`BUILTIN_MODELS`).

    Raises:
        CostModelUnavailableError: a known model without figures (``loihi2``); CostModelError: an unknown name.
    """
    if name in UNAVAILABLE_MODELS:
        raise CostModelUnavailableError(f"cost model {name!r} is not available: {UNAVAILABLE_MODELS[name]}")
    if name not in BUILTIN_MODELS:
        raise CostModelError(f"no built-in cost model {name!r}; built-in models are {list(BUILTIN_MODELS)} "
                             f"({', '.join(UNAVAILABLE_MODELS)} unavailable); or pass a JSON file")
    text = resources.files("hardware_sims.cost").joinpath("models", f"{name}.json").read_text(encoding="utf-8")
    return CostModel.from_dict(json.loads(text))


def get_cost_model(name_or_path: str | os.PathLike | CostModel) -> CostModel:
    """A `CostModel` as given, a built-in one by name, or a user's from a ``.json`` path."""
    if isinstance(name_or_path, CostModel):
        return name_or_path
    text = os.fspath(name_or_path)
    if text.endswith(".json") or os.sep in text:
        return load_cost_model(text)
    return builtin_cost_model(text)


@dataclass(frozen=True)
class UncostedCount:
    """A count the model does not price: its amount (mean per inference) and why."""

    amount: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"amount": self.amount, "reason": self.reason}


@dataclass(frozen=True)
class EnergyEstimate:
    """Energy per inference of a run under one cost model -- an estimate, never a measurement.

    Attributes:
        model: the cost model's name; source: its citation; technology: its chip or process.
        total_pj: mean energy per inference (sample), pJ.
        by_node_pj / by_count_pj / by_operation_pj: the same split by node, by count and by priced operation.
        per_sample_pj: the total of each sample.
        uncosted: counts the model does not price (their amounts are left out of the totals).
        assumptions: the notes of the mappings the model marks as assumptions, by count.
        statuses: the status of each operation used (``simulated``, ``estimate``, ...).
        run: the counts' run (backend, precision, samples, T, dt).
    """

    model: str
    source: str
    technology: str
    total_pj: float
    by_node_pj: Mapping[str, float]
    by_count_pj: Mapping[str, float]
    by_operation_pj: Mapping[str, float]
    per_sample_pj: tuple[float, ...]
    uncosted: Mapping[str, UncostedCount]
    assumptions: Mapping[str, str]
    statuses: Mapping[str, str]
    run: Mapping[str, Any] = field(default_factory=dict)
    kind: str = "estimate"

    @property
    def total_j(self) -> float:
        """Mean energy per inference in joules."""
        return self.total_pj / PJ_PER_J

    @property
    def label(self) -> str:
        """How to caption the number: an estimate, with the model and its source."""
        return f"estimate from counts and cost model '{self.model}' ({self.source})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label, "model": self.model, "source": self.source,
                "technology": self.technology, "total_pj": self.total_pj, "total_j": self.total_j,
                "by_node_pj": dict(self.by_node_pj), "by_count_pj": dict(self.by_count_pj),
                "by_operation_pj": dict(self.by_operation_pj), "per_sample_pj": list(self.per_sample_pj),
                "uncosted": {k: v.to_dict() for k, v in self.uncosted.items()},
                "assumptions": dict(self.assumptions), "statuses": dict(self.statuses), "run": dict(self.run)}


def estimate_energy(counts: ActivityCounts, model: CostModel | str | os.PathLike) -> EnergyEstimate:
    """Energy per inference: every count times the energy of the operation its model maps it to.

    Args:
        counts: `ActivityCounts` of a run (means per sample; per-sample totals give ``per_sample_pj``).
        model: a `CostModel`, a built-in name or a JSON path.

    Returns:
        The `EnergyEstimate` (total, by node, by count, by operation, per sample; uncosted counts listed).
    """
    model = get_cost_model(model)
    priced = {k: model.energy_of(k) for k in COUNT_FIELDS}
    by_count = {k: e * sum(getattr(n, k) for n in counts.nodes.values()) for k, e in priced.items() if e is not None}
    by_node = {name: sum(e * getattr(n, k) for k, e in priced.items() if e is not None)
               for name, n in counts.nodes.items()}
    by_op: dict[str, float] = {}
    for k, pj in by_count.items():
        op = model.counts[k].operation
        by_op[op] = by_op.get(op, 0.0) + pj
    per_sample = tuple(sum(e * counts.per_sample[k][b] for k, e in priced.items() if e is not None)
                       for b in range(counts.run.samples))
    totals = counts.totals
    uncosted = {}
    for k, e in priced.items():
        if e is None:
            op = model.counts[k].operation
            reason = model.counts[k].note if op is None else \
                f"operation {op!r} is unavailable in this model: {model.operations[op].note}"
            uncosted[k] = UncostedCount(totals[k], reason)
    used = sorted({model.counts[k].operation for k in by_count})
    return EnergyEstimate(
        model=model.name, source=model.source.text(), technology=model.technology,
        total_pj=float(sum(by_count.values())), by_node_pj=by_node, by_count_pj=by_count, by_operation_pj=by_op,
        per_sample_pj=per_sample, uncosted=uncosted,
        assumptions={k: c.note for k, c in model.counts.items() if c.assumption},
        statuses={op: model.operations[op].status for op in used}, run=counts.run.to_dict())

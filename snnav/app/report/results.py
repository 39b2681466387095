"""The simulation-result file: what ``snnav simulate --out FILE.json`` measured, with where it came from.

One JSON object (``format`` = :data:`FORMAT`)::

    format, version, created_utc, snnav_version, command
    backend           "lava" | "emulator"
    precision         "fixed" | "float"
    model             {"path", "sha256", "name", "dt_s", "time_steps", "readout_step"}
    data              {"path", "split": "test", "first_sample": 0}
    quantizer         the quantizer settings a fixed-point run used (null in float)::

        weight_bits, v_headroom   the graph's own metadata["quantizer"] values where it pins them (an export of
                                  ``snnav train --finetune RUN --fixed-point``), else the shared quantizer's defaults
                                  (hardware_sims.fixed_point: 8 bits, V_HEADROOM)
        pinned                    true when the graph pins its quantizer (a fine-tuned export), else false
        weight_exps_pinned        how many synapse processes' weight exponents the graph pins (0 when not pinned)
        source                    where weight_bits and v_headroom came from, in words

        Files written before these keys existed hold only {"v_headroom", "weight_bits"} (always the defaults, even for
        a pinned graph): readers take a missing "pinned" as unknown (`recorded_quantizer`), not as false.
    samples, accuracy, float_accuracy, agreement
    float_reference   what float_accuracy and agreement compare against (the NIR interpreter in float64)
    spikes, neuron_steps   per spiking NIR node, summed over the samples
    timing            {"seconds", "ms_per_step", "samples_per_s"}
    counts            hardware_sims.counts.ActivityCounts.to_dict() accumulated over every sample (or null)
    raster            {"sample", "max_neurons", "nodes": {node: {"neurons", "spikes": [[step, neuron], ...]}}} or null
    stream            optional (``snnav simulate --stream``): the decision read at every step::

        steps, pipeline_depth, window_nodes            T, Lava steps from an input step to its output, WINDOW nodes
        accuracy_by_step, float_accuracy_by_step       [T] fractions (backend, float reference)
        final_steps, decision_latency_steps            [samples] t* and t* + pipeline_depth
        spikes_total, spikes_to_decision               [samples] every LIF layer, all T steps / steps 0..t* ([] if
                                                       not recorded)
        chips  {name: {kind: "estimate", step_s: {lower, value, upper}, depth_steps, window,
                       energy_to_decision_j, dynamic_to_decision_j, energy_per_sample_j, time_to_decision_s:
                           {lower, value, upper: [samples]},
                       time_per_step_includes, fits, violations, notes, included, excluded, sources}}

Files are written atomically; :func:`read_simulation_result` checks the format and the keys the report needs and
names the command that writes a correct file when they are missing.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Mapping

from hardware_sims.cost.chip_cost import BOUNDS
from hardware_sims.cost.decision import TIME_INCLUDES
from hardware_sims.fixed_point import formats as lf
from hardware_sims.fixed_point.prepare import quantizer_settings as pinned_quantizer
from hardware_sims.fixed_point.quantize import V_HEADROOM
from snnav._version import __version__
from snnav.errors import FileFormatError
from snnav.io import write_json

__all__ = ["FORMAT", "VERSION", "ResultFileError", "sha256_of", "write_json", "write_simulation_result",
           "read_json", "read_simulation_result", "simulate_command", "check_field", "quantizer_settings",
           "recorded_quantizer", "resolved_quantizer", "same_quantizer"]

FORMAT = "snnav.simulation-result"
VERSION = 1
REQUIRED = ("backend", "precision", "model", "data", "samples", "accuracy", "float_accuracy", "agreement")


class ResultFileError(FileFormatError):
    """A simulation-result (or other report input) file is missing, unreadable, or not what the report needs."""


def sha256_of(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes (so a report can name exactly which model or input it used)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()



def simulate_command(model: str | Path, backend: str, precision: str, samples: int, data: str | Path,
                     out: str | Path, stream_chips: tuple[str, ...] | None = None) -> str:
    """The ``snnav simulate`` command line that writes such a file (recorded in it, and quoted by errors);
    ``stream_chips`` (not None): with ``--stream`` and these ``--chip`` (``none`` when empty)."""
    stream = "" if stream_chips is None else " --stream" + "".join(f" --chip {c}" for c in stream_chips or ("none",))
    return (f"snnav simulate {model} --backend {backend} --precision {precision} --samples {samples} "
            f"--data {data}{stream} --out {out}")


PINNED_SOURCE = "the model's metadata['quantizer'] (pinned by quantization-aware fine-tuning)"
DEFAULT_SOURCE = "the shared quantizer's defaults (hardware_sims.fixed_point)"


def quantizer_settings(precision: str, graph_metadata: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The quantizer settings a fixed-point run of a graph with ``graph_metadata`` uses (None in float): the ones the
    graph pins in ``metadata["quantizer"]`` (read by ``hardware_sims.fixed_point.prepare.quantizer_settings``, as
    ``prepare_fixed`` reads them), the shared quantizer's defaults for what it does not pin. ``snnav run`` reuses a
    result only if they match (`same_quantizer`)."""
    if precision != "fixed":
        return None
    pinned = pinned_quantizer(graph_metadata)
    return {"v_headroom": float(pinned.get("v_headroom", V_HEADROOM)),
            "weight_bits": int(pinned.get("weight_bits", lf.WEIGHT_BITS)),
            "pinned": bool(pinned), "weight_exps_pinned": len(pinned.get("weight_exps", {})),
            "source": PINNED_SOURCE if pinned else DEFAULT_SOURCE}


def recorded_quantizer(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """A result file's ``quantizer`` with every key of `quantizer_settings` (None for a float run): a file written
    before ``pinned`` existed gets ``pinned`` None (unknown) and says so in ``source``."""
    q = data.get("quantizer")
    if not isinstance(q, dict):
        return None
    if "pinned" in q:
        return dict(q)
    return {"v_headroom": q.get("v_headroom", V_HEADROOM), "weight_bits": q.get("weight_bits", lf.WEIGHT_BITS),
            "pinned": None, "weight_exps_pinned": None,
            "source": "an older result file that recorded the quantizer's defaults, not the model's own settings"}


def resolved_quantizer(data: Mapping[str, Any], graph) -> dict[str, Any] | None:
    """The quantizer settings a result's model runs with in fixed point: what the result file records where it says
    whether the model pins them; else (a float run, or a file older than ``pinned``) what `quantizer_settings` reads
    from the model ``graph``'s metadata; None when neither is known (such a file and no graph)."""
    q = recorded_quantizer(data)
    if q is not None and q["pinned"] is not None:
        return q
    return None if graph is None else quantizer_settings("fixed", graph.metadata)


def same_quantizer(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
    """Whether a result file's ``quantizer`` (`old`, maybe from an older file) is what `quantizer_settings` gives
    now (`new`): weight bits, headroom and pinning must match; an older file's unknown pinning matches only an
    unpinned graph (its record was right only then)."""
    if old is None or new is None:
        return old is None and new is None
    old = recorded_quantizer({"quantizer": old})
    keys = ("weight_bits", "v_headroom", "weight_exps_pinned")
    return (bool(old["pinned"]) == new["pinned"] and all(old[k] == new[k] for k in keys if old[k] is not None))


def write_simulation_result(path: str | Path, result, *, backend: str, precision: str, model_path: str | Path,
                            graph_metadata: Mapping[str, Any], data_path: str | Path, command: str) -> Path:
    """Save a ``snnav.app.commands.simulate.SimulationResult`` with its provenance (see the module docstring)."""
    model_path = Path(model_path)
    counts = result.counts.to_dict() if result.counts is not None else None
    record = {
        "format": FORMAT,
        "version": VERSION,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "snnav_version": __version__,
        "command": command,
        "backend": backend,
        "precision": precision,
        "model": {"path": str(model_path.resolve()), "sha256": sha256_of(model_path),
                  "name": graph_metadata.get("model"), "dt_s": graph_metadata.get("dt"),
                  "time_steps": graph_metadata.get("time_steps"), "readout_step": graph_metadata.get("readout_step")},
        "data": {"path": str(Path(data_path).resolve()), "split": "test", "first_sample": 0},
        "quantizer": quantizer_settings(precision, graph_metadata),
        "samples": result.samples,
        "accuracy": result.accuracy,
        "float_accuracy": result.float_accuracy,
        "agreement": result.agreement,
        "float_reference": "snnav's NIR interpreter (export.interpreter) in float64 on the same samples",
        "spikes": dict(result.spikes),
        "neuron_steps": dict(result.neuron_steps),
        "timing": {"seconds": result.seconds, "ms_per_step": result.ms_per_step,
                   "samples_per_s": result.samples / max(result.seconds, 1e-12)},
        "counts": counts,
        "raster": result.raster,
    }
    if getattr(result, "stream", None) is not None:
        record["stream"] = stream_record(result.stream)
    return write_json(path, record)


def _floats(values: Any) -> list[float]:
    return [float(v) for v in values]


def stream_record(st) -> dict[str, Any]:
    """The ``stream`` section of a simulation result from a ``snnav.app.simulate.StreamResult``."""
    chips = {}
    for name, e in st.energy.items():
        chips[name] = {
            "kind": e.kind, "step_s": {b: float(v) for b, v in e.step_s.items()}, "depth_steps": int(e.depth),
            "window": bool(e.window), "fits": bool(e.fits), "violations": list(e.violations), "notes": list(e.notes),
            "energy_to_decision_j": {b: _floats(v) for b, v in e.to_decision_j.items()},
            "dynamic_to_decision_j": {b: _floats(v) for b, v in e.to_decision_dynamic_j.items()},
            "energy_per_sample_j": {b: _floats(v) for b, v in e.per_sample_j.items()},
            "time_to_decision_s": {b: _floats(v) for b, v in e.time_to_decision_s.items()},
            "time_per_step_includes": TIME_INCLUDES, "included": list(e.included), "excluded": list(e.excluded),
            "sources": dict(e.sources)}
    return {"steps": int(st.steps), "pipeline_depth": int(st.pipeline_depth), "window_nodes": list(st.window_nodes),
            "accuracy_by_step": _floats(st.accuracy_by_step),
            "float_accuracy_by_step": _floats(st.float_accuracy_by_step),
            "final_steps": [int(v) for v in st.final_steps],
            "decision_latency_steps": [int(v) for v in st.decision_latency],
            "spikes_total": _floats(st.spikes_total), "spikes_to_decision": _floats(st.spikes_to_decision),
            "chips": chips}


def read_json(path: str | Path, what: str, hint: str) -> dict[str, Any]:
    """A JSON object from ``path``; a :class:`ResultFileError` naming ``what`` and ``hint`` when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise ResultFileError(f"no {what} at {path}; {hint}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultFileError(f"{path} is not a readable JSON {what} ({exc}); {hint}") from exc
    if not isinstance(data, dict):
        raise ResultFileError(f"{path} holds a JSON {type(data).__name__}, not a {what} object; {hint}")
    return data


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_KINDS = {
    "text": ("a string", lambda v: isinstance(v, str)),
    "object": ("an object {...}", lambda v: isinstance(v, dict)),
    "list": ("a list [...]", lambda v: isinstance(v, list)),
    "count": ("an integer >= 1", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1),
    "count0": ("an integer >= 0", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0),
    "fraction": ("a number from 0 to 1", lambda v: _number(v) and 0 <= v <= 1),
    "number": ("a finite number", _number),
    "positive": ("a finite number > 0", lambda v: _number(v) and v > 0),
    "nonneg": ("a finite number >= 0", lambda v: _number(v) and v >= 0),
}


def check_field(path: str | Path, data: dict[str, Any], key: str, kind: str, *, unit: str = "",
                choices: tuple[str, ...] = (), optional: bool = False, hint: str = "") -> Any:
    """``data[key]`` if it is of ``kind`` (see ``_KINDS``; or one of ``choices``); else a one-line
    :class:`ResultFileError` naming the file, the field, what was found and what was expected (with the unit)."""
    if key not in data or data[key] is None:
        if optional:
            return None
        expected = f"one of {list(choices)}" if choices else _KINDS[kind][0] + (f" ({unit})" if unit else "")
        raise ResultFileError(f"{path}: the field {key!r} is missing; expected {expected}{'; ' + hint if hint else ''}")
    value = data[key]
    ok = value in choices if choices else _KINDS[kind][1](value)
    if not ok:
        expected = f"one of {list(choices)}" if choices else _KINDS[kind][0] + (f" ({unit})" if unit else "")
        shown = json.dumps(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise ResultFileError(f"{path}: the field {key!r} is {shown}; expected {expected}{'; ' + hint if hint else ''}")
    return value


def _check_result_fields(path: Path, data: dict[str, Any], hint: str) -> None:
    check_field(path, data, "backend", "text", choices=("lava", "emulator"), hint=hint)
    check_field(path, data, "precision", "text", choices=("fixed", "float"), hint=hint)
    model = check_field(path, data, "model", "object", hint=hint)
    for key in ("path", "sha256", "name"):
        check_field(path, model, key, "text", optional=True, hint=hint)
    data_info = check_field(path, data, "data", "object", hint=hint)
    check_field(path, data_info, "path", "text", hint=hint)
    check_field(path, data, "samples", "count", unit="test samples", hint=hint)
    for key in ("accuracy", "float_accuracy", "agreement"):
        check_field(path, data, key, "fraction", unit="a fraction, not a percentage", hint=hint)
    for key in ("spikes", "neuron_steps"):
        counts = check_field(path, data, key, "object", optional=True, hint=hint) or {}
        for node, value in counts.items():
            check_field(path, {f"{key}.{node}": value}, f"{key}.{node}", "count0", hint=hint)
    for key in ("timing", "raster"):
        check_field(path, data, key, "object", optional=True, hint=hint)
    quantizer = check_field(path, data, "quantizer", "object", optional=True, hint=hint)
    if quantizer is not None:
        sub = {f"quantizer.{k}": v for k, v in quantizer.items()}
        check_field(path, sub, "quantizer.weight_bits", "count", unit="bits", optional=True, hint=hint)
        check_field(path, sub, "quantizer.v_headroom", "positive", optional=True, hint=hint)
    stream = check_field(path, data, "stream", "object", optional=True, hint=hint)
    if stream is not None:
        _check_stream(path, stream, int(data["samples"]), hint)


def _check_list(path: Path, where: str, value: Any, kind: str, length: int, unit: str, hint: str) -> list:
    """A list of ``length`` values of ``kind``; else a one-line error naming the field."""
    if not isinstance(value, list) or len(value) != length:
        found = f"a list of {len(value)}" if isinstance(value, list) else json.dumps(value)[:40]
        raise ResultFileError(f"{path}: the field {where!r} is {found}; expected a list of {length} values "
                              f"({_KINDS[kind][0]}, {unit}); {hint}")
    for i, v in enumerate(value):
        check_field(path, {f"{where}[{i}]": v}, f"{where}[{i}]", kind, unit=unit, hint=hint)
    return value


def _check_stream(path: Path, stream: dict[str, Any], samples: int, hint: str) -> None:
    """The ``stream`` section: lengths (T steps, one value per sample), ranges, bounds of the chip estimates."""
    where = lambda key: f"stream.{key}"  # noqa: E731
    sub = {where(k): v for k, v in stream.items()}
    steps = check_field(path, sub, where("steps"), "count", unit="NIR steps", hint=hint)
    check_field(path, sub, where("pipeline_depth"), "count0", unit="Lava steps", hint=hint)
    nodes = check_field(path, sub, where("window_nodes"), "list", hint=hint)
    for i, n in enumerate(nodes):
        check_field(path, {f"stream.window_nodes[{i}]": n}, f"stream.window_nodes[{i}]", "text", hint=hint)
    for key in ("accuracy_by_step", "float_accuracy_by_step"):
        _check_list(path, where(key), stream.get(key), "fraction", steps, "a fraction", hint)
    final = _check_list(path, where("final_steps"), stream.get("final_steps"), "count0", samples, "NIR step", hint)
    if any(v >= steps for v in final):
        raise ResultFileError(f"{path}: the field 'stream.final_steps' has a step >= steps = {steps}; {hint}")
    _check_list(path, where("decision_latency_steps"), stream.get("decision_latency_steps"), "count0", samples,
                "Lava steps", hint)
    for key in ("spikes_total", "spikes_to_decision"):
        value = stream.get(key)
        _check_list(path, where(key), value, "nonneg", len(value) if value == [] else samples, "spikes", hint)
    chips = check_field(path, sub, where("chips"), "object", hint=hint)
    for name, chip in chips.items():
        at = f"stream.chips.{name}"
        if not isinstance(chip, dict):
            raise ResultFileError(f"{path}: the field {at!r} is not an object; {hint}")
        csub = {f"{at}.{k}": v for k, v in chip.items()}
        check_field(path, csub, f"{at}.kind", "text", choices=("estimate",), hint=hint)
        check_field(path, csub, f"{at}.depth_steps", "count0", unit="Lava steps", hint=hint)
        step = check_field(path, csub, f"{at}.step_s", "object", hint=hint)
        for b in BOUNDS:
            check_field(path, {f"{at}.step_s.{b}": step.get(b)}, f"{at}.step_s.{b}", "positive", unit="s",
                        hint=hint)
        for key, unit in (("energy_to_decision_j", "J"), ("dynamic_to_decision_j", "J"),
                          ("energy_per_sample_j", "J"), ("time_to_decision_s", "s")):
            per_bound = check_field(path, csub, f"{at}.{key}", "object", hint=hint)
            for b in BOUNDS:
                _check_list(path, f"{at}.{key}.{b}", per_bound.get(b), "nonneg", samples, unit, hint)
        for key in ("included", "excluded"):
            check_field(path, csub, f"{at}.{key}", "list", hint=hint)


def read_simulation_result(path: str | Path, *, need_counts: bool = True) -> dict[str, Any]:
    """Read and check a file written by :func:`write_simulation_result`.

    Raises:
        ResultFileError: missing, unreadable, another format, missing keys, or (``need_counts``) no activity counts.
    """
    hint = ("write one with " + simulate_command("MODEL.nir", "emulator", "fixed", 1000, "DATA.h5", path))
    data = read_json(path, "simulation result", hint)
    if data.get("format") != FORMAT:
        raise ResultFileError(f"{path} is not a simulation result (format {data.get('format')!r}, expected "
                              f"{FORMAT!r}); {hint}")
    if data.get("version") != VERSION:
        raise ResultFileError(f"{path} is simulation-result version {data.get('version')!r}; this snnav reads "
                              f"version {VERSION}; {hint}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise ResultFileError(f"{path} lacks the keys {missing}; {hint}")
    _check_result_fields(Path(path), data, hint)
    if need_counts and not isinstance(data.get("counts"), dict):
        raise ResultFileError(f"{path} has no activity counts; {hint}")
    return data

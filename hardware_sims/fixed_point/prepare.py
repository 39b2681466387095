"""Fixed-point runs: a quantized plan (`hardware_sims.fixed_point.plan_quantizer.quantize_plan`) as Lava's bit-accurate arguments.

``run_lava(..., precision="fixed")`` calls `prepare_fixed`: the float plan is quantized (unless it already is), and
every process gets the integer arguments of its ``fixed_pt`` model (``Loihi2SimCfg(select_tag="fixed_pt")``):

=========  =====================================================================================================
kind       Lava arguments from ``plan.quant`` (`hardware_sims.fixed_point.plan_quantizer.PlanQuant`)
=========  =====================================================================================================
dense      ``weights = mant``, ``weight_exp``, ``sign_mode`` (``fixed_point.formats.SignMode``; `build` converts it to
           Lava's), ``num_weight_bits`` (8 unless quantized with fewer ``weight_bits``) (``PyDenseModelBitAcc``)
sparse     the same as CSR (``PySparseModelBitAcc``)
conv       ``weight = mant << exp`` (Lava's fixed ``Conv`` ignores ``weight_exp``), converted by `layout`
neuron     ``du``, ``dv``, ``vth = vth_mant``, ``bias_mant``, ``bias_exp`` (``PyLifResetModelBitAcc``)
extension  ``in_formats`` (``extensions.ports.PortFormat`` per port) and ``out_exp`` when the quantizer set one;
           a port bias (``params["bias"]``) as mantissas ``rint(b * 2**exp)`` in the port's exponent, its
           ``max_abs`` raised by ``max |mantissa|`` (`port_bias_fixed`; reported as kind "bias")
input      data ``rint(x * 2**exp)`` with the input's message exponent (spikes: exp 0)
=========  =====================================================================================================

Records are integers; `record_scale` gives the factor back to real units (``2**-read_exp``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import scipy.sparse as sp

from hardware_sims.extensions.ports import PortFormat
from hardware_sims.fixed_point import formats as lf
from hardware_sims.fixed_point.errors import FixedPointError
from hardware_sims.fixed_point.plan_quantizer import quantize_plan
from hardware_sims.fixed_point.quantize import LayerReport, QuantReport
from hardware_sims.fixed_point.reference import sign_mode_of
from hardware_sims.plan.plan import Plan
from hardware_sims.plan.registry import extension_semantics, registered_builder

__all__ = ["prepare_fixed", "record_scale", "fixed_arguments", "port_bias_fixed", "quantizer_settings", "QUANTIZER_KEYS"]

MESSAGE_LIMIT = 2**31
"""Messages into an extension port travel as int32: a port's received sum plus its bias must stay below this."""


def _extension_exps(plan: Plan, caps: dict[str, int] | None = None):
    """``source_exps`` callable for the quantizer: an extension's output exponent from its input formats (the
    process's default, lossless for a dyadic factor), at most ``caps[name]`` (see `_exp_caps`)."""

    def out_exp(name: str, port_formats: dict) -> int:

        node = plan.processes[name].params["node"]
        formats = {port: PortFormat(*fmt) for port, fmt in port_formats.items()}
        sem = extension_semantics(node, f"probe:{name}", in_formats=formats)  # snnav's types: no Lava
        if sem is not None:
            exp = int(sem.plan.out_exp)
        else:  # a registered third-party process: ask it
            exp = int(registered_builder(node)(node, f"probe:{name}", in_formats=formats).process.out_exp)
        return min(exp, caps[name]) if caps and name in caps else exp

    return out_exp


def _downstream_synapses(plan: Plan, name: str) -> list[str]:
    """The synapse processes fed by `name`'s messages (through alignment delays and gates)."""
    out, todo = [], [name]
    while todo:
        src = todo.pop()
        for c in plan.connections:
            if c.src == src:
                kind = plan.processes[c.dst].kind
                if kind == "delay":
                    todo.append(c.dst)
                elif kind in ("dense", "sparse", "conv"):
                    out.append(c.dst)
    return out


def _exp_caps(float_plan: Plan, quant: Any) -> dict[str, int]:
    """Per extension: the largest output exponent at which every synapse it feeds keeps 8-bit weight resolution.

    A synapse with input exponent ``ie`` into a population of ``state_exp`` ``se`` has the weight step
    ``2**(e - 6 - se + ie)`` with ``e >= -8`` (Loihi's weight exponent range). Its largest weight ``w`` uses the full
    mantissa range ``hi`` only if ``ie <= ceil(log2(w / hi)) + 14 + se``; a finer message (the lossless default of a
    graded product, e.g. WeightAttention's gate with 12 fractional bits) would leave the weights a coarser grid and
    round small ones to 0 (the readout ``Affine`` of a trained WeightAttention lost most of its weights that way).
    The message then carries fewer fractional bits, never fewer than the weights can use.
    """

    caps: dict[str, int] = {}
    for ext in float_plan.of_kind("extension"):
        for syn in _downstream_synapses(float_plan, ext.name):
            spec = float_plan.processes[syn]
            w = spec.params["weight"] if spec.kind == "conv" else spec.params["weights"]
            w = np.asarray(w.data if hasattr(w, "tocsr") else w, dtype=np.float64)
            w_max = float(np.abs(w).max(initial=0.0))
            if w_max == 0 or syn not in quant.state_exps:
                continue
            lo, hi, _ = lf.weight_mant_grid(sign_mode_of(w), quant.synapses[syn].num_weight_bits)
            cap = math.ceil(math.log2(w_max / max(hi, -lo))) + lf.WEIGHT_FRAC_BITS - lf.WEIGHT_EXP_MIN \
                + int(quant.state_exps[syn])
            caps[ext.name] = min(caps.get(ext.name, cap), cap)
    return caps


def port_bias_fixed(plan: Plan) -> dict[tuple[str, str], tuple[np.ndarray, int, Any]]:
    """The port biases of a quantized plan's extension processes in fixed point.

    A port's messages mean ``m * 2**-exp`` (``exp`` from ``plan.quant.port_formats``, the synapses' ``a_out``
    exponent), so its constant ``b`` becomes the mantissa ``rint(b * 2**exp)`` (nearest, ties to even), added by the
    process to what it receives. No bits are lost to saturation: a mantissa that would not fit int32 next to the
    port's received sum is refused.

    Returns:
        ``(extension process, port) -> (mantissas over the port's shape (int64), raised max_abs, LayerReport)``.
    """

    out = {}
    for spec in plan.of_kind("extension"):
        for port, b in (spec.params.get("bias") or {}).items():
            exp, max_abs = plan.quant.port_formats[(spec.name, port)]
            b = np.asarray(b, dtype=np.float64)
            raw = np.rint(b * 2.0**exp)
            peak = int(np.abs(raw).max(initial=0))
            if peak + max_abs >= MESSAGE_LIMIT:
                raise FixedPointError(f"extension {spec.name!r} port {port!r}: its bias needs mantissas up to {peak} at "
                                 f"exponent {exp}, which with the received messages (|m| <= {max_abs}) exceeds int32")
            err = np.abs(raw * 2.0**-exp - b)
            norm = float(np.linalg.norm(b))
            report = LayerReport(f"{spec.name}.{port}:bias", "bias", int(b.size), 0,
                                 int(np.count_nonzero(err)), float(err.max(initial=0.0)),
                                 float(np.linalg.norm(raw * 2.0**-exp - b)) / norm if norm > 0 else 0.0,
                                 {"exp": int(exp)}, {"max_mant": peak})
            out[(spec.name, port)] = (raw.astype(np.int64), int(max_abs) + peak, report)
    return out


def fixed_arguments(plan: Plan) -> dict[str, dict[str, Any]]:
    """Per process: the keyword arguments of its Lava constructor in fixed point (module table)."""
    q = plan.quant
    biases = port_bias_fixed(plan)
    args: dict[str, dict[str, Any]] = {}
    for spec in plan.processes.values():
        name = spec.name
        if spec.kind in ("dense", "sparse"):
            w = q.synapses[name]
            mant = sp.csr_matrix(w.mant) if spec.kind == "sparse" else np.asarray(w.mant)
            args[name] = {"weights": mant, "weight_exp": int(w.exp), "sign_mode": w.sign_mode,
                          "num_weight_bits": int(w.num_weight_bits)}
        elif spec.kind == "conv":
            args[name] = {"weight": q.synapses[name].conv_weight()}
        elif spec.kind == "neuron":
            n = q.neurons[name]
            args[name] = {"du": int(n.du), "dv": int(n.dv), "vth": int(n.vth_mant),
                          "bias_mant": np.broadcast_to(n.bias_mant, spec.shape).copy(), "bias_exp": int(n.bias_exp)}
        elif spec.kind == "extension":

            formats = {port: PortFormat(*fmt) for (ext, port), fmt in q.port_formats.items() if ext == name}
            bias = {port: mant for (ext, port), (mant, _, _) in biases.items() if ext == name}
            for port in bias:
                formats[port] = PortFormat(formats[port].exp, biases[(name, port)][1])
            args[name] = {"in_formats": formats, **({"bias": bias} if bias else {})}
            if name in q.message_exps:
                args[name]["out_exp"] = int(q.message_exps[name])
    return args


QUANTIZER_KEYS = ("weight_bits", "v_headroom", "weight_exps")
"""The ``quantize_plan`` options a graph may pin in ``metadata["quantizer"]``."""


def quantizer_settings(metadata) -> dict[str, Any]:
    """The ``quantize_plan`` options pinned in a graph's ``metadata["quantizer"]`` (empty when there are none).

    Written by ``snnav train --finetune ... --fixed-point`` so that the deployed quantization is the one the model was
    fine-tuned through: ``weight_bits`` (int), ``v_headroom`` (float), ``weight_exps`` ({synapse process: exp}).
    """
    raw = (metadata or {}).get("quantizer")
    if not raw:
        return {}
    unknown = sorted(set(raw) - set(QUANTIZER_KEYS))
    if unknown:
        raise FixedPointError(f"graph metadata 'quantizer' has unknown keys {unknown}; known: {', '.join(QUANTIZER_KEYS)}")
    out: dict[str, Any] = {}
    if "weight_bits" in raw:
        out["weight_bits"] = int(raw["weight_bits"])
    if "v_headroom" in raw:
        out["v_headroom"] = float(raw["v_headroom"])
    if "weight_exps" in raw:
        out["weight_exps"] = {str(k): int(v) for k, v in dict(raw["weight_exps"]).items()}
    return out


def prepare_fixed(plan: Plan, xs: dict[str, np.ndarray], **options: Any):
    """Quantize `plan` (if float) and the input data.

    Args:
        plan: a float plan, or a fixed one from ``quantize_plan``.
        xs: Input name -> ``[T, B, *shape]`` real values.
        options: keyword arguments of ``quantize_plan`` (used only for a float plan). A graph whose metadata holds
            ``"quantizer"`` (the settings quantization-aware fine-tuning trained against: ``weight_bits``,
            ``v_headroom``, ``weight_exps`` per synapse process; `quantizer_settings`) is quantized with those
            settings; an option given here overrides its namesake.

    Returns:
        ``(fixed_plan, arguments per process, integer inputs)``.
    """
    if plan.precision == "float":
        options = {**quantizer_settings(plan.metadata), **options}

        if plan.of_kind("extension") and "source_exps" not in options:
            first, _ = quantize_plan(plan, **options, source_exps=_extension_exps(plan))
            caps = _exp_caps(plan, first.quant)
            if any(caps[n] < first.quant.message_exps.get(n, caps[n]) for n in caps):
                plan, _ = quantize_plan(plan, **options, source_exps=_extension_exps(plan, caps))
            else:
                plan = first
        else:
            plan, _ = quantize_plan(plan, **options)
        bias_reports = [r for _, _, r in port_bias_fixed(plan).values()]
        if bias_reports:  # the quantizer does not see port biases: add their rounding to the plan's report


            report = QuantReport((*plan.quant.report.layers, *bias_reports))
            plan = dataclasses.replace(plan, quant=dataclasses.replace(plan.quant, report=report))
    exps = plan.quant.message_exps
    ints = {}
    for name, x in xs.items():
        exp = int(exps.get(name, 0))
        q = np.rint(np.asarray(x, dtype=np.float64) * 2.0**exp)
        if np.abs(q).max(initial=0) >= 2**23:
            raise FixedPointError(f"input {name!r}: |x| * 2**{exp} reaches {np.abs(q).max():.0f}, beyond 24-bit messages")
        ints[name] = q
    return plan, fixed_arguments(plan), ints


def record_scale(plan: Plan, proc: str, var: str) -> float:
    """Real units per integer of a recorded fixed-point variable (1 for a float plan)."""
    if plan.precision != "fixed":
        return 1.0
    return 2.0 ** -plan.quant.read_exp(proc, var)

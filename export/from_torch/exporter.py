"""snnav model -> NIR graph: a pure function of the model and an :class:`ExportConfig`.

The conversion walks the model's structure with a table ``module type -> converter`` (nirtorch's style), not by
tracing: every converter knows the block's forward pass (``snnav/models``) and emits the NIR nodes that compute it
per sample and per step. Conventions (all written down in ``export/EXTENSIONS.md``):

* a tensor flowing between blocks is a :class:`Value`: the names of the nodes whose outputs are summed into it
  (NIR fan-in), so a residual ``x + f(x)`` costs no node and ``alpha * r`` is one ``nir.Scale``;
* conv/linear + batch norm become one ``Conv2d``/``Conv1d`` with the BN folded in (float64, then the export dtype);
* snnav's neuron becomes ``nir.LIF(tau = tau_steps dt, r = 1, v_leak = 0, v_threshold = theta', v_reset = 0)``;
* max-pool over binary spikes is ``SumPool2d`` followed by ``Threshold(0.5)``;
* spiking attention and the cross-modal products are snnav extension nodes (``export.ir.extensions``);
* the readout ``head(mean_T mean_N x)`` is ``Flatten`` -> ``Affine(W/N ⊗ 1_N, b)`` -> ``I(r = 1/(T dt))``, read at the
  last step.

Every node's ``metadata["source"]`` names the module it came from, ``<module path>[:<what of it>]``
(``stem_audio.stages.0.lif``, ``block_audio.attn.spatial:attend``), so a test can put the model's recorded spikes
next to the interpreter's node by node. The model is never modified.
"""

from __future__ import annotations

from typing import Any

import nir
import numpy as np
import torch
from torch import nn

import export.from_torch.converters  # noqa: F401  (fills CONVERTERS: the table this module dispatches on)
import export.ir.extensions as ext
from export.from_torch.builder import Builder, ExportConfig, ExportError, Value, convert
from export.ir.nirfile import make_graph
from snnav._version import __version__

__all__ = ["ExportConfig", "ExportError", "Value", "export_model"]


def export_model(model: nn.Module, config: ExportConfig) -> nir.NIRGraph:
    """The NIR graph of ``model`` (eval-mode semantics; the model is not modified, not even its mode).

    Raises:
        ExportError: the model has parts with no NIR mapping (a custom neuron, SCA's random bias), or the shapes in
            ``config`` do not fit it.
    """
    b = Builder(config)
    inputs: dict[str, Value] = {}
    modalities = getattr(model, "modalities", ("audio", "visual"))
    for name in modalities:
        shape = config.audio_shape if name == "audio" else config.visual_shape
        if shape is None:
            raise ExportError(f"{getattr(model, 'model_name', type(model).__name__)} uses {name}; "
                              f"give ExportConfig.{name}_shape = (C, H, W).")
        shape = tuple(int(s) for s in shape)
        b.nodes[name] = nir.Input(input_type={"input": np.array(shape)})
        inputs[name] = Value((name,), shape)
    with torch.no_grad():
        logits = convert(b, model, "", *inputs.values())
    b.nodes["logits"] = nir.Output(output_type={"output": np.array(logits.shape)})
    b.edges += [(src, "logits") for src in logits.terms]
    metadata: dict[str, Any] = {
        "dt": float(config.dt_s),
        "time_steps": int(config.time_steps),
        "readout_step": int(config.time_steps) - 1,
        "producer": f"snnav {__version__}",
        "model": str(getattr(model, "model_name", type(model).__name__)),
        "extensions": {n.type_name: n.VERSION for n in b.nodes.values() if ext.is_extension(n)},
        "dtype": config.dtype,
    }
    if b.omitted:
        metadata["omitted_modules"] = dict(b.omitted)
    if config.data:
        metadata["data"] = dict(config.data)
    return make_graph(b.nodes, b.edges, metadata)

"""Spike-for-spike agreement of a fixed-point fine-tuning run: the fine-tuned torch model's forward vs its exported
graph on the emulator in fixed point (quantizer settings from the graph's metadata), on the first test samples.

    python scripts/qat_agreement.py RUN_DIR [--samples 32]

Prints, per spiking layer with mismatches, the differing spikes, then the totals and the readout's agreement.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import hardware_sims  # noqa: F401  (lava compatibility fixes first)
from export.from_torch.equivalence import record_model
from export.ir.nirfile import read_graph
from hardware_sims.emulator import emulate
from snnav.app.qat import finetuned_model
from snnav.app.simulate import batch_arrays, open_test_split
from snnav.training.loop import load_qat_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--samples", type=int, default=32)
    args = parser.parse_args()
    model, ckpt = finetuned_model(args.run, load_qat_spec(args.run / "qat_spec.pt"))
    graph = read_graph(args.run / "model.nir")
    dataset = open_test_split(graph, Path(ckpt["config"]["data"]))
    inputs, _ = batch_arrays(dataset, 0, min(args.samples, len(dataset)))
    logits, records = record_model(model, torch.as_tensor(inputs["audio"], dtype=torch.float32),
                                   torch.as_tensor(inputs["visual"], dtype=torch.float32))
    result = emulate(graph, inputs, precision="fixed")
    total = mismatches = spikes = layers = 0
    for name, node in graph.nodes.items():
        source = (node.metadata or {}).get("source")
        if source not in records or name not in result.records:
            continue
        ours, axes = records[source], node.metadata.get("source_axes")
        if axes is not None:
            ours = ours.permute(0, 1, *[2 + int(i) for i in np.argsort(axes)])
        theirs = np.asarray(result.records[name])
        ours = ours.reshape(theirs.shape).numpy()
        d = int((ours != theirs).sum())
        if d:
            print(f"{name}: {d} of {ours.size} differ")
        layers, total, mismatches, spikes = layers + 1, total + ours.size, mismatches + d, spikes + int(ours.sum())
    same = np.mean(logits.argmax(-1).numpy() == result.readout().argmax(-1))
    print(f"{args.run}: {layers} spiking layers, {inputs['audio'].shape[1]} samples, {spikes} spikes, "
          f"{mismatches} of {total} spike values differ; same prediction {same:.2%}")


if __name__ == "__main__":
    main()

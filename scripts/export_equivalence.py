"""Export every registered model, run the graph in the NIR interpreter on AV-Digits test data, compare with the model.

For each model it uses a trained checkpoint found under ``--runs`` (any ``best.pt`` whose model is that one; e.g.
the ablation's runs), or trains one for ``--epochs`` into ``--out/train-<model>`` when none is found. Prints and
writes (``--out/export_equivalence.md``) a table: model, max |delta logit|, spike mismatches over all neuron layers,
prediction agreement, extension nodes, and whether snnTorch's and Norse's NIR importers load the graph.

    python scripts/export_equivalence.py --data runs/default/av_digits.h5 --runs runs/ablation-32 --samples 200
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

from snnav.training.config import PACKAGED_CONFIGS

DEFAULT_CONFIG = PACKAGED_CONFIGS / "av-digits-scmrl.toml"


def find_checkpoints(root: Path | None) -> dict[str, Path]:
    """``{model name: best.pt}`` for the first (sorted) run of each model under ``root``."""
    from snnav.training.checkpoint import load_checkpoint

    found: dict[str, Path] = {}
    if root is None or not root.is_dir():
        return found
    for path in sorted(root.rglob("best.pt")):
        name = load_checkpoint(path)["model_name"]
        found.setdefault(name, path)
    return found


def train_quick(model: str, data: Path, out: Path, epochs: int, input_size: int) -> Path:
    from snnav.training.config import load_config
    from snnav.training.loop import train

    config = load_config(DEFAULT_CONFIG).replace(
        model=model, data=str(data), epochs=epochs, input_size=input_size,
        model_config={"stem": "sps", "embed_dim": 64}, data_options={"size": input_size},
        align_loss="exact" if model == "scmrl" else "off")
    run_dir = out / f"train-{model}"
    train(config, run_dir)
    return run_dir / "best.pt"


def batches(dataset, samples: int, batch: int):
    import torch

    for start in range(0, min(samples, len(dataset)), batch):
        items = [dataset[i] for i in range(start, min(start + batch, samples, len(dataset)))]
        yield torch.stack([it[0] for it in items], 1), torch.stack([it[1] for it in items], 1)  # (T, B, C, H, W)


def check_model(ckpt_path: Path, data: Path, samples: int, dt_s: float) -> dict:
    from export.from_torch.equivalence import compare
    from export.from_torch.exporter import export_model
    from export.ir.extensions import is_extension
    from snnav.app.checkpoint_export import export_config_for, load_trained_model
    from snnav.training.build import open_datasets
    from snnav.training.config import TrainConfig

    model, ckpt = load_trained_model(ckpt_path)
    graph = export_model(model, export_config_for(ckpt, dt_s))
    config = TrainConfig.from_dict(ckpt["config"]).replace(data=str(data))
    (test,) = open_datasets(config, ("test",))
    model64 = copy.deepcopy(model).double()  # float64: rounding can no longer flip a spike at the threshold
    graph64 = export_model(model64, export_config_for(ckpt, dt_s, "float64"))
    max_diff, mismatches, total, agree, n, mismatches64, where = 0.0, 0, 0, 0.0, 0, 0, []
    for audio, visual in batches(test, samples, 50):
        r = compare(model, graph, audio, visual)
        r64 = compare(model64, graph64, audio.double(), visual.double())
        mismatches64 += r64.spike_mismatches
        where += [f"{layer.source} ({layer.mismatches})" for layer in r.layers if layer.mismatches]
        b = audio.shape[1]
        max_diff = max(max_diff, r.max_abs_logit_diff)
        mismatches += r.spike_mismatches
        total += sum(layer.total for layer in r.layers)
        agree += r.argmax_agreement * b
        n += b
    exts = sorted({type(node).__name__ for node in graph.nodes.values() if is_extension(node)})
    row = {"model": ckpt["model_name"], "samples": n, "max_dlogit": max_diff, "mismatches": mismatches,
           "spikes_compared": total, "agreement": agree / n, "extensions": exts, "mismatches64": mismatches64,
           "where": where}
    if exts:  # neither importer knows snnav's extension types; nothing to try
        for lib in ("snntorch", "norse"):
            row[lib] = "no: snnav extension nodes"
        return row
    from export.interop import interop_report

    report = interop_report(graph)
    for lib in ("snntorch", "norse"):
        row[lib] = _interop_cell(report.get(lib, {}))
    return row


def _interop_cell(entry: dict) -> str:
    """Whole graph loads? Else the first limit, and how much of the graph loads spike-identically in parts."""
    if entry.get("loads"):
        return "yes"
    limits = entry.get("limits") or []
    features = sorted({lim["feature"] for lim in limits}) or [str(entry.get("error", "n/a")).splitlines()[0][:80]]
    parts = [p for p in entry.get("parts") or [] if p.get("imports")]
    text = "; ".join(features).replace("|", "/")
    return f"no: {text} ({len(parts)} single-input parts load)" if parts else f"no: {text}"


def format_rows(rows: list[dict]) -> str:
    lines = ["| model | test samples | max abs Δlogit | spike mismatches (float32) | spike mismatches (float64) "
             "| same prediction | extension nodes | loads in snnTorch | loads in Norse |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        where = f" in {', '.join(r['where'])}" if r["where"] else ""
        lines.append(f"| {r['model']} | {r['samples']} | {r['max_dlogit']:.2e} | {r['mismatches']} of "
                     f"{r['spikes_compared']:,}{where} | {r['mismatches64']} | {100 * r['agreement']:.1f}% "
                     f"| {', '.join(r['extensions']) or '—'} | {r['snntorch']} | {r['norse']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("runs/default/av_digits.h5"))
    parser.add_argument("--runs", type=Path, default=None, help="folder searched for trained best.pt files")
    parser.add_argument("--out", type=Path, default=Path("runs/export-equivalence"))
    parser.add_argument("--samples", type=int, default=200, help="test samples per model")
    parser.add_argument("--dt-s", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=1, help="epochs for models without a checkpoint")
    parser.add_argument("--input-size", type=int, default=32, help="input size for models trained here")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import torch

    from snnav.io import atomic_path
    from snnav.models import list_models

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    found = find_checkpoints(args.runs)
    rows = []
    for name in list_models():
        t0 = time.perf_counter()
        ckpt = found.get(name) or train_quick(name, args.data, args.out, args.epochs, args.input_size)
        row = check_model(ckpt, args.data, args.samples, args.dt_s)
        rows.append(row)
        print(f"{name}: {row['mismatches']} spike mismatches, max |dlogit| {row['max_dlogit']:.2e} "
              f"({ckpt}, {time.perf_counter() - t0:.0f} s)", flush=True)
    text = (f"# Exported graph (NIR interpreter) vs trained model on AV-Digits test data\n\n"
            f"dt = {args.dt_s} s, float32, {args.samples} test samples per model; checkpoints from "
            f"{args.runs or 'quick training'}.\n\n" + format_rows(rows))
    with atomic_path(args.out / "export_equivalence.md") as tmp:
        tmp.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

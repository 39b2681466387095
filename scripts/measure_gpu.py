"""Measure a trained model and its NIR export on a GPU: wall time, throughput and NVML energy, in one JSON file.

    PYTHONPATH=. python scripts/measure_gpu.py --run RUN_DIR [--model MODEL.nir] --data AV_DIGITS.h5
        [--batch-sizes 1 64] [--window-s 2] [--idle-s 2] [--warmup 3] [--device 0] [--allow-tf32] [--out FILE]

What runs, on the first ``B`` samples of the test split (inputs already on the GPU, so host-to-device copies are not
timed), for every batch size ``B``:

* ``torch``: the trained model (``RUN_DIR/best.pt``, else ``last.pt``) in eval mode, float32 (TF32 off unless
  ``--allow-tf32``), under ``torch.inference_mode``;
* ``nir-interpreter``: the NIR export read with snnav's reader and run by ``export.interpreter.Interpreter`` in
  float32 on the same device (only with ``--model``).

Each is timed by ``snnav.app.gpu_energy.measure_inference`` over windows of at least ``--window-s`` seconds. Idle power
is measured once before (and once after, to show drift) with the models loaded and nothing running. Accuracy on the
measured samples is recorded as a sanity check. The file records the command, the GPU and software, the idle
power and every measurement, labelled "measured (NVML energy counter)"; it is written atomically.

Imports: torch, numpy, h5py and snnav's models/data/training (no snnTorch, nirtorch, Norse or Lava); ``--model``
adds ``nir`` (snnav's NIR reader and interpreter); the counter needs ``nvidia-ml-py``.

Exit codes: 0 written; 1 bad input (message printed); 2 no GPU to measure on (nothing written: the energy report
then uses the 45 nm estimate).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from snnav.app.gpu_measure import default_out, measure_gpu
from snnav.errors import SnnavError
from snnav.io import write_json


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="training run directory (best.pt, else last.pt) or .pt")
    parser.add_argument("--model", type=Path, help="the run's NIR export (omit to measure the torch model only)")
    parser.add_argument("--data", type=Path, required=True, help="the AV-Digits .h5 file (or dataset root)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--window-s", type=float, default=2.0, help="minimum window per measurement (>= 1 s)")
    parser.add_argument("--idle-s", type=float, default=2.0, help="idle-power window (>= 1 s)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls before each window")
    parser.add_argument("--device", type=int, default=0, help="CUDA device index")
    parser.add_argument("--allow-tf32", action="store_true",
                        help="let cuDNN/cuBLAS use TF32 (default off: float32 means float32, as on the CPU)")
    parser.add_argument("--out", type=Path, help="output JSON (default results/gpu_measurement_<gpu>.json)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        record = measure_gpu(args.run, args.data, nir_path=args.model, batch_sizes=tuple(args.batch_sizes),
                             window_s=args.window_s, idle_s=args.idle_s, warmup=args.warmup, device_index=args.device,
                             allow_tf32=args.allow_tf32,
                             command=shlex.join(["python", "scripts/measure_gpu.py", *argv]))
        out = args.out or default_out(record["hardware"]["gpu_name"])
        write_json(out, record)
    except SnnavError as exc:
        print(f"error: {exc}. Nothing was written; without a GPU the report uses the GPU model calibrated on NVML "
              "measurements (hardware_sims/cost/gpus/h100-calibrated.json).", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

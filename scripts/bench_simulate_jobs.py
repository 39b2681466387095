"""``snnav simulate --backend emulator --jobs N``: samples per second for each N, side by side, and a check that
every N gives the result of one process (every field but the timings).

    python scripts/bench_simulate_jobs.py MODEL.nir --data PATH.h5 --samples 256 [--jobs 1 2] [--modes plain count]
        [--precision fixed] [--rounds 1]

Modes: ``plain`` is ``snnav simulate`` without ``--out`` (spikes per layer recorded, chunks of CHUNK["emulator"]);
``count`` is ``snnav simulate --out`` and ``snnav run``'s emulator stage (every node recorded and counted, chunks of
COUNT_CHUNK["emulator"]). Each run is timed from the call to ``simulate`` to its result, so the time of ``--jobs`` N > 1
includes starting the N workers (each imports torch and opens the test split). The process applies the fast runtime
settings as the CLI does. The load average of the machine is printed before and after: other work on the machine
takes CPUs from the workers.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export.ir.nirfile import read_graph  # noqa: E402
from snnav.app import simulate as sim  # noqa: E402
from snnav.app.workers import available_cpus  # noqa: E402
from snnav.training import runtime  # noqa: E402


def differences(a, b, path="result") -> list[str]:
    """Fields where two results differ (dataclasses, dicts, sequences and arrays compared element by element)."""
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return [d for f in dataclasses.fields(a) for d in differences(getattr(a, f.name), getattr(b, f.name),
                                                                       f"{path}.{f.name}")]
    if isinstance(a, dict):
        if not isinstance(b, dict) or list(a) != list(b):
            return [f"{path}: keys"]
        return [d for k in a for d in differences(a[k], b[k], f"{path}[{k!r}]")]
    if isinstance(a, (list, tuple)):
        if not isinstance(b, type(a)) or len(a) != len(b):
            return [f"{path}: length"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    if isinstance(a, np.ndarray):
        ok = isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
        return [] if ok else [path]
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return []
    return [] if type(a) is type(b) and a == b else [f"{path}: {a!r} != {b!r}"]


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--precision", choices=("fixed", "float"), default="fixed")
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--modes", nargs="+", choices=("plain", "count"), default=["plain", "count"])
    ap.add_argument("--rounds", type=int, default=1,
                    help="times each (mode, jobs) runs, alternating; the best time is kept")
    args = ap.parse_args()
    if 1 not in args.jobs:
        ap.error("--jobs must include 1 (the reference)")

    runtime.apply_runtime_settings()
    graph = read_graph(args.model)
    dataset = sim.open_test_split(graph, args.data)
    n = min(args.samples, len(dataset))
    print(f"model {args.model} ({graph.metadata.get('model', '?')}), {n} test samples of {args.data}, "
          f"{args.precision} point; {available_cpus()} CPUs; {load()}")
    ok = True
    for mode in args.modes:
        count = mode == "count"
        chunk = (sim.COUNT_CHUNK if count else sim.CHUNK)["emulator"]
        chunks = [min(n, s + chunk) - s for s in range(0, n, chunk)]
        print(f"\n{mode}: {'every node recorded and counted' if count else 'spikes per layer recorded'}, "
              f"chunks of {chunks} samples")
        results, best = {}, {}
        for _ in range(args.rounds):  # rounds outside: a change of the machine's load hits every N alike
            for jobs in sorted(args.jobs):
                t0 = time.perf_counter()
                r = sim.simulate(graph, dataset, n, args.precision, backend="emulator", count=count, jobs=jobs,
                                 data=args.data, progress=lambda *_: None)
                seconds = time.perf_counter() - t0
                best[jobs] = min(seconds, best.get(jobs, math.inf))
                results.setdefault(jobs, r)
        for jobs in sorted(args.jobs):
            diff = differences(dataclasses.replace(results[1], seconds=0.0, ms_per_step=0.0),
                               dataclasses.replace(results[jobs], seconds=0.0, ms_per_step=0.0))
            ok &= not diff
            same = "reference" if jobs == 1 else "identical to --jobs 1" if not diff else f"DIFFERS: {diff[:3]}"
            if jobs > 1 and sim.worker_count(chunks, jobs) == 1:
                same += " (chunks cannot be shared for a gain: ran in this process)"
            print(f"  --jobs {jobs}: {best[jobs]:6.1f} s, {n / best[jobs]:6.1f} samples/s, "
                  f"x{best[1] / best[jobs]:.2f} of --jobs 1; accuracy {100 * results[jobs].accuracy:.1f}%; {same}")
    print(f"\n{load()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

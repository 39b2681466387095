"""``snnav simulate MODEL.nir --backend lava|emulator --precision fixed|float --samples N``: run an export.

``lava`` runs Lava's ``Loihi2SimCfg`` one sample after another; ``emulator`` runs the same compiled plan and quantized
parameters in batched numpy (``hardware_sims.emulator``, bit-exact with Lava fixed point), fast enough for the whole
test set.

The test split of the dataset the model was trained on (recorded in the graph's ``metadata["data"]`` by
``snnav export``; ``--data`` gives the file) is run through Lava's ``Loihi2SimCfg``, samples back to back. Printed:
accuracy, agreement with floating point — the NIR interpreter in float64, which Lava's floating-point run equals
spike for spike (``tests/hardware_sims/lava/test_lava_float.py``) — and spikes per neuron layer.

``--out FILE.json`` also counts the activity of every node (``hardware_sims.counts``, accumulated over the chunks:
spikes, neuron updates, synaptic events, dense MACs, the operations inside extension nodes) and keeps a spike raster
of the first sample, and saves all of it with its provenance (``snnav.app.report.results``) for ``snnav report``.
Counting records every node, so chunks are smaller (:data:`COUNT_CHUNK`) to bound the memory the records take.

``--stream`` reads the decision (``argmax`` of the logits output) at every step instead of only at the last: the
accuracy against the steps seen, the step from which each sample's decision no longer changes, the decision latency
in Lava steps (that step plus the pipeline depth), and spikes per sample up to the decision. ``--chip`` (default
loihi2; repeat it, or ``none``) also counts every sample's activity up to its decision and over the whole sample and
prices it with the chip cost model (``hardware_sims.cost.decision``): energy per decision and the decision latency in
microseconds, both estimates. With ``--out`` the stream result is saved in the file's ``stream`` section. For a causal export
(``scmrl-causal``: no WINDOW node) the output at step t reads input steps 0..t only; a graph with WINDOW nodes is
reported as such (its every output reads the whole window).

``--jobs N`` (emulator only) shares the chunks of samples among up to N worker processes (spawned, each with
``max(1, CPUs // N)`` torch/BLAS threads, killed with snnav: ``snnav.app.workers``); fewer, or none, where the chunks
cannot be shared for a gain (``snnav.app.simulate.worker_count``: one chunk, or chunks of 250 and 6 samples). Every worker runs the same
chunks one process would, and the results are merged in sample order, so the output (accuracy, spikes, counts,
raster, ``--stream``) is the one of ``--jobs 1`` exactly; only the time differs. Each worker imports torch and opens
the test split itself (seconds), so it pays on long runs with several chunks (:data:`COUNT_CHUNK` with ``--out``)
and free cores: ``results/bench_simulate_jobs.md``. ``--backend lava`` refuses ``--jobs`` above 1: Lava already runs
each of its processes in an OS process of its own.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from export.ir.nirfile import read_graph
from hardware_sims.cost.chip import get_chip
from hardware_sims.plan.conventions import CHOICES, detect_convention
from snnav.app.report.results import simulate_command, write_simulation_result
from snnav.app.simulate import SimulationResult, check_jobs, format_result, open_test_split, simulate
from snnav.errors import SnnavError
from snnav.io import check_writable_destination, refuse_existing
from snnav.training import runtime


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="a .nir file written by snnav export")
    parser.add_argument("--backend", choices=("lava", "emulator"), default="lava",
                        help="Lava itself, or snnav's batched bit-exact emulator of it (default %(default)s)")
    parser.add_argument("--precision", choices=("fixed", "float"), default="fixed",
                        help="Lava floating point or bit-accurate Loihi fixed point (default %(default)s)")
    parser.add_argument("--samples", type=int, default=8, help="test samples to run (default %(default)s)")
    parser.add_argument("--data", type=Path, default=Path("runs/default/av_digits.h5"),
                        help="the dataset file or folder the model was trained on (default %(default)s)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out file")
    parser.add_argument("--no-spikes", action="store_true", help="do not record spikes per layer (faster)")
    parser.add_argument("--convention", choices=CHOICES, default="nir",
                        help="whose neuron stepping to run: NIR's, snnTorch's or Norse's where Loihi can express it "
                             "(refused with the reason where not), or 'auto' (detected from the graph's metadata "
                             "and parameters); the float reference follows the same (default %(default)s)")
    parser.add_argument("--no-fast-runtime", action="store_true",
                        help="do not apply the fast CPU process settings (glibc malloc keeps large blocks, denormal "
                        "floats flush to zero; see snnav/training/runtime.py); SNNAV_FAST_RUNTIME=0 does the same")
    parser.add_argument("--stream", action="store_true",
                        help="read the decision at every step: accuracy against the steps seen, the step at which "
                             "each sample's decision becomes final, the decision latency in steps")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="emulator only: share the samples' chunks among N worker processes, each with "
                             "max(1, CPUs // N) threads; the result is identical to --jobs 1, only faster where "
                             "there are several chunks and free cores (default %(default)s)")
    parser.add_argument("--chip", action="append", default=None, metavar="CHIP",
                        help="with --stream: price each sample's decision on this chip (a name such as loihi1, "
                             "loihi2, or a chip JSON file; repeat for several; 'none' for no pricing): the energy up "
                             "to the decision and the decision latency in microseconds, estimated with the chip cost "
                             "model of hardware_sims/cost (records every node; default loihi2)")
    parser.add_argument("--out", type=Path, default=None,
                        help="also count every node's activity and save the result, counts and a spike raster of "
                             "the first sample to this JSON file (for snnav report; written atomically)")


def run(args: argparse.Namespace) -> int:
    runtime.apply_runtime_settings(not args.no_fast_runtime)  # first: before large allocations and torch's threads
    if args.samples < 1:
        raise SnnavError(f"--samples must be >= 1; got {args.samples}")
    check_jobs(args.jobs, args.backend)
    chips = _chips(args)
    if args.out is not None:  # fail before minutes of simulation, not after
        refuse_existing(args.out, args.force)
        check_writable_destination(args.out)
    graph = read_graph(args.model)
    dataset = open_test_split(graph, args.data)
    where = "Lava Loihi2SimCfg" if args.backend == "lava" else "the batched emulator of Lava"
    print(f"simulating {args.model} ({graph.metadata.get('model', '?')}) on {where}, {args.precision} "
          f"point, {min(args.samples, len(dataset))} test samples of {args.data}")
    found, why = detect_convention(graph)
    if args.convention not in ("auto", found):
        print(f"note: the graph looks like a {found!r} export ({why}); running {args.convention!r} as asked "
              f"(--convention {found} or auto to follow its producer)")
    result = simulate(graph, dataset, args.samples, args.precision, record_spikes=not args.no_spikes,
                      backend=args.backend, count=args.out is not None, convention=args.convention, stream=args.stream,
                      jobs=args.jobs, data=args.data, chips=chips)
    print(format_result(result, args.precision, args.backend))
    if args.out is not None:
        _save(args, graph, result)
    return 0


def _chips(args: argparse.Namespace) -> tuple[str, ...]:
    """The chips to price the decisions on (``--chip``; loihi2 by default with --stream, none without it)."""
    if args.chip is None:
        return ("loihi2",) if args.stream else ()
    if not args.stream:
        raise SnnavError("--chip prices the streaming decisions: give it with --stream")
    chips = tuple(c for c in args.chip if c != "none")
    if chips:  # a bad name fails here, before minutes of simulation
        for chip in chips:
            get_chip(chip)
    return chips


def _save(args: argparse.Namespace, graph, result: SimulationResult) -> None:
    command = simulate_command(args.model, args.backend, args.precision, args.samples, args.data, args.out,
                               tuple(result.stream.energy) if result.stream is not None else None)
    write_simulation_result(args.out, result, backend=args.backend, precision=args.precision, model_path=args.model,
                            graph_metadata=graph.metadata, data_path=args.data, command=command)
    stream = ", the decision at every step" if result.stream is not None else ""
    print(f"wrote {args.out} (accuracy, activity counts of {len(result.counts.to_dict()['nodes'])} nodes, a spike "
          f"raster of sample 0{stream})")

"""Training and inference throughput of S-CMRL: the straightforward implementation against the optimized one.

Every measurement (config x batch x variant x train/infer) runs in a fresh Python process, so its peak resident
memory (``ru_maxrss``) is its own. Inputs are random tensors of the preset's shapes (``[T, B, C, H, W]``); a train
step is forward + label-smoothing CE + semantic-alignment loss (tau 0.07) + backward + AdamW step, an inference step
a ``no_grad`` forward in eval mode. Warm-up steps are dropped and the median of the timed steps is kept; each
measurement is repeated in fresh processes (``--repeats``, round-robin over the plan) and the table shows medians.

Variants (``--variants``; the default runs ``straightforward``, ``today`` and ``cli`` side by side):

* ``straightforward`` -- the in-run baseline: ``create_model(..., fused=False)`` (the reference per-step neuron loop
  under autograd and ``nn.MaxPool2d``), default process settings, a bare loop (forward, loss, backward, AdamW).
* ``cli`` -- exactly what ``snnav train --config configs/<preset>.toml`` runs: the process settings it applies by
  itself (:func:`snnav.training.runtime.apply_runtime_settings`), the model, loss and optimizer its trainer builds
  (``snnav.training.loop.Trainer`` on an in-memory dataset of random items), and its train step
  (``Trainer.train_step``: batch layout conversion, loss, statistics, backward, lr, AdamW). Inference is the
  trainer's model in eval mode under ``no_grad`` (what ``evaluate_model`` runs per batch, without the firing-rate
  hooks).
* ``today`` -- ``cli`` on the code of ``--today-rev`` (default: the commit before the fast-runtime work), extracted
  with ``git archive`` into a temporary folder: what ``snnav train`` ran before, measured in the same run.
* ``cli-no-runtime`` -- ``cli`` with ``--no-fast-runtime`` (ablation: the code path without the process settings).
* ``optimized`` -- the bare loop with ``fused=True`` plus the process settings (the previous benchmark's variant).
* ``fused`` -- the bare loop with ``fused=True`` and default process settings (ablation: the model code alone).
* ``straightforward-tuned`` -- ``fused=False`` with the process settings (ablation: the settings alone).
* ``compiled`` -- ``optimized`` plus ``torch.compile(model)``; opt in with ``--compile`` (minutes of compilation on
  2 CPU cores). Its compile time (first step minus the median step) is reported separately.

Process settings: glibc malloc keeps large blocks on the heap instead of mapping and zero-filling every 33 MB
activation afresh, and denormal floats flush to zero (the untrained model's surrogate gradients underflow into the
subnormal range, where x86 arithmetic is ~100x slower); see ``snnav/training/runtime.py``.

The reference figures (S-CMRL on UrbanSound8K-AV, batch 16, 2 CPU threads) are the ones quoted in the issue for the
reference implementation on this kind of machine; this script does not measure them.

    python scripts/bench_train.py                      # full run, CPU (+ GPU when one is available), ~15 min
    python scripts/bench_train.py --quick              # ~2 min smoke run
    python scripts/bench_train.py --out bench.json     # also write the table as JSON
    python scripts/bench_train.py --variants straightforward today cli fused --configs urbansound8k-av --batches 16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Quoted in issue 14 for the authors' S-CMRL code at the UrbanSound8K-AV config, batch 16, 2 CPU threads, torch 2.13
# CPU, fresh processes, idle machine (it measured 0.88x / 0.90x of the `today` variant there); not measured here.
REFERENCE = {
    "config": "urbansound8k-av",
    "batch": 16,
    "train_samples_per_s": 16.5,
    "infer_samples_per_s": 39.1,
    "train_peak_rss_mb": 1810.0,
    "infer_peak_rss_mb": None,
}

VARIANTS = {
    "straightforward": {"path": "bare", "fused": False, "runtime": False, "compile": False},
    "cli": {"path": "cli", "fused": True, "runtime": True, "compile": False},
    "today": {"path": "cli", "fused": True, "runtime": False, "compile": False, "src": "today"},
    "cli-no-runtime": {"path": "cli", "fused": True, "runtime": False, "compile": False},
    "optimized": {"path": "bare", "fused": True, "runtime": True, "compile": False},
    "fused": {"path": "bare", "fused": True, "runtime": False, "compile": False},
    "straightforward-tuned": {"path": "bare", "fused": False, "runtime": True, "compile": False},
    "compiled": {"path": "bare", "fused": True, "runtime": True, "compile": True},
}
DEFAULT_VARIANTS = ("straightforward", "today", "cli")
# The commit whose `snnav train` path is "today": the one before the fast runtime moved into the CLI.
TODAY_REV = "69c4fe6"
# Training configs of the presets: the cli variants train exactly what these configs describe (batch from --batches).
CONFIG_FILES = {"urbansound8k-av": "snnav/configs/urbansound8k-av.toml", "crema-d": "snnav/configs/crema-d.toml",
                "av-digits": "snnav/configs/av-digits-scmrl.toml",
                "mnistdvs-ntidigits": "snnav/configs/mnistdvs-ntidigits.toml"}
# (ratio label, target, baseline) printed for every (device, config, batch) holding both.
RATIOS = (("cli", "straightforward"), ("today", "straightforward"), ("cli", "today"), ("optimized", "straightforward"),
          ("fused", "straightforward"), ("cli-no-runtime", "straightforward"))
# (preset, batch): the UrbanSound8K-AV config at batches 16 and 32, and AV-Digits at its training batch (32).
DEFAULT_RUNS = (("urbansound8k-av", 16), ("urbansound8k-av", 32), ("av-digits", 32))
QUICK_RUNS = (("urbansound8k-av", 16), ("av-digits", 32))

BUSY_FRAC = 0.05  # others_cpu_frac above which a measurement counts as disturbed


# ----------------------------------------------------------------------------------------------------- worker side


def _peak_rss_mb() -> float:
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0  # bytes on macOS, KiB on Linux


def _apply_settings(variant: dict) -> dict:
    """The process settings of ``variant``, applied the way the product applies them (before torch's threads)."""
    if not variant["runtime"]:
        return {"malloc_tuned": False, "flush_denormal": False}
    from snnav.training.runtime import apply_runtime_settings

    settings = apply_runtime_settings(True)
    if not settings.requested:
        raise SystemExit(f"the fast runtime is turned off here ({settings.note}); unset it to measure {variant}")
    return {"malloc_tuned": settings.malloc_tuned, "flush_denormal": settings.flush_denormal}


def _train_config(spec: dict, device):
    """The training config of ``spec["config"]`` (its file under configs/) at the spec's batch, and its shapes."""
    from snnav.models import model_preset
    from snnav.training.build import preset_name, resolve_input_size, resolve_model_kwargs
    from snnav.training.config import TrainConfig, load_config

    config_file = CONFIG_FILES.get(spec["config"])
    config = load_config(REPO / config_file) if config_file else TrainConfig(model="scmrl", dataset=spec["config"])
    config = config.replace(batch_size=spec["batch"], device=device.type, num_workers=0)
    kwargs = resolve_model_kwargs(config)
    shapes = {"steps": config.time_steps or model_preset(preset_name(config)).time_steps,
              "size": resolve_input_size(config), "classes": kwargs["num_classes"],
              "channels": (kwargs["in_channels_audio"], kwargs["in_channels_visual"])}
    return config, kwargs, shapes


def _bare_steps(spec: dict, variant: dict, device):
    """The bare loop: ``create_model(fused=...)`` as the config describes, LS-CE + alignment loss, AdamW."""
    import torch

    from snnav.models import create_model
    from snnav.training.losses import LabelSmoothingCE, semantic_alignment_loss

    config, kwargs, shapes = _train_config(spec, device)
    torch.manual_seed(0)
    model = create_model(config.model, **{**kwargs, "fused": variant["fused"]}).to(device)
    t, b, size = shapes["steps"], spec["batch"], shapes["size"]
    gen = torch.Generator().manual_seed(1)
    audio = torch.rand(t, b, shapes["channels"][0], size, size, generator=gen).to(device)
    visual = torch.rand(t, b, shapes["channels"][1], size, size, generator=gen).to(device)
    labels = torch.randint(0, shapes["classes"], (b,), generator=gen).to(device)
    run = torch.compile(model) if variant["compile"] else model
    ce = LabelSmoothingCE(0.1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def train_step() -> None:
        out = run(audio, visual)
        loss = ce(out.logits, labels) + semantic_alignment_loss(out.align_audio, out.align_visual, labels, tau=0.07)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def infer_step() -> None:
        with torch.no_grad():
            run(audio, visual)

    return model, train_step, infer_step


class _RandomItems:
    """A dataset of ``n`` random items ``(audio [T, C, H, W], visual [T, C, H, W], label)``, as the real ones give."""

    def __init__(self, n: int, steps: int, channels: tuple[int, int], size: int, classes: int) -> None:
        import torch

        gen = torch.Generator().manual_seed(1)
        self.audio = torch.rand(n, steps, channels[0], size, size, generator=gen)
        self.visual = torch.rand(n, steps, channels[1], size, size, generator=gen)
        self.labels = torch.randint(0, classes, (n,), generator=gen)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.audio[i], self.visual[i], self.labels[i]


def _cli_steps(spec: dict, variant: dict, device):
    """``snnav train``'s own objects and train step: its trainer on the preset's config file, random items."""
    import tempfile

    import torch

    from snnav.training import loop
    from snnav.training.distributed import DistContext
    from snnav.training.schedule import config_lr

    # the tree of --today-rev predates the public names (Trainer, train_step)
    trainer_class = getattr(loop, "Trainer", None) or getattr(loop, "_Trainer")

    config, _, shapes = _train_config(spec, device)
    data = _RandomItems(spec["batch"], shapes["steps"], shapes["channels"], shapes["size"], shapes["classes"])
    trainer = trainer_class(config, Path(tempfile.mkdtemp(prefix="bench_train_")), DistContext(device=str(device)),
                            data, data, progress=None)
    step = getattr(trainer, "train_step", None) or getattr(trainer, "_train_step")
    batch = (data.audio, data.visual, data.labels)  # (B, T, C, H, W) as the DataLoader stacks the items
    lr = config_lr(config, 0)

    def train_step() -> None:
        step(batch, 0, lr, 1)

    def infer_step() -> None:
        from snnav.training.build import batch_to

        with torch.no_grad():
            audio, visual, _ = batch_to(batch, str(device), trainer.dtype)
            trainer.model(audio, visual)

    return trainer.model, train_step, infer_step


def measure(spec: dict) -> dict:
    """Run one measurement described by ``spec`` in this process and return its record."""
    variant = VARIANTS[spec["variant"]]
    applied = _apply_settings(variant)  # first, as the CLI does
    import torch

    import snnav

    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    model, train_step, infer_step = (_cli_steps if variant["path"] == "cli" else _bare_steps)(spec, variant, device)
    if spec["mode"] == "train":
        model.train()
        step = train_step
    else:
        model.eval()
        step = infer_step
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def timed() -> tuple[float, float]:
        sync()
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        sync()
        return time.perf_counter() - wall, time.process_time() - cpu

    b = spec["batch"]
    warm = [timed()[0] for _ in range(spec["warmup"])]
    steps = [timed() for _ in range(spec["steps"])]
    wall = statistics.median(s[0] for s in steps)
    record = {
        **{k: spec[k] for k in ("config", "batch", "variant", "mode", "device", "threads")},
        "samples_per_s": b / wall,
        "step_s": wall,
        "step_s_all": [s[0] for s in steps],
        "warmup_s": warm,
        "cpu_s_per_step": statistics.median(s[1] for s in steps),
        "peak_rss_mb": _peak_rss_mb(),
        **applied,
        "snnav_source": str(Path(snnav.__file__).resolve().parents[1]),
        "compile_s": max(warm[0] - wall, 0.0) if variant["compile"] and warm else None,
    }
    if device.type == "cuda":
        record["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return record


# ----------------------------------------------------------------------------------------------------- driver side


def _cpu_busy_s() -> float | None:
    """Seconds of CPU time all processes have used since boot (Linux /proc/stat), or None elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    ticks = [int(f) for f in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_until_idle(max_wait_s: float, idle_frac: float = 0.9, window_s: float = 2.0) -> bool:
    """Wait (at most ``max_wait_s``) until the CPUs are at least ``idle_frac`` idle over ``window_s``."""
    deadline = time.monotonic() + max_wait_s
    cores = os.cpu_count() or 1
    while True:
        busy = _cpu_busy_s()
        if busy is None:
            return True
        time.sleep(window_s)
        if 1.0 - (_cpu_busy_s() - busy) / (window_s * cores) >= idle_frac:
            return True
        if time.monotonic() > deadline:
            return False


def run_worker(spec: dict, timeout_s: float) -> dict:
    """Measure ``spec`` in a fresh interpreter; raise SystemExit with its stderr if it fails.

    Adds ``others_cpu_frac``: the share of the machine's CPU time that other processes used while it ran (None
    without /proc/stat). Above a few percent the multi-threaded timings are not representative: a descheduled
    OpenMP thread stalls every parallel region.
    """
    src = spec.get("src") or str(REPO)  # the snnav the worker imports (another commit's tree for "today")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    env.pop("SNNAV_FAST_RUNTIME", None)  # variants set the runtime themselves
    busy, child, wall = _cpu_busy_s(), _children_cpu_s(), time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
        capture_output=True, text=True, timeout=timeout_s, env=env, cwd=REPO,
    )
    if proc.returncode != 0:
        raise SystemExit(f"measurement {spec} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    after = _cpu_busy_s()
    if busy is not None and after is not None:
        others = (after - busy) - (_children_cpu_s() - child)
        record["others_cpu_frac"] = max(others, 0.0) / ((time.monotonic() - wall) * (os.cpu_count() or 1))
    else:
        record["others_cpu_frac"] = None
    record["loadavg_1min_after"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return record


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(threads: int) -> dict:
    import torch

    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    if hasattr(os, "getloadavg"):
        info["loadavg_start"] = os.getloadavg()
    return info


def rows_from(records: list[dict]) -> list[dict]:
    """One table row per (device, config, batch, variant): medians over repeats of its train and infer records."""
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for r in records:
        key = (r["device"], r["config"], r["batch"], r["variant"])
        groups.setdefault(key, {}).setdefault(r["mode"], []).append(r)
    rows = []
    for key, modes in groups.items():
        row = dict(zip(("device", "config", "batch", "variant"), key))
        for mode, runs in modes.items():
            row[f"{mode}_samples_per_s"] = statistics.median(r["samples_per_s"] for r in runs)
            row[f"{mode}_samples_per_s_all"] = [r["samples_per_s"] for r in runs]
            row[f"{mode}_peak_mb"] = statistics.median(r.get("cuda_peak_mb", r["peak_rss_mb"]) for r in runs)
            row[f"{mode}_peak_rss_mb"] = statistics.median(r["peak_rss_mb"] for r in runs)
            compile_s = [r["compile_s"] for r in runs if r["compile_s"] is not None]
            if compile_s:
                row[f"{mode}_compile_s"] = statistics.median(compile_s)
            others = [r["others_cpu_frac"] for r in runs if r.get("others_cpu_frac") is not None]
            if others:
                row["others_cpu_frac"] = max(row.get("others_cpu_frac", 0.0), *others)
        rows.append(row)
    return rows


def ratio_rows(rows: list[dict], pairs=RATIOS, quoted: str = "cli") -> list[dict]:
    """``target / baseline`` per (device, config, batch) for each pair present, and ``quoted / REFERENCE``."""
    index = {(r["device"], r["config"], r["batch"], r["variant"]): r for r in rows}
    fields = ("train_samples_per_s", "infer_samples_per_s", "train_peak_mb", "infer_peak_mb")
    out = []
    for device, config, batch in dict.fromkeys(k[:3] for k in index):
        for target, baseline in pairs:
            row, base = index.get((device, config, batch, target)), index.get((device, config, batch, baseline))
            if row is not None and base is not None:
                out.append({"device": device, "config": config, "batch": batch, "ratio": f"{target}/{baseline}",
                            **{f: row[f] / base[f] for f in fields if f in row and f in base}})
        row = index.get((device, config, batch, quoted))
        if row is not None and device == "cpu" and config == REFERENCE["config"] and batch == REFERENCE["batch"]:
            ref = {"train_samples_per_s": REFERENCE["train_samples_per_s"],
                   "infer_samples_per_s": REFERENCE["infer_samples_per_s"],
                   "train_peak_mb": REFERENCE["train_peak_rss_mb"], "infer_peak_mb": REFERENCE["infer_peak_rss_mb"]}
            out.append({"device": device, "config": config, "batch": batch, "ratio": f"{quoted}/authors (quoted)",
                        **{f: row[f] / ref[f] for f in fields if f in row and ref[f]}})
    return out


def _fmt(value, spec: str, suffix: str = "") -> str:
    """``format(value, spec) + suffix``, or a dash of the same width for a missing value."""
    width = int("".join(ch for ch in spec.split(".")[0] if ch.isdigit()) or 0) + len(suffix)
    return "-".rjust(width) if value is None else format(value, spec) + suffix


def format_table(machine: dict, rows: list[dict], ratios: list[dict]) -> str:
    lines = [
        f"machine: {machine['cpu']} ({machine['cores']} cores), {machine['threads']} torch threads, "
        f"torch {machine['torch']}, Python {machine['python']}"
        + (f", GPU {machine['gpu']}" if machine.get("gpu") else ""),
    ]
    if machine.get("loadavg_start") and machine.get("loadavg_end"):
        lines.append(
            f"load average (1 min): {machine['loadavg_start'][0]:.2f} at start, {machine['loadavg_end'][0]:.2f} at end "
            "(other busy processes slow the multi-threaded runs; compare variants from the same run)"
        )
    if machine.get("today_rev"):
        lines.append(f"today: the snnav train path at commit {machine['today_rev'][:12]} (before the fast runtime)")
    head = (f"{'device':<6} {'config':<16} {'batch':>5} {'variant':<22} {'train/s':>8} {'infer/s':>8} "
            f"{'train MB':>9} {'infer MB':>9} {'compile s':>9} {'others':>6}")
    lines += ["", head, "-" * len(head)]
    for r in rows:
        others = r.get("others_cpu_frac")
        lines.append(
            f"{r['device']:<6} {r['config']:<16} {r['batch']:>5} {r['variant']:<22} "
            f"{_fmt(r.get('train_samples_per_s'), '8.2f')} {_fmt(r.get('infer_samples_per_s'), '8.2f')} "
            f"{_fmt(r.get('train_peak_mb'), '9.0f')} {_fmt(r.get('infer_peak_mb'), '9.0f')} "
            f"{_fmt(r.get('train_compile_s'), '9.1f')} {_fmt(None if others is None else 100 * others, '5.0f', '%')}"
            + (" *" if others is not None and others > BUSY_FRAC else "")
        )
    lines.append("train/s, infer/s: samples per second, median over repeats (each the median of its timed steps).")
    lines.append("MB: peak RSS of the measuring process on CPU (torch.cuda.max_memory_allocated on cuda).")
    lines.append("others: share of the machine's CPU time used by other processes during the row's runs; "
                 f"* above {100 * BUSY_FRAC:.0f}%: the timings of that row are not representative.")
    if ratios:
        head = f"{'device':<6} {'config':<16} {'batch':>5} {'ratio':<36} {'train/s':>8} {'infer/s':>8} {'train MB':>9} {'infer MB':>9}"
        lines += ["", head, "-" * len(head)]
        for r in ratios:
            lines.append(
                f"{r['device']:<6} {r['config']:<16} {r['batch']:>5} {r['ratio']:<36} "
                f"{_fmt(r.get('train_samples_per_s'), '7.2f', 'x')} {_fmt(r.get('infer_samples_per_s'), '7.2f', 'x')} "
                f"{_fmt(r.get('train_peak_mb'), '8.2f', 'x')} {_fmt(r.get('infer_peak_mb'), '8.2f', 'x')}"
            )
        lines.append(
            f"authors (quoted): issue 14's figures for the authors' S-CMRL code on this machine kind "
            f"({REFERENCE['config']}, batch {REFERENCE['batch']}, 2 threads: {REFERENCE['train_samples_per_s']:g} train "
            f"and {REFERENCE['infer_samples_per_s']:g} infer samples/s, {REFERENCE['train_peak_rss_mb']:g} MB peak RSS "
            "in training); not measured by this script."
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer configs and steps (~1 min)")
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="all",
                        help="cpu, cuda, or all = cpu plus cuda when a GPU is available (default)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in every measurement (2)")
    parser.add_argument("--configs", nargs="+", help="presets to run (default: urbansound8k-av and av-digits)")
    parser.add_argument("--batches", nargs="+", type=int, help="batch sizes (default: 16 and 32 for US8K, 32 for AV-Digits)")
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), help="variants to compare")
    parser.add_argument("--compile", action="store_true", help="add the torch.compile variant (slow to compile)")
    parser.add_argument("--modes", nargs="+", choices=("train", "infer"), default=("train", "infer"))
    parser.add_argument("--warmup", type=int, help="warm-up steps (default 3, also with --quick)")
    parser.add_argument("--steps", type=int, help="timed steps, median reported (default 7; 3 with --quick)")
    parser.add_argument("--repeats", type=int, help="fresh-process runs of every measurement, median reported "
                        "(default 3; 1 with --quick)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per measurement")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="S",
                        help="before each measurement wait up to S seconds for the CPUs to be 90%% idle (shared machines)")
    parser.add_argument("--retries", type=int, default=0,
                        help="re-run a measurement disturbed by other processes up to this many times, keep the cleanest")
    parser.add_argument("--out", help="also write the table as JSON to this path")
    parser.add_argument("--today-rev", default=TODAY_REV,
                        help=f"commit whose code the today variant runs (default {TODAY_REV}: before the fast runtime)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def plan(args: argparse.Namespace) -> list[tuple[str, int]]:
    runs = QUICK_RUNS if args.quick else DEFAULT_RUNS
    if args.configs:
        runs = tuple((c, b) for c in args.configs for b in (args.batches or sorted({b for n, b in runs if n == c} or {16})))
    elif args.batches:
        runs = tuple((c, b) for c in dict.fromkeys(n for n, _ in runs) for b in args.batches)
    return list(runs)


def extract_tree(rev: str) -> str:
    """``snnav/`` (and what it imports from the repository) at commit ``rev``, in a temporary folder; its path."""
    import tempfile

    dest = Path(tempfile.mkdtemp(prefix=f"bench_train_{rev}_"))
    archive = subprocess.run(["git", "archive", rev, "snnav", "export", "hardware_sims", "configs"], cwd=REPO,
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return str(dest)


def measure_clean(spec: dict, args: argparse.Namespace) -> dict:
    """:func:`run_worker`, after waiting for an idle machine, retried while other processes disturb it."""
    best = None
    for _ in range(1 + max(args.retries, 0)):
        if args.wait_idle > 0:
            wait_until_idle(args.wait_idle)
        record = run_worker(spec, args.timeout)
        others = record.get("others_cpu_frac")
        if best is None or (others is not None and others < best.get("others_cpu_frac", 1.0)):
            best = record
        if others is None or others <= BUSY_FRAC:
            break
    return best


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        sys.path.insert(0, spec.get("src") or str(REPO))  # this tree's snnav, or another commit's for "today"
        print(json.dumps(measure(spec)))
        return
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # snnav importable without installing it
    import torch

    devices = ["cpu"] if args.device in ("cpu", "all") else []
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append("cuda")
    elif args.device == "cuda":
        raise SystemExit("--device cuda: no CUDA GPU is available to torch here; run on CPU or on a GPU machine.")
    variants = list(args.variants or DEFAULT_VARIANTS) + (["compiled"] if args.compile else [])
    warmup = args.warmup if args.warmup is not None else 3
    steps = args.steps if args.steps is not None else (3 if args.quick else 7)
    machine = machine_info(args.threads)
    sources = {}
    if any(VARIANTS[v].get("src") == "today" for v in variants):
        sources["today"] = extract_tree(args.today_rev)
        machine["today_rev"] = subprocess.run(["git", "rev-parse", args.today_rev], cwd=REPO, capture_output=True,
                                              text=True, check=True).stdout.strip()
    records = []
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    # Repeats go round the whole plan, so variants alternate and a slow spell of the machine hits all of them.
    for repeat in range(repeats):
        for device in devices:
            for config, batch in plan(args):
                for variant in dict.fromkeys(variants):
                    for mode in args.modes:
                        spec = {"config": config, "batch": batch, "variant": variant, "mode": mode,
                                "device": device, "threads": args.threads, "warmup": warmup, "steps": steps}
                        if VARIANTS[variant].get("src"):
                            spec["src"] = sources[VARIANTS[variant]["src"]]
                        record = {**measure_clean(spec, args), "repeat": repeat}
                        records.append(record)
                        others = record.get("others_cpu_frac")
                        print(f"  [{repeat + 1}/{repeats}] {device} {config} B={batch} {variant:<22} {mode:<5} "
                              f"{record['samples_per_s']:8.2f} samples/s  "
                              f"peak {record.get('cuda_peak_mb', record['peak_rss_mb']):7.0f} MB"
                              + ("" if others is None else f"  others {100 * others:.0f}%"),
                              file=sys.stderr, flush=True)
    if hasattr(os, "getloadavg"):
        machine["loadavg_end"] = os.getloadavg()
    rows = rows_from(records)
    ratios = ratio_rows(rows)
    print(format_table(machine, rows, ratios))
    if args.out:
        from snnav.io import atomic_path

        payload = {"machine": machine, "reference_quoted": REFERENCE, "rows": rows, "ratios": ratios,
                   "measurements": records, "argv": sys.argv[1:]}
        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

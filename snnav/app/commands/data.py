"""``snnav data``: make the embedded AV-Digits dataset, or describe a dataset file."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tqdm import tqdm

from snnav.app.flags import deprecated_alias
from snnav.data.av_digits import AVDigitsConfig, generate_av_digits
from snnav.data.av_digits_config import VIEW_NAMES
from snnav.data.av_digits_file import read_av_digits_info
from snnav.errors import ConfigError
from snnav.io import check_writable_destination, refuse_existing

MAKEABLE = ("av-digits",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    make = sub.add_parser("make", help="generate a dataset file (AV-Digits)", description="generate a dataset file")
    make.add_argument("name", help=f"dataset to make: {', '.join(MAKEABLE)}")
    make.add_argument("--out", required=True, type=Path, help="output .h5 file")
    make.add_argument("--force", action="store_true", help="replace an existing output file")
    make.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")

    d = AVDigitsConfig()
    g = make.add_argument_group("AV-Digits options")
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--n-train", type=int, default=d.n_train, help="training pairs (default %(default)s)")
    g.add_argument("--n-test", type=int, default=d.n_test, help="test pairs (default %(default)s)")
    g.add_argument("--frame-size", type=int, default=d.frame_size, help="frame side H = W (default %(default)s)")
    g.add_argument("--time-steps", type=int, default=d.time_steps, help="time bins of the event views (default %(default)s)")
    deprecated_alias(g, "--steps", "--time-steps", type=int)
    g.add_argument("--voices", type=int, default=d.n_voices, help="voice configurations (default %(default)s)")
    g.add_argument("--audio-snr-db", type=float, default=d.audio_snr_db,
                   help="white-noise SNR of the utterances in dB (default %(default)s; 'inf' = clean)")
    g.add_argument("--pixel-noise", type=float, default=d.pixel_noise_std,
                   help="Gaussian pixel noise std of the static frames (default %(default)s)")
    g.add_argument("--views", nargs="+", default=None, metavar="VIEW", choices=VIEW_NAMES,
                   help="store only these views (default all: %(choices)s); each has the bytes it has in a full "
                   "file, and leaving out audio_cochlea saves about three quarters of the time")
    g.add_argument("--occlusion", type=float, default=d.occlusion_frac,
                   help="area fraction of the occluding rectangle (default %(default)s)")
    info = sub.add_parser("info", help="describe a dataset file", description="describe a dataset file")
    info.add_argument("path", type=Path)


def make_av_digits(out: Path, config, workers: int, force: bool, views=None) -> None:
    """Generate AV-Digits with a progress bar and print what was made (shared by ``data make`` and ``run``)."""

    check_writable_destination(out)
    refuse_existing(out, force)
    bars: dict[str, tqdm] = {}

    def progress(phase: str, done: int, total: int) -> None:
        bar = bars.get(phase)
        if bar is None:
            label = {"tts": "speech synthesis"}.get(phase, f"{phase} pairs")
            bar = bars[phase] = tqdm(total=total, desc=label, unit="it", leave=False, dynamic_ncols=True)
        bar.update(done - bar.n)

    try:
        report = generate_av_digits(out, config, workers=workers, progress=progress, views=views)
    finally:
        for bar in bars.values():
            bar.close()
    print(f"made {report.path}: {report.counts['train']} train / {report.counts['test']} test pairs, "
          f"{report.n_utterances} utterances, {report.path.stat().st_size / 1e6:.1f} MB in "
          f"{report.seconds_total:.1f} s (speech {report.seconds_tts:.1f} s, views {report.seconds_samples:.1f} s, "
          f"{workers} worker{'s' if workers != 1 else ''})")


def describe(path: Path) -> None:
    info = read_av_digits_info(path)
    c = info.config
    print(f"{info.path}: AV-Digits (snnav {info.snnav_version})")
    print(f"  pairs: {info.counts['train']} train, {info.counts['test']} test; 10 classes; "
          f"{len(info.voices)} voice configurations")
    print(f"  frames {c.frame_size}x{c.frame_size}; event views time_steps={c.time_steps}")
    s = f"{c.frame_size}x{c.frame_size}"
    shown = {"audio_spectrogram": f"audio spectrogram (1x{s})", "audio_cochlea": f"audio cochlea (T x 64 -> 1x{s})",
             "visual_static": f"visual static (1x{s})", "visual_events": f"visual events (T x 2x{s})"}
    left_out = [name for name in shown if name not in info.views]
    print("  views: " + ", ".join(shown[name] for name in shown if name in info.views)
          + (f"; made without {', '.join(left_out)} (snnav data make av-digits stores every view)" if left_out else ""))
    snr = "clean" if c.audio_snr_db is None else f"{c.audio_snr_db:g} dB SNR"
    print(f"  noise: audio {snr}; visual pixel std {c.pixel_noise_std:g}, occlusion {c.occlusion_frac:g}")


def run(args: argparse.Namespace) -> int:
    if args.data_command == "info":
        describe(args.path)
        return 0
    if args.name not in MAKEABLE:
        raise ConfigError(f"cannot make dataset {args.name!r}: snnav generates {', '.join(MAKEABLE)}; the real datasets "
                          "(crema-d, urbansound8k-av, mnistdvs-ntidigits) are read from their folders")
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")

    snr = None if args.audio_snr_db is None or args.audio_snr_db == float("inf") else args.audio_snr_db
    config = AVDigitsConfig(seed=args.seed, n_train=args.n_train, n_test=args.n_test, frame_size=args.frame_size,
                            time_steps=args.time_steps, n_voices=args.voices, audio_snr_db=snr,
                            pixel_noise_std=args.pixel_noise, occlusion_frac=args.occlusion)
    make_av_digits(args.out, config, args.workers, args.force, views=args.views)
    return 0

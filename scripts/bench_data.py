"""Time the AV-Digits views per pair, the previous code against the current, on the same pairs in one process.

    PYTHONPATH=. python scripts/bench_data.py [--pairs 200] [--rounds 3]

The pairs are the first ``--pairs`` training pairs of the default configuration, built as ``snnav data make`` builds
them (same random draws, same speech). For each view the script times the code the generator used before
(``cochlea_spikes_reference``: one waveform and one channel at a time; ``shift_frames_reference``: one saccade step
at a time) and the code it uses now (``cochlea_spikes_batch`` over batches of the generator's size; ``dvs_view``),
checks that they give the same bytes, and prints
CPU milliseconds per pair (the best of ``--rounds`` rounds; old and new alternate within a round) and the ratio.
Views whose code did not change are timed once and shown in both columns.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from snnav.data.audio_views import add_noise_snr, cochlea_spikes_batch, cochlea_spikes_reference, log_spectrogram
from snnav.data.av_digits_config import COCHLEA_CHANNELS, AVDigitsConfig, plan_splits
from snnav.data.digits_visual import corrupt_frame, load_digit_images, render_frame
from snnav.data.dvs import bin_events, dvs_view, saccade_trajectory, shift_frames_reference, video_events
from snnav.data.tts import digit_words, synthesize, voice_grid

BATCH = 8  # the generator's batch (snnav.data.av_digits)


def build_pairs(n: int) -> tuple[AVDigitsConfig, list[dict]]:
    """The first ``n`` training pairs of the default configuration: the inputs of every view."""
    cfg = AVDigitsConfig()
    images, labels = load_digit_images()
    voices = voice_grid(cfg.seed, cfg.n_voices)
    plan = plan_splits(cfg, labels)["train"]
    speech: dict[tuple[int, int], tuple[np.ndarray, int]] = {}
    pairs = []
    for i in range(n):
        key = (int(plan.labels[i]), int(plan.voice_index[i]))
        if key not in speech:
            speech[key] = synthesize(digit_words()[key[0]], voices[key[1]])
        wave, rate = speech[key]
        rng = np.random.default_rng([cfg.seed, 3000 + 0, i])  # the generator's seed of train pair i
        frame = render_frame(images[plan.image_index[i]], cfg.frame_size, rng, cfg.augment_config())
        occluded = corrupt_frame(frame, rng, 0.0, cfg.occlusion_frac)
        corrupt_frame(occluded, rng, cfg.pixel_noise_std, 0.0)
        dvs_view(occluded, cfg.time_steps, cfg.dvs_config(), rng)
        pad_n = (rng.uniform(0.0, cfg.max_pad_s, size=2) * rate).astype(int)
        padded = np.concatenate([np.zeros(pad_n[0], np.float32), wave, np.zeros(pad_n[1], np.float32)])
        pairs.append({"image8": images[plan.image_index[i]], "occluded": occluded,
                      "wave": add_noise_snr(padded, cfg.audio_snr_db, rng), "rate": rate})
    return cfg, pairs


def cpu_ms_per_pair(fn, n: int) -> tuple[float, object]:
    t0 = time.process_time()
    out = fn()
    return (time.process_time() - t0) * 1e3 / n, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    cfg, pairs = build_pairs(args.pairs)
    n, steps, rate = len(pairs), cfg.time_steps, pairs[0]["rate"]
    seconds = sum(p["wave"].size for p in pairs) / rate / n
    print(f"{n} default train pairs, {seconds:.2f} s of audio per pair on average; CPU ms per pair, "
          f"best of {args.rounds} rounds\n")

    def cochlea_old():
        return [cochlea_spikes_reference(p["wave"], rate, steps, n_channels=COCHLEA_CHANNELS) for p in pairs]

    def cochlea_new():
        out = []
        for j in range(0, n, BATCH):
            out += cochlea_spikes_batch([p["wave"] for p in pairs[j:j + BATCH]], rate, steps,
                                        n_channels=COCHLEA_CHANNELS)
        return out

    def render():
        rng = np.random.default_rng(0)
        return [render_frame(p["image8"], cfg.frame_size, rng, cfg.augment_config()) for p in pairs]

    dvs = cfg.dvs_config()

    def events_old():
        out = []
        for i, p in enumerate(pairs):
            rng = np.random.default_rng(i)
            video = shift_frames_reference(p["occluded"], saccade_trajectory(dvs, rng))
            out.append(bin_events(video_events(video, dvs, rng), steps))
        return out

    def events_new():
        return [dvs_view(p["occluded"], steps, dvs, np.random.default_rng(i)) for i, p in enumerate(pairs)]

    def spectrogram():
        return [log_spectrogram(p["wave"], rate, out_hw=(cfg.frame_size, cfg.frame_size)) for p in pairs]

    best: dict[str, float] = {}
    outputs: dict[str, list] = {}
    for _ in range(args.rounds):
        for name, fn in (("cochlea old", cochlea_old), ("cochlea new", cochlea_new), ("events old", events_old),
                         ("events new", events_new), ("render", render), ("spectrogram", spectrogram)):
            ms, out = cpu_ms_per_pair(fn, n)
            best[name] = min(best.get(name, float("inf")), ms)
            outputs[name] = out
    rows = [(view, best[f"{view} old"], best[f"{view} new"]) for view in ("cochlea", "events")]
    rows += [(name, best[name], best[name]) for name in ("render", "spectrogram")]
    rows.append(("all views", sum(r[1] for r in rows), sum(r[2] for r in rows)))
    print("| view | old ms/pair | new ms/pair | old/new |\n| --- | ---: | ---: | ---: |")
    for name, old, new in rows:
        print(f"| {name} | {old:.2f} | {new:.2f} | {old / new:.2f}x |")
    print()
    for view in ("cochlea", "events"):
        old, new = outputs[f"{view} old"], outputs[f"{view} new"]
        same = sum(a.tobytes() == b.tobytes() for a, b in zip(old, new))
        differing = sum(int((a != b).sum()) for a, b in zip(old, new))
        print(f"{view}: same bytes for {same} of {n} pairs; {differing} of {sum(a.size for a in old)} cells differ")


if __name__ == "__main__":
    main()

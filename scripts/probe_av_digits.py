"""Linear-probe accuracy of each AV-Digits view, alone and paired: a quick check of how hard each modality is.

A logistic regression (standardised features, frames average-pooled 2×2, event views summed over time) is trained on
the train split and scored on the test split. It is a proxy, weaker than the spiking models: it shows the relative
difficulty of the views and how noise settings move it, not the accuracy a trained S-CMRL reaches.

    python scripts/probe_av_digits.py runs/default/av_digits.h5
"""

from __future__ import annotations

import argparse
import warnings

import h5py
import numpy as np

VIEWS = ("visual_static", "visual_events", "audio_spectrogram", "audio_cochlea")
PAIRS = (("visual_static", "audio_spectrogram"), ("visual_events", "audio_cochlea"))


def features(group: h5py.Group, name: str) -> np.ndarray:
    x = group[name][()].astype(np.float32)
    if name == "visual_events":
        x = x.sum(axis=1)  # (N, 2, H, W): counts over time
    if x.shape[-1] >= 32:  # 2x2 average pooling keeps the regression quick
        x = x.reshape(*x.shape[:-2], x.shape[-2] // 2, 2, x.shape[-1] // 2, 2).mean(axis=(-1, -3))
    return x.reshape(len(x), -1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="an AV-Digits .h5 file")
    parser.add_argument("--c", type=float, default=0.01, help="inverse L2 strength of the regression")
    args = parser.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    with h5py.File(args.path, "r") as f:
        y_train, y_test = f["train/label"][()], f["test/label"][()]
        stored = [name for name in VIEWS if name in f["train"]]  # snnav run's file holds the two its training reads
        feats = {name: (features(f["train"], name), features(f["test"], name)) for name in stored}
    left_out = [name for name in VIEWS if name not in stored]
    if left_out:
        print(f"{args.path} holds no {', '.join(left_out)} (snnav data make av-digits stores every view)")
    print(f"{'views':<42} {'train':>6} {'test':>6}")
    for names in [(v,) for v in stored] + [pair for pair in PAIRS if all(n in feats for n in pair)]:
        x_train = np.concatenate([feats[n][0] for n in names], axis=1)
        x_test = np.concatenate([feats[n][1] for n in names], axis=1)
        scaler = StandardScaler().fit(x_train)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings at max_iter
            clf = LogisticRegression(C=args.c, max_iter=300).fit(scaler.transform(x_train), y_train)
        print(f"{' + '.join(names):<42} {clf.score(scaler.transform(x_train), y_train):6.3f} "
              f"{clf.score(scaler.transform(x_test), y_test):6.3f}")


if __name__ == "__main__":
    main()

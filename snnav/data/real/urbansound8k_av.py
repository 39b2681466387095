"""UrbanSound8K-AV (10 urban-sound classes, each clip paired with one image) for S-CMRL.

Layout (``docs/scmrl.md`` §4.2): ``<root>/Dataset_v3_vision/<class>/<name>.jpg`` with the audio at
``<root>/Dataset_v3_sound/<class>/<name>.wav``. Every image must have its wav; wavs without an image are
ignored (the image list drives the dataset, as one image exists per clip).

Split: per class, the first 70 % (``int(0.7 * n)``) of the image files **sorted by name** are train and the rest
test. The reference takes them in ``os.walk`` order, which depends on the file system (deviation, README).
Transforms are the CREMA-D ones (§4.1).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from snnav.data.real.common import (
    IMAGE_SUFFIXES,
    AVSample,
    StaticAVDataset,
    check_image,
    check_split_args,
    check_wav,
    layout_error,
    list_files,
    require_dir,
)

logger = logging.getLogger(__name__)

NAME = "UrbanSound8K-AV"
CLASSES = ("air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling", "engine_idling",
           "gun_shot", "jackhammer", "siren", "street_music")
VISION_DIR = "Dataset_v3_vision"
SOUND_DIR = "Dataset_v3_sound"
TRAIN_PORTION = 0.7
_CLASS_LIST = " ".join(CLASSES)


def scan_all(root: str | os.PathLike) -> list[list[AVSample]]:
    """Every (wav, image) pair, grouped per class in class order, each group sorted by image file name.

    Raises:
        DatasetError: the root, a modality folder or a class folder is missing, a class has no image, or an
            image has no wav of the same name.
    """
    root = Path(root)
    require_dir(NAME, root, f"the UrbanSound8K-AV folder holding {VISION_DIR}/ and {SOUND_DIR}/")
    vision, sound = root / VISION_DIR, root / SOUND_DIR
    require_dir(NAME, vision, f"{VISION_DIR}/<class>/<name>.jpg")
    require_dir(NAME, sound, f"{SOUND_DIR}/<class>/<name>.wav")
    groups: list[list[AVSample]] = []
    for label, cls in enumerate(CLASSES):
        img_dir, wav_dir = vision / cls, sound / cls
        require_dir(NAME, img_dir, f"one folder per class: {_CLASS_LIST}")
        require_dir(NAME, wav_dir, f"one folder per class: {_CLASS_LIST}")
        images = list_files(img_dir, IMAGE_SUFFIXES)
        if not images:
            raise layout_error(NAME, f"no images in {img_dir} (expected <name>.jpg files)")
        wavs = {p.stem: p for p in list_files(wav_dir, (".wav",))}
        group = []
        for img in images:
            if img.stem not in wavs:
                raise layout_error(NAME, f"missing {wav_dir / (img.stem + '.wav')} (the audio of {img})")
            group.append(AVSample(wavs[img.stem], img, label))
        groups.append(group)
    return groups


def split_samples(groups: list[list[AVSample]], split: str) -> list[AVSample]:
    """The 70/30 per-class split of :func:`scan_all`'s groups: train is the first ``int(0.7 * n)`` of each."""
    out: list[AVSample] = []
    for group in groups:
        n_train = int(len(group) * TRAIN_PORTION)
        out.extend(group[:n_train] if split == "train" else group[n_train:])
    return out


def check_layout(root: str | os.PathLike) -> None:
    """Check folders and pairing, and that every wav and image parses.

    Raises:
        DatasetError: one line naming the first missing or malformed path.
    """
    for group in scan_all(root):
        for sample in group:
            check_wav(sample.audio, NAME)
            check_image(sample.visual, NAME)


class UrbanSound8KAV(StaticAVDataset):
    """UrbanSound8K-AV as S-CMRL uses it: items ``(audio (T,1,size,size), visual (T,3,size,size), label)``.

    Args:
        root: the folder holding ``Dataset_v3_vision/`` and ``Dataset_v3_sound/``.
        split: ``"train"`` or ``"test"`` (70/30 per class of the name-sorted list).
        time_steps: T, the time steps the static views are repeated over (4 in the paper).
        size: side of the square spectrogram and image (128 in the paper).
        seed: seeds the train augmentation.
        cache: HDF5 file (or folder) for the precomputed deterministic tensors; ``None`` computes on access.

    Raises:
        DatasetError: the layout is incomplete (:func:`check_layout` also decodes every file).
    """

    DATASET = NAME
    CLASSES = CLASSES

    def __init__(self, root: str | os.PathLike, split: str = "train", time_steps: int = 4, size: int = 128, seed: int = 0,
                 cache: str | os.PathLike | None = None):
        check_split_args(NAME, split, time_steps, size)
        samples = split_samples(scan_all(root), split)
        if not samples:
            raise layout_error(NAME, f"the {split} split of {root} is empty (a class needs at least 2 images to "
                                     f"put one in train and 1 to put one in test)")
        super().__init__(Path(root), samples, split, time_steps, size, seed, cache, {"train_portion": TRAIN_PORTION})

    check_layout = staticmethod(check_layout)

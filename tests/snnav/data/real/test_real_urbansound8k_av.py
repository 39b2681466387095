"""UrbanSound8K-AV loader on a tiny generated ``Dataset_v3_vision`` / ``Dataset_v3_sound`` layout."""

from __future__ import annotations

import shutil

import pytest
import real_fixtures as rf
import torch

from snnav.data.real.urbansound8k_av import CLASSES, UrbanSound8KAV, check_layout, scan_all, split_samples
from snnav.errors import DatasetError


def test_classes_match_the_reference_order():
    assert CLASSES == rf.US8K_CLASSES


def test_split_is_70_30_per_class_of_the_sorted_list(us8k_root):
    train, test = UrbanSound8KAV(us8k_root, "train"), UrbanSound8KAV(us8k_root, "test")
    assert len(train) == 20 and len(test) == 10  # 3 per class: int(2.1) = 2 train, 1 test
    assert train.labels == [c for c in range(10) for _ in range(2)]
    assert test.labels == list(range(10))
    for label, cls in enumerate(CLASSES):
        names = sorted(p.name for p in (us8k_root / "Dataset_v3_vision" / cls).glob("*.jpg"))
        assert [s.visual.name for s in train.samples if s.label == label] == names[:2]
        assert [s.visual.name for s in test.samples if s.label == label] == names[2:]
    assert not {s.visual for s in train.samples} & {s.visual for s in test.samples}
    assert all(s.audio.stem == s.visual.stem and s.audio.parent.name == CLASSES[s.label] for s in train.samples)


def test_split_counts_for_larger_classes():
    groups = [[object()] * n for n in (10, 7, 1)]
    assert len(split_samples(groups, "train")) == 7 + 4 + 0
    assert len(split_samples(groups, "test")) == 3 + 3 + 1


def test_items(us8k_root):
    ds = UrbanSound8KAV(us8k_root, "test", time_steps=2, size=32)
    audio, visual, label = ds[1]
    assert audio.shape == (2, 1, 32, 32) and visual.shape == (2, 3, 32, 32) and label == 1
    assert audio.dtype == visual.dtype == torch.float32 and torch.isfinite(audio).all()
    # class 1's first clip is the stereo int32 wav: read and downmixed without error
    train = UrbanSound8KAV(us8k_root, "train", time_steps=1, size=32, seed=1)
    stereo = [i for i, s in enumerate(train.samples) if s.label == 1 and s.audio.stem.endswith("-0")]
    assert stereo and torch.isfinite(train[stereo[0]][0]).all()


def test_check_layout_passes_and_orphan_wavs_are_ignored(us8k_root):
    check_layout(us8k_root)
    assert all(s.audio.name != "999-orphan.wav" for g in scan_all(us8k_root) for s in g)


@pytest.fixture
def small(tmp_path):
    return rf.build_us8k(tmp_path / "us8k", per_class=2, extra_wav=False)


def test_missing_wav_is_named(small):
    wav = small / "Dataset_v3_sound" / "siren" / "101-8-0-1.wav"
    wav.unlink()
    with pytest.raises(DatasetError, match=f"UrbanSound8K-AV: missing {wav} \\(the audio of "
                                           f"{small / 'Dataset_v3_vision' / 'siren' / '101-8-0-1.jpg'}\\)"):
        UrbanSound8KAV(small)


def test_missing_folders_are_named(small, tmp_path):
    shutil.rmtree(small / "Dataset_v3_vision" / "gun_shot")
    with pytest.raises(DatasetError, match=f"missing {small / 'Dataset_v3_vision' / 'gun_shot'} \\(expected one "
                                           f"folder per class: air_conditioner car_horn"):
        check_layout(small)
    shutil.rmtree(small / "Dataset_v3_sound")
    with pytest.raises(DatasetError, match=f"missing {small / 'Dataset_v3_sound'} "):
        check_layout(small)
    with pytest.raises(DatasetError, match=f"missing {tmp_path / 'elsewhere'} "):
        UrbanSound8KAV(tmp_path / "elsewhere")


def test_empty_class_and_corrupt_files(small):
    img = small / "Dataset_v3_vision" / "drilling" / "100-4-0-0.jpg"
    img.write_bytes(b"GIF89a broken")
    with pytest.raises(DatasetError, match=f"cannot decode the image {img}"):
        check_layout(small)
    wav = small / "Dataset_v3_sound" / "dog_bark" / "101-3-0-1.wav"
    wav.write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    with pytest.raises(DatasetError, match=f"cannot read the wav {wav}"):
        check_layout(small)
    for p in (small / "Dataset_v3_vision" / "car_horn").iterdir():
        p.unlink()
    with pytest.raises(DatasetError, match=f"no images in {small / 'Dataset_v3_vision' / 'car_horn'}"):
        UrbanSound8KAV(small)


def test_cache_round_trip(us8k_root, tmp_path):
    plain = UrbanSound8KAV(us8k_root, "test", time_steps=1, size=32)
    cached = UrbanSound8KAV(us8k_root, "test", time_steps=1, size=32, cache=tmp_path / "us8k.h5")
    for i in (0, 9):
        a, b = plain[i], cached[i]
        torch.testing.assert_close(a[0], b[0])
        torch.testing.assert_close(a[1], b[1])
        assert a[2] == b[2] == i

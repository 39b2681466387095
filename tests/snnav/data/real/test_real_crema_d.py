"""CREMA-D loader on tiny generated layouts: processed folders and the OGM-GE CSV split over raw frames."""

from __future__ import annotations

import shutil

import pytest
import real_fixtures as rf
import torch

from snnav.data.real import crema_d
from snnav.data.real.crema_d import CremaD, check_layout
from snnav.errors import ConfigError, DatasetError


def test_processed_items_shapes_labels_and_time_repetition(crema_processed_root):
    ds = CremaD(crema_processed_root, "test", time_steps=3, size=32)
    assert len(ds) == 6 and ds.layout == "processed" and ds.num_classes == 6
    assert ds.labels == [0, 1, 2, 3, 4, 5]
    audio, visual, label = ds[4]
    assert audio.shape == (3, 1, 32, 32) and visual.shape == (3, 3, 32, 32)
    assert audio.dtype == torch.float32 and visual.dtype == torch.float32
    assert isinstance(label, int) and label == 4
    assert torch.isfinite(audio).all() and torch.equal(audio[0], audio[2]) and torch.equal(visual[0], visual[1])
    # the class tones differ (300 + 100 * label Hz), so do the spectrograms
    assert not torch.allclose(ds[0][0], ds[5][0])
    assert ds[-1][2] == 5
    with pytest.raises(IndexError):
        ds[6]


def test_train_split_sizes_and_labels(crema_processed_root):
    ds = CremaD(crema_processed_root, "train", size=32)
    assert len(ds) == 12 and ds.labels == [c for c in range(6) for _ in range(2)]
    audio, visual, _ = ds[0]
    assert audio.shape == (4, 1, 32, 32) and visual.shape == (4, 3, 32, 32)


def test_test_split_is_deterministic_and_train_is_seeded_per_epoch(crema_processed_root):
    test = CremaD(crema_processed_root, "test", time_steps=1, size=32)
    torch.testing.assert_close(test[2][1], test[2][1])
    a = CremaD(crema_processed_root, "train", time_steps=1, size=32, seed=5)
    b = CremaD(crema_processed_root, "train", time_steps=1, size=32, seed=5)
    audio, first, _ = a[3]
    torch.testing.assert_close(first, b[3][1])  # same seed, same epoch
    a.set_epoch(1)
    audio_1, second, _ = a[3]
    assert not torch.allclose(first, second)  # a fresh draw each epoch
    c = CremaD(crema_processed_root, "train", time_steps=1, size=32, seed=6)
    audio_c, third, _ = c[3]
    assert not torch.allclose(first, third)
    # audio has no augmentation: identical in every epoch and seed
    torch.testing.assert_close(audio, audio_1)
    torch.testing.assert_close(audio, audio_c)


def test_csv_layout_reads_the_split_and_chooses_a_seeded_frame(crema_csv_root):
    ds = CremaD(crema_csv_root, "train", time_steps=2, size=32, seed=0)
    assert ds.layout == "csv" and len(ds) == 12
    assert ds.labels == [c for c in range(6) for _ in range(2)]
    again = CremaD(crema_csv_root, "train", time_steps=2, size=32, seed=0)
    assert [s.visual for s in ds.samples] == [s.visual for s in again.samples]
    choices = {tuple(s.visual.name for s in CremaD(crema_csv_root, "train", size=32, seed=k).samples)
               for k in range(4)}
    assert len(choices) > 1  # the frame depends on the seed
    assert all(s.visual.parent.name == s.audio.stem for s in ds.samples)
    assert CremaD(crema_csv_root, "test", size=32)[0][1].shape == (4, 3, 32, 32)


def test_choose_frame_does_not_depend_on_row_order(tmp_path):
    frames = [tmp_path / f"{i:05d}.jpg" for i in range(5)]
    assert crema_d.choose_frame(frames, "1001_DFA_ANG_XX", 3) == crema_d.choose_frame(frames, "1001_DFA_ANG_XX", 3)
    picks = {crema_d.choose_frame(frames, f"clip{i}", 0) for i in range(30)}
    assert len(picks) > 2


def test_check_layout_accepts_both_layouts(crema_processed_root, crema_csv_root):
    check_layout(crema_processed_root)
    check_layout(crema_csv_root)
    check_layout(crema_csv_root, layout="csv")


def test_bad_arguments(crema_processed_root):
    with pytest.raises(ConfigError, match="split must be 'train' or 'test'"):
        CremaD(crema_processed_root, "val")
    with pytest.raises(ConfigError, match="layout must be one of"):
        CremaD(crema_processed_root, layout="zip")


# ------------------------------------------------------------------------------------------- missing / malformed


@pytest.fixture
def processed(tmp_path):
    return rf.build_crema_processed(tmp_path / "crema", {"train": 1, "test": 1})


@pytest.fixture
def raw(tmp_path):
    return rf.build_crema_csv(tmp_path / "crema", {"train": 1, "test": 1}, frames_per_clip=2)


def test_missing_root_and_no_layout(tmp_path):
    with pytest.raises(DatasetError, match=f"CREMA-D: missing {tmp_path / 'nope'} "):
        check_layout(tmp_path / "nope")
    with pytest.raises(DatasetError, match=f"found neither {tmp_path / 'processed_dataset'} nor "
                                           f"{tmp_path / 'train.csv'}"):
        CremaD(tmp_path)


def test_missing_class_folder_is_named(processed):
    shutil.rmtree(processed / "processed_dataset" / "train" / "audio" / "ANG")
    expected = (f"CREMA-D: missing {processed}/processed_dataset/train/audio/ANG (expected one folder per class: "
                f"ANG DIS FEA HAP NEU SAD); see snnav/data/real/README.md")
    with pytest.raises(DatasetError) as err:
        check_layout(processed)
    assert str(err.value) == expected
    with pytest.raises(DatasetError, match="train/audio/ANG"):
        CremaD(processed, "train")
    CremaD(processed, "test")  # the other split is intact


def test_unpaired_clip_is_named(processed):
    jpg = next((processed / "processed_dataset" / "test" / "visual" / "FEA").glob("*.jpg"))
    jpg.unlink()
    with pytest.raises(DatasetError, match=f"missing {jpg} \\(the frame of "):
        check_layout(processed)


def test_corrupt_wav_and_image_are_named(processed):
    wav = next((processed / "processed_dataset" / "train" / "audio" / "SAD").glob("*.wav"))
    wav.write_bytes(b"junk")
    with pytest.raises(DatasetError, match=f"cannot read the wav {wav}"):
        check_layout(processed)
    ds = CremaD(processed, "train", size=16)  # the constructor only lists files ...
    with pytest.raises(DatasetError, match=f"cannot read the wav {wav}"):
        ds[5]  # ... the corrupt file surfaces when loaded
    rf.write_tone_wav(wav, 300)
    jpg = next((processed / "processed_dataset" / "test" / "visual" / "HAP").glob("*.jpg"))
    jpg.write_bytes(b"\xff\xd8\xffnot really")
    with pytest.raises(DatasetError, match=f"cannot decode the image {jpg}"):
        check_layout(processed)


def test_nan_samples_name_the_wav(processed):
    import numpy as np
    from scipy.io import wavfile

    wav = next((processed / "processed_dataset" / "test" / "audio" / "NEU").glob("*.wav"))
    wavfile.write(wav, 8000, np.array([0.0, np.nan, 0.1] * 100, dtype=np.float32))
    with pytest.raises(DatasetError, match=f"CREMA-D: {wav}: .*NaN"):
        CremaD(processed, "test", size=16)[4]


def test_csv_row_whose_files_are_absent(raw):
    clip = (raw / "test.csv").read_text(encoding="utf-8-sig").splitlines()[2].split(",")[0]
    (raw / "AudioWAV" / f"{clip}.wav").unlink()
    with pytest.raises(DatasetError, match=f"missing {raw / 'AudioWAV' / (clip + '.wav')} \\(listed in "
                                           f"{raw / 'test.csv'} row 3\\)"):
        CremaD(raw, "test")
    rf.write_tone_wav(raw / "AudioWAV" / f"{clip}.wav", 300)
    shutil.rmtree(raw / "Image-01-FPS" / clip)
    with pytest.raises(DatasetError, match=f"missing {raw / 'Image-01-FPS' / clip} "):
        check_layout(raw)


def test_csv_bad_row_and_missing_split_file(raw):
    with open(raw / "train.csv", "a", encoding="utf-8") as f:
        f.write("1099_XXX_CAL_XX,CALM\n")
    with pytest.raises(DatasetError, match="train.csv line 7: expected 'clip,CLS' with CLS in ANG DIS FEA HAP "
                                           "NEU SAD, found '1099_XXX_CAL_XX,CALM'"):
        CremaD(raw, "train")
    (raw / "test.csv").unlink()
    with pytest.raises(DatasetError, match=f"missing {raw / 'test.csv'} "):
        CremaD(raw, "test")


def test_corrupt_frame_in_csv_layout(raw):
    frame = sorted((raw / "Image-01-FPS").glob("*/*.jpg"))[3]
    frame.write_bytes(b"nope")
    with pytest.raises(DatasetError, match=f"cannot decode the image {frame}"):
        check_layout(raw)


# ------------------------------------------------------------------------------------------------------- cache


def test_cache_round_trip(crema_processed_root, tmp_path):
    plain = CremaD(crema_processed_root, "test", time_steps=2, size=32)
    cached = CremaD(crema_processed_root, "test", time_steps=2, size=32, cache=tmp_path / "crema_test.h5")
    assert (tmp_path / "crema_test.h5").is_file()
    plain_items = [plain[i] for i in range(len(plain))]
    for (a_audio, a_visual, a_label), (b_audio, b_visual, b_label) in zip(plain_items, cached):
        torch.testing.assert_close(a_audio, b_audio)
        torch.testing.assert_close(a_visual, b_visual)
        assert a_label == b_label
    stamp = (tmp_path / "crema_test.h5").stat().st_mtime_ns
    reopened = CremaD(crema_processed_root, "test", time_steps=4, size=32, cache=tmp_path / "crema_test.h5")
    assert (tmp_path / "crema_test.h5").stat().st_mtime_ns == stamp  # T is applied after the cache: reused
    torch.testing.assert_close(reopened[1][1][3], plain_items[1][1][0])
    CremaD(crema_processed_root, "test", size=24, cache=tmp_path / "crema_test.h5")
    assert (tmp_path / "crema_test.h5").stat().st_mtime_ns != stamp  # another size: rebuilt


def test_train_cache_holds_audio_and_keeps_augmenting(crema_processed_root, tmp_path):
    plain = CremaD(crema_processed_root, "train", time_steps=1, size=32, seed=2)
    cached = CremaD(crema_processed_root, "train", time_steps=1, size=32, seed=2, cache=tmp_path)
    for i in (0, 7):
        torch.testing.assert_close(plain[i][0], cached[i][0])
        torch.testing.assert_close(plain[i][1], cached[i][1])
    first = cached[7][1]
    cached.set_epoch(3)
    assert not torch.allclose(first, cached[7][1])


def test_cached_dataset_pickles_for_dataloader_workers(crema_processed_root, tmp_path):
    import pickle

    ds = CremaD(crema_processed_root, "test", time_steps=1, size=16, cache=tmp_path)
    first = ds[2]
    clone = pickle.loads(pickle.dumps(ds))
    torch.testing.assert_close(clone[2][1], first[1])
    torch.testing.assert_close(clone[2][0], first[0])

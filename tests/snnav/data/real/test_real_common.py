"""Shared pieces of the real-dataset loaders: wav/image reading, the torchvision-equivalent transforms, the
per-item RNG, the HDF5 feature cache, and the registry."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import real_fixtures as rf
import torch
from PIL import Image

from snnav.data.real import REAL_DATASETS, CremaD, MnistDvsNTidigits, UrbanSound8KAV, common, open_real_dataset
from snnav.errors import DatasetError

# ----------------------------------------------------------------------------------------------------- reading


@pytest.mark.parametrize("dtype", ["int16", "int32", "float32"])
def test_read_wav_scales_to_unit_range(tmp_path, dtype):
    wave = rf.write_tone_wav(tmp_path / "a.wav", 440, rate=8000, seconds=0.1, dtype=dtype, amplitude=0.5)
    out, rate = common.read_wav(tmp_path / "a.wav", "X")
    assert rate == 8000 and out.dtype == np.float32 and out.shape == wave.shape
    np.testing.assert_allclose(out, wave, atol=1e-4)


def test_read_wav_downmixes_stereo(tmp_path):
    # channel 1 is the negated channel 0, so the mono mix is (close to) silence
    rf.write_tone_wav(tmp_path / "s.wav", 440, seconds=0.1, channels=2)
    out, _ = common.read_wav(tmp_path / "s.wav", "X")
    assert out.ndim == 1 and np.abs(out).max() < 1e-4


def test_read_wav_uint8(tmp_path):
    from scipy.io import wavfile

    wavfile.write(tmp_path / "u.wav", 8000, np.array([0, 128, 255, 192], dtype=np.uint8))
    out, _ = common.read_wav(tmp_path / "u.wav", "X")
    np.testing.assert_allclose(out, [-1.0, 0.0, 127 / 128, 0.5])


def test_bad_wav_and_image_name_the_file(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....not a wav at all")
    with pytest.raises(DatasetError, match=f"cannot read the wav {bad}"):
        common.read_wav(bad, "X")
    with pytest.raises(DatasetError, match=f"cannot read the wav {bad}"):
        common.check_wav(bad, "X")
    img = tmp_path / "bad.jpg"
    img.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(DatasetError, match=f"cannot decode the image {img}"):
        common.load_rgb(img, "X")
    with pytest.raises(DatasetError, match=f"cannot decode the image {img}"):
        common.check_image(img, "X")


def test_grey_image_becomes_rgb(tmp_path):
    Image.fromarray(np.full((10, 12), 77, np.uint8)).save(tmp_path / "g.png")
    img = common.load_rgb(tmp_path / "g.png", "X")
    assert img.mode == "RGB" and img.size == (12, 10) and img.getpixel((3, 3)) == (77, 77, 77)


# ------------------------------------------------------------------------------------------------- transforms


def test_random_resized_crop_box_bounds_and_determinism():
    for seed in range(50):
        top, left, h, w = common.random_resized_crop_box(300, 200, np.random.default_rng(seed))
        assert 0 <= top and top + h <= 200 and 0 <= left and left + w <= 300
        frac, aspect = h * w / (300 * 200), w / h
        assert 0.07 <= frac <= 1.0 and 0.7 <= aspect <= 1.4
    a = common.random_resized_crop_box(300, 200, np.random.default_rng(3))
    assert a == common.random_resized_crop_box(300, 200, np.random.default_rng(3))


def test_random_resized_crop_box_falls_back_to_a_clamped_centre_crop():
    # a 1000x10 strip admits no crop with aspect in [3/4, 4/3] and >= 8 % of the area: central 13x10 crop
    assert common.random_resized_crop_box(1000, 10, np.random.default_rng(0)) == (0, 493, 10, 13)


def test_resize_short_side_and_center_crop():
    img = Image.new("RGB", (300, 200))
    assert common.resize_short_side(img, 256).size == (384, 256)
    assert common.resize_short_side(Image.new("RGB", (200, 301)), 256).size == (256, 385)
    arr = np.arange(7 * 9, dtype=np.uint8).reshape(7, 9)
    out = np.asarray(common.center_crop(Image.fromarray(arr), 4))
    np.testing.assert_array_equal(out, arr[2:6, 2:6])  # top = round(1.5) = 2, left = round(2.5) = 2


def test_normalisation_matches_imagenet_statistics():
    img = Image.new("RGB", (5, 4), (255, 0, 128))
    x = common.to_normalized_tensor(img)
    mean, std = torch.tensor(common.IMAGENET_MEAN), torch.tensor(common.IMAGENET_STD)
    expected = (torch.tensor([1.0, 0.0, 128 / 255]) - mean) / std
    assert x.shape == (3, 4, 5) and x.dtype == torch.float32
    torch.testing.assert_close(x[:, 0, 0], expected)


def test_test_and_train_views(tmp_path):
    rf.write_jpg(tmp_path / "i.jpg", 2, seed=0, size=(90, 60))
    img = common.load_rgb(tmp_path / "i.jpg", "X")
    test_a, test_b = common.test_visual(img, 32), common.test_visual(img, 32)
    assert test_a.shape == (3, 32, 32)
    torch.testing.assert_close(test_a, test_b)
    train = [common.train_visual(img, 32, common.item_rng(0, e, 5)) for e in range(4)]
    assert all(t.shape == (3, 32, 32) for t in train)
    torch.testing.assert_close(train[0], common.train_visual(img, 32, common.item_rng(0, 0, 5)))
    assert not torch.allclose(train[0], train[1])
    assert not torch.allclose(train[0], test_a)


def test_train_view_flips_half_of_the_time():
    # a left-to-right ramp: a flipped view has its mean intensity decreasing from left to right
    img = Image.fromarray(np.tile(np.linspace(0, 255, 64).astype(np.uint8)[None, :, None], (48, 1, 3)))
    flips = 0
    for i in range(40):
        x = common.train_visual(img, 16, common.item_rng(1, 0, i))
        flips += int(x[0, :, 0].mean() > x[0, :, -1].mean())
    assert 10 <= flips <= 30


def test_item_rng_depends_on_seed_epoch_and_index():
    draw = lambda *k: common.item_rng(*k).random()  # noqa: E731
    assert draw(0, 0, 0) == draw(0, 0, 0)
    assert len({draw(0, 0, 0), draw(1, 0, 0), draw(0, 1, 0), draw(0, 0, 1)}) == 4


# ------------------------------------------------------------------------------------------------------- cache


def _counting_compute(calls):
    def compute(i):
        calls.append(i)
        return {"a": np.full((2, 3), i, np.float32), "b": np.arange(4, dtype=np.int64) * i}
    return compute


def test_cache_round_trip_and_reuse(tmp_path):
    calls: list[int] = []
    path = tmp_path / "c.h5"
    cache = common.FeatureCache.open_or_build(path, "t", {"k": 1}, 3, _counting_compute(calls))
    assert calls == [0, 1, 2] and path.is_file()
    item = cache.get(2)
    np.testing.assert_array_equal(item["a"], np.full((2, 3), 2, np.float32))
    np.testing.assert_array_equal(item["b"], [0, 2, 4, 6])
    cache.close()
    again = common.FeatureCache.open_or_build(path, "t", {"k": 1}, 3, _counting_compute(calls))
    assert calls == [0, 1, 2]  # valid cache: nothing recomputed
    np.testing.assert_array_equal(again.get(1)["a"], np.ones((2, 3)))
    clone = pickle.loads(pickle.dumps(again))  # handle dropped, reopened on demand
    np.testing.assert_array_equal(clone.get(1)["b"], [0, 1, 2, 3])
    again.close()
    clone.close()


def test_cache_is_rebuilt_when_the_config_changes_or_the_file_is_corrupt(tmp_path):
    calls: list[int] = []
    path = tmp_path / "c.h5"
    common.FeatureCache.open_or_build(path, "t", {"k": 1}, 2, _counting_compute(calls)).close()
    common.FeatureCache.open_or_build(path, "t", {"k": 2}, 2, _counting_compute(calls)).close()
    assert calls == [0, 1, 0, 1]
    path.write_bytes(b"not hdf5")
    common.FeatureCache.open_or_build(path, "t", {"k": 2}, 2, _counting_compute(calls)).close()
    assert calls == [0, 1, 0, 1, 0, 1]


def test_cache_folder_gets_one_file_per_config(tmp_path):
    for k in (1, 2):
        common.FeatureCache.open_or_build(tmp_path, "name", {"k": k}, 1, _counting_compute([])).close()
    names = sorted(p.name for p in tmp_path.glob("name-*.h5"))
    assert len(names) == 2 and all(len(n) == len("name-") + 12 + len(".h5") for n in names)


def test_failed_build_leaves_the_old_cache(tmp_path):
    path = tmp_path / "c.h5"
    common.FeatureCache.open_or_build(path, "t", {"k": 1}, 2, _counting_compute([])).close()
    before = path.read_bytes()

    def broken(i):
        raise DatasetError("boom")

    with pytest.raises(DatasetError, match="boom"):
        common.FeatureCache.open_or_build(path, "t", {"k": 9}, 2, broken)
    assert path.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name != "c.h5"]


# ---------------------------------------------------------------------------------------------------- registry


def test_registry_names_and_unknown_name(tmp_path):
    assert REAL_DATASETS == {"crema-d": CremaD, "urbansound8k-av": UrbanSound8KAV,
                             "mnistdvs-ntidigits": MnistDvsNTidigits}
    with pytest.raises(DatasetError, match="unknown real dataset 'cifar'; known: crema-d, mnistdvs-ntidigits, "
                                           "urbansound8k-av"):
        open_real_dataset("cifar", tmp_path)


def test_registry_opens_the_right_class(crema_processed_root):
    ds = open_real_dataset("crema-d", crema_processed_root, "test", time_steps=2, size=32)
    assert isinstance(ds, CremaD) and ds.time_steps == 2 and ds.split == "test"

"""MNISTDVS-NTIDIGITS loader: the AEDAT reader against independently written files, the event binning, the
N-TIDIGITS label parsing, the per-class split and pairing, errors, and the cache."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import real_fixtures as rf
import torch

from snnav.data.real import mnistdvs_ntidigits as m
from snnav.data.real.mnistdvs_ntidigits import MnistDvsNTidigits, check_layout
from snnav.errors import ConfigError, DatasetError

# ------------------------------------------------------------------------------------------------------ AEDAT


@pytest.mark.parametrize("version", ["2.0", "1.0"])
def test_read_aedat_round_trip(tmp_path, version):
    rng = np.random.default_rng(0)
    t = np.sort(rng.integers(0, 10**6, 200))
    x, y, p = rng.integers(0, 128, 200), rng.integers(0, 128, 200), rng.integers(0, 2, 200)
    rf.write_aedat(tmp_path / "r.aedat", t, x, y, p, version=version)
    rt, rx, ry, rp = m.read_aedat(tmp_path / "r.aedat")
    for got, want in ((rt, t), (rx, x), (ry, y), (rp, p)):
        np.testing.assert_array_equal(got, want)


def test_read_aedat_drops_special_events(tmp_path):
    t, x, y, p = np.array([5, 9]), np.array([17, 3]), np.array([35, 0]), np.array([1, 0])
    path = tmp_path / "s.aedat"
    rf.write_aedat(path, t, x, y, p, extra_words=np.array([0x8000, 0x80000000 | 3]))
    rt, rx, _, _ = m.read_aedat(path)
    np.testing.assert_array_equal(rx, x)
    np.testing.assert_array_equal(rt, t)


def test_read_aedat_v1_event_starting_with_a_hash_byte(tmp_path):
    # y = 35 makes the first byte of a 16-bit address 0x23 ('#'): it must not be taken for a header line
    t, x, y, p = np.array([5, 9]), np.array([17, 3]), np.array([35, 0]), np.array([1, 0])
    path = tmp_path / "h.aedat"
    rf.write_aedat(path, t, x, y, p, version="1.0")
    header_len = len(b"#!AER-DAT1.0\r\n# old 16-bit address format\r\n")
    assert path.read_bytes()[header_len:header_len + 1] == b"#"
    rt, rx, ry, rp = m.read_aedat(path)
    np.testing.assert_array_equal(ry, y)
    np.testing.assert_array_equal(rt, t)
    # an explicit end-of-header line is honoured too
    path.write_bytes(b"#!AER-DAT1.0\r\n#!END-HEADER\r\n" + path.read_bytes()[header_len:])
    np.testing.assert_array_equal(m.read_aedat(path)[1], x)


def test_malformed_aedat_is_named(tmp_path):
    bad = tmp_path / "bad.aedat"
    bad.write_bytes(b"\x00\x01\x02\x03" * 4)
    with pytest.raises(DatasetError, match=f"cannot parse {bad}: it does not start with the jAER header"):
        m.read_aedat(bad)
    rf.write_aedat(bad, np.arange(3), np.zeros(3), np.zeros(3), np.zeros(3))
    bad.write_bytes(bad.read_bytes()[:-3])
    with pytest.raises(DatasetError, match=f"cannot parse {bad}: 21 bytes of events is not a multiple of 8"):
        m.read_aedat(bad)
    with pytest.raises(DatasetError, match="not a multiple of 8"):
        m.check_aedat(bad)
    bad.write_bytes(b"#!AER-DAT3.1\r\n")
    with pytest.raises(DatasetError, match="unsupported version line"):
        m.read_aedat(bad)


# ---------------------------------------------------------------------------------------------------- binning


def test_time_bins_span_the_recording():
    np.testing.assert_array_equal(m.time_bins(np.array([0, 10, 49, 50, 99, 100]), 4), [0, 0, 1, 2, 3, 3])
    np.testing.assert_array_equal(m.time_bins(np.array([7, 7]), 4), [0, 0])
    assert m.time_bins(np.array([], dtype=np.int64), 4).shape == (0,)


def test_dvs_frames_map_128_to_28():
    x = np.array([0, 4, 5, 127, 64, 64])
    y = np.array([0, 0, 0, 127, 64, 64])
    p = np.array([0, 0, 1, 1, 0, 0])
    t = np.array([0, 0, 0, 100, 50, 50])
    f = m.dvs_frames(t, x, y, p, steps=2)
    assert f.shape == (2, 2, 28, 28) and f.dtype == np.float32 and f.sum() == 6
    assert f[0, 0, 0, 0] == 2  # x = 0 and 4 both map to column 0 (4 * 28 // 128 = 0)
    assert f[0, 1, 0, 1] == 1  # x = 5 -> 140 // 128 = 1, OFF channel
    assert f[1, 1, 27, 27] == 1  # the corner pixel, last time bin
    assert f[1, 0, 14, 14] == 2  # t = 50 of [0, 100] opens the second bin
    # a centred 64-px crop: x = 32..95 map to 0..27, the rest is dropped
    c = m.dvs_frames(t, x, y, p, steps=2, crop=64)
    assert c.sum() == 2 and c[1, 0, 14, 14] == 2


def test_cochlea_frames_and_image():
    t = np.array([0.0, 0.1, 0.2, 0.8])
    ch = np.array([0, 9, 9, 63])
    f = m.cochlea_frames(t, ch, 4)
    assert f.shape == (4, 1, 64) and f[0, 0, 0] == 1 and f[0, 0, 9] == 1 and f[1, 0, 9] == 1 and f[3, 0, 63] == 1
    img = m.cochlea_image(torch.from_numpy(f))
    assert img.shape == (4, 1, 28, 28)
    # channel 9 sits at row 1, column 1 of the 8x8 grid: its peak lands in that cell of the 28x28 image
    r, c = divmod(int(img[1, 0].argmax()), 28)
    assert 3 <= r <= 6 and 3 <= c <= 6
    assert img[3, 0, 27, 27] == 1.0 and img[3, 0].max() == 1.0 and img[3, 0, 0, 0] == 0.0


def test_cochlea_image_matches_torch_bilinear():
    frames = torch.from_numpy(np.random.default_rng(0).poisson(2.0, (5, 1, 64)).astype(np.float32))
    expected = torch.nn.functional.interpolate(frames.reshape(5, 1, 8, 8), size=(28, 28), mode="bilinear",
                                               align_corners=False)
    torch.testing.assert_close(m.cochlea_image(frames), expected)


def test_random_crop_padded_moves_content_with_zero_fill():
    x = torch.ones(3, 2, 28, 28)
    outs = [m.random_crop_padded(x, np.random.default_rng(s)) for s in range(20)]
    assert all(o.shape == x.shape for o in outs)
    assert any(o.sum() < x.sum() for o in outs)  # some crops include padding
    assert all(torch.equal(o[0], o[2]) for o in outs)  # one offset for all time steps


@pytest.mark.parametrize("key, expected", [("man-ae-a-z", 0), ("woman-xy-b-7", 7), ("man-ae-a-o", "oh"),
                                           ("man-ae-a-1z3", "multi_digit"), ("5", 5)])
def test_parse_digit_label(key, expected):
    assert m.parse_digit_label(key) == expected


def test_parse_digit_label_rejects_garbage():
    with pytest.raises(DatasetError, match="cannot parse the N-TIDIGITS label 'man-ae-a-x'"):
        m.parse_digit_label("man-ae-a-x")


# ---------------------------------------------------------------------------------------------------- dataset


def test_items_shapes_labels_and_pairing(mnist_root):
    ds = MnistDvsNTidigits(mnist_root, "train", time_steps=8, n_per_split=2)
    assert len(ds) == 20 and ds.labels == [c for c in range(10) for _ in range(2)]
    assert ds.skipped == {"oh": 1, "multi_digit": 2}
    for i in (0, 7, 19):
        audio, visual, label = ds[i]
        assert audio.shape == (8, 1, 28, 28) and visual.shape == (8, 2, 28, 28) and label == i // 2
        assert audio.dtype == visual.dtype == torch.float32
        # audio: the digit's cochlea channel carries every spike
        raw = m.cochlea_frames(*m.read_ntidigits(ds._file(), "train", ds.pair(i)[1], ds.ntidigits_file), 8)
        assert raw[:, 0, rf.audio_channel(label)].sum() == raw.sum() > 0
        # visual: events only in the digit's 28-px column (give or take the random crop's shift)
        counts = visual * m.MNIST_STD + m.MNIST_MEAN
        cols = torch.nonzero(counts.sum(dim=(0, 1, 2)) > 0.5).flatten().tolist()
        expected = rf.digit_column(label) * 28 // 128
        assert cols and all(abs(c - expected) <= 4 for c in cols)


def test_test_split_is_unaugmented_and_normalised(mnist_root):
    ds = MnistDvsNTidigits(mnist_root, "test", time_steps=4, n_per_split=2)
    _, visual, label = ds[6]
    counts = visual * m.MNIST_STD + m.MNIST_MEAN
    cols = torch.nonzero(counts.sum(dim=(0, 1, 2)) > 0.5).flatten().tolist()
    assert cols == [rf.digit_column(label) * 28 // 128]
    assert torch.isclose(visual.min(), torch.tensor(-m.MNIST_MEAN / m.MNIST_STD))
    assert counts.sum().round() == 64  # every event of the recording is counted once


def test_split_is_seeded_disjoint_and_audio_is_tiled(mnist_root):
    train = MnistDvsNTidigits(mnist_root, "train", n_per_split=2, seed=42)
    test = MnistDvsNTidigits(mnist_root, "test", n_per_split=2, seed=42)
    for d in range(10):
        assert not set(train.visual_files[d]) & set(test.visual_files[d])
        assert len(set(train.visual_files[d]) | set(test.visual_files[d])) == 4
    again = MnistDvsNTidigits(mnist_root, "train", n_per_split=2, seed=42)
    assert again.visual_files == train.visual_files
    others = [MnistDvsNTidigits(mnist_root, "train", n_per_split=2, seed=s).visual_files for s in range(4)]
    assert any(o != train.visual_files for o in others)
    # 2 test recordings per digit in the fixture, 2 items: no tiling; 3 train recordings: keys 0, 1
    assert [test.pair(i)[1] for i in (0, 1)] == test.audio_keys[0][:2]
    assert [train.pair(i)[1] for i in (2, 3)] == train.audio_keys[1][:2]


def test_audio_tiles_when_short(tmp_path):
    rf.build_mnist_dvs(tmp_path, per_digit=6, n_events=8)
    rf.build_ntidigits(tmp_path / "n-tidigits.hdf5", {"train": 2, "test": 1})
    ds = MnistDvsNTidigits(tmp_path, "test", time_steps=2, n_per_split=3)
    assert [ds.pair(i)[1] for i in range(3)] == [ds.audio_keys[0][0]] * 3
    train = MnistDvsNTidigits(tmp_path, "train", time_steps=2, n_per_split=3)
    keys = train.audio_keys[4]
    assert [train.pair(12 + j)[1] for j in range(3)] == [keys[0], keys[1], keys[0]]


def test_train_crop_is_seeded_per_epoch(mnist_root):
    ds = MnistDvsNTidigits(mnist_root, "train", time_steps=4, n_per_split=2, seed=1)
    draws = []
    for epoch in range(6):
        ds.set_epoch(epoch)
        draws.append(ds[5][1])
    ds.set_epoch(0)
    torch.testing.assert_close(ds[5][1], draws[0])
    assert any(not torch.equal(draws[0], d) for d in draws[1:])


def test_check_layout_passes(mnist_root):
    check_layout(mnist_root)


def test_bad_arguments(mnist_root):
    with pytest.raises(ConfigError, match="scale must be one of"):
        MnistDvsNTidigits(mnist_root, scale=5)
    with pytest.raises(ConfigError, match="split must be"):
        MnistDvsNTidigits(mnist_root, split="val")
    with pytest.raises(DatasetError, match="has 4 recordings, expected at least 1000 for 500 train \\+ 500 test"):
        MnistDvsNTidigits(mnist_root)


# --------------------------------------------------------------------------------------- missing / malformed


@pytest.fixture
def small(tmp_path):
    rf.build_mnist_dvs(tmp_path, per_digit=2, n_events=8)
    rf.build_ntidigits(tmp_path / "n-tidigits.hdf5", {"train": 1, "test": 1})
    return tmp_path


def test_missing_mnist_dvs_folders(small):
    shutil.rmtree(small / "grabbed_data3" / "scale4")
    with pytest.raises(DatasetError, match=f"MNISTDVS-NTIDIGITS: missing {small / 'grabbed_data3' / 'scale4'} "
                                           f"\\(expected grabbed_data<digit>/scale4/\\*.aedat"):
        check_layout(small)
    with pytest.raises(DatasetError, match=f"missing {small / 'grabbed_data0' / 'scale8'}"):
        MnistDvsNTidigits(small, n_per_split=1, scale=8)


def test_corrupt_recording_is_named(small):
    rec = small / "grabbed_data7" / "scale4" / "mnist_7_scale04_0002.aedat"
    rec.write_bytes(b"PK\x03\x04 a zip, not an aedat")
    with pytest.raises(DatasetError, match=f"cannot parse {rec}"):
        check_layout(small)


def test_missing_or_broken_ntidigits(small):
    h5 = small / "n-tidigits.hdf5"
    with h5py.File(h5, "a") as f:
        del f["test_timestamps"]
    with pytest.raises(DatasetError, match=f"{h5} has no 'test_timestamps'"):
        check_layout(small)
    MnistDvsNTidigits(small, "train", n_per_split=1)  # the train groups are intact
    with h5py.File(h5, "a") as f:
        del f["train_addresses"]["woman-s00-a-4"]
    with pytest.raises(DatasetError, match="lists 'woman-s00-a-4' in train_labels but has no "
                                           "train_addresses/woman-s00-a-4"):
        MnistDvsNTidigits(small, "train", n_per_split=1)
    h5.write_bytes(b"not hdf5")
    with pytest.raises(DatasetError, match=f"cannot open {h5} as HDF5"):
        MnistDvsNTidigits(small, "train", n_per_split=1)
    h5.unlink()
    with pytest.raises(DatasetError, match=f"missing {h5} \\(expected n-tidigits.hdf5"):
        MnistDvsNTidigits(small, "train", n_per_split=1)


def test_class_without_audio_and_bad_channels(tmp_path):
    rf.build_mnist_dvs(tmp_path, per_digit=2, n_events=8)
    h5 = rf.build_ntidigits(tmp_path / "n-tidigits.hdf5", {"train": 1, "test": 1})
    with h5py.File(h5, "a") as f:
        labels = [k for k in f["test_labels"][()] if not k.endswith(b"-z")]
        del f["test_labels"]
        f.create_dataset("test_labels", data=np.array(labels))
        data = f["train_addresses"]["woman-s00-a-6"]
        data[0] = 70
    with pytest.raises(DatasetError, match="has no single-digit 'z' recording in the test split"):
        MnistDvsNTidigits(tmp_path, "test", n_per_split=1)
    with pytest.raises(DatasetError, match="train_addresses/woman-s00-a-6 has channels outside 0..63"):
        MnistDvsNTidigits(tmp_path, "train", n_per_split=1)[6]


# ------------------------------------------------------------------------------------------------------- cache


def test_cache_round_trip(mnist_root, tmp_path):
    plain = MnistDvsNTidigits(mnist_root, "train", time_steps=4, n_per_split=2, seed=3)
    cached = MnistDvsNTidigits(mnist_root, "train", time_steps=4, n_per_split=2, seed=3, cache=tmp_path / "m.h5")
    for i in (0, 11, 19):
        for a, b in zip(plain[i], cached[i]):
            if isinstance(a, torch.Tensor):
                torch.testing.assert_close(a, b)
            else:
                assert a == b
    stamp = (tmp_path / "m.h5").stat().st_mtime_ns
    MnistDvsNTidigits(mnist_root, "train", time_steps=4, n_per_split=2, seed=3, cache=tmp_path / "m.h5")
    assert (tmp_path / "m.h5").stat().st_mtime_ns == stamp
    MnistDvsNTidigits(mnist_root, "train", time_steps=5, n_per_split=2, seed=3, cache=tmp_path / "m.h5")
    assert (tmp_path / "m.h5").stat().st_mtime_ns != stamp  # T changes the binning: rebuilt


def test_pickles_for_dataloader_workers(mnist_root, tmp_path):
    import pickle

    for cache in (None, tmp_path / "w.h5"):
        ds = MnistDvsNTidigits(mnist_root, "test", time_steps=4, n_per_split=2, cache=cache)
        first = ds[3]  # opens the HDF5 handles
        clone = pickle.loads(pickle.dumps(ds))
        for a, b in zip(first[:2], clone[3][:2]):
            torch.testing.assert_close(a, b)


def test_dataloader_workers_reopen_their_handles(mnist_root):
    from torch.utils.data import DataLoader

    ds = MnistDvsNTidigits(mnist_root, "test", time_steps=4, n_per_split=2)
    expected = ds[5][0]  # the parent process opened the N-TIDIGITS file before the workers start
    batches = list(DataLoader(ds, batch_size=4, num_workers=2))
    audio = torch.cat([b[0] for b in batches])
    assert audio.shape == (20, 4, 1, 28, 28)
    assert torch.cat([b[2] for b in batches]).tolist() == ds.labels
    torch.testing.assert_close(audio[5], expected)

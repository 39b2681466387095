"""AV-Digits: determinism, disjoint splits, shapes, balance, the Dataset, and bad input that loses nothing."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from snnav.data.av_digits import generate_av_digits
from snnav.data.av_digits_config import VIEW_NAMES, AVDigitsConfig, plan_splits
from snnav.data.av_digits_file import read_av_digits_info
from snnav.data.datasets import AVDigits, open_dataset, time_first
from snnav.data.digits_visual import load_digit_images
from snnav.errors import ConfigError, DatasetError, OutputError

SMALL = AVDigitsConfig(seed=7, n_train=40, n_test=20, frame_size=32, time_steps=4, n_voices=6)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def small_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("avd") / "small.h5"
    generate_av_digits(path, SMALL, workers=1)
    return path


def test_same_config_gives_the_same_bytes_whatever_the_worker_count(small_file, tmp_path):
    again = tmp_path / "again.h5"
    generate_av_digits(again, SMALL, workers=2)
    assert _sha(again) == _sha(small_file)


def test_another_seed_gives_other_data(small_file, tmp_path):
    other = tmp_path / "other.h5"
    generate_av_digits(other, AVDigitsConfig(**{**SMALL.to_dict(), "seed": 8}), workers=1)
    with h5py.File(small_file) as a, h5py.File(other) as b:
        assert not np.array_equal(a["train/visual_static"][()], b["train/visual_static"][()])


def test_file_records_config_and_version(small_file):
    info = read_av_digits_info(small_file)
    assert info.config == SMALL
    assert info.counts == {"train": 40, "test": 20}
    import snnav

    assert info.snnav_version == snnav.__version__


def test_shapes_and_dtypes(small_file):
    with h5py.File(small_file) as f:
        for split, n in (("train", 40), ("test", 20)):
            g = f[split]
            assert g["visual_static"].shape == (n, 32, 32) and g["visual_static"].dtype == np.uint8
            assert g["visual_events"].shape == (n, 4, 2, 32, 32)
            assert g["audio_spectrogram"].shape == (n, 32, 32) and g["audio_spectrogram"].dtype == np.float32
            assert g["audio_cochlea"].shape == (n, 4, 64)
            assert g["visual_events"][()].sum() > 0 and g["audio_cochlea"][()].sum() > 0
            assert np.isfinite(g["audio_spectrogram"][()]).all()


def test_labels_are_balanced_and_match_their_images(small_file):
    _, image_labels = load_digit_images()
    with h5py.File(small_file) as f:
        for split in ("train", "test"):
            labels = f[split]["label"][()]
            assert np.bincount(labels, minlength=10).tolist() == [len(labels) // 10] * 10
            assert np.array_equal(image_labels[f[split]["image_index"][()]], labels)


def test_no_image_and_no_voice_in_both_splits():
    _, image_labels = load_digit_images()
    cfg = AVDigitsConfig(n_train=5000, n_test=1000, n_voices=100)
    plans = plan_splits(cfg, image_labels)
    assert not set(plans["train"].image_index) & set(plans["test"].image_index)
    assert not set(plans["train"].voice_index) & set(plans["test"].voice_index)
    # and the pools are used: every test digit has several images, and test has about test_voice_frac of voices
    assert len(set(plans["test"].image_index)) > 300
    assert len(set(plans["test"].voice_index)) == 20
    for c in range(10):
        assert len(set(plans["test"].image_index[plans["test"].labels == c])) >= 30


def test_voice_tables_are_disjoint_in_the_written_file(small_file):
    info = read_av_digits_info(small_file)
    with h5py.File(small_file) as f:
        keys = {s: {json.dumps(info.voices[v], sort_keys=True) for v in f[s]["voice_index"][()]} for s in ("train", "test")}
    assert keys["train"] and keys["test"] and not keys["train"] & keys["test"]


@pytest.mark.parametrize("audio_view,visual_view,ca,cv", [("spectrogram", "static", 1, 1), ("cochlea", "events", 1, 2)])
def test_dataset_items_are_time_first(small_file, audio_view, visual_view, ca, cv):
    ds = AVDigits(small_file, "test", audio_view=audio_view, visual_view=visual_view)
    audio, visual, label = ds[3]
    assert audio.shape == (4, ca, 32, 32) and visual.shape == (4, cv, 32, 32)
    assert audio.dtype == visual.dtype == torch.float32
    assert label == int(ds.labels[3]) and len(ds) == 20
    assert ds.channels == {"audio": ca, "visual": cv}
    loader = torch.utils.data.DataLoader(ds, batch_size=5)
    a, v, y = next(iter(loader))
    assert time_first(a).shape == (4, 5, ca, 32, 32) and y.shape == (5,)


def test_static_views_repeat_and_event_views_rebin(small_file):
    static = AVDigits(small_file, "train", time_steps=6)
    a, v, _ = static[0]
    assert a.shape[0] == 6 and torch.equal(a[0], a[5]) and torch.equal(v[0], v[5])
    assert 0.0 <= float(v.min()) and float(v.max()) <= 1.0
    full = AVDigits(small_file, "train", audio_view="cochlea", visual_view="events")
    half = AVDigits(small_file, "train", audio_view="cochlea", visual_view="events", time_steps=2)
    assert torch.equal(half[0][1], full[0][1][0::2] + full[0][1][1::2])  # bins summed in pairs
    with pytest.raises(DatasetError, match="divide"):
        AVDigits(small_file, "train", visual_view="events", time_steps=3)


def test_open_dataset_knows_av_digits_and_rejects_unknown_names(small_file):
    assert len(open_dataset("av-digits", small_file, "test")) == 20
    with pytest.raises(DatasetError, match="known datasets"):
        open_dataset("mnist", small_file, "test")
    with pytest.raises(DatasetError, match="audio view"):
        AVDigits(small_file, "test", audio_view="mel")


def test_config_rejects_bad_values_and_unknown_keys():
    with pytest.raises(ConfigError, match="frame_size"):
        AVDigitsConfig(frame_size=2)
    with pytest.raises(ConfigError, match="unknown AVDigitsConfig keys"):
        AVDigitsConfig.from_dict({"seed": 1, "colour": "red"})


# --- bad input gets a clear error and loses nothing ------------------------------------------------------------


def test_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(DatasetError, match="snnav data make av-digits"):
        read_av_digits_info(tmp_path / "nope.h5")


def test_corrupt_and_truncated_files_are_rejected(small_file, tmp_path):
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"this is not hdf5" * 100)
    with pytest.raises(DatasetError, match="not a readable HDF5"):
        read_av_digits_info(garbage)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(small_file.read_bytes()[: small_file.stat().st_size // 3])
    with pytest.raises(DatasetError):
        AVDigits(truncated, "train")


def test_foreign_and_newer_hdf5_files_are_rejected(small_file, tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(DatasetError, match="not an AV-Digits file"):
        read_av_digits_info(foreign)
    newer = tmp_path / "newer.h5"
    newer.write_bytes(small_file.read_bytes())
    with h5py.File(newer, "r+") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(DatasetError, match="newer"):
        read_av_digits_info(newer)


def test_failed_generation_leaves_an_existing_file_untouched(small_file, tmp_path, monkeypatch):
    out = tmp_path / "keep.h5"
    out.write_bytes(small_file.read_bytes())
    before = _sha(out)

    import snnav.data.av_digits as avd

    def broken(tasks):
        raise RuntimeError("simulated failure in the middle of generation")

    monkeypatch.setattr(avd, "_make_samples", broken)
    with pytest.raises(RuntimeError, match="simulated"):
        generate_av_digits(out, SMALL, workers=1)
    assert _sha(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.h5"]  # no temporary file left behind


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snnav", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_cli_errors_are_one_line_and_keep_existing_files(small_file, tmp_path):
    existing = tmp_path / "existing.h5"
    existing.write_bytes(b"precious")
    r = _cli("data", "make", "av-digits", "--out", str(existing), "--n-train", "10", "--n-test", "10", cwd=tmp_path)
    assert r.returncode == 2 and "--force" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert existing.read_bytes() == b"precious"
    r = _cli("data", "make", "imagenet", "--out", str(tmp_path / "x.h5"), cwd=tmp_path)
    assert r.returncode == 2 and "av-digits" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = _cli("data", "info", str(existing), cwd=tmp_path)
    assert r.returncode == 2 and "not a readable HDF5" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_destination_is_reported(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(OutputError, match="not writable"):
        generate_av_digits(locked / "x.h5", SMALL, workers=1)


def test_destination_that_is_a_folder_is_reported(tmp_path):
    with pytest.raises(OutputError, match="is a folder"):
        generate_av_digits(tmp_path, SMALL, workers=1)


def test_cli_makes_and_describes_a_file(tmp_path):
    out = tmp_path / "cli.h5"
    r = _cli("data", "make", "av-digits", "--out", str(out), "--n-train", "20", "--n-test", "10", "--frame-size", "16",
             "--time-steps", "2", "--voices", "4", "--workers", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "made" in r.stdout and "20 train / 10 test" in r.stdout and " s (" in r.stdout
    r = _cli("data", "info", str(out), cwd=tmp_path)
    assert r.returncode == 0 and "AV-Digits" in r.stdout and "16x16" in r.stdout and "time_steps=2" in r.stdout


def test_the_renamed_steps_flag_still_works_with_one_deprecation_line(tmp_path):
    out = tmp_path / "old.h5"
    r = _cli("data", "make", "av-digits", "--out", str(out), "--n-train", "10", "--n-test", "10", "--frame-size", "16",
             "--steps", "2", "--voices", "4", "--workers", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("--steps is deprecated") == 1 and "use --time-steps" in r.stderr
    assert read_av_digits_info(out).config.time_steps == 2


def test_files_written_with_the_old_n_steps_key_still_read():
    old = {**SMALL.to_dict(), "n_steps": 4}
    del old["time_steps"]
    assert AVDigitsConfig.from_dict(old) == SMALL


def test_destination_under_a_file_is_reported(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot create the folder"):
        generate_av_digits(blocker / "sub" / "x.h5", SMALL, workers=1)
    assert blocker.read_text() == "x"


def test_dataset_pools_frames_to_a_smaller_size(small_file):
    full = AVDigits(small_file, "train", visual_view="events")
    half = AVDigits(small_file, "train", visual_view="events", size=16)
    a_full, v_full, _ = full[2]
    a_half, v_half, _ = half[2]
    assert a_half.shape == (4, 1, 16, 16) and v_half.shape == (4, 2, 16, 16)
    assert float(v_half.sum()) == float(v_full.sum())  # events are summed, none lost
    assert torch.allclose(a_half[0, 0, 0, 0], a_full[0, 0, :2, :2].mean())  # intensities are averaged
    static = AVDigits(small_file, "train", size=8)
    assert static[0][1].shape == (4, 1, 8, 8)
    with pytest.raises(DatasetError, match="must divide"):
        AVDigits(small_file, "train", size=12)


def test_views_packed_by_the_workers_are_the_chunks_h5py_would_store(small_file, tmp_path):
    """The generator's workers compress each view's chunk themselves (`pack_view`): every stored chunk (its bytes and
    filter mask), every other array and every attribute equal those of a file written from the plain arrays through
    h5py's shuffle + gzip filters. (The files' bytes differ only in where HDF5 places the chunks.)"""
    from snnav.data.av_digits_config import SPLITS, plan_splits
    from snnav.data.av_digits_file import write_av_digits

    info = read_av_digits_info(small_file)
    _, image_labels = load_digit_images()
    views = ("visual_static", "visual_events", "audio_spectrogram", "audio_cochlea")
    with h5py.File(small_file) as f:
        arrays = {split: [{name: f[split][name][i] for name in views} for i in range(info.counts[split])]
                  for split in SPLITS}
    plain = tmp_path / "plain.h5"
    write_av_digits(plain, SMALL, plan_splits(SMALL, image_labels), info.voices, arrays)
    with h5py.File(small_file) as a, h5py.File(plain) as b:
        assert dict(a.attrs) == dict(b.attrs)
        for split in SPLITS:
            assert sorted(a[split]) == sorted(b[split])
            for name in ("label", "image_index", "voice_index"):
                assert np.array_equal(a[split][name][()], b[split][name][()])
            for name in views:
                da, db = a[split][name], b[split][name]
                assert (da.dtype, da.shape, da.chunks, da.compression, da.compression_opts, da.shuffle) == \
                    (db.dtype, db.shape, db.chunks, db.compression, db.compression_opts, db.shuffle)
                for i in range(da.shape[0]):
                    offset = (i,) + (0,) * (da.ndim - 1)
                    assert da.id.read_direct_chunk(offset) == db.id.read_direct_chunk(offset), (split, name, i)


def test_a_file_of_some_views_holds_them_with_the_bytes_of_a_full_file(small_file, tmp_path):
    # snnav run stores the two views its training reads; leaving out the cochlea must not move any random draw.
    part = tmp_path / "part.h5"
    generate_av_digits(part, SMALL, workers=2, views=["visual_static", "audio_spectrogram"])
    info = read_av_digits_info(part)
    assert info.views == ("visual_static", "audio_spectrogram") and info.config == SMALL
    assert read_av_digits_info(small_file).views == VIEW_NAMES  # a full file: every view, no attribute
    with h5py.File(small_file) as full, h5py.File(part) as f:
        assert "views" not in full.attrs and json.loads(f.attrs["views"]) == list(info.views)
        for split in ("train", "test"):
            assert sorted(f[split]) == ["audio_spectrogram", "image_index", "label", "visual_static", "voice_index"]
            for name in ("audio_spectrogram", "visual_static", "label", "image_index", "voice_index"):
                assert np.array_equal(f[split][name][()], full[split][name][()]), (split, name)
    a, b = AVDigits(part, "test"), AVDigits(small_file, "test")
    assert torch.equal(a[3][0], b[3][0]) and torch.equal(a[3][1], b[3][1])
    with pytest.raises(DatasetError, match=r"does not hold the audio_cochlea view .*snnav data make av-digits"):
        AVDigits(part, "train", audio_view="cochlea")
    with pytest.raises(ConfigError, match="views must be some of"):
        generate_av_digits(tmp_path / "x.h5", SMALL, workers=1, views=["audio_mfcc"])
    assert not (tmp_path / "x.h5").exists()


def test_cli_makes_a_file_of_some_views_and_says_which(tmp_path):
    out = tmp_path / "views.h5"
    r = _cli("data", "make", "av-digits", "--out", str(out), "--n-train", "20", "--n-test", "10", "--frame-size", "16",
             "--time-steps", "2", "--voices", "4", "--workers", "1", "--views", "audio_spectrogram", "visual_events",
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _cli("data", "info", str(out), cwd=tmp_path)
    assert r.returncode == 0 and "made without audio_cochlea, visual_static" in r.stdout
    r = _cli("data", "make", "av-digits", "--out", str(tmp_path / "y.h5"), "--views", "cochlea", cwd=tmp_path)
    assert r.returncode == 2 and "invalid choice" in r.stderr

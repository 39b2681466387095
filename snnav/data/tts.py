"""Spoken digits from eSpeak NG, a formant text-to-speech engine, called through ctypes.

The ``espeakng-loader`` wheel ships ``libespeak-ng`` and its ``espeak-ng-data`` folder; this module binds the C API
(``speak_lib.h``) directly and synthesizes to memory: ``espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, ...)`` plus a
synth callback that collects the int16 samples. The sample rate is the one ``espeak_Initialize`` returns (22050 Hz
for eSpeak NG's own voices).

Determinism. eSpeak keeps synthesis state in C statics that survive ``espeak_Terminate``/``espeak_Initialize``
(the pitch-flutter phase, the automatic gain, the glottal cycle counter) and draws breath and Klatt noise from
``rand()``. The same word therefore comes out differently depending on what was spoken before it. To make
:func:`synthesize` a pure function of its inputs, every call loads a fresh copy of the library (``dlopen``),
initializes it, seeds both random generators from the word and the voice key, synthesizes, and unloads it again
(``dlclose``). That costs well under a millisecond next to the few milliseconds of synthesis. What is done once per
process, lazily, is locating the library and data and reading the library image into an anonymous in-memory file
(``memfd``) that every load uses, so a copy of ``libespeak-ng`` that some other package has already loaded in this
process can neither share nor keep our state. eSpeak does not free everything at ``espeak_Terminate``: about 1.5-3 KB
per call stays allocated (a few MB per thousand words).

Processes and threads. Calls are serialized by a module lock (eSpeak is global C state). Synchronous mode starts no
threads, so the module works after ``fork`` as well as under ``spawn``; the lock is recreated in a forked child.
"""

from __future__ import annotations

import _ctypes
import ctypes
import logging
import os
import threading
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from snnav.errors import ConfigError, DatasetError
from snnav.records import Record

log = logging.getLogger(__name__)

_INSTALL_HINT = "install it with `pip install espeakng-loader==0.2.4` (it ships libespeak-ng and espeak-ng-data)"

# speak_lib.h constants.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # report errors instead of calling exit()
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4

_RATE_WPM_RANGE = (80, 450)  # eSpeak's documented speed range without libsonic
_PERCENT_RANGE = (0, 100)

# Voices and variants the engine lists but that do not belong in a spoken-digit dataset.
_EXCLUDED_VOICES = {
    "en-shaw": "the Shavian-alphabet voice speaks Latin text sample for sample like `en`: a duplicate",
}
_EXCLUDED_VARIANTS = {
    "fast": "only tunes eSpeak's top speed; below 450 wpm it is sample for sample the plain voice",
}

_TRIM_DB = -40.0  # silence threshold relative to the peak
_TRIM_KEEP_S = 0.010  # silence kept before the first and after the last loud sample


class _Event(ctypes.Structure):
    """``espeak_EVENT``; only passed through, never read."""

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


class _Voice(ctypes.Structure):
    """``espeak_VOICE``; ``languages`` is a byte list of (priority, NUL-terminated name) pairs ending at priority 0."""

    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_void_p), ("identifier", ctypes.c_char_p),
                ("gender", ctypes.c_ubyte), ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte),
                ("xx1", ctypes.c_ubyte), ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class VoiceConfig(Record):
    """One eSpeak voice setting.

    Attributes:
        voice: an English voice name from :func:`list_english_voices`, e.g. ``"en-us"``.
        variant: a variant from :func:`list_variants` (``"f3"``, ``"m1"``, ``"croak"``...), or None for the plain voice.
        rate_wpm: speaking rate in words per minute (80-450).
        pitch: base pitch, 0-100 (50 is the voice's normal pitch).
        pitch_range: pitch range, 0-100 (0 is monotone, 50 normal).
    """

    voice: str
    variant: str | None
    rate_wpm: int
    pitch: int
    pitch_range: int

    def __post_init__(self) -> None:
        if not isinstance(self.voice, str) or not self.voice or "+" in self.voice or " " in self.voice:
            raise ConfigError(f"voice must be a voice name such as 'en-us' (no '+', no spaces), got {self.voice!r}")
        if self.variant is not None and (not isinstance(self.variant, str) or not self.variant
                                         or "+" in self.variant or " " in self.variant):
            raise ConfigError(f"variant must be None or a variant name such as 'f3', got {self.variant!r}")
        for name, (lo, hi) in (("rate_wpm", _RATE_WPM_RANGE), ("pitch", _PERCENT_RANGE),
                               ("pitch_range", _PERCENT_RANGE)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
                raise ConfigError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")

    @property
    def key(self) -> str:
        """A short stable name, e.g. ``"en-us+f3/r150/p60/pr50"``."""
        name = self.voice if self.variant is None else f"{self.voice}+{self.variant}"
        return f"{name}/r{self.rate_wpm}/p{self.pitch}/pr{self.pitch_range}"


def digit_words() -> tuple[str, ...]:
    """The spoken names of the digits 0-9, in label order."""
    return ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


# --------------------------------------------------------------------------------------------------- the engine


class _Engine:
    """Locates the library and data once per process; each :meth:`open` is a fresh load of the library."""

    def __init__(self) -> None:
        try:
            import espeakng_loader  # noqa: PLC0415  (guarded: a missing package becomes a DatasetError with what to do)
        except ImportError as exc:
            raise DatasetError(f"the espeakng_loader package is missing; {_INSTALL_HINT}") from exc
        lib_path = Path(espeakng_loader.get_library_path())
        try:
            data_path = Path(espeakng_loader.get_data_path())
        except RuntimeError as exc:
            raise DatasetError(f"eSpeak NG's data folder is missing ({exc}); reinstall: {_INSTALL_HINT}") from exc
        if not lib_path.is_file() or not (data_path / "phontab").is_file():
            raise DatasetError(f"expected libespeak-ng at {lib_path} and espeak-ng-data at {data_path}, "
                               f"found them incomplete; reinstall: {_INSTALL_HINT}")
        self.data_path = data_path
        self.load_path = self._private_image(lib_path)
        self.samples: list[np.ndarray] = []
        self.callback = _SynthCallback(self._collect)  # kept alive here: the C side holds only the pointer
        log.debug("eSpeak NG library %s (loaded from %s), data %s", lib_path, self.load_path, data_path)

    @staticmethod
    def _private_image(lib_path: Path) -> str:
        """Return a path that loads our own instance of the library (see the module docstring)."""
        if not hasattr(os, "memfd_create"):
            return str(lib_path)
        fd = os.memfd_create("snnav-libespeak-ng")  # close-on-exec, but a forked child inherits it
        with open(lib_path, "rb") as src:
            os.write(fd, src.read())
        path = f"/proc/self/fd/{fd}"
        if not os.path.exists(path):  # no /proc: load the installed file itself
            os.close(fd)
            return str(lib_path)
        return path

    def _collect(self, wav: Any, n: int, _events: Any) -> int:
        if n > 0 and wav:
            self.samples.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0  # 0 = continue synthesis

    def open(self) -> tuple[ctypes.CDLL, int]:
        """Load and initialize a fresh library instance; return it and its sample rate."""
        try:
            lib = ctypes.CDLL(self.load_path, mode=os.RTLD_LOCAL | os.RTLD_NOW)
        except OSError as exc:
            raise DatasetError(f"cannot load libespeak-ng ({exc}); {_INSTALL_HINT}") from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_Voice)]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(self.data_path).encode(),
                                            _INITIALIZE_DONT_EXIT)
        if sample_rate <= 0:
            self.close(lib)
            raise DatasetError(f"espeak_Initialize failed with the data folder {self.data_path}; "
                               f"reinstall: {_INSTALL_HINT}")
        lib.espeak_SetSynthCallback(self.callback)
        return lib, sample_rate

    @staticmethod
    def close(lib: ctypes.CDLL) -> None:
        lib.espeak_Terminate()
        _ctypes.dlclose(lib._handle)  # unmaps it, so the next open starts from pristine statics


_ENGINE: _Engine | None = None
_LOCK = threading.Lock()


def _reset_lock_in_child() -> None:
    global _LOCK
    _LOCK = threading.Lock()  # the parent may have held it while forking


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_in_child)


def _engine() -> _Engine:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Engine()
    return _ENGINE


def _languages(voice: _Voice) -> list[str]:
    names, offset = [], 0
    while voice.languages and ctypes.string_at(voice.languages + offset, 1)[0] != 0:
        name = ctypes.string_at(voice.languages + offset + 1)
        names.append(name.decode())
        offset += 2 + len(name)
    return names


def _list_voices(language: bytes | None) -> list[tuple[str, list[str]]]:
    """(identifier, languages) of the voices eSpeak lists for ``language`` (None = all)."""
    with _LOCK:
        engine = _engine()
        lib, _ = engine.open()
        try:
            spec, name_buf = None, None
            if language is not None:
                name_buf = ctypes.create_string_buffer(language)  # outlives the call below
                spec = _Voice()
                spec.languages = ctypes.cast(name_buf, ctypes.c_void_p)
            voices = lib.espeak_ListVoices(ctypes.byref(spec) if spec is not None else None)
            out = []
            for i in range(10_000):
                if not voices[i]:
                    break
                v = voices[i].contents
                out.append((v.identifier.decode(), _languages(v)))
            return out
        finally:
            engine.close(lib)


@lru_cache(maxsize=1)
def _english_voice_ids() -> dict[str, str]:
    found = {}
    for identifier, languages in _list_voices(None):
        if any(lang == "en" or lang.startswith("en-") for lang in languages):
            name = identifier.rsplit("/", 1)[-1].lower()
            if name not in _EXCLUDED_VOICES:
                found[name] = identifier
    if "en" not in found or "en-us" not in found:
        raise DatasetError(f"expected eSpeak NG's English voices (en, en-us, ...), found {sorted(found)}; "
                           f"reinstall: {_INSTALL_HINT}")
    return dict(sorted(found.items()))


def list_english_voices() -> list[str]:
    """The English voices eSpeak NG's data provides, as lower-case names (``en``, ``en-us``, ``en-gb-x-rp``...)."""
    return list(_english_voice_ids())


@lru_cache(maxsize=1)
def _variants() -> tuple[str, ...]:
    names = {identifier.rsplit("/", 1)[-1] for identifier, _ in _list_voices(b"variant")}
    # A name with a space cannot be written after '+' in a voice name; those files are duplicates of others anyway.
    usable = sorted((n for n in names if " " not in n and n not in _EXCLUDED_VARIANTS), key=str.lower)
    if not usable:
        raise DatasetError(f"expected voice variants in {_engine().data_path / 'voices' / '!v'}, found none; "
                           f"reinstall: {_INSTALL_HINT}")
    return tuple(usable)


def list_variants() -> list[str]:
    """Voice variants (files in ``espeak-ng-data/voices/!v``: m1..m8, f1..f5, croak, klatt, whisper...)."""
    return list(_variants())


def voice_grid(seed: int, n: int) -> list[VoiceConfig]:
    """``n`` distinct voice configurations, a deterministic function of ``seed`` and the installed voice data.

    Voices and variants (None included) are visited in a seeded random order, cycling, so every voice appears about
    ``n / n_voices`` times; rate (120-220 wpm, steps of 5), pitch (20-80) and pitch range (20-80) are drawn at random.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"n must be a positive integer, got {n!r}")
    voices, variants = list_english_voices(), [None, *list_variants()]
    rates, pitches = np.arange(120, 221, 5), np.arange(20, 81)
    capacity = len(voices) * len(variants) * len(rates) * len(pitches) ** 2
    if n > capacity // 2:
        raise ConfigError(f"n={n} is too many distinct voice configurations; use at most {capacity // 2}")
    rng = np.random.default_rng(seed)
    voice_order, variant_order = rng.permutation(len(voices)), rng.permutation(len(variants))
    seen: set[VoiceConfig] = set()
    out: list[VoiceConfig] = []
    while len(out) < n:
        i = len(out)
        cfg = VoiceConfig(voice=voices[voice_order[i % len(voices)]],
                          variant=variants[variant_order[i % len(variants)]],
                          rate_wpm=int(rng.choice(rates)), pitch=int(rng.choice(pitches)),
                          pitch_range=int(rng.choice(pitches)))
        if cfg not in seen:  # a repeat redraws rate and pitch on the next pass
            seen.add(cfg)
            out.append(cfg)
    return out


# --------------------------------------------------------------------------------------------------- synthesis


def _check_voice(cfg: VoiceConfig) -> str:
    ids = _english_voice_ids()
    if cfg.voice not in ids:
        raise ConfigError(f"unknown English voice {cfg.voice!r}; choose one of {list(ids)}")
    if cfg.variant is not None and cfg.variant not in _variants():
        raise ConfigError(f"unknown voice variant {cfg.variant!r}; choose one of list_variants()")
    return ids[cfg.voice] if cfg.variant is None else f"{ids[cfg.voice]}+{cfg.variant}"


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None)


def _seed(word: str, cfg: VoiceConfig) -> int:
    return zlib.crc32(f"{word}|{cfg.key}".encode()) & 0x7FFFFFFF


def _synth_int16(text: bytes, voice_name: str, cfg: VoiceConfig, seed: int) -> tuple[np.ndarray, int]:
    engine = _engine()
    lib, sample_rate = engine.open()
    try:
        if lib.espeak_SetVoiceByName(voice_name.encode()) != _EE_OK:
            raise ConfigError(f"eSpeak NG could not load the voice {voice_name!r}; pick one from list_english_voices()")
        for param, value in ((_PARAM_RATE, cfg.rate_wpm), (_PARAM_VOLUME, 100), (_PARAM_PITCH, cfg.pitch),
                             (_PARAM_RANGE, cfg.pitch_range)):
            if lib.espeak_SetParameter(param, int(value), 0) != _EE_OK:
                raise ConfigError(f"eSpeak NG rejected parameter {param}={value} for {cfg.key}")
        # Breath noise calls libc rand(), Klatt noise eSpeak's own generator: seed both.
        _libc().srand(ctypes.c_uint(seed))
        if hasattr(lib, "espeak_ng_SetRandSeed"):  # eSpeak NG >= 1.52
            lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
        engine.samples = []
        status = lib.espeak_Synth(text, len(text) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if status != _EE_OK:
            raise DatasetError(f"espeak_Synth failed with status {status} for {text!r} in {cfg.key}")
        samples = np.concatenate(engine.samples) if engine.samples else np.zeros(0, np.int16)
        engine.samples = []
        return samples, sample_rate
    finally:
        engine.close(lib)


def _trim(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    if peak == 0.0:
        return wave[:0]
    loud = np.flatnonzero(np.abs(wave) >= peak * 10.0 ** (_TRIM_DB / 20.0))
    keep = int(round(_TRIM_KEEP_S * sample_rate))
    return wave[max(0, loud[0] - keep): min(wave.size, loud[-1] + 1 + keep)]


def synthesize(word: str, cfg: VoiceConfig) -> tuple[np.ndarray, int]:
    """Speak ``word`` with ``cfg``.

    Returns:
        ``(wave, sample_rate)``: float32 mono samples in [-1, 1] (int16 / 32768, at the engine's own level, not
        normalized) with leading and trailing silence below -40 dB of the peak cut to 10 ms; and the sample rate in
        Hz (22050). The same ``(word, cfg)`` gives the same samples, bit for bit, in any process and call order.

    Raises:
        ConfigError: unknown voice or variant, or an empty word.
        DatasetError: the library or its data cannot be loaded, or synthesis produced no sound.
    """
    if not isinstance(word, str) or not word.strip():
        raise ConfigError(f"word must be a non-empty string, got {word!r}")
    if not isinstance(cfg, VoiceConfig):
        raise ConfigError(f"cfg must be a VoiceConfig, got {type(cfg).__name__}")
    voice_name = _check_voice(cfg)
    with _LOCK:
        samples, sample_rate = _synth_int16(word.strip().encode("utf-8"), voice_name, cfg, _seed(word, cfg))
    wave = _trim(samples.astype(np.float32) / np.float32(32768.0), sample_rate)
    if wave.size == 0:
        raise DatasetError(f"eSpeak NG produced silence for {word!r} with {cfg.key}; try another voice")
    return wave, sample_rate

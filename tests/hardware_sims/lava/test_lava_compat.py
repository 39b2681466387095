"""The lava compatibility fix: needed (fails without it), sufficient (lava runs with it), and narrow."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from hardware_sims.lava import compat as lava_compat
from hardware_sims.lava.check import reference_lif, run_lava_check


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not lava_compat.needs_var_model_fix(), reason="Python < 3.11 accepts lava's dataclass defaults")
def test_lava_import_fails_without_the_fix():
    result = _run_python("import lava.proc.lif.process")
    assert result.returncode != 0
    assert "mutable default" in result.stderr and "ByteEncoder" in result.stderr


def test_slayer_import_fails_without_the_placeholder():
    # Without the placeholder, slayer's eager object-detection import needs OpenCV (absent by design).
    result = _run_python(
        """
        import sys
        from hardware_sims.lava import compat as lava_compat  # the package import applies both fixes ...
        del sys.modules[lava_compat.OBJECT_DETECTION_MODULE]  # ... so undo the second one
        import lava.lib.dl.slayer
        """
    )
    assert result.returncode != 0
    assert "cv2" in result.stderr or "torchvision" in result.stderr


def test_lava_and_netx_import_with_the_fix():
    result = _run_python(
        """
        import hardware_sims
        from lava.proc.lif.process import LIF
        import lava.lib.dl.netx as netx
        import dataclasses, lava.magma.compiler.var_model as vm
        # the fix is narrow: only var_model's classes became hashable, the global decorator is restored
        assert vm.ByteEncoder.__hash__ is not None
        assert dataclasses.dataclass.__module__ == "dataclasses"
        @dataclasses.dataclass
        class Elsewhere:
            x: int = 0
        assert Elsewhere.__hash__ is None
        print("OK", netx.hdf5.Network.__name__)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "OK Network" in result.stdout


def test_placeholder_explains_itself():
    lava_compat.apply()
    placeholder = sys.modules[lava_compat.OBJECT_DETECTION_MODULE]
    with pytest.raises(ImportError, match="OpenCV"):
        placeholder.YOLOBase  # noqa: B018


def test_apply_is_idempotent():
    lava_compat.apply()
    lava_compat.apply()
    finders = [f for f in sys.meta_path if isinstance(f, lava_compat._VarModelFinder)]
    assert len(finders) <= 1


@pytest.mark.lava
def test_lava_process_runs_on_loihi2simcfg_and_matches_numpy():
    result = run_lava_check(steps=20, seed=3)
    assert result.lava_spikes.shape == (4, 20)
    assert result.lava_spikes.sum() > 0
    assert result.agree, (result.lava_spikes, result.reference_spikes)


def test_reference_models_the_synaptic_latency():
    # The comparison above is only meaningful if a one-step shift of the input would be detected.
    rng = np.random.default_rng(0)
    inputs = (rng.random((6, 20)) < 0.4).astype(float)
    weights = rng.uniform(-0.5, 1.5, size=(4, 6))
    delayed = reference_lif(inputs, weights, 0.5, 0.25, 2.0)
    undelayed = reference_lif(np.roll(inputs, -1, axis=1), weights, 0.5, 0.25, 2.0)
    assert not np.array_equal(delayed, undelayed)


_AFTER_TQDM = """
    import multiprocessing
    multiprocessing.RLock()  # what tqdm's progress bars do: it fixes the default start method
    assert multiprocessing.get_start_method(allow_none=True) == "fork"
    {fix}
    from lava.proc.lif.process import LIF
    print("imported")
    """


def test_lava_import_fails_after_a_progress_bar_without_the_fix():
    result = _run_python(_AFTER_TQDM.format(fix="from hardware_sims.lava.compat import VAR_MODEL_MODULE"
                                               "; import hardware_sims.lava.compat as c"
                                               "; c.MP_MODULE = 'not-this-one'; c.apply()"))
    assert result.returncode != 0 and "context has already been set" in result.stderr


def test_lava_imports_after_a_progress_bar_with_the_fix():
    result = _run_python(_AFTER_TQDM.format(fix="import hardware_sims"))
    assert result.returncode == 0, result.stderr
    assert "imported" in result.stdout


def test_process_model_search_is_memoised_per_class_and_finds_the_same_models():
    # Fix 4: Lava's compiler searched the process models of every instance afresh (executing each sibling module);
    # with the fix the search runs once per class and answers what the unpatched search answers.
    from lava.magma.compiler.compiler_graphs import ProcGroupDiGraphs
    from lava.proc.dense.process import Dense
    from lava.proc.lif.process import LIF

    search = ProcGroupDiGraphs._find_proc_models
    assert getattr(search, "_snnav_memoised", False)
    calls = []

    def counting(proc):
        calls.append(type(proc))
        return original(proc)

    original = search.__wrapped__  # lava's own search
    memo_search = lava_compat.memoised_model_search(counting)
    procs = [LIF(shape=(3,)), LIF(shape=(5,)), Dense(weights=np.eye(3)), Dense(weights=np.eye(4))]
    answers = [memo_search(p) for p in procs]
    assert calls == [LIF, Dense]  # once per class
    for proc, got in zip(procs, answers):
        assert got == original(proc) and got  # the same models, in the same order
    answers[0].clear()  # the compiler may change the list it gets: the memo is not affected
    assert memo_search(procs[1]) == original(procs[1])


CONV_CASES = [  # (input XYC shape, weight (out, x, y, in / groups) shape, stride, padding, dilation, groups)
    ((9, 7, 3), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((10, 8, 4), (6, 3, 2, 2), (2, 1), (0, 1), (1, 1), 2),
    ((11, 11, 2), (2, 3, 3, 1), (2, 2), (1, 1), (2, 2), 2),  # depthwise, dilated
    ((8, 8, 8), (8, 3, 3, 1), (2, 2), (1, 1), (1, 1), 8),  # a pooling layer as the backend builds it
    ((5, 5, 6), (3, 1, 1, 6), (1, 1), (0, 0), (1, 1), 1),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
@pytest.mark.parametrize("message", ["spikes", "graded"])
def test_integer_conv_is_lavas_conv_bit_for_bit(case, message):
    # Fix 5: integer weights (Lava's fixed-point Conv model) go through one matrix product instead of conv_scipy's
    # per-channel-pair loops; the integers must be exactly conv_scipy's.
    import lava.proc.conv.utils as conv_utils

    assert getattr(conv_utils.conv, "_snnav_integer", False)  # installed by the import
    in_shape, w_shape, stride, padding, dilation, groups = case
    rng = np.random.default_rng(len(in_shape) + sum(w_shape))
    if message == "spikes":
        x = rng.random(in_shape) < 0.4  # Lava's Conv receives spikes as booleans
    else:
        x = rng.integers(-(2**16), 2**16, size=in_shape).astype(np.int32)  # graded messages (sums within int32)
    w = rng.integers(-128, 128, size=w_shape).astype(np.int32)
    args = (np.array(w_shape[1:3]), np.array(stride), np.array(padding), np.array(dilation), groups)
    want = conv_utils.conv_scipy(x, w, *args).astype(w.dtype)  # what lava's own conv returns without torch
    got = conv_utils.conv(x, w, *args)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert np.count_nonzero(want) > want.size // 2


def test_float_weights_still_use_lavas_own_convolution():
    calls = []

    def original(*args):
        calls.append(args)
        return "lava's"

    conv = lava_compat.integer_conv(original)
    x, w = np.ones((4, 4, 1)), np.ones((1, 3, 3, 1))
    assert conv(x, w, (3, 3), (1, 1), (1, 1), (1, 1), 1) == "lava's" and len(calls) == 1
    assert conv(x, w.astype(np.int32), (3, 3), (1, 1), (1, 1), (1, 1), 1).dtype == np.int32 and len(calls) == 1
    # channels not divisible by the groups: lava's own error, from lava's own code
    assert conv(x, w.astype(np.int32), (3, 3), (1, 1), (1, 1), (1, 1), 2) == "lava's" and len(calls) == 2

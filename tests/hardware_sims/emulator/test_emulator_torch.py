"""The emulator on torch tensors (``emulate(..., device=...)``, `hardware_sims.emulator.torch_procs`) against the
numpy emulator (which equals Lava bit for bit, ``test_emulator.py``): fixed point identical in every record, float
spike for spike; on the CPU here, on CUDA when there is one (``gpu``). Also: the emulator path imports no Lava, and
the profile accounts for the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from test_emulator import CASES, _case, small_model_case, spiking

import hardware_sims  # noqa: F401  (lava compatibility fixes before any lava import)
from hardware_sims.emulator import emulate, with_membrane_readouts
from hardware_sims.plan import build_plan

REPO = Path(__file__).resolve().parents[3]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def assert_same(ref, got, plan, fixed: bool) -> None:
    assert set(ref.records) == set(got.records)
    for name, x in ref.records.items():
        y = got.records[name]
        if fixed or spiking(plan, name):
            np.testing.assert_array_equal(y, x, err_msg=name)
        else:
            np.testing.assert_allclose(y, x, rtol=0, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("precision", ["fixed", "float"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_torch_equals_numpy_on_the_small_graphs(name, precision, device):
    _, plan, inputs = _case(name)
    ref = emulate(plan, inputs, precision=precision)
    got = emulate(plan, inputs, precision=precision, device=device)
    assert_same(ref, got, plan, precision == "fixed")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("precision", ["fixed", "float"])
def test_torch_equals_numpy_on_a_model_export(precision, device):
    """S-CMRL's small export: convs, pools, sparse and dense synapses, delays, attention and fusion extensions; the
    membranes of every spiking layer and the state of two layers included."""
    graph, inputs = small_model_case("scmrl")
    plan = with_membrane_readouts(build_plan(graph))
    state = [p.node for p in plan.of_kind("neuron") if p.spiking][:2]
    ref = emulate(plan, inputs, precision=precision, record_state=state, batch_size=1)
    got = emulate(plan, inputs, precision=precision, record_state=state, device=device)
    assert_same(ref, got, plan, precision == "fixed")
    assert any(ref.records[n].any() for n in ref.records if spiking(plan, n))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["av-add", "spikformer-audio", "weight-attention"])
def test_torch_equals_numpy_on_more_model_exports(name):
    from snnav.models import list_models

    if name not in list_models():
        pytest.skip(f"{name} is not a registered model")
    graph, inputs = small_model_case(name)
    plan = with_membrane_readouts(build_plan(graph))
    assert_same(emulate(plan, inputs), emulate(plan, inputs, device="cpu"), plan, True)


def test_graded_products_beyond_float_take_the_exact_host_path():
    """A graded synapse whose worst-case sum exceeds float64's integers runs in int64 on the host: still equal."""
    import dataclasses

    from test_emulator import _chain_graph

    from hardware_sims.emulator.procs import SynapseEmu
    from hardware_sims.emulator.torch_procs import TorchSynapseEmu

    rng = np.random.default_rng(0)
    spec = dataclasses.replace(build_plan(_chain_graph(rng, [40, 5], False)).processes["w0"], graded_in=True)
    args = {"weights": rng.integers(-256, 255, (5, 40)), "weight_exp": 3, "sign_mode": None}
    ref, got = SynapseEmu(spec, True, args), TorchSynapseEmu(spec, True, args, torch.device("cpu"))
    for peak in (2**10, 2**23, 2**31 - 1):
        x = rng.integers(-peak, peak, (3, 40)).astype(np.int32)
        np.testing.assert_array_equal(got.step(torch.from_numpy(x)).numpy(), ref.step(x))


@pytest.mark.parametrize("device", [None, "cpu"])
def test_profile_accounts_for_the_run(device):
    graph, inputs = small_model_case("scmrl")
    result = emulate(graph, inputs, record=False, profile=True, device=device)
    prof = {k: v for k, v in result.timing.items() if k.startswith("profile:")}
    assert {"profile:synapse:conv", "profile:neuron", "profile:delay", "profile:input"} <= set(prof)
    assert any(k.startswith("profile:extension:snnav.") for k in prof)
    assert 0 < sum(prof.values()) <= result.timing["run_s"]
    assert not any(k.startswith("profile:") for k in emulate(graph, inputs, record=False).timing)


def test_the_emulator_path_imports_no_lava(tmp_path):
    """With every ``lava`` import refused, a graph with extension nodes is planned, quantized and emulated (numpy
    and torch), identically to this process's run."""
    from export.ir.nirfile import write_graph

    graph, inputs = small_model_case("scmrl")
    write_graph(tmp_path / "g.nir", graph)
    np.savez(tmp_path / "x.npz", **inputs)
    want = emulate(graph, inputs, record=False).readout()
    script = textwrap.dedent(f"""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "lava" or name.startswith("lava."):
                    raise ImportError("lava is not installed here: " + name)
        sys.meta_path.insert(0, Block())
        import numpy as np
        from hardware_sims.emulator import emulate
        x = dict(np.load({str(tmp_path / "x.npz")!r}))
        a = emulate({str(tmp_path / "g.nir")!r}, x, record=False).readout()
        b = emulate({str(tmp_path / "g.nir")!r}, x, record=False, device="cpu").readout()
        c = emulate({str(tmp_path / "g.nir")!r}, x, precision="float", record=False).readout()
        np.save({str(tmp_path / "out.npy")!r}, np.stack([a, b]))
        real = sorted(m for m in sys.modules if m.split(".")[0] == "lava" and getattr(sys.modules[m], "__file__", None))
        assert not real, real
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = np.load(tmp_path / "out.npy")
    np.testing.assert_array_equal(a, want)
    np.testing.assert_array_equal(b, want)

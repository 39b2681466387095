"""The fast-runtime process settings: what they do, that the commands apply them, and that they can be turned off.

The settings are process-wide, so they are checked in fresh interpreters (this test process keeps them off, see
tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from snnav.app.commands import run as cli_run
from snnav.app.commands import simulate as cli_simulate
from snnav.app.commands import train as cli_train
from snnav.training import runtime

REPO = Path(__file__).resolve().parents[3]

PROBE = r"""
import json, sys
from snnav.training.runtime import apply_runtime_settings
settings = apply_runtime_settings(None if sys.argv[1] == "default" else False)
import torch
torch.set_num_threads(2)
x = torch.full((1 << 20,), 1e-39)          # subnormal in float32; 2^20 elements: split over both threads
y = x * 1.5
print(json.dumps({"settings": settings.to_dict(), "zeros": int((y == 0).sum()), "n": y.numel()}))
"""


def probe(mode: str, env_value: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != runtime.ENV_VAR}
    if env_value is not None:
        env[runtime.ENV_VAR] = env_value
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=env, check=True,
                         timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc and x86 FTZ/DAZ")
def test_settings_apply_in_every_thread_by_default():
    result = probe("default", None)
    assert result["settings"]["requested"] and result["settings"]["malloc_tuned"]
    if result["settings"]["flush_denormal"]:  # x86 with SSE3: every thread of the pool flushes
        assert result["zeros"] == result["n"]


def test_settings_can_be_turned_off():
    result = probe("default", "0")
    assert result["settings"] == {"requested": False, "malloc_tuned": False, "flush_denormal": False,
                                  "note": f"{runtime.ENV_VAR}=0"}
    assert result["zeros"] == 0  # subnormals kept


@pytest.mark.parametrize("flag, env_value, expected", [
    (False, None, (False, "--no-fast-runtime")), (None, None, (True, "")), (True, "1", (True, "")),
    (None, "0", (False, "SNNAV_FAST_RUNTIME=0")), (True, "off", (False, "SNNAV_FAST_RUNTIME=off")),
    (None, "False", (False, "SNNAV_FAST_RUNTIME=False")), (False, "1", (False, "--no-fast-runtime")),
])
def test_flag_and_env_var(flag, env_value, expected, monkeypatch):
    if env_value is None:
        monkeypatch.delenv(runtime.ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(runtime.ENV_VAR, env_value)
    assert runtime.fast_runtime_enabled(flag) == expected
    if not expected[0]:
        assert runtime.apply_runtime_settings(flag) == runtime.RuntimeSettings(False, False, False, expected[1])


@pytest.mark.parametrize("module, argv", [
    (cli_train, ["--out", "{tmp}/run", "--model", "no-such-model"]),
    (cli_simulate, ["{tmp}/missing.nir", "--samples", "0"]),
    (cli_run, ["--workdir", "{tmp}/w", "--gpu-measurement", "{tmp}/missing.json"]),
])
@pytest.mark.parametrize("flag", [False, True])
def test_commands_apply_the_settings_first(module, argv, flag, tmp_path, monkeypatch):
    import argparse

    calls = []
    monkeypatch.setattr(runtime, "apply_runtime_settings", lambda enabled=None: calls.append(enabled))
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    assert "--no-fast-runtime" in parser.format_help()
    args = parser.parse_args([a.format(tmp=tmp_path) for a in argv] + (["--no-fast-runtime"] if flag else []))
    with pytest.raises(Exception):  # each argv fails right after the settings, before any real work
        module.run(args)
    assert calls == [not flag]


EQUIVALENCE = r"""
import sys
from snnav.training.runtime import apply_runtime_settings
assert apply_runtime_settings(True).requested
import torch
torch.set_num_threads(2)
from snnav.models import create_model
cfg = dict(num_classes=5, embed_dim=32, num_heads=4, in_channels_audio=1, in_channels_visual=2, stem="sps")
for dtype in (torch.float32, torch.float64):
    gen = torch.Generator().manual_seed(7)
    audio = (torch.rand(4, 3, 1, 32, 32, generator=gen) * 3).to(dtype)
    visual = (torch.rand(4, 3, 2, 32, 32, generator=gen) * 3).to(dtype)
    torch.manual_seed(0)
    ref = create_model("scmrl", fused=False, **cfg).to(dtype)
    opt = create_model("scmrl", fused=True, **cfg).to(dtype)
    opt.load_state_dict(ref.state_dict())
    results = []
    for model in (ref, opt):
        out = model(audio, visual)
        w = torch.randn(out.logits.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
        ((out.logits * w).sum() + out.align_audio.sum() - out.align_visual.sum()).backward()
        results.append((out, {n: p.grad for n, p in model.named_parameters()}))
    (o1, g1), (o2, g2) = results
    assert torch.equal(o1.logits, o2.logits) and torch.equal(o1.align_audio, o2.align_audio)
    assert any(g is not None and g.any() for g in g1.values())
    for name, g in g1.items():
        assert (g is None and g2[name] is None) or torch.equal(g, g2[name]), name
print("identical")
"""


@pytest.mark.slow
def test_optimized_path_stays_identical_under_the_settings():
    # The equality tests run without the settings (this process); `snnav train` runs with them.
    env = {k: v for k, v in os.environ.items() if k != runtime.ENV_VAR}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, "-c", EQUIVALENCE], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("identical")

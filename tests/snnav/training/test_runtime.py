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

from snnav import cli_run, cli_simulate, cli_train
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


@pytest.mark.parametrize("mode, env_value", [("off", None), ("default", "0"), ("default", "off")])
def test_settings_can_be_turned_off(mode, env_value):
    result = probe(mode, env_value)
    assert result["settings"] == {"requested": False, "malloc_tuned": False, "flush_denormal": False,
                                  "note": "--no-fast-runtime" if mode == "off" else f"{runtime.ENV_VAR}={env_value}"}
    assert result["zeros"] == 0  # subnormals kept


def test_env_var_and_flag():
    assert runtime.fast_runtime_enabled(False) == (False, "--no-fast-runtime")
    assert runtime.fast_runtime_enabled(None)[0] is (os.environ.get(runtime.ENV_VAR) not in ("0", "false", "no", "off"))


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

"""The wheel is complete: built from this tree, installed into a fresh virtual environment, run from another folder.

The fresh environment gets the project's stack (torch, lava, ...) from the environment running the tests through a
path entry, so the test installs only what the wheel carries: snnav, export and hardware_sims with their package data
(shipped configs, cost models, specs). It catches a default config or cost model that is read from the source tree
instead of from the installed package.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory):
    """(python, snnav, env, workdir) of a fresh venv holding only the wheel (+ the stack through a path entry)."""
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "dist"),
          str(REPO)], cwd=tmp, env=env)
    wheels = list((tmp / "dist").glob("snnav-*.whl"))
    assert len(wheels) == 1, wheels
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp, env=env)
    python = venv / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp,
                        env=env).stdout.strip())
    stack = [p for p in site.getsitepackages() + [sysconfig.get_paths()["purelib"]] if Path(p).is_dir()]
    (purelib / "zz_snnav_test_stack.pth").write_text("\n".join(dict.fromkeys(stack)) + "\n")
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheels[0])], cwd=tmp, env=env)
    work = tmp / "elsewhere"
    work.mkdir()
    return python, venv / "bin" / "snnav", env, work


def test_the_installed_package_is_the_wheel(fresh_env):
    python, _, env, work = fresh_env
    out = _run([str(python), "-c", "import snnav, export, hardware_sims; print(snnav.__file__, export.__file__, "
                "hardware_sims.__file__)"], cwd=work, env=env).stdout
    assert str(REPO) not in out and out.count("site-packages") == 3, out


def test_help_and_info_run_from_another_folder(fresh_env):
    _, snnav, env, work = fresh_env
    assert "COMMAND" in _run([str(snnav), "--help"], cwd=work, env=env).stdout
    for command in ("run", "train", "export", "simulate", "report", "info", "data"):
        _run([str(snnav), command, "--help"], cwd=work, env=env)
    info = _run([str(snnav), "info"], cwd=work, env=env).stdout
    assert "IMPORT FAILED" not in info, info


def test_the_main_job_default_config_and_cost_models_load_from_the_wheel(fresh_env):
    python, _, env, work = fresh_env
    code = (
        "from snnav.app.commands.run import DEFAULT_TRAIN_CONFIG\n"
        "from snnav.training.config import load_config, packaged_configs\n"
        "assert 'site-packages' in str(DEFAULT_TRAIN_CONFIG), DEFAULT_TRAIN_CONFIG\n"
        "cfg = load_config(DEFAULT_TRAIN_CONFIG)\n"
        "assert load_config('av-digits-scmrl') == cfg\n"
        "assert 'urbansound8k-av' in packaged_configs()\n"
        "from hardware_sims.cost.energy import available_cost_models, builtin_cost_model\n"
        "names = available_cost_models()\n"
        "assert names, names\n"
        "print(cfg.model, sorted(m['name'] for m in names))\n"
        "import export, pathlib\n"
        "assert (pathlib.Path(export.__file__).parent / 'EXTENSIONS.md').is_file()\n"
    )
    out = _run([str(python), "-c", code], cwd=work, env=env).stdout
    assert out.startswith("scmrl"), out

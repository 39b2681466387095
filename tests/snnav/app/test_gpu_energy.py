"""GPU energy measurement: the no-GPU path, the arithmetic against a fake counter and clock, and a real CUDA run."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import types
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from snnav.app import gpu_energy
from snnav.app.gpu_energy import (
    METHOD,
    POLL_S,
    GPUInfo,
    GPUMeasurement,
    GPUUnavailableError,
    IdlePower,
    gpu_available,
    measure_idle_power,
    measure_inference,
)

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "measure_gpu.py"


class FakeGPU:
    """A clock and an energy counter that advance together: idle at ``idle_w``, ``busy_w`` while a call runs.

    The counter refreshes only every ``refresh_s`` (0: continuously), like NVML's. ``events`` logs syncs, counter
    reads and calls in order.
    """

    def __init__(self, idle_w: float = 50.0, busy_w: float = 200.0, call_s: float = 0.3, refresh_s: float = 0.0):
        self.idle_w, self.busy_w, self.call_s, self.refresh_s = idle_w, busy_w, call_s, refresh_s
        self.t = 0.0
        self.energy_j = 0.0
        self.snapshot = (0.0, 0.0)  # (time, energy) of the last refresh
        self.events: list[str] = []

    def _advance(self, seconds: float, power_w: float) -> None:
        end = self.t + seconds
        if self.refresh_s:
            while (self.snapshot[0] + self.refresh_s) <= end:  # refreshes inside this interval
                at = self.snapshot[0] + self.refresh_s
                self.snapshot = (at, self.energy_j + power_w * (at - self.t))
        self.energy_j += power_w * seconds
        self.t = end
        if not self.refresh_s:
            self.snapshot = (self.t, self.energy_j)

    def clock(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self._advance(seconds, self.idle_w)

    def call(self) -> None:
        self.events.append("call")
        self._advance(self.call_s, self.busy_w)

    def sync(self) -> None:
        self.events.append("sync")

    def read_mj(self) -> float:
        self.events.append("read")
        return self.snapshot[1] * 1e3


def _idle(power_w: float = 50.0, refresh_s: float | None = 0.05) -> IdlePower:
    return IdlePower(power_w=power_w, energy_j=2 * power_w, window_s=2.0, counter_refresh_s=refresh_s, device_index=0)


def _measure(gpu: FakeGPU, samples_per_call: int = 8, **kw) -> GPUMeasurement:
    kw.setdefault("idle", _idle(gpu.idle_w))
    return measure_inference(gpu.call, samples_per_call, counter=gpu, clock=gpu.clock, synchronize=gpu.sync,
                             sleep=gpu.sleep, **kw)


def _load_script():
    spec = importlib.util.spec_from_file_location("measure_gpu_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- no GPU ---------------------------------------------------------------------------------------------------------

def test_cpu_only_torch_is_a_clear_reason(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    ok, why = gpu_available()
    assert not ok and "CPU-only" in why


def test_no_visible_gpu_is_a_clear_reason(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ok, why = gpu_available()
    assert not ok and "sees no CUDA GPU" in why


def _pretend_cuda(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: types.SimpleNamespace(uuid="0000-fake"))


def test_missing_nvml_bindings_name_the_package(monkeypatch):
    _pretend_cuda(monkeypatch)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    ok, why = gpu_available()
    assert not ok and "nvidia-ml-py" in why
    with pytest.raises(GPUUnavailableError, match="nvidia-ml-py"):
        measure_idle_power(0, 1.0)


def test_gpu_without_energy_counter_is_a_clear_reason(monkeypatch):
    _pretend_cuda(monkeypatch)

    class NVMLError(Exception):
        pass

    shutdowns = []
    fake = types.SimpleNamespace(
        NVMLError=NVMLError, nvmlInit=lambda: None, nvmlShutdown=lambda: shutdowns.append(1),
        nvmlDeviceGetHandleByUUID=lambda uuid: uuid, nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetTotalEnergyConsumption=lambda h: (_ for _ in ()).throw(NVMLError("Not Supported")),
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    ok, why = gpu_available()
    assert not ok and "energy counter" in why and "Not Supported" in why
    assert shutdowns == [1]  # NVML is shut down again


def test_script_without_gpu_exits_2_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from snnav.app import gpu_measure

    script = _load_script()
    monkeypatch.setattr(gpu_measure, "gpu_available", lambda device=0: (False, "torch is a CPU-only build (test)"))
    out = tmp_path / "new" / "gpu.json"
    code = script.main(["--run", str(tmp_path / "run"), "--model", str(tmp_path / "m.nir"), "--data",
                        str(tmp_path / "d.h5"), "--out", str(out)])
    assert code == 2
    assert not out.parent.exists()
    err = capsys.readouterr().err
    assert "CPU-only build (test)" in err and "h100-calibrated" in err and "Nothing was written" in err


# --- arithmetic ---------------------------------------------------------------------------------------------------

def test_per_sample_and_dynamic_energy():
    gpu = FakeGPU(idle_w=50.0, busy_w=200.0, call_s=0.3)
    m = _measure(gpu, samples_per_call=8, min_window_s=1.0, warmup=2)
    assert m.calls == 4 and m.samples == 32  # 0.3, 0.6, 0.9 < 1.0 <= 1.2
    assert m.window_s == pytest.approx(1.2)
    assert m.energy_j == pytest.approx(240.0)  # 200 W x 1.2 s; the warm-up calls are outside the window
    assert m.wall_s_per_sample == pytest.approx(1.2 / 32)
    assert m.samples_per_s == pytest.approx(32 / 1.2)
    assert m.mean_power_w == pytest.approx(200.0)
    assert m.energy_j_per_sample == pytest.approx(7.5)
    assert m.dynamic_energy_j_per_sample == pytest.approx((240.0 - 50.0 * 1.2) / 32)
    assert m.idle_power_w == 50.0 and m.warmup == 2
    assert m.aligned and m.relative_uncertainty == pytest.approx(2 * POLL_S / 1.2)
    assert m.method == METHOD and "20-100 ms" in m.caveat


def test_counter_is_read_after_a_synchronize_at_both_ends():
    gpu = FakeGPU()
    _measure(gpu, warmup=1)
    trace = "".join(e[0] for e in gpu.events)  # c(all), s(ync), r(ead)
    # warm-up; sync; wait for a refresh (reads); the window's calls; sync; wait for the closing refresh
    assert re.fullmatch(r"csr+c+sr+", trace), trace


def test_window_ends_at_counter_refreshes_so_a_slow_counter_costs_no_accuracy():
    gpu = FakeGPU(idle_w=50.0, busy_w=200.0, call_s=0.3, refresh_s=0.1)  # like an H100: a refresh every 100 ms
    m = _measure(gpu, samples_per_call=8, min_window_s=1.0, warmup=1)
    assert m.aligned and m.calls == 4
    assert m.window_s == pytest.approx(1.2, abs=2 * POLL_S)
    # read naively, each end could be off by 0.1 s x 200 W = 20 J of 240 J
    assert m.energy_j == pytest.approx(240.0, abs=2 * POLL_S * 200.0)
    assert m.dynamic_energy_j_per_sample == pytest.approx((240.0 - 50.0 * 1.2) / 32, rel=1e-2)


def test_a_counter_that_never_refreshes_is_read_unaligned():
    gpu = FakeGPU(refresh_s=1e9)
    m = _measure(gpu, min_window_s=1.0, warmup=0, idle=_idle(refresh_s=0.1))
    assert not m.aligned
    assert m.relative_uncertainty == pytest.approx(2 * 0.1 / m.window_s)


@settings(max_examples=50, deadline=None)
@given(call_s=st.floats(0.001, 3.0), min_window_s=st.floats(1.0, 5.0), batch=st.integers(1, 256))
def test_window_is_the_shortest_whole_number_of_calls_at_least_the_minimum(call_s, min_window_s, batch):
    gpu = FakeGPU(call_s=call_s)
    m = _measure(gpu, samples_per_call=batch, min_window_s=min_window_s, warmup=0)
    assert m.window_s >= min_window_s
    assert m.calls == 1 or (m.calls - 1) * call_s < min_window_s * (1 + 1e-9)
    assert m.window_s == pytest.approx(m.calls * call_s)
    assert m.wall_s_per_sample * m.samples == pytest.approx(m.window_s)
    assert m.energy_j == pytest.approx(gpu.busy_w * m.window_s)


def test_idle_power_and_counter_refresh_from_a_quantised_counter():
    gpu = FakeGPU(idle_w=60.0, refresh_s=0.05)
    idle = measure_idle_power(0, 2.0, counter=gpu, clock=gpu.clock, sleep=gpu.sleep, synchronize=gpu.sync)
    assert idle.window_s >= 2.0
    assert idle.power_w == pytest.approx(60.0, rel=2e-3)  # whole refresh intervals, ends known to one poll
    assert idle.counter_refresh_s == pytest.approx(0.05, abs=2 * POLL_S)
    assert idle.energy_j == pytest.approx(idle.power_w * idle.window_s)


def test_idle_is_measured_first_when_not_given():
    gpu = FakeGPU(idle_w=40.0, busy_w=100.0, call_s=0.5)
    m = measure_inference(gpu.call, 2, counter=gpu, clock=gpu.clock, synchronize=gpu.sync, sleep=gpu.sleep,
                          min_window_s=1.0, warmup=0)
    assert m.idle_power_w == pytest.approx(40.0)
    assert m.dynamic_energy_j_per_sample == pytest.approx((100.0 - 40.0) * m.window_s / m.samples)


def test_bad_arguments_are_rejected():
    gpu = FakeGPU()
    with pytest.raises(ValueError, match=">= 1.0 s"):
        _measure(gpu, min_window_s=0.5)
    with pytest.raises(ValueError, match="n_samples_per_call"):
        _measure(gpu, samples_per_call=0)
    with pytest.raises(ValueError, match="warmup"):
        _measure(gpu, warmup=-1)
    with pytest.raises(ValueError, match=">= 1.0 s"):
        measure_idle_power(0, 0.2, counter=gpu, clock=gpu.clock, sleep=gpu.sleep, synchronize=gpu.sync)


def test_counter_going_backwards_is_an_error():
    gpu = FakeGPU()
    values = iter([5000.0, 5001.0, 1000.0, 999.0])  # a refresh at each end, the second after a reload

    class Resetting:
        def read_mj(self):
            return next(values)

    with pytest.raises(GPUUnavailableError, match="backwards"):
        measure_inference(gpu.call, 1, counter=Resetting(), clock=gpu.clock, synchronize=gpu.sync, idle=_idle(),
                          warmup=0)


def test_records_round_trip_through_json():
    gpu = FakeGPU()
    m = _measure(gpu)
    assert GPUMeasurement.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    idle = _idle(refresh_s=None)
    assert IdlePower.from_dict(json.loads(json.dumps(idle.to_dict()))) == idle
    info = GPUInfo("GPU", "GPU-1", 700.0, "580", "13.580", "13.0", "2.11", "3.12", 0, "host")
    assert GPUInfo.from_dict(info.to_dict()) == info


# --- a real GPU -----------------------------------------------------------------------------------------------------

@pytest.mark.gpu
def test_measures_a_matmul_on_cuda():
    ok, why = gpu_available(0)
    if not ok:
        pytest.skip(why)
    x = torch.randn(2048, 2048, device="cuda")
    idle = measure_idle_power(0, 1.0)
    m = measure_inference(lambda: x @ x, 1, min_window_s=1.0, warmup=2, idle=idle)
    assert idle.power_w > 0
    assert idle.counter_refresh_s is None or idle.counter_refresh_s < 1.0
    assert m.window_s >= 1.0 and m.calls >= 1
    assert m.energy_j > 0 and m.mean_power_w > 0
    assert gpu_energy.gpu_info(0).gpu_name

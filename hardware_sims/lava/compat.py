"""Make the archived lava-nc 0.10 / lava-dl 0.6 importable on Python >= 3.11. Call :func:`apply` before any lava import.

Three problems, three fixes (the first two: ``docs/install.md``), and two speed fixes:

1. ``lava/magma/compiler/var_model.py`` declares dataclass fields whose default is an instance of another dataclass
   (``x: ByteEncoder = ByteEncoder()``). Python 3.11 rejects such defaults unless their class is hashable
   (``ValueError: mutable default ... use default_factory``), so every ``lava.proc`` import fails. While that one module
   executes for the first time, dataclasses created *in it* get ``unsafe_hash=True``. The shared default instance is
   exactly what Python 3.10 did, so behaviour is unchanged; nothing outside that module is touched.
2. ``lava.lib.dl.slayer`` imports its object-detection subpackage at import time, which needs OpenCV and torchvision
   (neither installs beside the CPU torch used here). An empty placeholder module stands in for it; snnav never uses
   object detection, and any attribute access on the placeholder raises an ``ImportError`` that says why.

3. ``lava.magma.runtime.message_infrastructure.multiprocessing`` calls ``multiprocessing.set_start_method('fork')``
   at import time, which raises ``RuntimeError: context has already been set`` once anything has fixed the default
   context -- e.g. ``tqdm``'s progress bars, which create a ``multiprocessing.RLock`` (so ``snnav run`` failed at its
   Lava stage right after training). While that module executes, a ``set_start_method`` asking for the method that
   is already in force is a no-op; any other request goes through unchanged (and still raises if it must).

4. Lava's compiler looks for the process models of every process *instance* afresh: for each one it executes every
   module in the directory of the process's module (``ProcGroupDiGraphs._find_proc_models``). The default S-CMRL
   export has 188 processes of about 20 classes, so snnav's own process modules ran about 8,000 times per compile,
   each compiled from source where bytecode is not written (``PYTHONDONTWRITEBYTECODE=1``): the 8-sample Lava
   check of the default export took 72 s with it and 60 s with the memo below. While ``lava.magma.compiler.compiler_graphs`` executes for the first time, that search is
   memoised per process class (the answer depends on the class and the files beside its module, never on the
   instance); a copy of the list is returned, so nothing the compiler does to it leaks into the memo. A process
   defined in ``__main__`` (a notebook or script) is not memoised: its module can change between runs.

5. Lava's ``Conv`` models compute with ``lava.proc.conv.utils.conv``, which (its torch path disabled upstream: "torch
   calls inside Lava PyProcess hangs") runs ``conv_scipy``: one ``scipy.signal.convolve2d`` per pair of input and
   output channel, in Python loops -- 4,096 calls per step for a 64-to-64 channel 3x3 layer; with this fix the
   default S-CMRL export's fixed-point spot check runs 1.91x as many Lava steps per second (``results/bench_lava.md``,
   ``scripts/bench_lava.py --conv lava snnav``). While
   ``lava.proc.conv.utils`` executes for the first time, its ``conv`` is wrapped: for **integer weights** (the
   fixed-point model, ``PyConvModelFixed``: int32 weights, int32 or boolean messages) the same convolution runs as
   one matrix product over sliding windows (`integer_conv`), in float64 as ``conv_scipy`` computes it. Every product
   and partial sum of integers below 2**53 is exact in float64, so the result is the same integers, bit for bit,
   whatever the order of the sums (checked against ``conv_scipy`` in ``tests/hardware_sims/lava/test_lava_compat.py``,
   and by the Lava backend's bit-exact tests). Float weights (``PyConvModelFloat``) still go to Lava's own
   ``conv_scipy``, whose float rounding is Lava's; so does anything the fast path does not cover (channels not
   divisible by the groups: Lava's own error).

:func:`apply` is idempotent and cheap: it imports nothing from lava. ``hardware_sims/__init__.py`` calls it, so
``import hardware_sims`` (or any submodule) is enough.
"""

from __future__ import annotations

import dataclasses
import importlib.abc
import importlib.machinery
import multiprocessing
import sys
import types

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

VAR_MODEL_MODULE = "lava.magma.compiler.var_model"
OBJECT_DETECTION_MODULE = "lava.lib.dl.slayer.object_detection"
MP_MODULE = "lava.magma.runtime.message_infrastructure.multiprocessing"
COMPILER_GRAPHS_MODULE = "lava.magma.compiler.compiler_graphs"
CONV_UTILS_MODULE = "lava.proc.conv.utils"


class _WrappingLoader(importlib.abc.Loader):
    """A loader that creates the module as ``inner`` does; subclasses change how it executes."""

    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def create_module(self, spec):
        return self._inner.create_module(spec)


class _HashableDataclassLoader(_WrappingLoader):
    """Executes the wrapped module with ``dataclasses.dataclass`` defaulting to ``unsafe_hash=True`` for its classes."""

    def __init__(self, inner: importlib.abc.Loader, module_name: str) -> None:
        super().__init__(inner)
        self._module_name = module_name

    def exec_module(self, module) -> None:
        original = dataclasses.dataclass
        target = self._module_name

        def patched(cls=None, /, **kwargs):
            def wrap(klass):
                if klass.__module__ == target and not kwargs.get("frozen", False):
                    return original(klass, **{**kwargs, "unsafe_hash": True})
                return original(klass, **kwargs)

            return wrap if cls is None else wrap(cls)

        dataclasses.dataclass = patched
        try:
            self._inner.exec_module(module)
        finally:
            dataclasses.dataclass = original


class _SameStartMethodLoader(_WrappingLoader):
    """Executes the wrapped module with ``multiprocessing.set_start_method(m)`` a no-op when ``m`` is in force."""

    def exec_module(self, module) -> None:
        original = multiprocessing.set_start_method

        def set_start_method(method, force=False):
            if not force and multiprocessing.get_start_method(allow_none=True) == method:
                return
            original(method, force=force)

        multiprocessing.set_start_method = set_start_method
        try:
            self._inner.exec_module(module)
        finally:
            multiprocessing.set_start_method = original


class _MemoisedModelSearchLoader(_WrappingLoader):
    """Executes lava's compiler-graph module, then memoises its process-model search per process class (fix 4)."""

    def exec_module(self, module) -> None:
        self._inner.exec_module(module)
        graphs = getattr(module, "ProcGroupDiGraphs", None)
        search = getattr(graphs, "_find_proc_models", None) if graphs is not None else None
        if search is not None and not getattr(search, "_snnav_memoised", False):
            graphs._find_proc_models = staticmethod(memoised_model_search(search))


def memoised_model_search(search):
    """``search(proc) -> list of process-model classes``, remembered per ``type(proc)`` (copies returned)."""
    memo: dict[type, list] = {}

    def find_proc_models(proc):
        cls = type(proc)
        if cls.__module__ == "__main__":
            return search(proc)
        if cls not in memo:
            memo[cls] = list(search(proc))
        return list(memo[cls])

    find_proc_models._snnav_memoised = True
    find_proc_models.__wrapped__ = search
    return find_proc_models


class _IntegerConvLoader(_WrappingLoader):
    """Executes lava's conv utilities, then routes integer-weight convolutions to `integer_conv` (fix 5)."""

    def exec_module(self, module) -> None:
        self._inner.exec_module(module)
        conv = getattr(module, "conv", None)
        if conv is not None and not getattr(conv, "_snnav_integer", False):
            module.conv = integer_conv(conv)


def integer_conv(original):
    """``conv(input_, weight, kernel_size, stride, padding, dilation, groups)`` of ``lava.proc.conv.utils`` (XYC
    input, ``(out, x, y, in / groups)`` weight, pairs in XY order): integer weights as a matrix product over sliding
    windows, exactly ``original``'s integers (fix 5); anything else by ``original``."""

    def conv(input_, weight, kernel_size, stride, padding, dilation, groups):
        w = np.asarray(weight)
        x = np.asarray(input_)
        g = int(np.asarray(groups).reshape(-1)[0])
        if (not np.issubdtype(w.dtype, np.integer) or x.ndim != 3 or w.ndim != 4 or g < 1
                or x.shape[2] % g or w.shape[0] % g or w.shape[3] * g != x.shape[2]):
            return original(input_, weight, kernel_size, stride, padding, dilation, groups)
        (kx, ky), (sx, sy), (px, py), (dx, dy) = (
            (int(a), int(b)) for a, b in (kernel_size, stride, padding, dilation))
        padded = np.pad(x.astype(np.float64), ((px, px), (py, py), (0, 0)))
        # windows[i, j, c, a, b] = padded[i*sx + a*dx, j*sy + b*dy, c]
        windows = sliding_window_view(padded, (dx * (kx - 1) + 1, dy * (ky - 1) + 1), axis=(0, 1))
        windows = windows[::sx, ::sy, :, ::dx, ::dy]
        flipped = w[:, ::-1, ::-1, :].astype(np.float64)  # convolve2d convolves: the kernel is flipped
        cg, kg = x.shape[2] // g, w.shape[0] // g
        out = np.empty((*windows.shape[:2], w.shape[0]))
        for k in range(g):
            out[:, :, k * kg:(k + 1) * kg] = np.tensordot(
                windows[:, :, k * cg:(k + 1) * cg], flipped[k * kg:(k + 1) * kg], axes=([2, 3, 4], [3, 1, 2]))
        return out.astype(w.dtype)

    conv._snnav_integer = True
    conv.__wrapped__ = original
    return conv


class _VarModelFinder(importlib.abc.MetaPathFinder):
    """Finds ``lava.magma.compiler.var_model``, lava's multiprocessing module, its compiler graphs and its conv
    utilities as usual and wraps their loaders."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in (VAR_MODEL_MODULE, MP_MODULE, COMPILER_GRAPHS_MODULE, CONV_UTILS_MODULE):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        if fullname == MP_MODULE:
            spec.loader = _SameStartMethodLoader(spec.loader)
        elif fullname == COMPILER_GRAPHS_MODULE:
            spec.loader = _MemoisedModelSearchLoader(spec.loader)
        elif fullname == CONV_UTILS_MODULE:
            spec.loader = _IntegerConvLoader(spec.loader)
        elif needs_var_model_fix():
            spec.loader = _HashableDataclassLoader(spec.loader, fullname)
        return spec


class _MissingObjectDetection(types.ModuleType):
    """Placeholder for slayer's object-detection subpackage, which needs OpenCV and torchvision."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError(
            f"{OBJECT_DETECTION_MODULE}.{name} is not available: snnav replaces lava-dl's object-detection subpackage "
            "with a placeholder because it needs OpenCV and torchvision, which do not install beside the CPU torch"
        )


def needs_var_model_fix() -> bool:
    """True where Python rejects unhashable dataclass defaults (3.11 and later)."""
    return sys.version_info >= (3, 11)


def apply() -> None:
    """Install the fixes. Safe to call any number of times; must run before lava is imported."""
    if any(m not in sys.modules for m in (VAR_MODEL_MODULE, MP_MODULE, COMPILER_GRAPHS_MODULE, CONV_UTILS_MODULE)):
        if not any(isinstance(f, _VarModelFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, _VarModelFinder())
    if OBJECT_DETECTION_MODULE not in sys.modules:
        placeholder = _MissingObjectDetection(OBJECT_DETECTION_MODULE, _MissingObjectDetection.__doc__)
        placeholder.__path__ = []  # a package, so `from . import object_detection as obd` resolves to it
        sys.modules[OBJECT_DETECTION_MODULE] = placeholder

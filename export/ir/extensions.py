"""snnav's NIR extension nodes: the operations a spiking transformer needs that NIR 1.0.8 lacks.

Seven node types multiply two activations, look at a window of time steps, or keep a running state over the steps
seen so far; NIR has none of these. Each is a
dataclass subclassing `nir.NIRNode`, like NIR's own primitives, with named input ports. The written
specification (math, shapes, ports, serialization, version policy) is `export/EXTENSIONS.md`; the docstrings
below repeat the discrete-time definitions.

Notation: per-sample, per-step tensors, no batch or time axis. Token tensors are ``(C, N)``; with ``h`` heads,
``d = C / h`` and channel ``c = g*d + i`` belongs to head ``g``. An edge into a port is written
``(src, "<node>.<port>")``; several edges into one port are summed.

This module imports only nir, numpy and the standard library (hardware_sims imports it).
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

import nir
import numpy as np

from export.ir.errors import InvalidNodeError, UnknownNodeTypeError, UnsupportedExtensionVersionError

__all__ = [
    "TYPE_PREFIX",
    "SPEC_PATH",
    "ExtensionNode",
    "SpikeAttention",
    "AttentionScores",
    "AttentionApply",
    "ComplementaryFusion",
    "Gate",
    "CausalSpikeAttention",
    "CausalFusion",
    "EXTENSIONS",
    "is_extension",
    "parse_stored_type",
    "extension_class",
    "split_port",
    "resolve_target",
    "incoming",
]

TYPE_PREFIX = "snnav."
SPEC_PATH = "export/EXTENSIONS.md"
_STORED_TYPE = re.compile(r"^(snnav\.[A-Za-z_][A-Za-z0-9_]*)/v([0-9]+)(?:;.*)?$", re.DOTALL)
_BASE_FIELDS = {"input_type", "output_type", "metadata"}


class _ClassValue:
    """Read-only value computed from the class, readable on the class and on instances."""

    def __init__(self, fn):
        self.fn = fn
        self.__doc__ = fn.__doc__

    def __get__(self, obj, cls):
        return self.fn(cls)


class ExtensionNode(nir.NIRNode):
    """Common base of snnav's extension nodes (not instantiated itself).

    Class attributes: `KIND` (``"SpikeAttention"``), `VERSION` (int, bumped on any change of semantics or
    layout), `PORTS` (input port names, in order), `STATEFUL`. `window` is 0 for per-step nodes; WINDOW nodes
    (whose output at step t depends on inputs at later steps of the window) have a `window` field ``W > 0``.
    RUNNING nodes (`STATEFUL` True) have ``window = 0`` and a state over the steps since the start of the sample:
    their output at step t depends on the inputs at steps ``0..t`` only (causal, nothing buffered).
    """

    KIND: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1
    PORTS: ClassVar[tuple[str, ...]] = ()
    STATEFUL: ClassVar[bool] = False
    window = 0  # overridden by a dataclass field in WINDOW nodes

    @_ClassValue
    def type_name(cls) -> str:  # noqa: N805 - computed from the class
        """The type name, e.g. ``"snnav.SpikeAttention"``."""
        return TYPE_PREFIX + cls.KIND

    @_ClassValue
    def stored_type(cls) -> str:  # noqa: N805
        """The HDF5 ``type`` string, e.g. ``"snnav.SpikeAttention/v1; spec export/EXTENSIONS.md#spikeattention"``."""
        return f"{TYPE_PREFIX}{cls.KIND}/v{cls.VERSION}; spec {SPEC_PATH}#{cls.KIND.lower()}"

    @property
    def needs_future(self) -> bool:
        """True when the output at step t uses inputs of later steps (a streaming backend buffers `window`)."""
        return self.window > 0

    @property
    def stateful(self) -> bool:
        """True for a RUNNING node: its output depends on past steps of the sample (state reset per sample)."""
        return self.STATEFUL

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        """Names of the node's parameters (its dataclass fields other than NIR's types and metadata)."""
        return tuple(f.name for f in fields(cls) if f.name not in _BASE_FIELDS)

    def to_dict(self) -> dict[str, Any]:
        """Serialize like NIR's nodes: parameters, ``type`` (the stored type string) and ``metadata``.

        Shapes become int64 arrays, ints and floats stay Python scalars (stored as int64/float64 scalars), strings
        stay strings, so that `nir.write` stores them as datasets.
        """
        ret: dict[str, Any] = {}
        for name in self.param_names():
            value = getattr(self, name)
            ret[name] = np.asarray(value, dtype=np.int64) if isinstance(value, tuple) else value
        ret["type"] = self.stored_type
        ret["metadata"] = dict(self.metadata)
        return ret

    @classmethod
    def from_dict(cls, kwargs: dict[str, Any]) -> ExtensionNode:
        """Build a node from `to_dict`'s output or from datasets read back from HDF5.

        Raises:
            UnsupportedExtensionVersionError: the stored version is newer than `VERSION`.
            InvalidNodeError: parameters are missing, unexpected or invalid.
        """
        kwargs = dict(kwargs)
        stored = kwargs.pop("type", cls.stored_type)
        if extension_class(stored) is not cls:
            raise InvalidNodeError(f"{cls.type_name}.from_dict got type {stored!r}; expected {cls.stored_type!r}")
        metadata = kwargs.pop("metadata", {})
        expected = set(cls.param_names())
        missing = [f.name for f in fields(cls) if f.name in expected and f.name not in kwargs
                   and f.default is MISSING]
        extra = sorted(set(kwargs) - expected)
        if missing or extra:
            raise InvalidNodeError(
                f"{cls.type_name} v{cls.VERSION} expects parameters {sorted(expected)}; missing {missing}, "
                f"unexpected {extra}. The file does not follow {SPEC_PATH}#{cls.KIND.lower()}; re-export it."
            )
        return cls(**{k: _from_stored(v) for k, v in kwargs.items()}, metadata=metadata)

    # Validation helpers used by subclasses' __post_init__.
    def _fail(self, message: str) -> None:
        raise InvalidNodeError(f"{self.type_name}: {message} (see {SPEC_PATH}#{self.KIND.lower()})")

    def _int(self, name: str, value: Any, minimum: int) -> int:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            self._fail(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
        if value < minimum:
            self._fail(f"{name} must be >= {minimum}, got {value}")
        return int(value)

    def _shape(self) -> tuple[int, int]:
        try:
            dims = tuple(np.asarray(self.shape).tolist())
        except (TypeError, ValueError):
            dims = ()
        if len(dims) != 2:
            self._fail(f"shape must be (C, N) with two positive integers, got {self.shape!r}")
        return tuple(self._int(f"shape[{i}]", d, 1) for i, d in enumerate(dims))

    def _heads(self) -> int:
        heads = self._int("num_heads", self.num_heads, 1)
        if self.shape[0] % heads:
            self._fail(f"num_heads={heads} must divide the channel count C={self.shape[0]} of shape {self.shape}")
        return heads

    def _scale(self) -> float:
        value = self.scale
        if isinstance(value, np.ndarray) and value.shape == ():
            value = value.item()
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            self._fail(f"scale must be a finite real number, got {value!r}")
        return float(value)

    def _choice(self, name: str, value: Any, choices: tuple[str, ...]) -> str:
        if value not in choices:
            self._fail(f"{name} must be one of {choices}, got {value!r}")
        return str(value)

    def _metadata(self) -> None:
        if not isinstance(self.metadata, dict):
            self._fail(f"metadata must be a dict, got {type(self.metadata).__name__}")

    def _types(self, inputs: dict[str, tuple[int, ...]], output: tuple[int, ...]) -> None:
        self.input_type = {port: np.array(inputs[port], dtype=np.int64) for port in self.PORTS}
        self.output_type = {"output": np.array(output, dtype=np.int64)}


def _from_stored(value: Any) -> Any:
    """HDF5 values back to Python: int arrays -> tuples, numpy scalars -> Python scalars, bytes -> str."""
    if isinstance(value, bytes):
        return value.decode("utf8")
    if isinstance(value, np.ndarray):
        return value.item() if value.shape == () else tuple(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(eq=False)
class SpikeAttention(ExtensionNode):
    r"""Spiking self-attention ``scale * Q K^T V`` per head, without softmax. Ports ``q``, ``k``, ``v``: ``(C, N)``.

    ``axis="tokens"`` (per step, ``window=0``)::

        O[g*d+j, n] = scale * sum_m sum_i Q[g*d+i, n] K[g*d+i, m] V[g*d+j, m]

    ``axis="time"`` (WINDOW node, ``window = T > 0``), per token n and head g over steps t, s of the window::

        R[t, g, j, n] = scale * sum_s sum_i Q_t[g*d+i, n] K_s[g*d+i, n] V_s[g*d+j, n]
        layout="clean":    O_t[g*d+j, n] = R[t, g, j, n]
        layout="faithful": per token n, R[:, :, :, n] laid out as (h, T, d) (flat f = g*T*d + t*d + j) and
                           read as (T, C): O_t'[c', n] = R at f, with t' = f // C, c' = f % C

    Output ``(C, N)``. `scale` multiplies the integer-valued sum last.

    Args:
        shape: ``(C, N)``.
        num_heads: heads h; must divide C.
        scale: finite constant factor.
        axis: ``"tokens"`` or ``"time"``.
        layout: ``"clean"`` or ``"faithful"`` (only with ``axis="time"``).
        window: 0 for ``axis="tokens"``; T > 0 for ``axis="time"``.
    """

    KIND: ClassVar[str] = "SpikeAttention"
    PORTS: ClassVar[tuple[str, ...]] = ("q", "k", "v")

    shape: tuple[int, int]
    num_heads: int
    scale: float
    axis: str
    layout: str = "clean"
    window: int = 0

    def __post_init__(self):
        self._metadata()
        self.shape = self._shape()
        self.num_heads = self._heads()
        self.scale = self._scale()
        self.axis = self._choice("axis", self.axis, ("tokens", "time"))
        self.layout = self._choice("layout", self.layout, ("clean", "faithful"))
        self.window = self._int("window", self.window, 0)
        if self.axis == "tokens" and self.window != 0:
            self._fail(f"axis='tokens' is a per-step node and needs window=0, got window={self.window}")
        if self.axis == "tokens" and self.layout != "clean":
            self._fail("layout='faithful' is defined only for axis='time'; use layout='clean' with axis='tokens'")
        if self.axis == "time" and self.window == 0:
            self._fail("axis='time' is a WINDOW node and needs window=T > 0 (the number of steps), got 0")
        self._types({p: self.shape for p in self.PORTS}, self.shape)

    @property
    def head_dim(self) -> int:
        """Channels per head, ``d = C / num_heads``."""
        return self.shape[0] // self.num_heads


@dataclass(eq=False)
class AttentionScores(ExtensionNode):
    r"""Per-head attention scores ``Q K^T`` (per step). Ports ``q``, ``k``: ``(C, N)``; output ``(h, N, N)``::

        S[g, n, m] = sum_i Q[g*d+i, n] K[g*d+i, m]

    Args:
        shape: ``(C, N)``.
        num_heads: heads h; must divide C.
    """

    KIND: ClassVar[str] = "AttentionScores"
    PORTS: ClassVar[tuple[str, ...]] = ("q", "k")

    shape: tuple[int, int]
    num_heads: int

    def __post_init__(self):
        self._metadata()
        self.shape = self._shape()
        self.num_heads = self._heads()
        n = self.shape[1]
        self._types({p: self.shape for p in self.PORTS}, (self.num_heads, n, n))

    @property
    def head_dim(self) -> int:
        """Channels per head, ``d = C / num_heads``."""
        return self.shape[0] // self.num_heads


@dataclass(eq=False)
class AttentionApply(ExtensionNode):
    r"""Apply per-head scores to values (per step). Ports ``p``: ``(h, N, N)``, ``v``: ``(C, N)``; output ``(C, N)``::

        O[g*d+j, n] = scale * sum_m P[g, n, m] V[g*d+j, m]

    Args:
        shape: ``(C, N)``.
        num_heads: heads h; must divide C.
        scale: finite constant factor, applied last.
    """

    KIND: ClassVar[str] = "AttentionApply"
    PORTS: ClassVar[tuple[str, ...]] = ("p", "v")

    shape: tuple[int, int]
    num_heads: int
    scale: float

    def __post_init__(self):
        self._metadata()
        self.shape = self._shape()
        self.num_heads = self._heads()
        self.scale = self._scale()
        n = self.shape[1]
        self._types({"p": (self.num_heads, n, n), "v": self.shape}, self.shape)

    @property
    def head_dim(self) -> int:
        """Channels per head, ``d = C / num_heads``."""
        return self.shape[0] // self.num_heads


@dataclass(eq=False)
class ComplementaryFusion(ExtensionNode):
    r"""Cross-modal complementary fusion (WINDOW node, ``window = T > 0``). Ports ``spatial``, ``temporal``: ``(C, N)``.

    For every step t of the window (the temporal mean needs the whole window)::

        O_t[c, n] = (1/N sum_m S_t[c, m]) * (1/T sum_s Tm_s[c, n])

    where S is ``spatial`` and Tm is ``temporal``. Float order: mean over m, mean over s, then the product.
    Output ``(C, N)``.

    Args:
        shape: ``(C, N)``.
        window: T > 0, the number of steps of the window.
    """

    KIND: ClassVar[str] = "ComplementaryFusion"
    PORTS: ClassVar[tuple[str, ...]] = ("spatial", "temporal")

    shape: tuple[int, int]
    window: int = field()  # required; dataclass would otherwise take ExtensionNode.window (0) as default

    def __post_init__(self):
        self._metadata()
        self.shape = self._shape()
        self.window = self._int("window", self.window, 1)
        self._types({p: self.shape for p in self.PORTS}, self.shape)


@dataclass(eq=False)
class Gate(ExtensionNode):
    r"""Multiply a tensor by a scalar computed in the graph (per step). Ports ``x``: ``(C, N)``, ``gate``: ``(1,)``::

        O[c, n] = X[c, n] * G[0]

    Output ``(C, N)``.

    Args:
        shape: ``(C, N)``.
    """

    KIND: ClassVar[str] = "Gate"
    PORTS: ClassVar[tuple[str, ...]] = ("x", "gate")

    shape: tuple[int, int]

    def __post_init__(self):
        self._metadata()
        self.shape = self._shape()
        self._types({"x": self.shape, "gate": (1,)}, self.shape)


@dataclass(eq=False)
class CausalSpikeAttention(ExtensionNode):
    r"""Causal spiking attention over time (RUNNING node, ``window = 0``). Ports ``q``, ``k``, ``v``: ``(C, N)``.

    Per token n and head g, over the steps ``s <= t`` since the start of the sample (no future step)::

        O_t[g*d+j, n] = scale * sum_{s<=t} sum_i Q_t[g*d+i, n] K_s[g*d+i, n] V_s[g*d+j, n]

    computed in running form with the state ``KV_t[g, i, j, n] = KV_{t-1}[g, i, j, n] + K_t[g*d+i, n] V_t[g*d+j, n]``
    (``KV_{-1} = 0``): ``O_t[g*d+j, n] = scale * sum_i Q_t[g*d+i, n] KV_t[g, i, j, n]``. At the last step of a window
    of T steps it equals ``SpikeAttention(axis="time", layout="clean")``'s output for that step. Output ``(C, N)``.

    Args:
        shape: ``(C, N)``.
        num_heads: heads h; must divide C.
        scale: finite constant factor, applied last.
    """

    KIND: ClassVar[str] = "CausalSpikeAttention"
    PORTS: ClassVar[tuple[str, ...]] = ("q", "k", "v")
    STATEFUL: ClassVar[bool] = True

    shape: tuple[int, int]
    num_heads: int
    scale: float

    def __post_init__(self):
        self._metadata()
        self.shape = self._shape()
        self.num_heads = self._heads()
        self.scale = self._scale()
        self._types({p: self.shape for p in self.PORTS}, self.shape)

    @property
    def head_dim(self) -> int:
        """Channels per head, ``d = C / num_heads``."""
        return self.shape[0] // self.num_heads


@dataclass(eq=False)
class CausalFusion(ExtensionNode):
    r"""Causal complementary fusion (RUNNING node, ``window = 0``). Ports ``spatial``, ``temporal``: ``(C, N)``.

    For every step t since the start of the sample, with the running mean of the temporal input over ``s <= t``::

        O_t[c, n] = (1/N sum_m S_t[c, m]) * (1/(t+1) sum_{s<=t} Tm_s[c, n])

    State: the running sum ``Sum_t[c, n] = Sum_{t-1}[c, n] + Tm_t[c, n]`` and the step count ``t + 1``. Float order:
    the mean over tokens m, the running sum divided by ``t + 1``, then the product. At the last step of a window of
    T steps the running mean equals `ComplementaryFusion`'s mean over the window. Output ``(C, N)``.

    Args:
        shape: ``(C, N)``.
    """

    KIND: ClassVar[str] = "CausalFusion"
    PORTS: ClassVar[tuple[str, ...]] = ("spatial", "temporal")
    STATEFUL: ClassVar[bool] = True

    shape: tuple[int, int]

    def __post_init__(self):
        self._metadata()
        self.shape = self._shape()
        self._types({p: self.shape for p in self.PORTS}, self.shape)


EXTENSIONS: dict[str, type[ExtensionNode]] = {
    cls.type_name: cls for cls in (SpikeAttention, AttentionScores, AttentionApply, ComplementaryFusion, Gate,
                                   CausalSpikeAttention, CausalFusion)
}


def is_extension(node: Any) -> bool:
    """True for an snnav extension node instance."""
    return isinstance(node, ExtensionNode)


def parse_stored_type(stored: str) -> tuple[str, int] | None:
    """Split a stored type string into ``(type_name, version)``.

    Returns None when `stored` is not an snnav type (does not start with ``"snnav."``).

    Raises:
        UnknownNodeTypeError: it starts with ``"snnav."`` but is not ``snnav.<Kind>/v<int>[; ...]``.
    """
    if not stored.startswith(TYPE_PREFIX):
        return None
    match = _STORED_TYPE.match(stored)
    if match is None:
        raise UnknownNodeTypeError(
            f"malformed snnav type string {stored!r}: expected 'snnav.<Kind>/v<version>; spec ...' "
            f"(see {SPEC_PATH}); the file was not written by snnav's writer"
        )
    return match.group(1), int(match.group(2))


def extension_class(stored: str) -> type[ExtensionNode]:
    """The extension class for a stored type string (or a bare type name, read as the current version).

    Raises:
        UnknownNodeTypeError: not an snnav extension this code knows.
        UnsupportedExtensionVersionError: a known extension with a newer version than supported.
    """
    parsed = parse_stored_type(stored) if "/" in stored else (stored, None)
    if parsed is None or parsed[0] not in EXTENSIONS:
        raise UnknownNodeTypeError(
            f"unknown snnav extension type {stored!r}; this snnav knows {sorted(EXTENSIONS)}. "
            "If the file was written by a newer snnav, upgrade snnav."
        )
    name, version = parsed
    cls = EXTENSIONS[name]
    if version is not None and version > cls.VERSION:
        raise UnsupportedExtensionVersionError(
            f"{name} version {version} was written by a newer snnav; this snnav reads up to version "
            f"{cls.VERSION}. Upgrade snnav to read this file."
        )
    if version is not None and version < 1:
        raise UnknownNodeTypeError(f"invalid version {version} in {stored!r}; versions start at 1")
    return cls


def split_port(target: str) -> tuple[str, str | None]:
    """Split an edge target ``"node.port"`` into ``("node", "port")``; ``"node"`` gives ``("node", None)``.

    Purely syntactic (splits at the last dot); `resolve_target` also knows the graph's node names.
    """
    node, sep, port = target.rpartition(".")
    return (node, port) if sep and node and port else (target, None)


def resolve_target(nodes: dict[str, Any], target: str) -> tuple[str, str | None]:
    """Resolve an edge target against a graph's nodes: a full node name wins over a port split.

    Third-party graphs may use dotted node names (``"net.0"``), so ``"net.0"`` names that node when it exists.
    """
    return (target, None) if target in nodes else split_port(target)


def incoming(graph: nir.NIRGraph) -> dict[str, dict[str | None, list[str]]]:
    """Sources feeding each node, by port (None for the single implicit port of standard nodes).

    Every node of the graph has an entry (empty for nodes without incoming edges). Sources into one port are
    summed by the semantics; they are listed in edge order.
    """
    result: dict[str, dict[str | None, list[str]]] = {name: {} for name in graph.nodes}
    for src, dst in graph.edges:
        node, port = resolve_target(graph.nodes, dst)
        result.setdefault(node, {}).setdefault(port, []).append(src)
    return result

"""Property tests: random small graphs (standard NIR nodes and snnav extensions) survive write -> read unchanged."""

from __future__ import annotations

import tempfile
from pathlib import Path

import nir
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from export.ir.extensions import (
    AttentionApply,
    AttentionScores,
    ComplementaryFusion,
    Gate,
    SpikeAttention,
    is_extension,
)
from export.ir.nirfile import make_graph, read_graph, write_graph

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=8).filter(
    lambda k: k != "metadata")
scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.booleans(),
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
)
metadata_dicts = st.recursive(st.dictionaries(keys, scalars, max_size=4),
                              lambda inner: st.dictionaries(keys, inner, max_size=3), max_leaves=8)


class Builder:
    """Grows a random graph along a chain whose current node and shape are tracked."""

    def __init__(self, draw, shape: tuple[int, ...]):
        self.draw = draw
        self.rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        self.nodes: dict = {"x": nir.Input(np.array(shape))}
        self.edges: list = []
        self.outputs: dict[str, tuple[int, ...]] = {"x": shape}  # name -> output shape, for residual fan-in
        self.current, self.shape = "x", shape

    def array(self, shape) -> np.ndarray:
        dtype = self.draw(st.sampled_from([np.float32, np.float64]))
        return self.rng.normal(size=shape).astype(dtype)

    def add(self, node, shape: tuple[int, ...], ports: dict[str | None, list[str]] | None = None) -> None:
        name = f"n{len(self.nodes)}"
        if self.draw(st.booleans()):
            node.metadata = self.draw(metadata_dicts)
        self.nodes[name] = node
        ports = ports if ports is not None else {None: [self.current]}
        for port, sources in ports.items():
            target = name if port is None else f"{name}.{port}"
            want = node.input_type[port] if port is not None else None
            same = [s for s, sh in self.outputs.items() if s not in sources and
                    (want is None and sh == self.shape or want is not None and list(sh) == list(want))]
            if same and self.draw(st.integers(0, 4)) == 0:  # sometimes a residual: fan-in is summed
                sources = sources + [self.draw(st.sampled_from(sorted(same)))]
            self.edges += [(src, target) for src in sources]
        self.outputs[name] = shape
        self.current, self.shape = name, shape

    def elementwise(self) -> None:
        s = self.shape
        kind = self.draw(st.sampled_from(["LIF", "IF", "LI", "I", "Scale", "Threshold", "Delay"]))
        make = {
            "LIF": lambda: nir.LIF(tau=np.abs(self.array(s)) + 1e-3, r=self.array(s), v_leak=self.array(s),
                                   v_threshold=self.array(s), v_reset=self.array(s)),
            "IF": lambda: nir.IF(r=self.array(s), v_threshold=self.array(s), v_reset=self.array(s)),
            "LI": lambda: nir.LI(tau=np.abs(self.array(s)) + 1e-3, r=self.array(s), v_leak=self.array(s)),
            "I": lambda: nir.I(r=self.array(s)),
            "Scale": lambda: nir.Scale(scale=self.array(s)),
            "Threshold": lambda: nir.Threshold(threshold=self.array(s)),
            "Delay": lambda: nir.Delay(delay=np.abs(self.array(s))),
        }
        self.add(make[kind](), s)

    def structural(self, extensions: bool) -> None:
        s, d = self.shape, self.draw
        if len(s) == 1:
            out = d(st.integers(1, 6))
            if d(st.booleans()):
                self.add(nir.Affine(weight=self.array((out, s[0])), bias=self.array((out,))), (out,))
            else:
                self.add(nir.Linear(weight=self.array((out, s[0]))), (out,))
        elif len(s) == 3:
            choice = d(st.sampled_from(["conv", "pool", "flatten"]))
            if choice == "flatten":
                self.add(nir.Flatten(input_type={"input": np.array(s)}, start_dim=0), (int(np.prod(s)),))
                return
            k, stride, pad = d(st.integers(1, 3)), d(st.integers(1, 2)), d(st.integers(0, 1))
            h, w = ((n + 2 * pad - k) // stride + 1 for n in s[1:])
            if min(h, w) < 1:
                return
            if choice == "conv":
                c_out = d(st.integers(1, 3))
                self.add(nir.Conv2d(input_shape=s[1:], weight=self.array((c_out, s[0], k, k)), stride=stride,
                                    padding=pad, dilation=1, groups=1, bias=self.array((c_out,))), (c_out, h, w))
            else:
                self.add(nir.SumPool2d(kernel_size=np.array([k, k]), stride=np.array([stride, stride]),
                                       padding=np.array([pad, pad])), (s[0], h, w))
        else:
            choices = ["conv1d", "flatten"] + (["ext"] * 3 if extensions else [])
            choice = d(st.sampled_from(choices))
            if choice == "flatten":
                self.add(nir.Flatten(input_type={"input": np.array(s)}, start_dim=0), (int(np.prod(s)),))
            elif choice == "conv1d":
                k, c_out = d(st.integers(1, 3)), d(st.integers(1, 4))
                n = s[1] - k + 1
                if n >= 1:
                    self.add(nir.Conv1d(input_shape=s[1], weight=self.array((c_out, s[0], k)), stride=1,
                                        padding=0, dilation=1, groups=1, bias=self.array((c_out,))), (c_out, n))
            else:
                self.extension()

    def extension(self) -> None:
        d, (c, n), cur = self.draw, self.shape, self.current
        heads = d(st.sampled_from([h for h in range(1, c + 1) if c % h == 0]))
        scale = d(st.floats(-4, 4, allow_nan=False))
        kind = d(st.sampled_from(["tokens", "time", "scores", "fusion", "gate"]))
        if kind == "tokens":
            self.add(SpikeAttention(shape=(c, n), num_heads=heads, scale=scale, axis="tokens"), (c, n),
                     {"q": [cur], "k": [cur], "v": [cur]})
        elif kind == "time":
            node = SpikeAttention(shape=(c, n), num_heads=heads, scale=scale, axis="time",
                                  layout=d(st.sampled_from(["clean", "faithful"])), window=d(st.integers(1, 6)))
            self.add(node, (c, n), {"q": [cur], "k": [cur], "v": [cur]})
        elif kind == "scores":
            self.add(AttentionScores(shape=(c, n), num_heads=heads), (heads, n, n), {"q": [cur], "k": [cur]})
            self.add(AttentionApply(shape=(c, n), num_heads=heads, scale=scale), (c, n),
                     {"p": [self.current], "v": [cur]})
        elif kind == "fusion":
            self.add(ComplementaryFusion(shape=(c, n), window=d(st.integers(1, 6))), (c, n),
                     {"spatial": [cur], "temporal": [cur]})
        else:
            if "gate_in" not in self.nodes:
                self.nodes["gate_in"] = nir.Input(np.array([1]))
                self.outputs["gate_in"] = (1,)
            self.add(Gate(shape=(c, n)), (c, n), {"x": [cur], "gate": ["gate_in"]})

    def finish(self):
        self.nodes["y"] = nir.Output(np.array(self.shape))
        self.edges.append((self.current, "y"))
        return self.nodes, self.edges


@st.composite
def graphs(draw, extensions: bool):
    rank = draw(st.sampled_from([1, 2, 3]) if not extensions else st.just(2))
    shape = tuple(draw(st.integers(1, 5)) for _ in range(rank))
    builder = Builder(draw, shape)
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.booleans()):
            builder.elementwise()
        else:
            builder.structural(extensions)
    if extensions and not any(is_extension(n) for n in builder.nodes.values()):
        if len(builder.shape) != 2:
            builder.shape, builder.current = shape, "x"
        builder.extension()
    nodes, edges = builder.finish()
    meta = draw(metadata_dicts)
    if draw(st.booleans()):
        meta.update(dt=draw(st.floats(1e-6, 1.0)), producer="snnav test")
    return make_graph(nodes, edges, meta)


def assert_equal_graphs(a: nir.NIRGraph, b: nir.NIRGraph) -> None:
    assert set(a.nodes) == set(b.nodes)
    assert set(map(tuple, a.edges)) == set(map(tuple, b.edges))
    assert_equal_values(a.metadata, b.metadata)
    for name, node in a.nodes.items():
        other = b.nodes[name]
        assert type(other) is type(node), name
        d1, d2 = node.to_dict(), other.to_dict()
        assert d1.keys() == d2.keys(), name
        for key in d1:
            if isinstance(d1[key], (str, dict)):
                assert_equal_values(d1[key], d2[key])
            else:  # parameters: same values and dtype (Python ints come back as int64 scalars, like numpy's)
                xa, ya = np.asarray(d1[key]), np.asarray(d2[key])
                assert xa.dtype == ya.dtype and np.array_equal(xa, ya), (name, key, d1[key], d2[key])


def assert_equal_values(x, y) -> None:
    """Equal values of equal Python types (metadata); arrays equal with equal dtype."""
    if isinstance(x, dict):
        assert isinstance(y, dict) and x.keys() == y.keys()
        for k in x:
            assert_equal_values(x[k], y[k])
    elif isinstance(x, (str, bool, int, float)) and not isinstance(x, np.generic):
        assert type(x) is type(y) and x == y, (x, y)
    else:
        xa, ya = np.asarray(x), np.asarray(y)
        assert xa.dtype == ya.dtype and xa.shape == ya.shape and np.array_equal(xa, ya), (x, y)


@SETTINGS
@given(graphs(extensions=False))
def test_plain_graphs_round_trip_and_load_in_nir(graph):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "g.nir"
        write_graph(path, graph)
        assert_equal_graphs(graph, read_graph(path))
        nir.read(path, type_check=True)  # plain NIR tools load it and its types check


@SETTINGS
@given(graphs(extensions=True))
def test_extension_graphs_round_trip_and_are_refused_by_nir(graph):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "g.nir"
        write_graph(path, graph)
        back = read_graph(path)
        assert_equal_graphs(graph, back)
        for name, node in graph.nodes.items():
            if is_extension(node):
                for param in node.param_names():
                    assert getattr(back.nodes[name], param) == getattr(node, param)
                    assert type(getattr(back.nodes[name], param)) is type(getattr(node, param))
        with pytest.raises(AssertionError):
            nir.read(path)


@SETTINGS
@given(graph_meta=metadata_dicts, node_meta=metadata_dicts)
def test_metadata_round_trips(graph_meta, node_meta):
    nodes = {"x": nir.Input(np.array([2, 3])),
             "g": Gate(shape=(2, 3), metadata=node_meta),
             "one": nir.Input(np.array([1])),
             "y": nir.Output(np.array([2, 3]))}
    graph = make_graph(nodes, [("x", "g.x"), ("one", "g.gate"), ("g", "y")], graph_meta)
    with tempfile.TemporaryDirectory() as folder:
        write_graph(Path(folder) / "m.nir", graph)
        back = read_graph(Path(folder) / "m.nir")
    assert_equal_values(graph.metadata, back.metadata)
    assert_equal_values(node_meta, back.nodes["g"].metadata)

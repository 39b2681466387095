"""snnav's extension node classes: construction, validation, serialization dicts, registry and edge-port helpers."""

from __future__ import annotations

import re
from pathlib import Path

import nir
import numpy as np
import pytest

from export.ir.errors import InvalidNodeError, NIRFormatError, UnknownNodeTypeError, UnsupportedExtensionVersionError
from export.ir.extensions import (
    EXTENSIONS,
    AttentionApply,
    AttentionScores,
    CausalFusion,
    CausalSpikeAttention,
    ComplementaryFusion,
    ExtensionNode,
    Gate,
    SpikeAttention,
    extension_class,
    incoming,
    is_extension,
    parse_stored_type,
    resolve_target,
    split_port,
)

SPEC = Path(__file__).resolve().parents[2] / "export" / "EXTENSIONS.md"


def examples() -> list[ExtensionNode]:
    return [
        SpikeAttention(shape=(8, 5), num_heads=2, scale=0.25, axis="tokens"),
        SpikeAttention(shape=(8, 5), num_heads=4, scale=0.125, axis="time", layout="faithful", window=3),
        AttentionScores(shape=(6, 4), num_heads=3),
        AttentionApply(shape=(6, 4), num_heads=3, scale=0.25),
        ComplementaryFusion(shape=(4, 7), window=5),
        Gate(shape=(3, 2)),
        CausalSpikeAttention(shape=(8, 5), num_heads=2, scale=0.25),
        CausalFusion(shape=(4, 7)),
    ]


def test_registry_holds_the_seven_types_by_type_name():
    assert set(EXTENSIONS) == {"snnav.SpikeAttention", "snnav.AttentionScores", "snnav.AttentionApply",
                               "snnav.ComplementaryFusion", "snnav.Gate", "snnav.CausalSpikeAttention",
                               "snnav.CausalFusion"}
    for name, cls in EXTENSIONS.items():
        assert cls.type_name == name and issubclass(cls, nir.NIRNode) and cls.VERSION == 1


@pytest.mark.parametrize("node", examples(), ids=lambda n: n.KIND)
def test_common_properties(node):
    assert is_extension(node) and isinstance(node, nir.NIRNode)
    assert node.type_name == "snnav." + node.KIND
    assert node.stored_type == f"snnav.{node.KIND}/v1; spec export/EXTENSIONS.md#{node.KIND.lower()}"
    assert set(node.input_type) == set(node.PORTS) and list(node.output_type) == ["output"]
    assert node.needs_future == (node.window > 0)
    assert node.stateful == (node.KIND.startswith("Causal")) and not (node.stateful and node.needs_future)
    assert node.metadata == {}


def test_shapes_ports_and_windows():
    tokens, time, scores, apply, fusion, gate, causal_attn, causal_fusion = examples()
    assert tokens.PORTS == ("q", "k", "v") and tokens.window == 0 and not tokens.needs_future
    assert time.window == 3 and time.needs_future and time.head_dim == 2
    np.testing.assert_array_equal(tokens.output_type["output"], [8, 5])
    np.testing.assert_array_equal(scores.output_type["output"], [3, 4, 4])
    np.testing.assert_array_equal(apply.input_type["p"], [3, 4, 4])
    np.testing.assert_array_equal(apply.input_type["v"], [6, 4])
    assert fusion.PORTS == ("spatial", "temporal") and fusion.window == 5 and fusion.needs_future
    np.testing.assert_array_equal(gate.input_type["gate"], [1])
    assert gate.window == 0 and scores.window == 0 and apply.window == 0


def test_numpy_parameters_are_normalized_to_python_values():
    node = SpikeAttention(shape=np.array([8, 4]), num_heads=np.int64(2), scale=np.float32(0.25), axis="tokens")
    assert node.shape == (8, 4) and type(node.shape[0]) is int
    assert type(node.num_heads) is int and type(node.scale) is float and node.scale == 0.25


@pytest.mark.parametrize("make, message", [
    (lambda: SpikeAttention(shape=(6, 4), num_heads=4, scale=1.0, axis="tokens"), "num_heads=4 must divide"),
    (lambda: SpikeAttention(shape=(6, 4, 2), num_heads=1, scale=1.0, axis="tokens"), "shape must be (C, N)"),
    (lambda: SpikeAttention(shape=(0, 4), num_heads=1, scale=1.0, axis="tokens"), "shape[0] must be >= 1"),
    (lambda: SpikeAttention(shape=(4.5, 4), num_heads=1, scale=1.0, axis="tokens"), "must be an integer"),
    (lambda: SpikeAttention(shape=(4, 4), num_heads=True, scale=1.0, axis="tokens"), "num_heads must be an integer"),
    (lambda: SpikeAttention(shape=(4, 4), num_heads=0, scale=1.0, axis="tokens"), "num_heads must be >= 1"),
    (lambda: SpikeAttention(shape=(4, 4), num_heads=1, scale=float("nan"), axis="tokens"), "finite real"),
    (lambda: SpikeAttention(shape=(4, 4), num_heads=1, scale=float("inf"), axis="tokens"), "finite real"),
    (lambda: SpikeAttention(shape=(4, 4), num_heads=1, scale="0.5", axis="tokens"), "finite real"),
    (lambda: SpikeAttention(shape=(4, 4), num_heads=1, scale=1.0, axis="channels"), "axis must be one of"),
    (lambda: SpikeAttention(shape=(4, 4), num_heads=1, scale=1.0, axis="time", layout="odd", window=2),
     "layout must be one of"),
    (lambda: SpikeAttention(shape=(4, 4), num_heads=1, scale=1.0, axis="tokens", window=2), "needs window=0"),
    (lambda: SpikeAttention(shape=(4, 4), num_heads=1, scale=1.0, axis="tokens", layout="faithful"),
     "only for axis='time'"),
    (lambda: SpikeAttention(shape=(4, 4), num_heads=1, scale=1.0, axis="time"), "needs window=T > 0"),
    (lambda: SpikeAttention(shape=(4, 4), num_heads=1, scale=1.0, axis="time", window=-1), "window must be >= 0"),
    (lambda: AttentionScores(shape=(5, 4), num_heads=2), "must divide the channel count C=5"),
    (lambda: AttentionApply(shape=(4, 4), num_heads=2, scale=None), "scale must be a finite real"),
    (lambda: ComplementaryFusion(shape=(4, 4), window=0), "window must be >= 1"),
    (lambda: Gate(shape=(4,)), "shape must be (C, N)"),
    (lambda: Gate(shape=(4, 4), metadata=[1]), "metadata must be a dict"),
])
def test_invalid_parameters_are_refused_with_the_reason(make, message):
    with pytest.raises(InvalidNodeError) as info:
        make()
    assert message in str(info.value)
    assert "EXTENSIONS.md#" in str(info.value)  # points at the spec
    assert isinstance(info.value, ValueError)


def test_complementary_fusion_requires_its_window():
    with pytest.raises(TypeError):
        ComplementaryFusion(shape=(4, 4))  # noqa - window is a required argument


@pytest.mark.parametrize("node", examples(), ids=lambda n: n.KIND)
def test_to_dict_from_dict_round_trip(node):
    node.metadata = {"origin": "blocks.0.attn", "nested": {"x": 1}}
    data = node.to_dict()
    assert data["type"] == node.stored_type and data["metadata"] == node.metadata
    assert data["shape"].dtype == np.int64
    back = type(node).from_dict(data)
    assert type(back) is type(node) and back.metadata == node.metadata
    for name in node.param_names():
        assert getattr(back, name) == getattr(node, name)


def test_from_dict_accepts_values_as_read_from_hdf5():
    data = {"type": SpikeAttention.stored_type, "shape": np.array([4, 3]), "num_heads": np.int64(2),
            "scale": np.float64(0.5), "axis": b"time", "layout": b"clean", "window": np.int64(2)}
    node = SpikeAttention.from_dict(data)
    assert node.shape == (4, 3) and node.axis == "time" and node.window == 2


def test_from_dict_refuses_missing_extra_newer_and_foreign():
    good = Gate(shape=(2, 2)).to_dict()
    with pytest.raises(InvalidNodeError, match=r"missing \['shape'\]"):
        Gate.from_dict({"type": good["type"]})
    with pytest.raises(InvalidNodeError, match=r"unexpected \['bias'\]"):
        Gate.from_dict({**good, "bias": 1.0})
    with pytest.raises(UnsupportedExtensionVersionError, match="newer snnav"):
        Gate.from_dict({**good, "type": "snnav.Gate/v2; spec export/EXTENSIONS.md#gate"})
    with pytest.raises(InvalidNodeError, match="expected"):
        Gate.from_dict({**good, "type": SpikeAttention.stored_type})


def test_stored_type_parsing():
    assert parse_stored_type("snnav.Gate/v1; spec export/EXTENSIONS.md#gate") == ("snnav.Gate", 1)
    assert parse_stored_type("snnav.Gate/v12") == ("snnav.Gate", 12)
    assert parse_stored_type("LIF") is None
    with pytest.raises(UnknownNodeTypeError, match="malformed snnav type string"):
        parse_stored_type("snnav.Gate")
    assert extension_class("snnav.Gate/v1") is Gate
    assert extension_class("snnav.Gate") is Gate
    with pytest.raises(UnknownNodeTypeError, match="unknown snnav extension type 'snnav.Softmax/v1'"):
        extension_class("snnav.Softmax/v1")
    with pytest.raises(UnsupportedExtensionVersionError) as info:
        extension_class("snnav.SpikeAttention/v3; spec export/EXTENSIONS.md#spikeattention")
    assert "version 3" in str(info.value) and "up to version 1" in str(info.value) and "Upgrade" in str(info.value)
    assert issubclass(UnsupportedExtensionVersionError, NIRFormatError)


def test_split_and_resolve_ports():
    assert split_port("attn.q") == ("attn", "q")
    assert split_port("lif") == ("lif", None)
    assert split_port("a.b.c") == ("a.b", "c")
    assert split_port("trailing.") == ("trailing.", None)
    nodes = {"net.0": object(), "attn": object()}
    assert resolve_target(nodes, "net.0") == ("net.0", None)
    assert resolve_target(nodes, "attn.k") == ("attn", "k")


def test_incoming_groups_sources_by_node_and_port():
    c, n = 4, 3
    lif = dict(tau=np.ones((c, n)), r=np.ones((c, n)), v_leak=np.zeros((c, n)), v_threshold=np.ones((c, n)))
    graph = nir.NIRGraph(
        nodes={"x": nir.Input(np.array([c, n])), "a": nir.LIF(**lif), "b": nir.LIF(**lif),
               "attn": SpikeAttention(shape=(c, n), num_heads=2, scale=0.5, axis="tokens"),
               "out": nir.Output(np.array([c, n]))},
        edges=[("x", "a"), ("x", "b"), ("a", "attn.q"), ("b", "attn.q"), ("a", "attn.k"), ("b", "attn.v"),
               ("attn", "out"), ("x", "out")],
        type_check=False)
    inc = incoming(graph)
    assert inc["x"] == {}
    assert inc["attn"] == {"q": ["a", "b"], "k": ["a"], "v": ["b"]}
    assert inc["out"] == {None: ["attn", "x"]}


@pytest.mark.parametrize("cls", list(EXTENSIONS.values()), ids=lambda c: c.KIND)
def test_docstrings_give_the_discrete_time_update(cls):
    doc = cls.__doc__
    assert re.search(r"\b[OS](_t)?\[[^\]]+\] = ", doc) and "Args:" in doc


def github_anchor(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_spec_file_has_an_anchor_for_every_node():
    text = SPEC.read_text(encoding="utf8")
    anchors = {github_anchor(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}
    for cls in EXTENSIONS.values():
        assert cls.stored_type.split("#")[1] in anchors
        assert cls.stored_type.split("; spec ")[1].startswith("export/EXTENSIONS.md#")

"""Reading, writing, building and validating NIR graphs with and without snnav extension nodes."""

from __future__ import annotations

import subprocess
import sys

import h5py
import nir
import numpy as np
import pytest

import export.ir.nirfile as nirfile
from export.ir.errors import (
    CorruptNIRFileError,
    GraphValidationError,
    InvalidNodeError,
    MetadataError,
    NIRFileNotFoundError,
    NIRFormatError,
    NotANIRFileError,
    UnknownNodeTypeError,
    UnsupportedExtensionVersionError,
)
from export.ir.extensions import AttentionApply, AttentionScores, ComplementaryFusion, Gate, SpikeAttention
from export.ir.nirfile import format_summary, graph_summary, make_graph, read_graph, validate_graph, write_graph

C, N, T, DT = 8, 4, 3, 1e-3
META = {"dt": DT, "time_steps": T, "readout_step": T - 1, "producer": "snnav 0.1.0", "model": "tiny"}


def lif(*shape, theta=1.0):
    ones = np.ones(shape)
    return nir.LIF(tau=2 * DT * ones, r=ones.copy(), v_leak=0 * ones, v_threshold=theta * ones, v_reset=0 * ones)


def plain_nodes() -> tuple[dict, list]:
    """Image classifier: conv, LIF, max-pool as SumPool2d + Threshold, readout Flatten + Affine + I."""
    rng = np.random.default_rng(0)
    nodes = {
        "visual": nir.Input(np.array([2, 8, 8])),
        "conv": nir.Conv2d(input_shape=(8, 8), weight=rng.normal(size=(4, 2, 3, 3)).astype(np.float32), stride=1,
                           padding=1, dilation=1, groups=1, bias=np.zeros(4, np.float32)),
        "lif": lif(4, 8, 8),
        "pool": nir.SumPool2d(kernel_size=np.array([3, 3]), stride=np.array([2, 2]), padding=np.array([1, 1])),
        "or": nir.Threshold(threshold=np.full((4, 4, 4), 0.5)),
        "flat": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0),
        "head": nir.Affine(weight=rng.normal(size=(5, 64)), bias=np.zeros(5)),
        "acc": nir.I(r=np.full(5, 1 / (T * DT))),
        "logits": nir.Output(np.array([5])),
    }
    names = list(nodes)
    return nodes, list(zip(names[:-1], names[1:]))


def ext_nodes() -> tuple[dict, list]:
    """Token graph using all five extension types, fan-in into ports and a residual."""
    nodes = {
        "x": nir.Input(np.array([C, N])),
        "g": nir.Input(np.array([1])),
        "q": lif(C, N), "k": lif(C, N), "v": lif(C, N),
        "attn": SpikeAttention(shape=(C, N), num_heads=2, scale=0.125, axis="time", layout="faithful", window=T,
                               metadata={"module": "blocks.0.attn"}),
        "scores": AttentionScores(shape=(C, N), num_heads=2),
        "p": lif(2, N, N, theta=0.5),
        "apply": AttentionApply(shape=(C, N), num_heads=2, scale=0.25),
        "fusion": ComplementaryFusion(shape=(C, N), window=T),
        "gate": Gate(shape=(C, N)),
        "alpha": nir.Scale(scale=np.full((C, N), 0.5)),
        "out": nir.Output(np.array([C, N])),
    }
    edges = [("x", "q"), ("x", "k"), ("x", "v"), ("q", "attn.q"), ("k", "attn.k"), ("v", "attn.v"),
             ("q", "scores.q"), ("k", "scores.k"), ("scores", "p"), ("p", "apply.p"), ("v", "apply.v"),
             ("attn", "fusion.spatial"), ("apply", "fusion.temporal"), ("x", "fusion.temporal"),
             ("fusion", "gate.x"), ("g", "gate.gate"), ("gate", "alpha"), ("alpha", "out"), ("x", "out")]
    return nodes, edges


def ext_graph(**meta) -> nir.NIRGraph:
    return make_graph(*ext_nodes(), {**META, **meta})


def plain_graph(**meta) -> nir.NIRGraph:
    return make_graph(*plain_nodes(), {**META, **meta})


def edit(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f)


def set_string(f, key, value):
    del f[key]
    f.create_dataset(key, data=value, dtype=h5py.string_dtype())


def assert_same_graph(a: nir.NIRGraph, b: nir.NIRGraph):
    assert set(a.nodes) == set(b.nodes)
    assert set(map(tuple, a.edges)) == set(map(tuple, b.edges))
    assert a.metadata == b.metadata
    for name, node in a.nodes.items():
        other = b.nodes[name]
        assert type(other) is type(node), name
        d1, d2 = node.to_dict(), other.to_dict()
        assert d1.keys() == d2.keys(), name
        for key in d1:
            if isinstance(d1[key], (str, dict)):
                assert d1[key] == d2[key], (name, key)
            else:
                x, y = np.asarray(d1[key]), np.asarray(d2[key])
                assert x.dtype == y.dtype and np.array_equal(x, y), (name, key)


# ------------------------------------------------------------------------------------------- round trips


def test_extension_graph_round_trip(tmp_path):
    graph = ext_graph(notes={"seed": 3, "ok": True, "name": "tiny", "ratio": 0.5, "inner": {"a": -1}})
    assert graph.metadata["extensions"] == {"snnav.AttentionApply": 1, "snnav.AttentionScores": 1,
                                            "snnav.ComplementaryFusion": 1, "snnav.Gate": 1,
                                            "snnav.SpikeAttention": 1}
    write_graph(tmp_path / "m.nir", graph)
    back = read_graph(tmp_path / "m.nir")
    assert_same_graph(graph, back)
    assert back.nodes["attn"].layout == "faithful" and back.nodes["attn"].metadata == {"module": "blocks.0.attn"}
    notes = back.metadata["notes"]
    assert type(notes["seed"]) is int and type(notes["ok"]) is bool and type(notes["ratio"]) is float
    with h5py.File(tmp_path / "m.nir") as f:
        assert f["node/nodes/attn/type"][()].decode() == SpikeAttention.stored_type
        assert f["node/nodes/attn/shape"].dtype == np.int64 and f["node/nodes/attn/scale"].dtype == np.float64
        assert "read_graph" in f.attrs["snnav_note"]


def test_plain_graph_is_written_exactly_as_nir_write_and_nir_read_type_checks_it(tmp_path):
    graph = plain_graph()
    write_graph(tmp_path / "ours.nir", graph)
    nir.write(tmp_path / "theirs.nir", graph)
    assert (tmp_path / "ours.nir").read_bytes() == (tmp_path / "theirs.nir").read_bytes()
    loaded = nir.read(tmp_path / "ours.nir", type_check=True)
    loaded.check_types()
    np.testing.assert_array_equal(loaded.nodes["pool"].output_type["output"], [4, 4, 4])
    assert_same_graph(graph, read_graph(tmp_path / "ours.nir"))


def test_nir_read_fails_on_extension_graph(tmp_path):
    write_graph(tmp_path / "m.nir", ext_graph())
    with pytest.raises(AssertionError) as info:
        nir.read(tmp_path / "m.nir")
    assert info.traceback[-1].name == "str2NIRNode"  # nir's `assert type in __all_ir`, no message
    # Without asserts (python -O) nir's lookup fails with a KeyError that names the extension and its spec.
    code = f"import nir; nir.read({str(tmp_path / 'm.nir')!r})"
    run = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "KeyError: 'snnav.AttentionApply/v1; spec export/EXTENSIONS.md#attentionapply'" in run.stderr


def test_third_party_graph_without_dt_and_with_a_subgraph_is_read(tmp_path):
    """snnTorch-style recurrent subgraph, no dt, written by nir.write."""
    w = np.eye(3, dtype=np.float32)
    rnn = nir.NIRGraph(nodes={"input": nir.Input(np.array([3])), "lif": lif(3), "w_rec": nir.Linear(weight=w),
                              "output": nir.Output(np.array([3]))},
                       edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
                       type_check=False)
    graph = nir.NIRGraph(nodes={"input": nir.Input(np.array([3])), "fc": nir.Linear(weight=w), "rnn": rnn,
                                "output": nir.Output(np.array([3]))},
                         edges=[("input", "fc"), ("fc", "rnn"), ("rnn", "output")], type_check=False)
    nir.write(tmp_path / "t.nir", graph)
    back = read_graph(tmp_path / "t.nir")
    assert back.metadata == {} and isinstance(back.nodes["rnn"], nir.NIRGraph)
    assert set(back.nodes["rnn"].edges) == set(rnn.edges)
    with pytest.raises(GraphValidationError, match="no 'dt'"):
        read_graph(tmp_path / "t.nir", require_dt=True)


def test_metadata_round_trips_on_plain_graph_nodes(tmp_path):
    graph = plain_graph()
    graph.nodes["lif"].metadata = {"theta": 1.0, "where": "stem.lif", "ids": np.arange(3, dtype=np.int16)}
    write_graph(tmp_path / "m.nir", graph)
    meta = read_graph(tmp_path / "m.nir").nodes["lif"].metadata
    assert meta["theta"] == 1.0 and meta["where"] == "stem.lif"
    assert meta["ids"].dtype == np.int16 and meta["ids"].tolist() == [0, 1, 2]


# ---------------------------------------------------------------------------------------------- atomicity


def test_failure_during_write_leaves_existing_file_untouched(tmp_path, monkeypatch):
    path = tmp_path / "model.nir"
    write_graph(path, plain_graph())
    before = path.read_bytes()

    def broken_write(filename, graph, **kwargs):
        with h5py.File(filename, "w") as f:
            f.create_dataset("version", data="1.0.8")  # a partial file...
        raise OSError("No space left on device")  # ...then the disk fills up

    monkeypatch.setattr(nir, "write", broken_write)
    with pytest.raises(OSError, match="No space left"):
        write_graph(path, ext_graph())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.nir"]  # no temporary file left behind


def test_invalid_graph_is_not_written(tmp_path):
    path = tmp_path / "model.nir"
    path.write_bytes(b"previous")
    graph = ext_graph()
    graph.metadata["dt"] = -1.0
    with pytest.raises(GraphValidationError, match="'dt' must be a finite float > 0"):
        write_graph(path, graph)
    assert path.read_bytes() == b"previous" and len(list(tmp_path.iterdir())) == 1


def test_write_errors_for_bad_destinations(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        write_graph(tmp_path / "missing" / "m.nir", plain_graph())
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        write_graph(tmp_path, plain_graph())


@pytest.mark.parametrize("value, message", [
    (None, "found NoneType"), ([1, 2], "convert lists to numpy arrays"), (np.array(1.0), "at least one dimension"),
    (np.array(["a"]), "must be numeric"), ({"a/b": 1}, "without '/'"), (1j, "found complex"),
])
def test_unstorable_metadata_is_refused(tmp_path, value, message):
    graph = plain_graph()
    graph.metadata["bad"] = value
    with pytest.raises(MetadataError, match=message.replace("(", r"\(")):
        write_graph(tmp_path / "m.nir", graph)
    assert not (tmp_path / "m.nir").exists()


# ---------------------------------------------------------------------------------------------- read errors


def test_missing_file(tmp_path):
    with pytest.raises(NIRFileNotFoundError, match="no NIR file at .*nope.nir") as info:
        read_graph(tmp_path / "nope.nir")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, NIRFormatError)


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(NotANIRFileError, match="is a folder"):
        read_graph(tmp_path)


def test_truncated_file(tmp_path):
    write_graph(tmp_path / "m.nir", ext_graph())
    data = (tmp_path / "m.nir").read_bytes()
    (tmp_path / "cut.nir").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptNIRFileError, match="truncated"):
        read_graph(tmp_path / "cut.nir")


def test_not_hdf5(tmp_path):
    (tmp_path / "text.nir").write_text("hello")
    with pytest.raises(CorruptNIRFileError, match="not readable HDF5"):
        read_graph(tmp_path / "text.nir")


def test_hdf5_but_not_nir(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("weights", data=np.ones(3))
    with pytest.raises(NotANIRFileError, match=r"expected a '/node' group.*\['weights'\]"):
        read_graph(tmp_path / "other.h5")


def test_nir_data_file_is_named(tmp_path):
    data = nir.NIRGraphData(nodes={"lif": nir.NIRNodeData(observables={
        "v": nir.TimeGriddedData(data=np.zeros((1, 2, 3)), dt=DT)})})
    nir.write_data(tmp_path / "d.h5", data)
    with pytest.raises(NotANIRFileError, match="nir.read_data"):
        read_graph(tmp_path / "d.h5")


def test_unknown_node_type_names_type_and_node(tmp_path):
    write_graph(tmp_path / "m.nir", plain_graph())
    edit(tmp_path / "m.nir", lambda f: set_string(f, "node/nodes/pool/type", "MaxPool2d"))
    with pytest.raises(UnknownNodeTypeError) as info:
        read_graph(tmp_path / "m.nir")
    assert "node 'pool' has type 'MaxPool2d'" in str(info.value) and "upgrade nir" in str(info.value)


def test_unknown_snnav_kind(tmp_path):
    write_graph(tmp_path / "m.nir", ext_graph())
    edit(tmp_path / "m.nir", lambda f: set_string(f, "node/nodes/gate/type", "snnav.Softmax/v1; spec x"))
    with pytest.raises(UnknownNodeTypeError, match="node 'gate': unknown snnav extension type 'snnav.Softmax/v1"):
        read_graph(tmp_path / "m.nir")


def test_newer_extension_version(tmp_path):
    write_graph(tmp_path / "m.nir", ext_graph())
    newer = "snnav.SpikeAttention/v2; spec export/EXTENSIONS.md#spikeattention"
    edit(tmp_path / "m.nir", lambda f: set_string(f, "node/nodes/attn/type", newer))
    with pytest.raises(UnsupportedExtensionVersionError) as info:
        read_graph(tmp_path / "m.nir")
    message = str(info.value)
    assert "node 'attn'" in message and "version 2" in message and "written by a newer snnav" in message
    assert "Upgrade snnav" in message


def test_malformed_extension_datasets(tmp_path):
    write_graph(tmp_path / "m.nir", ext_graph())

    def damage(f):
        del f["node/nodes/attn/num_heads"]
        f["node/nodes/gate/bias"] = 1.0
    edit(tmp_path / "m.nir", damage)
    with pytest.raises(InvalidNodeError, match=r"node 'attn'.*missing \['num_heads'\]"):
        read_graph(tmp_path / "m.nir")
    edit(tmp_path / "m.nir", lambda f: f.create_dataset("node/nodes/attn/num_heads", data=3))
    with pytest.raises(InvalidNodeError, match=r"node 'attn'.*num_heads=3 must divide"):
        read_graph(tmp_path / "m.nir")


def test_edge_to_missing_node_in_file(tmp_path):
    write_graph(tmp_path / "m.nir", plain_graph())

    def add_edge(f):
        edges = [list(e) for e in f["node/edges"][()]] + [[b"acc", b"ghost"]]
        del f["node/edges"]
        f.create_dataset("node/edges", data=np.array(edges, dtype=object), dtype=h5py.string_dtype())
    edit(tmp_path / "m.nir", add_edge)
    with pytest.raises(GraphValidationError, match=r"edge \('acc', 'ghost'\): target node 'ghost' does not exist"):
        read_graph(tmp_path / "m.nir")


def test_shape_mismatch_in_file(tmp_path):
    write_graph(tmp_path / "m.nir", plain_graph())

    def shrink(f):
        del f["node/nodes/acc/r"]
        f["node/nodes/acc/r"] = np.ones(6)
    edit(tmp_path / "m.nir", shrink)
    with pytest.raises(GraphValidationError) as info:
        read_graph(tmp_path / "m.nir")
    assert "edge ('head', 'acc'): shape mismatch: 'head' (Affine) outputs (5,) but 'acc' (I) expects (6,)" in str(
        info.value)


@pytest.mark.parametrize("dt, message", [(None, "no 'dt'"), (0.0, "found 0.0"), (-1e-3, "found -0.001"),
                                         (float("nan"), "found nan"), ("1ms", "found '1ms'")])
def test_snnav_graph_needs_valid_dt(tmp_path, dt, message):
    write_graph(tmp_path / "m.nir", plain_graph())

    def set_dt(f):
        del f["node/metadata/dt"]
        if dt is not None:
            f.create_dataset("node/metadata/dt", data=dt)
    edit(tmp_path / "m.nir", set_dt)
    with pytest.raises(GraphValidationError, match=message):
        read_graph(tmp_path / "m.nir")


# ----------------------------------------------------------------------------------------------- validation


def mutated(change) -> nir.NIRGraph:
    nodes, edges = ext_nodes()
    edges = change(nodes, edges) or edges
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(META), type_check=False)


@pytest.mark.parametrize("change, message", [
    (lambda n, e: e + [("ghost", "out")], "edge ('ghost', 'out'): source node 'ghost' does not exist"),
    (lambda n, e: e + [("attn.q", "out")], "sources are plain node names"),
    (lambda n, e: e + [("x", "nowhere")], "edge ('x', 'nowhere'): target node 'nowhere' does not exist"),
    (lambda n, e: e + [("q", "attn")], "edge ('q', 'attn'): names no port of snnav.SpikeAttention node 'attn'"),
    (lambda n, e: e + [("q", "attn.x")], "names unknown port 'x' of snnav.SpikeAttention node 'attn'"),
    (lambda n, e: e + [("x", "q.input")], "LIF node 'q' has a single implicit port"),
    (lambda n, e: [x for x in e if x != ("k", "attn.k")], "no incoming edge into port(s) ['attn.k']"),
    (lambda n, e: e + [("g", "alpha")], "edge ('g', 'alpha'): shape mismatch: 'g' (Input) outputs (1,) but 'alpha'"),
    (lambda n, e: e + [("scores", "apply.v")], "'scores' (snnav.AttentionScores) outputs (2, 4, 4) but"),
    (lambda n, e: e + [("x", "gate.gate")], "expects (1,)"),
    (lambda n, e: e + [("x", "out")], "duplicate edge ('x', 'out')"),
    (lambda n, e: n.update({"attn.q": lif(C, N)}), "clashes with port 'q' of extension node 'attn'"),
    (lambda n, e: n.update({"a/b": lif(C, N)}), "cannot be stored in HDF5"),
    (lambda n, e: n.update({"junk": 3}), "expected a nir.NIRNode"),
    (lambda n, e: [("x", 1)], "pair of node-name strings"),
])
def test_validation_errors_name_the_problem(change, message):
    with pytest.raises(GraphValidationError) as info:
        validate_graph(mutated(change))
    assert message in str(info.value)


def test_extensions_metadata_must_list_used_types():
    graph = mutated(lambda n, e: None)
    graph.metadata["extensions"] = {"snnav.SpikeAttention": 1}
    with pytest.raises(GraphValidationError, match="does not list snnav.AttentionScores: 1"):
        validate_graph(graph)


def test_dt_rules():
    graph = mutated(lambda n, e: None)
    del graph.metadata["dt"]
    validate_graph(graph, require_dt=False)
    with pytest.raises(GraphValidationError, match="no 'dt'"):
        validate_graph(graph)
    graph.metadata["dt"] = True
    with pytest.raises(GraphValidationError, match="found True"):
        validate_graph(graph)


def test_pool_and_conv_shapes_are_inferred_for_validation():
    nodes, edges = plain_nodes()
    nodes["conv"] = nir.Conv2d(input_shape=None, weight=np.ones((4, 2, 3, 3)), stride=1, padding=1, dilation=1,
                               groups=1, bias=np.zeros(4))
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(META), type_check=False)
    validate_graph(graph)
    nodes["or"] = nir.Threshold(threshold=np.full((4, 3, 3), 0.5))
    with pytest.raises(GraphValidationError, match=r"'pool' \(SumPool2d\) outputs \(4, 4, 4\) but 'or'"):
        validate_graph(graph)


# ----------------------------------------------------------------------------------------------- make_graph


def test_make_graph_plain_runs_nir_type_checking_and_wraps_its_errors():
    nodes, edges = plain_nodes()
    edges_before = list(edges)
    graph = make_graph(nodes, edges, META)
    assert graph.nodes["pool"].output_type["output"].tolist() == [4, 4, 4]  # NIR's inference ran
    assert edges == edges_before and "extensions" not in graph.metadata
    nodes, edges = plain_nodes()
    nodes["flat"] = nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=1)  # (4, 16): wrong
    with pytest.raises(GraphValidationError, match="mismatch"):
        make_graph(nodes, edges, META)


def test_make_graph_requires_dt_only_for_snnav_graphs():
    nodes, edges = plain_nodes()
    make_graph(nodes, edges)  # third-party style: no metadata at all
    with pytest.raises(GraphValidationError, match="no 'dt'"):
        make_graph(*plain_nodes(), {"producer": "snnav 0.1.0"})
    with pytest.raises(GraphValidationError, match="no 'dt'"):
        make_graph(*plain_nodes(), require_dt=True)


def test_make_graph_with_extensions_skips_nir_checks_but_validates():
    nodes, edges = ext_nodes()
    graph = make_graph(nodes, edges, META)
    assert set(graph.nodes) == set(nodes)  # nothing added by NIR's inference
    with pytest.raises(GraphValidationError, match="no incoming edge"):
        make_graph(nodes, [e for e in edges if e != ("k", "attn.k")], META)


# ------------------------------------------------------------------------------------------------- summary


def test_summary_and_its_text(tmp_path):
    summary = graph_summary(ext_graph())
    assert summary["num_nodes"] == 13 and summary["num_edges"] == 19
    assert summary["nodes_by_type"]["LIF"] == 4 and summary["nodes_by_type"]["snnav.Gate"] == 1
    assert summary["extensions_by_type"] == {"snnav.AttentionApply": 1, "snnav.AttentionScores": 1,
                                             "snnav.ComplementaryFusion": 1, "snnav.Gate": 1,
                                             "snnav.SpikeAttention": 1}
    assert summary["window_nodes"] == ["attn", "fusion"]
    assert summary["inputs"] == {"x": [C, N], "g": [1]} and summary["outputs"] == {"out": [C, N]}
    assert summary["metadata"]["dt"] == DT
    text = format_summary(summary, file_size_bytes=3 * 1024 * 1024)
    assert "13 nodes, 19 edges, 3.0 MiB" in text and "snnav.SpikeAttention 1" in text and "x (8, 4)" in text
    plain = format_summary(graph_summary(plain_graph()))
    assert "loads with nir.read" in plain and "MiB" not in plain


def test_nir_types_known_to_the_reader_match_nir():
    assert "LIF" in nirfile.NIR_TYPES and "NIRGraph" in nirfile.NIR_TYPES and "Identity" not in nirfile.NIR_TYPES


def test_plain_graph_that_nir_cannot_load_is_not_written_unless_asked(tmp_path):
    nodes = {"pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
             "out": nir.Output(np.array([1, 2, 2]))}
    graph = nir.NIRGraph(nodes=nodes, edges=[("pool", "out")], type_check=False)  # root without input type
    with pytest.raises(GraphValidationError, match="nir.read with NIR's type checking rejects.*Root node 'pool'"):
        write_graph(tmp_path / "m.nir", graph)
    assert list(tmp_path.iterdir()) == []
    write_graph(tmp_path / "m.nir", graph, nir_type_check=False)
    assert set(read_graph(tmp_path / "m.nir").nodes) == {"pool", "out"}


@pytest.mark.parametrize("tau, found", [(np.array(0.01), "a 0-d array"), ([0.01] * 3 + ["x"], "a list")])
def test_parameters_nir_write_cannot_store_are_refused_before_writing(tmp_path, tau, found):
    nodes, edges = plain_nodes()
    graph = make_graph(nodes, edges, META)
    graph.nodes["acc"].r = tau  # e.g. Norse 1.1 exports scalar parameters
    with pytest.raises(GraphValidationError, match=f"node 'acc' \\(I\\): parameter 'r' is {found}"):
        write_graph(tmp_path / "m.nir", graph)
    assert list(tmp_path.iterdir()) == []

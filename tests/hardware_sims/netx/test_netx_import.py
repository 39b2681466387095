"""netx ``.net`` files -> NIR (`hardware_sims.netx.importer.read_netx`): snnav's own files round-trip integer for
integer, and the imported graph runs on the emulator and on netx's own Lava run with the same spikes."""

from __future__ import annotations

import h5py
import nir
import numpy as np
import pytest
from lava_graphs import DT, conv_chain

from hardware_sims.emulator import emulate
from hardware_sims.netx import write_netx
from hardware_sims.netx.importer import NetxImportError, read_netx

T, B = 6, 2


def cuba_chain(rng) -> nir.NIRGraph:
    """Linear -> CubaLIF (a current with memory, a bias on v through v_leak) -> Affine -> IF."""
    n = 12
    nodes = {
        "x": nir.Input(input_type=np.array([8])),
        "fc1": nir.Linear(weight=rng.normal(0.3, 0.6, size=(n, 8))),
        "cuba": nir.CubaLIF(tau_syn=np.full(n, 4e-3), tau_mem=np.full(n, 3e-3), r=np.full(n, 1.5),
                            v_leak=np.full(n, 0.1), v_threshold=np.full(n, 0.5), w_in=np.ones(n), v_reset=np.zeros(n)),
        "fc2": nir.Affine(weight=rng.normal(0.2, 0.5, size=(5, n)), bias=np.full(5, 0.05)),
        "iaf": nir.IF(r=np.full(5, 1 / DT), v_threshold=np.full(5, 1.0), v_reset=np.zeros(5)),
        "out": nir.Output(output_type=np.array([5])),
    }
    edges = [("x", "fc1"), ("fc1", "cuba"), ("cuba", "fc2"), ("fc2", "iaf"), ("iaf", "out")]
    return nir.NIRGraph(nodes, edges, metadata={"dt": DT})


def _datasets(path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path, "r") as f:
        f["layer"].visititems(lambda k, v: out.__setitem__(k, np.asarray(v[()])) if isinstance(v, h5py.Dataset)
                              else None)
    return out


@pytest.mark.parametrize("make", [conv_chain, cuba_chain])
def test_snnavs_netx_files_round_trip_integer_for_integer(make, tmp_path):
    graph = make(np.random.default_rng(3))
    first = write_netx(graph, tmp_path / "a.net")
    imported = read_netx(first.path)
    assert imported.metadata["source"] == "netx"
    second = write_netx(imported, tmp_path / "b.net")
    a, b = _datasets(first.path), _datasets(second.path)
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize("make", [conv_chain, cuba_chain])
def test_the_imported_graph_spikes_as_the_file(make, tmp_path):
    """The re-written file's plan (netx's integers) on the emulator equals the original file's, every layer."""
    rng = np.random.default_rng(3)
    graph = make(rng)
    first = write_netx(graph, tmp_path / "a.net")
    second = write_netx(read_netx(first.path), tmp_path / "b.net")
    shape = tuple(first.plan.input_shapes[first.input_name])
    x = (rng.random((T, B, *shape)) < 0.4).astype(np.float64)
    ours = emulate(first.plan, {first.input_name: x}, precision="fixed")
    back = emulate(second.plan, {second.input_name: x}, precision="fixed")
    spiking = [p.node for p in first.plan.of_kind("neuron") if p.spiking]
    assert all(ours.records[n].sum() > 0 for n in spiking)
    for n in spiking:
        np.testing.assert_array_equal(ours.records[n], back.records[n], err_msg=n)


@pytest.mark.lava
def test_the_imported_graph_equals_netxs_own_lava_run(tmp_path):
    from hardware_sims.netx import run_netx

    rng = np.random.default_rng(3)
    first = write_netx(cuba_chain(rng), tmp_path / "a.net")
    second = write_netx(read_netx(first.path), tmp_path / "b.net")
    x = (rng.random((T, B, 8)) < 0.4).astype(np.float64)
    netx = run_netx(first.path, x)
    ours = emulate(second.plan, {second.input_name: x}, precision="fixed")
    for node, spikes in netx.records.items():
        assert spikes.sum() > 0, node
        np.testing.assert_array_equal(spikes, ours.records[node], err_msg=node)


def test_layers_that_cannot_be_imported_are_named(tmp_path):
    path = tmp_path / "pool.net"
    with h5py.File(path, "w") as f:
        f.create_dataset("layer/0/type", (1,), "S10", [b"input"])
        f.create_dataset("layer/0/shape", data=np.array([2, 4, 4]))
        f.create_dataset("layer/1/type", (1,), "S10", [b"pool"])
    with pytest.raises(NetxImportError, match=r"layer 1 \(pool\): netx layer type 'pool' is not mapped"):
        read_netx(path)
    with pytest.raises(NetxImportError, match="cannot read"):
        read_netx(tmp_path / "missing.net")


def _import_slayer():
    """``lava.lib.dl.slayer``, importable through snnav's compatibility fix (``import hardware_sims`` replaces its
    OpenCV/torchvision object-detection subpackage, which the blocks used here do not need, by a placeholder)."""
    import importlib.util

    import hardware_sims  # noqa: F401  (lava's compatibility fixes before the import)

    if importlib.util.find_spec("lava.lib.dl.slayer") is None:
        pytest.skip("lava-dl (slayer) is not installed")
    import lava.lib.dl.slayer as slayer

    return slayer


def _slayer_file(path, seed: int = 0):
    """Two ``slayer.block.cuba.Dense`` blocks (8 -> 12 -> 5, a current with memory), saved as lava-dl's tutorials do:
    each block's ``export_hdf5`` into ``layer/<i>``, no input layer."""
    import torch

    slayer = _import_slayer()
    torch.manual_seed(seed)
    params = {"threshold": 1.0, "current_decay": 0.25, "voltage_decay": 0.1, "requires_grad": False}
    blocks = [slayer.block.cuba.Dense(params, 8, 12, weight_scale=2, weight_norm=False),
              slayer.block.cuba.Dense(params, 12, 5, weight_scale=2, weight_norm=False)]
    x = (torch.rand(1, 8, T) < 0.4).float()
    for block in blocks:  # one forward pass gives the neurons their shape, which export_hdf5 writes
        x = block(x)
    with h5py.File(path, "w") as f:
        layer = f.create_group("layer")
        for i, block in enumerate(blocks):
            block.export_hdf5(layer.create_group(str(i)))
    return path


def test_a_slayer_file_without_an_input_layer_imports(tmp_path):
    graph = read_netx(_slayer_file(tmp_path / "slayer.net"))
    assert isinstance(graph.nodes["input"], nir.Input) and tuple(graph.nodes["input"].input_type["input"]) == (8,)
    assert isinstance(graph.nodes["layer0"], nir.CubaLIF) and isinstance(graph.nodes["layer1"], nir.CubaLIF)
    np.testing.assert_allclose(graph.nodes["layer0"].tau_syn, DT / 0.25)  # iDecay 1024 of 4096
    assert graph.nodes["layer1_synapse"].weight.shape == (5, 12)
    path = tmp_path / "conv_first.net"
    with h5py.File(path, "w") as f:
        f.create_dataset("layer/0/type", (1,), "S10", [b"conv"])
    with pytest.raises(NetxImportError, match="no 'input' layer and starts with a 'conv' layer"):
        read_netx(path)


@pytest.mark.lava
def test_a_slayer_network_runs_as_netxs_own_lava_run(tmp_path):
    from hardware_sims.netx import run_netx

    path = _slayer_file(tmp_path / "slayer.net")
    x = (np.random.default_rng(0).random((12, B, 8)) < 0.4).astype(np.float64)
    netx = run_netx(path, x)
    ours = emulate(read_netx(path), {"input": x}, precision="fixed")
    assert set(netx.records) == {"layer0", "layer1"}
    for node, spikes in netx.records.items():
        assert spikes.sum() > 0, node
        np.testing.assert_array_equal(spikes, ours.records[node], err_msg=node)

"""Interop proof: graphs exported by snnTorch 1.0.0 (and graphs built with Norse 1.1.0's parameter mapping) run in
the interpreter under that library's convention give the library's own spikes, bit for bit, in every neuron layer.

The interpreter runs with ``stepwise=True`` here: both libraries step one time step at a time, and a BLAS matmul
over ``B`` rows may round differently from one over ``T*B`` rows (see export/interpreter/interpreter.py).
"""

from __future__ import annotations

import warnings

import nir
import numpy as np
import pytest
import torch

from export.interpreter import Interpreter
from export.ir.errors import InvalidNodeError

snn = pytest.importorskip("snntorch")
norse = pytest.importorskip("norse.torch")
from snntorch import utils as snn_utils  # noqa: E402
from snntorch.export_nir import export_to_nir  # noqa: E402

SNNTORCH_DT = 1e-4  # hard-coded in snntorch/export_nir.py
NORSE_DT = 1e-3


def gen(seed):
    return torch.Generator().manual_seed(seed)


def export(net, sample, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nirtorch's extract_nir_graph deprecation
        return export_to_nir(net, sample, **kw)


def run_snntorch(net, x, neurons: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    """Step the snnTorch model over x [T, B, ...]; spikes of each neuron module by NIR node name."""
    seen: dict[str, list] = {name: [] for name in neurons}
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: seen[name].append(o[0] if isinstance(o, tuple) else o))
             for name, m in neurons.items()]
    snn_utils.reset(net)
    with torch.no_grad():
        for t in range(x.shape[0]):
            net(x[t])
    for h in hooks:
        h.remove()
    return {name: torch.stack(s) for name, s in seen.items()}


def leaky(n, seed, **kw):
    shape = (n,) if isinstance(n, int) else n
    beta = torch.rand(shape, generator=gen(seed)) * 0.45 + 0.5  # beta >= 0.5: recoverable bit for bit
    threshold = torch.rand(shape, generator=gen(seed + 1)) * 0.5 + 0.5
    return snn.Leaky(beta=beta, threshold=threshold, init_hidden=True, **kw)


def boost(linear: torch.nn.Linear, factor: float, shift: float = 0.0) -> None:
    """Stronger weights so that the layer after it fires (default init barely drives it)."""
    with torch.no_grad():
        linear.weight.mul_(factor)
        linear.bias.add_(shift)


def assert_same_spikes(graph, ref, x, convention="snntorch", dt=SNNTORCH_DT):
    res = Interpreter(graph, dt=dt, convention=convention, stepwise=True).run(x)
    assert set(ref) <= set(res.spikes)
    for name, spikes in ref.items():
        assert spikes.sum() > 0, f"{name} never fires: the comparison would prove little"
        assert torch.equal(res.spikes[name], spikes), name
    return res


def assert_convention_matters(graph, ref, x, dt=SNNTORCH_DT):
    """Mutation check: NIR's reset-to-v_reset on the same step gives different spikes on the same graph."""
    res = Interpreter(graph, dt=dt, convention="nir", stepwise=True).run(x)
    assert any(not torch.equal(res.spikes[n], s) for n, s in ref.items())


# --------------------------------------------------------------------------------------------------- snnTorch


def test_snntorch_linear_leaky_linear_leaky():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), leaky(8, 1), torch.nn.Linear(8, 4), leaky(4, 3, output=True))
    graph = export(net, torch.randn(6))  # unbatched sample and per-neuron tensors: the working recipe
    x = torch.rand(25, 3, 6, generator=gen(5)) * 1.5
    ref = run_snntorch(net, x, {"1": net[1], "3": net[3]})
    assert_same_spikes(graph, ref, x)
    assert_convention_matters(graph, ref, x)
    with pytest.raises(InvalidNodeError, match="gain"):  # the exporter's dt is 1e-4; another dt is refused
        Interpreter(graph, dt=1e-3, convention="snntorch")


def test_snntorch_beta_one_exports_infinite_tau():
    """beta = 1 (a pure integrator) makes snnTorch write tau = r = dt / 0 = inf; the convention reads beta = 1."""
    torch.manual_seed(0)
    lif = snn.Leaky(beta=torch.tensor([1.0, 0.9, 0.6]), threshold=torch.ones(3), init_hidden=True, output=True)
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), lif)
    with np.errstate(divide="ignore"):
        graph = export(net, torch.randn(2))
    assert np.isinf(graph.nodes["1"].tau[0])
    x = torch.rand(20, 2, 2, generator=gen(5))
    assert_same_spikes(graph, run_snntorch(net, x, {"1": net[1]}), x)


def test_snntorch_conv_leaky_avgpool_flatten_linear_leaky():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1), leaky((4, 6, 6), 1), torch.nn.AvgPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(36, 5), leaky(5, 3, output=True),
    )
    boost(net[4], 3, 0.3)
    graph = export(net, torch.randn(1, 2, 6, 6), ignore_dims=[0])  # batched sample + ignore_dims for conv
    assert [type(graph.nodes[k]).__name__ for k in "012345"] == ["Conv2d", "LIF", "AvgPool2d", "Flatten", "Affine",
                                                                "LIF"]
    x = torch.rand(15, 2, 2, 6, 6, generator=gen(5)) * 2
    ref = run_snntorch(net, x, {"1": net[1], "5": net[5]})
    assert_same_spikes(graph, ref, x)
    assert_convention_matters(graph, ref, x)


@pytest.mark.parametrize("all_to_all", [True, False])
def test_snntorch_rleaky(all_to_all):
    torch.manual_seed(0)
    beta, thr = torch.rand(5, generator=gen(1)) * 0.4 + 0.55, torch.rand(5, generator=gen(2)) * 0.5 + 0.5
    kw = dict(linear_features=5) if all_to_all else dict(V=torch.rand(5, generator=gen(3)) - 0.5)
    rleaky = snn.RLeaky(beta=beta, threshold=thr, all_to_all=all_to_all, init_hidden=True, **kw)
    net = torch.nn.Sequential(torch.nn.Linear(4, 5), rleaky, torch.nn.Linear(5, 3), leaky(3, 4, output=True))
    boost(net[2], 2, 0.3)
    graph = export(net, torch.randn(1, 4), ignore_dims=[0])
    assert ("1.lif", "1.w_rec") in graph.edges and ("1.w_rec", "1.lif") in graph.edges  # flattened recurrence
    x = torch.rand(30, 3, 4, generator=gen(5)) * 0.5
    ref = run_snntorch(net, x, {"1.lif": net[1], "3": net[3]})
    res = assert_same_spikes(graph, ref, x)
    interp = Interpreter(graph, dt=SNNTORCH_DT, convention="snntorch")
    assert interp.recurrent_edges == [("1.lif", "1.w_rec")]
    assert torch.equal(interp.run(x).spikes["1.lif"], res.spikes["1.lif"])  # cyclic graphs always run stepwise
    assert_convention_matters(graph, ref, x)


def test_snntorch_synaptic_as_cubalif():
    torch.manual_seed(0)
    alpha = torch.rand(6, generator=gen(1)) * 0.4 + 0.55
    syn = snn.Synaptic(alpha=alpha, beta=torch.rand(6, generator=gen(2)) * 0.4 + 0.55,
                       threshold=torch.rand(6, generator=gen(3)) + 0.5, init_hidden=True)
    net = torch.nn.Sequential(torch.nn.Linear(3, 6), syn, torch.nn.Linear(6, 2), leaky(2, 4, output=True))
    with torch.no_grad():
        net[2].weight.abs_().mul_(2)
    graph = export(net, torch.randn(3))
    assert isinstance(graph.nodes["1"], nir.CubaLIF)
    x = torch.randn(30, 2, 3, generator=gen(5)) * 0.5
    ref = run_snntorch(net, x, {"1": net[1], "3": net[3]})
    assert_same_spikes(graph, ref, x)
    assert_convention_matters(graph, ref, x)


def test_snntorch_beta_below_one_half_is_not_recoverable():
    """snnTorch writes tau = dt / (1 - beta) in float32; for beta < 0.5, 1 - beta rounds and beta is lost.

    beta = 0.1 (float32 0.100000001490116) gives tau = 1.1111111e-4 and any reader gets back 0.099999994: the
    membrane then differs in the last bit from snnTorch's after one decay, so bit-exactness is impossible there.
    For beta >= 0.5, 1 - beta is exact and the interpreter recovers beta exactly (checked on a grid).
    """
    dt32 = float(np.float32(SNNTORCH_DT))
    beta = np.array([0.1], dtype=np.float32)
    tau = SNNTORCH_DT / (1 - beta)  # snnTorch's arithmetic (float32)
    assert np.float32(1.0 - dt32 / tau.astype(np.float64)[0]) != beta[0]
    grid = np.linspace(0.5, 0.999, 20001, dtype=np.float32)
    tau = SNNTORCH_DT / (1 - grid)
    assert np.array_equal((1.0 - dt32 / tau.astype(np.float64)).astype(np.float32), grid)


# ------------------------------------------------------------------------------------------------------ Norse


def norse_graph(node, n_in, n_out, weight) -> nir.NIRGraph:
    nodes = {"input": nir.Input(np.array([n_in])), "fc": nir.Linear(weight=weight), "neuron": node,
             "output": nir.Output(np.array([n_out]))}
    edges = [("input", "fc"), ("fc", "neuron"), ("neuron", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={}, type_check=False)


def run_norse(cell, fc, x) -> torch.Tensor:
    state, out = None, []
    with torch.no_grad():
        for t in range(x.shape[0]):
            z, state = cell(fc(x[t]), state)
            out.append(z.detach())
    return torch.stack(out)


def params(n, seed):
    g = gen(seed)
    return dict(tau_inv=torch.rand(n, generator=g) * 150 + 50, v_leak=torch.rand(n, generator=g) * 0.4 - 0.2,
                v_th=torch.rand(n, generator=g) * 0.5 + 0.5, v_reset=torch.rand(n, generator=g) * 0.2 - 0.1)


@pytest.fixture
def fc():
    torch.manual_seed(0)
    return torch.nn.Linear(4, 5, bias=False)


def test_norse_lifbox(fc):
    from norse.torch.functional.lif_box import LIFBoxParameters

    p = params(5, 1)
    p["v_leak"] = torch.linspace(0.3, 1.0, 5)  # some rest above threshold: Norse starts at v_leak, NIR at 0
    cell = norse.LIFBoxCell(LIFBoxParameters(tau_mem_inv=p["tau_inv"], v_leak=p["v_leak"], v_th=p["v_th"],
                                             v_reset=p["v_reset"]), dt=NORSE_DT)
    node = nir.LIF(tau=1.0 / p["tau_inv"].double().numpy(), r=np.ones(5), v_leak=p["v_leak"].numpy(),
                   v_threshold=p["v_th"].numpy(), v_reset=p["v_reset"].numpy())
    g = norse_graph(node, 4, 5, fc.weight.detach().numpy())
    x = torch.rand(40, 3, 4, generator=gen(9)) * 4
    ref = {"neuron": run_norse(cell, fc, x)}
    assert_same_spikes(g, ref, x, convention="norse", dt=NORSE_DT)
    assert_convention_matters(g, ref, x, dt=NORSE_DT)  # NIR starts at v = 0, Norse at v_leak


def test_norse_libox_voltage(fc):
    from norse.torch.functional.leaky_integrator_box import LIBoxParameters

    p = params(5, 2)
    cell = norse.LIBoxCell(LIBoxParameters(tau_mem_inv=p["tau_inv"], v_leak=p["v_leak"]), dt=NORSE_DT)
    node = nir.LI(tau=1.0 / p["tau_inv"].double().numpy(), r=np.ones(5), v_leak=p["v_leak"].numpy())
    x = torch.rand(20, 3, 4, generator=gen(9))
    got = Interpreter(norse_graph(node, 4, 5, fc.weight.detach().numpy()), dt=NORSE_DT, convention="norse",
                      stepwise=True).run(x)
    assert torch.equal(got.outputs["output"], run_norse(cell, fc, x))


def test_norse_iaf_ignores_dt(fc):
    from norse.torch.functional.iaf import IAFParameters

    p = params(5, 3)
    cell = norse.IAFCell(IAFParameters(v_th=p["v_th"], v_reset=p["v_reset"]), dt=NORSE_DT)
    node = nir.IF(r=np.ones(5), v_threshold=p["v_th"].numpy(), v_reset=p["v_reset"].numpy())
    g = norse_graph(node, 4, 5, fc.weight.detach().numpy())
    x = torch.rand(20, 3, 4, generator=gen(9))
    ref = {"neuron": run_norse(cell, fc, x)}
    assert_same_spikes(g, ref, x, convention="norse", dt=NORSE_DT)
    assert_convention_matters(g, ref, x, dt=NORSE_DT)


def test_norse_lifcell_as_cubalif(fc):
    from norse.torch.functional.lif import LIFParameters

    p, syn_inv = params(5, 4), torch.rand(5, generator=gen(8)) * 200 + 100
    cell = norse.LIFCell(LIFParameters(tau_syn_inv=syn_inv, tau_mem_inv=p["tau_inv"], v_leak=p["v_leak"],
                                       v_th=p["v_th"], v_reset=p["v_reset"]), dt=NORSE_DT)
    # Norse's exporter mapping: tau = 1/tau_inv, r = 1, w_in = 1 (the current jumps by the input)
    node = nir.CubaLIF(tau_syn=1.0 / syn_inv.double().numpy(), tau_mem=1.0 / p["tau_inv"].double().numpy(),
                       r=np.ones(5), v_leak=p["v_leak"].numpy(), v_threshold=p["v_th"].numpy(),
                       v_reset=p["v_reset"].numpy(), w_in=np.ones(5))
    g = norse_graph(node, 4, 5, fc.weight.detach().numpy())
    x = torch.rand(40, 3, 4, generator=gen(9)) * 2
    ref = {"neuron": run_norse(cell, fc, x)}
    assert_same_spikes(g, ref, x, convention="norse", dt=NORSE_DT)
    assert_convention_matters(g, ref, x, dt=NORSE_DT)


def norse_exported():
    """norse.torch.to_nir(Linear -> LIFBoxCell) as Norse 1.1.0 writes it, with the model and its tau_mem_inv."""
    from norse.torch.functional.lif_box import LIFBoxParameters

    torch.manual_seed(0)
    tau_inv = torch.full((5,), 100.0)  # every parameter per neuron: nir.LIF asserts equal shapes
    p = LIFBoxParameters(tau_mem_inv=tau_inv, v_leak=torch.zeros(5), v_th=torch.full((5,), 0.8))
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), norse.LIFBoxCell(p, dt=NORSE_DT))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = norse.to_nir(model, torch.randn(1, 4))
    return model, graph, tau_inv


def norse_reference(model, x):
    return run_norse(model[1], model[0], x)


def test_norse_to_nir_quirks():
    """What Norse 1.1.0's exporter writes: tau = dt / tau_mem_inv (not 1 / tau_mem_inv; norse#411), the sample's
    batch axis inside the Input type, and torch tensors as parameters."""
    _, graph, tau_inv = norse_exported()
    assert np.allclose(np.asarray(graph.nodes["1"].tau), NORSE_DT / tau_inv.numpy())  # 1e-5, not 1e-2
    assert graph.nodes["input"].input_type["input"].tolist() == [1, 4]
    assert isinstance(graph.nodes["0"].weight, torch.Tensor)


@pytest.mark.xfail(
    strict=True, raises=AssertionError,
    reason="norse 1.1.0 to_nir writes LIF tau = dt / tau_mem_inv (norse#411): run as exported, dt/tau = 100 per step "
           "instead of Norse's dt * tau_mem_inv = 0.1",
)
def test_norse_to_nir_graph_as_exported_reproduces_norse():
    model, graph, _ = norse_exported()
    x = torch.rand(30, 3, 1, 4, generator=gen(9)) * 4  # per-sample shape (1, 4), as the exporter declared
    res = Interpreter(graph, dt=NORSE_DT, convention="norse", stepwise=True).run(x)
    assert torch.equal(res.spikes["1"], norse_reference(model, x))


def test_norse_to_nir_graph_with_tau_corrected_reproduces_norse():
    model, graph, tau_inv = norse_exported()
    graph.nodes["1"].tau = (1.0 / tau_inv.double()).numpy()  # what the exporter should have written
    x = torch.rand(30, 3, 1, 4, generator=gen(9)) * 4
    ref = norse_reference(model, x)
    assert ref.sum() > 0
    res = Interpreter(graph, dt=NORSE_DT, convention="norse", stepwise=True).run(x)
    assert torch.equal(res.spikes["1"], ref)

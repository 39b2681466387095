"""Small NIR graphs for the Lava backend tests (plan and float runs). Each builder takes a seeded generator.

Weights are scaled so that every spiking layer fires at a moderate rate on random binary inputs of density 0.5.
"""

from __future__ import annotations

import nir
import numpy as np

DT = 1e-3


def lif(shape, tau=2e-3, th=1.0, r=1.0, leak=0.0) -> nir.LIF:
    """S-CMRL's neuron (tau = 2 dt) unless told otherwise."""
    full = lambda v: np.full(shape, v, dtype=np.float64)  # noqa: E731
    return nir.LIF(tau=full(tau), r=full(r), v_leak=full(leak), v_threshold=full(th))


def binary(rng, steps: int, batch: int, shape) -> np.ndarray:
    return (rng.random((steps, batch, *shape)) < 0.5).astype(np.float64)


def lif_chain(rng) -> nir.NIRGraph:
    """Input(8) -> Affine -> LIF -> Linear -> LIF(leak, other tau and threshold) -> Output."""
    nodes = {
        "x": nir.Input(input_type=np.array([8])),
        "fc1": nir.Affine(weight=rng.normal(0.4, 0.6, size=(10, 8)), bias=rng.normal(0, 0.2, size=10)),
        "lif1": lif((10,)),
        "fc2": nir.Linear(weight=rng.normal(0.3, 0.8, size=(6, 10))),
        "lif2": lif((6,), tau=5e-3, th=0.7, r=2.0, leak=0.05),
        "out": nir.Output(output_type=np.array([6])),
    }
    edges = [("x", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "out")]
    return nir.NIRGraph(nodes, edges, metadata={"dt": DT})


def conv_pool(rng) -> nir.NIRGraph:
    """Conv2d -> LIF -> SumPool2d -> Threshold (snnav's max-pool over spikes), strided, padded, biased."""
    c, h, w = 2, 8, 7
    nodes = {
        "img": nir.Input(input_type=np.array([c, h, w])),
        "conv": nir.Conv2d(input_shape=(h, w), weight=rng.normal(0.2, 0.6, size=(3, c, 3, 3)), stride=1, padding=1,
                           dilation=1, groups=1, bias=rng.normal(0, 0.1, size=3)),
        "lif": lif((3, h, w)),
        "pool": nir.SumPool2d(kernel_size=np.array([3, 3]), stride=np.array([2, 2]), padding=np.array([1, 1])),
        "thr": nir.Threshold(threshold=np.full((3, 4, 4), 0.5)),
        "out": nir.Output(output_type=np.array([3, 4, 4])),
    }
    edges = [("img", "conv"), ("conv", "lif"), ("lif", "pool"), ("pool", "thr"), ("thr", "out")]
    return nir.NIRGraph(nodes, edges, metadata={"dt": DT})


def residual(rng) -> nir.NIRGraph:
    """A residual: lif1 reaches lif3 directly (through Scale(0.5) and fc3) and through fc2 -> lif2 -> fc3."""
    nodes = {
        "x": nir.Input(input_type=np.array([6])),
        "fc1": nir.Affine(weight=rng.normal(0.9, 0.6, size=(5, 6)), bias=rng.normal(0, 0.1, size=5)),
        "lif1": lif((5,)),
        "fc2": nir.Linear(weight=rng.normal(1.2, 0.8, size=(5, 5))),
        "lif2": lif((5,)),
        "skip": nir.Scale(scale=np.full(5, 0.5)),
        "fc3": nir.Linear(weight=rng.normal(1.5, 0.8, size=(4, 5))),
        "lif3": lif((4,)),
        "out": nir.Output(output_type=np.array([4])),
    }
    edges = [("x", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "fc3"), ("lif1", "skip"),
             ("skip", "fc3"), ("fc3", "lif3"), ("lif3", "out")]
    return nir.NIRGraph(nodes, edges, metadata={"dt": DT})


def two_inputs_readout(rng, time_steps: int = 8) -> nir.NIRGraph:
    """Two Inputs (audio flattened) into one LIF; snnav's readout Affine -> I(r = 1/(T dt)) -> logits."""
    nodes = {
        "audio": nir.Input(input_type=np.array([3, 4])),
        "visual": nir.Input(input_type=np.array([5])),
        "flat": nir.Flatten(input_type={"input": np.array([3, 4])}, start_dim=0, end_dim=-1),
        "wa": nir.Affine(weight=rng.normal(0.2, 0.5, size=(6, 12)), bias=rng.normal(0, 0.1, size=6)),
        "wv": nir.Linear(weight=rng.normal(0.2, 0.5, size=(6, 5))),
        "lif": lif((6,), tau=3e-3, th=0.8, r=1.5, leak=0.1),
        "head": nir.Affine(weight=rng.normal(0, 1, size=(3, 6)), bias=rng.normal(0, 0.5, size=3)),
        "acc": nir.I(r=np.full(3, 1.0 / (time_steps * DT))),
        "logits": nir.Output(output_type=np.array([3])),
    }
    edges = [("audio", "flat"), ("flat", "wa"), ("wa", "lif"), ("visual", "wv"), ("wv", "lif"), ("lif", "head"),
             ("head", "acc"), ("acc", "logits")]
    return nir.NIRGraph(nodes, edges, metadata={"dt": DT, "readout_step": time_steps - 1})


def recurrent(rng) -> nir.NIRGraph:
    """snnTorch's RLeaky shape: lif -> w_rec -> lif, with a recurrent bias."""
    nodes = {
        "x": nir.Input(input_type=np.array([4])),
        "w_in": nir.Affine(weight=rng.normal(0.8, 0.6, size=(5, 4)), bias=rng.normal(0, 0.1, size=5)),
        "lif": lif((5,)),
        "w_rec": nir.Affine(weight=rng.normal(0.3, 1.0, size=(5, 5)), bias=rng.normal(0, 0.2, size=5)),
        "out": nir.Output(output_type=np.array([5])),
    }
    edges = [("x", "w_in"), ("w_in", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "out")]
    return nir.NIRGraph(nodes, edges, metadata={"dt": DT})


def wiring(rng) -> nir.NIRGraph:
    """Graded Input straight into a LIF (gain synapse), AvgPool2d, IF, a NIR Delay, Scale, Flatten, an LI readout."""
    nodes = {
        "x": nir.Input(input_type=np.array([2, 4, 4])),
        "l0": lif((2, 4, 4), th=0.4),
        "avg": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "if": nir.IF(r=np.full((2, 2, 2), 400.0), v_threshold=np.full((2, 2, 2), 0.3)),
        "d": nir.Delay(delay=np.full((2, 2, 2), 2 * DT)),
        "s": nir.Scale(scale=np.full((2, 2, 2), 0.7)),
        "f": nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0, end_dim=-1),
        "lin": nir.Linear(weight=rng.normal(0, 1, size=(3, 8))),
        "f2": nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0, end_dim=-1),
        "lin2": nir.Linear(weight=rng.normal(0, 1, size=(3, 8))),
        "li": nir.LI(tau=np.full(3, 4e-3), r=np.ones(3), v_leak=np.zeros(3)),
        "out": nir.Output(output_type=np.array([3])),
        "delayed": nir.Output(output_type=np.array([2, 2, 2])),
    }
    edges = [("x", "l0"), ("l0", "avg"), ("avg", "if"), ("if", "d"), ("d", "s"), ("s", "f"), ("f", "lin"),
             ("lin", "li"), ("if", "f2"), ("f2", "lin2"), ("lin2", "li"), ("li", "out"), ("d", "delayed")]
    return nir.NIRGraph(nodes, edges, metadata={"dt": DT})


def conv_chain(rng) -> nir.NIRGraph:
    """The plain convolutional baseline: biased convs, one strided, a second LIF with other tau and threshold."""
    c, h, w = 2, 8, 8
    nodes = {
        "img": nir.Input(input_type=np.array([c, h, w])),
        "conv1": nir.Conv2d(input_shape=(h, w), weight=rng.normal(0.15, 0.8, size=(4, c, 3, 3)), stride=1,
                            padding=1, dilation=1, groups=1, bias=rng.normal(0, 0.2, size=4)),
        "lif1": lif((4, h, w)),
        "conv2": nir.Conv2d(input_shape=(h, w), weight=rng.normal(0.05, 0.7, size=(6, 4, 3, 3)), stride=2,
                            padding=1, dilation=1, groups=1, bias=np.zeros(6)),
        "lif2": lif((6, 4, 4), tau=4e-3, th=0.8),
        "flat": nir.Flatten(input_type={"input": np.array([6, 4, 4])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=rng.normal(0.02, 0.5, size=(10, 96)), bias=rng.normal(0, 0.1, size=10)),
        "lif3": lif((10,)),
        "out": nir.Output(output_type=np.array([10])),
    }
    edges = [("img", "conv1"), ("conv1", "lif1"), ("lif1", "conv2"), ("conv2", "lif2"), ("lif2", "flat"),
             ("flat", "fc"), ("fc", "lif3"), ("lif3", "out")]
    return nir.NIRGraph(nodes, edges, metadata={"dt": DT})

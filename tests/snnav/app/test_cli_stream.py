"""``snnav simulate --stream``: a tiny trained streaming S-CMRL (``scmrl-causal``) read at every step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from export.ir.nirfile import read_graph
from snnav.app import cli
from snnav.app.simulate import final_decision_steps, open_test_split, simulate
from snnav.data.av_digits import AVDigitsConfig, generate_av_digits
from snnav.training.config import TrainConfig
from snnav.training.loop import train

T = 6


@pytest.fixture(scope="module")
def causal_export(tmp_path_factory):
    """A 1-epoch scmrl-causal (D = 16, 32x32 event and cochlea views over T = 6) trained at every step, exported."""
    root = tmp_path_factory.mktemp("stream_cli")
    data = root / "avd.h5"
    generate_av_digits(data, AVDigitsConfig(n_train=40, n_test=10, frame_size=32, time_steps=T, n_voices=6), workers=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(TrainConfig(model="scmrl-causal", data=str(data), time_steps=T, epochs=1, batch_size=8, warmup_epochs=0,
                          lr=0.05, seed=3, device="cpu", step_loss="every-step",
                          data_options={"audio_view": "cochlea", "visual_view": "events"},
                          model_config={"embed_dim": 16, "num_heads": 4, "mlp_ratio": 2}), root / "run")
    finally:
        torch.set_num_threads(threads)
    assert cli.main(["export", str(root / "run"), "--out", str(root / "m.nir"), "--dt-s", "1e-3"]) == 0
    return root / "m.nir", data


def test_final_decision_step_is_where_the_prediction_stops_changing():
    pred = np.array([[1, 2, 0, 3],
                     [1, 0, 0, 3],
                     [1, 2, 0, 1],
                     [1, 2, 0, 3]])  # [T, B]
    assert final_decision_steps(pred).tolist() == [0, 2, 0, 3]


def test_stream_prints_the_curve_for_a_causal_export(causal_export, capsys):
    graph_path, data = causal_export
    assert cli.main(["simulate", str(graph_path), "--backend", "emulator", "--precision", "fixed", "--samples", "10",
                     "--data", str(data), "--stream"]) == 0
    out = capsys.readouterr().out
    assert "causal graph (no node waits for later steps)" in out and "steps seen  Lava step  accuracy" in out
    assert "decision latency" in out and "up to the final decision" in out


def test_stream_result_agrees_with_the_last_step_and_the_float_reference(causal_export):
    graph_path, data = causal_export
    graph = read_graph(graph_path)
    assert not [k for k, n in graph.nodes.items() if getattr(n, "needs_future", False)]
    result = simulate(graph, open_test_split(graph, data), 10, "float", backend="emulator", stream=True,
                      progress=lambda *_: None)
    st = result.stream
    assert st.steps == T and st.window_nodes == () and st.pipeline_depth > 0
    assert st.accuracy_by_step[-1] == pytest.approx(result.accuracy)
    np.testing.assert_allclose(st.accuracy_by_step, st.float_accuracy_by_step)  # float emulator = interpreter
    assert st.final_steps.shape == (10,) and (st.final_steps < T).all()
    assert (st.decision_latency == st.final_steps + st.pipeline_depth).all()
    assert (st.spikes_to_decision <= st.spikes_total).all() and st.spikes_total.min() > 0

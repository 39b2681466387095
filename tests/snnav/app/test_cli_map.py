"""``snnav map``: the mapping of an export onto a chip, printed; exit 2 when it does not fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from export.from_torch.exporter import ExportConfig, export_model
from export.ir.nirfile import write_graph
from snnav.app import cli

EXPORT_TESTS = Path(__file__).resolve().parents[2] / "export"


@pytest.fixture(scope="module")
def small_nir(tmp_path_factory):
    import importlib.util

    spec = importlib.util.spec_from_file_location("snnav_export_test_models_map", EXPORT_TESTS / "export_models.py")
    tm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tm)
    graph = export_model(tm.small_model("scmrl"), ExportConfig(dt_s=1e-3, time_steps=tm.T,
                                                               audio_shape=(1, tm.SIZE, tm.SIZE),
                                                               visual_shape=(2, tm.SIZE, tm.SIZE)))
    path = tmp_path_factory.mktemp("map") / "scmrl.nir"
    write_graph(path, graph)
    return path


def test_map_prints_cores_per_layer_chips_and_extension_placements(small_nir, capsys):
    assert cli.main(["map", str(small_nir), "--chip", "loihi1", "--chip", "loihi2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("loihi1: ") and "\nloihi2: " in out
    assert "stem_audio_stages_0_lif" in out and " cores (" in out
    assert "extension snnav.SpikeAttention" in out and "assumption" in out


def test_a_network_that_does_not_fit_exits_2_naming_the_constraint_unless_allowed(small_nir, capsys):
    assert cli.main(["map", str(small_nir), "--weight-bits", "12"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not fit on loihi2" in err[0] and "weight width needs 12 bits" in err[0]
    assert cli.main(["map", str(small_nir), "--weight-bits", "12", "--allow-overflow"]) == 0
    assert "VIOLATION" in capsys.readouterr().out


def test_json_output_and_an_existing_file(small_nir, tmp_path, capsys):
    out = tmp_path / "map.json"
    assert cli.main(["map", str(small_nir), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["mappings"][0]["chip"] == "loihi2" and data["mappings"][0]["cores"] > 0
    before = out.read_bytes()
    assert cli.main(["map", str(small_nir), "--json", str(out)]) == 2
    assert "exists" in capsys.readouterr().err and out.read_bytes() == before
    assert cli.main(["map", str(small_nir), "--json", str(out), "--force"]) == 0


@pytest.mark.parametrize("chip, message", [
    ({"x": 1}, "format"),
    ("not json", "not valid JSON"),
])
def test_a_bad_chip_file_is_one_line_naming_the_problem(small_nir, tmp_path, capsys, chip, message):
    path = tmp_path / "chip.json"
    path.write_text(chip if isinstance(chip, str) else json.dumps(chip))
    assert cli.main(["map", str(small_nir), "--chip", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err

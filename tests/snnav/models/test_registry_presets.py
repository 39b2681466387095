"""Registry errors, config round trip, dataset presets, and parameter counts against docs/scmrl.md §1.9."""

from __future__ import annotations

import pytest
import torch

from snnav.errors import ConfigError
from snnav.models import DatasetPreset, create_model, list_models, list_presets, model_defaults, model_preset
from snnav.models.registry import register_model
from snnav.neurons import MultiStepLIF


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_unknown_name_and_key_name_the_valid_ones():
    with pytest.raises(ConfigError, match="scmrl"):
        create_model("s-cmrl", num_classes=3)
    with pytest.raises(ConfigError, match="valid keys:.*embed_dim"):
        create_model("scmrl", num_classes=3, embed_dims=64)
    with pytest.raises(ConfigError, match="alpha"):
        create_model("av-add", num_classes=3, alpha=1.5)  # av-add has no residual: the key is not silently dropped
    with pytest.raises(ConfigError, match="num_classes"):
        create_model("scmrl")
    with pytest.raises(ConfigError, match="neuron_layer"):
        create_model("scmrl", num_classes=3, neuron_layer=MultiStepLIF, tau=3.0)
    with pytest.raises(ConfigError, match="attn_variant"):
        create_model("cmrl", num_classes=3, attn_variant="Spatial")
    with pytest.raises(ConfigError, match="num_heads"):
        create_model("scmrl", num_classes=3, embed_dim=40, num_heads=16)
    with pytest.raises(ConfigError, match="divisible by 8"):
        create_model("av-add", num_classes=3, embed_dim=36, num_heads=4)


def test_defaults_cover_every_accepted_key():
    assert model_defaults("scmrl")["alpha"] == 1.5
    assert model_defaults("scmrl")["temporal_reshape"] == "faithful"
    assert model_defaults("sca")["sca_random_rpb"] is False
    assert "alpha" not in model_defaults("weight-attention")
    assert model_defaults("av-add")["threshold"] == 1.0


@pytest.mark.parametrize("variant, alpha", [("spatial-temporal", 1.5), ("spatial", 1.0), ("temporal", 1.0)])
def test_cmrl_alpha_follows_the_authors_run_of_each_variant(variant, alpha):
    # docs/scmrl.md §3.1: the CREMA-D Spatial / Temporal rows ran without --alpha (the code's default 1.0).
    assert model_defaults("cmrl", attn_variant=variant)["alpha"] == alpha
    model = create_model("cmrl", num_classes=3, embed_dim=32, num_heads=4, stem="shallow", attn_variant=variant)
    assert model.config["alpha"] == alpha
    assert model.block_audio.alpha == model.block_visual.alpha == alpha
    again = create_model("cmrl", **model.config)
    assert again.config == model.config
    explicit = create_model("cmrl", num_classes=3, embed_dim=32, num_heads=4, stem="shallow", attn_variant=variant,
                            alpha=1.5)  # the UrbanSound8K-AV rows passed --alpha 1.5
    assert explicit.config["alpha"] == explicit.block_audio.alpha == 1.5
    # S-CMRL keeps 1.5 for every variant (only its spatial-temporal form is an authors' run)
    assert model_defaults("scmrl", attn_variant=variant)["alpha"] == 1.5


def test_choice_defaults_are_checked():
    with pytest.raises(ConfigError, match="attn"):
        model_defaults("cmrl", attn="spatial")
    with pytest.raises(ConfigError, match="not in its defaults"):
        register_model("bad-choice", defaults={"a": 1}, choice_defaults={"a": {1: {"b": 2}}})


@pytest.mark.parametrize("name", list_models())
def test_config_rebuilds_the_same_model(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=4, embed_dim=32, num_heads=4, stem="shallow")
    assert model.model_name == name
    torch.manual_seed(0)
    again = create_model(model.model_name, **model.config)
    assert model.config == again.config
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_presets():
    assert list_presets() == ["av-digits", "av-digits-events", "crema-d", "mnistdvs-ntidigits", "urbansound8k-av"]
    crema = model_preset("crema-d")
    sizes = (crema.embed_dim, crema.input_size, crema.num_classes, crema.time_steps, crema.num_tokens)
    assert sizes == (256, 128, 6, 4, 64)
    assert model_preset("mnistdvs-ntidigits").num_tokens == 49
    assert model_preset("av-digits-events").in_channels_visual == 2
    assert DatasetPreset.from_dict(crema.to_dict()) == crema
    with pytest.raises(ConfigError, match="crema-d"):
        model_preset("cremad")


@pytest.mark.parametrize("dataset", ["av-digits", "av-digits-events", "mnistdvs-ntidigits"])
def test_small_presets_run(dataset):
    p = model_preset(dataset)
    torch.manual_seed(0)
    model = create_model("scmrl", **p.model_kwargs())
    s = p.input_size
    out = model(
        torch.rand(p.time_steps, 2, p.in_channels_audio, s, s), torch.rand(p.time_steps, 2, p.in_channels_visual, s, s)
    )
    assert out.logits.shape == (2, p.num_classes)
    assert model.stem_audio(torch.zeros(1, 1, p.in_channels_audio, s, s)).shape[-1] == p.num_tokens


# docs/scmrl.md §1.9, CREMA-D (D = 256, h = 16): per-component counts and the "on forward path" total 4.204 M.
CREMA_COMPONENTS = {
    "stem_visual": 979_232,
    "stem_audio": 978_656,
    "block_audio.attn.spatial": 264_192,
    "block_audio.attn.temporal": 264_192,
    "block_audio.trans_linear": 65_792,
    "mlp_audio": 528_128,
    "head": 1_542,
}
# Spec totals include 27,168 parameters of unused modules (AVattention 25,120 + LayerNorms 2,048) that we do not
# build; CMCI additionally omits the never-used visual branch (659,712).
UNUSED = 25_120 + 2_048
SPEC_TOTALS_M = {
    "scmrl": (4.231, UNUSED),
    "weight-attention": (3.31, UNUSED),
    "sca": (3.57, UNUSED),
    "cmci": (4.37, UNUSED + 659_712),
    "spikformer-audio": (1.77, 0),
    "spikformer-visual": (1.77, 0),
}


def test_crema_d_scmrl_parameter_breakdown():
    model = create_model("scmrl", **model_preset("crema-d").model_kwargs())
    modules = dict(model.named_modules())
    for name, expected in CREMA_COMPONENTS.items():
        assert n_params(modules[name]) == expected, name
    assert n_params(model) == 4_204_038  # spec: 4.204 M on the forward path
    assert n_params(model) + UNUSED == 4_231_206  # spec: 4.231 M including unused modules


@pytest.mark.parametrize("name", sorted(SPEC_TOTALS_M))
def test_crema_d_totals_match_spec(name):
    model = create_model(name, **model_preset("crema-d").model_kwargs())
    spec_m, not_built = SPEC_TOTALS_M[name]
    assert round((n_params(model) + not_built) / 1e6, 2) == round(spec_m, 2)


def test_crema_d_cmci_difference_to_reference():
    # The reference's CMCI at D = 256, summed from the component counts of docs/scmrl.md §1.9: two stems, a CMCI
    # block per direction (fc1 + fc2 + MLPBlock), two MLPBlocks, three heads, AVattention and four LayerNorms.
    cmci_block = 2 * (256 * 256 + 256) + CREMA_COMPONENTS["mlp_audio"]
    reference = (CREMA_COMPONENTS["stem_audio"] + CREMA_COMPONENTS["stem_visual"] + 2 * cmci_block
                 + 2 * CREMA_COMPONENTS["mlp_audio"] + 3 * CREMA_COMPONENTS["head"] + UNUSED)
    assert cmci_block == 659_712 and reference == 4_365_362
    model = create_model("cmci", **model_preset("crema-d").model_kwargs())
    assert n_params(model.block_audio) == cmci_block  # the visual direction would be the same block, unused
    assert n_params(model) == 3_678_482
    assert reference - n_params(model) == 686_880 == 659_712 + UNUSED


@pytest.mark.parametrize("variant", ["spatial", "temporal"])
def test_crema_d_single_branch_cmrl_matches_spec(variant):
    # "Spatial-only or Temporal-only 3.57 M": one attention per direction, no projection.
    model = create_model("cmrl", attn_variant=variant, **model_preset("crema-d").model_kwargs())
    assert round((n_params(model) + UNUSED) / 1e6, 2) == 3.57


def test_urbansound8k_scmrl_on_forward_path():
    model = create_model("scmrl", **model_preset("urbansound8k-av").model_kwargs())
    assert round(n_params(model) / 1e6, 3) == 0.267


@pytest.mark.slow
def test_crema_d_scmrl_forward_at_full_size():
    p = model_preset("crema-d")
    torch.manual_seed(0)
    model = create_model("scmrl", **p.model_kwargs())
    a = torch.randn(p.time_steps, 2, 1, 128, 128) * 4  # log-spectrogram-like range
    v = torch.randn(p.time_steps, 2, 3, 128, 128)  # ImageNet-normalised-like
    a0 = model.stem_audio(a)
    assert a0.shape == (4, 2, 256, 64)  # (T, B, D, N = 8 x 8)
    out = model(a, v)
    assert out.logits.shape == (2, 6) and out.align_audio.shape == (4, 2, 256)

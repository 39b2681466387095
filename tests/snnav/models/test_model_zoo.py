"""Every registered model: output fields and shapes, gradients reach every parameter, determinism, P_F."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from snnav.errors import ConfigError
from snnav.models import FiringRates, ModelOutput, create_model, list_models
from snnav.models.audiovisual import CrossModalResidualSpikformer
from snnav.neurons import MultiStepLIF

T, B, K, D, SIZE = 4, 3, 5, 32, 16  # shallow stem: 16x16 -> 4x4 = 16 tokens
# 4 heads (d = 8): with d = 2, 0.25 * Q K^T V over 16 tokens or 4 steps cannot reach attn_lif's threshold.
SMALL = dict(num_classes=K, embed_dim=D, num_heads=4, stem="shallow", in_channels_audio=1, in_channels_visual=2)

EXPECTED_FIELDS = {
    "spikformer-audio": {"logits", "feat_audio"},
    "spikformer-visual": {"logits", "feat_visual"},
    "scmrl": {"logits", "feat_audio", "feat_visual", "align_audio", "align_visual", "step_logits"},
    "scmrl-causal": {"logits", "feat_audio", "feat_visual", "align_audio", "align_visual", "step_logits"},
    "cmci": {"logits", "feat_audio", "feat_visual", "aux_logits", "step_logits"},
}
AV_FIELDS = {"logits", "feat_audio", "feat_visual", "step_logits"}


def inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(T, B, 1, SIZE, SIZE, generator=gen) * 3, torch.rand(T, B, 2, SIZE, SIZE, generator=gen) * 3


def build(name: str, seed: int = 0, excite: bool = False, **extra) -> nn.Module:
    torch.manual_seed(seed)
    model = create_model(name, **SMALL, **extra)
    if excite:
        # At init, BN -> LIF(theta = 1) fires ~3 % of the time, so Q K^T V stays below attn_lif's threshold at
        # these small sizes and every layer after a silent one gets a zero weight gradient. Shifting BN biases up
        # makes every layer fire, so a zero gradient then means a wiring fault, not silence. Linear layers
        # (std 0.02 init, no BN after them) get a bias above threshold for the same reason.
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.bias.fill_(2.0)
                elif isinstance(m, nn.Linear):
                    m.bias.fill_(1.2)
    return model


def total_loss(out: ModelOutput) -> torch.Tensor:
    """Touch every output a training loss would use, with fixed random weights so no term cancels."""
    gen = torch.Generator().manual_seed(123)
    terms = [out.logits, *out.aux_logits.values()]
    terms += [t for t in (out.align_audio, out.align_visual) if t is not None]
    return sum((t * torch.randn(t.shape, generator=gen)).sum() for t in terms)


def test_registry_lists_every_model():
    names = ["spikformer-audio", "spikformer-visual", "av-add", "av-concat", "cmrl", "scmrl", "scmrl-causal"]
    assert list_models() == sorted(names + ["weight-attention", "sca", "cmci"])


@pytest.mark.parametrize("name", list_models())
def test_output_fields_and_shapes(name):
    model = build(name)
    out = model(*inputs())
    assert isinstance(out, ModelOutput)
    assert set(out.present()) == EXPECTED_FIELDS.get(name, AV_FIELDS)
    assert out.logits.shape == (B, K)
    if out.step_logits is not None:  # the decision readable at every step; the last one is the logits
        assert out.step_logits.shape == (T, B, K)
        torch.testing.assert_close(out.step_logits[-1], out.logits, rtol=1e-5, atol=1e-6)
    for feat in (out.feat_audio, out.feat_visual):
        assert feat is None or feat.shape == (B, D)
    for align in (out.align_audio, out.align_visual):
        assert align is None or (align.shape == (T, B, D) and 0 <= align.min() and align.max() <= 1)
    for logits in out.aux_logits.values():
        assert logits.shape == (B, K)
    assert model.embed_dim == D
    assert set(model.modalities) <= {"audio", "visual"} and model.modalities


@pytest.mark.parametrize("name", list_models())
def test_backward_reaches_every_parameter(name):
    model = build(name, excite=True)
    with FiringRates(model) as probe:
        total_loss(model(*inputs())).backward()
    assert min(probe.rates.values()) > 0  # every spiking layer is active
    dead = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert dead == []


@pytest.mark.parametrize("name", list_models())
def test_deterministic(name):
    a, v = inputs(1)
    m1, m2 = build(name, seed=7), build(name, seed=7)
    for k, t in m1.state_dict().items():
        assert torch.equal(t, m2.state_dict()[k]), k
    m1.eval()
    assert torch.equal(m1(a, v).logits, m1(a, v).logits)
    assert torch.equal(m2(a, v).logits, m2(a, v).logits)  # train mode: batch statistics, same batch


def test_models_ignore_or_require_modalities():
    a, v = inputs()
    assert build("spikformer-audio")(a, None).feat_visual is None
    assert build("spikformer-visual")(None, v).feat_audio is None
    with pytest.raises(ValueError, match="audio"):
        build("spikformer-audio")(None, v)
    with pytest.raises(ValueError, match="both audio and visual"):
        build("scmrl")(a, None)


@pytest.mark.parametrize("name", ["scmrl", "cmrl", "sca", "cmci", "weight-attention"])
def test_cross_modal_models_need_equal_token_counts(name):
    a, _ = inputs()
    v = torch.rand(T, B, 2, 2 * SIZE, 2 * SIZE)
    with pytest.raises(ValueError, match="token count"):
        build(name)(a, v)


def test_add_fusion_accepts_different_token_counts():
    a, _ = inputs()
    out = build("av-add")(a, torch.rand(T, B, 2, 2 * SIZE, 2 * SIZE))
    assert out.logits.shape == (B, K)


def test_sca_random_rpb_is_nondeterministic_only_when_asked():
    a, v = inputs()
    noisy = build("sca", excite=True, sca_random_rpb=True).eval()
    torch.manual_seed(1)
    first = noisy(a, v).logits
    torch.manual_seed(2)
    assert not torch.equal(first, noisy(a, v).logits)
    fixed = build("sca").eval()
    assert torch.equal(fixed(a, v).logits, fixed(a, v).logits)


def test_alpha_zero_cmrl_has_dead_cross_attention():
    # docs/scmrl.md §2: without the projection, alpha = 0 cuts the attention off from every gradient.
    model = build("cmrl", excite=True, alpha=0.0)
    total_loss(model(*inputs())).backward()
    assert all(p.grad is None or not p.grad.any() for p in model.block_audio.parameters())
    model = build("scmrl", excite=True, alpha=0.0)  # the alignment features still train it
    total_loss(model(*inputs())).backward()
    assert any(p.grad is not None and p.grad.any() for p in model.block_audio.parameters())


@pytest.mark.parametrize("name", list_models())
def test_fusion_parameters(name):
    model = build(name)
    ids = {id(p) for p in model.parameters()}
    head = model.fusion_parameters("head")
    wider = model.fusion_parameters("head+attention")
    assert head and {id(p) for p in head} <= {id(p) for p in wider} <= ids
    assert {id(p) for p in head} == {id(p) for p in model.head.parameters()}
    if name in {"scmrl", "cmrl", "sca", "weight-attention", "cmci"}:
        assert len(wider) > len(head)
    with pytest.raises(Exception, match="scope"):
        model.fusion_parameters("all")


@pytest.mark.parametrize("layout", ["faithful", "clean"])
def test_scmrl_temporal_layouts_both_train(layout):
    model = build("scmrl", excite=True, temporal_reshape=layout, attn_variant="temporal")
    out = model(*inputs())
    total_loss(out).backward()
    assert model.block_visual.attn.temporal_reshape == layout
    assert model.block_visual.attn.q.conv.weight.grad.any()


class StatelessSpike(nn.Module):
    """A different neuron: a memoryless threshold, to check that injection reaches every layer."""

    def forward(self, x):
        return (x >= 0.5).to(x.dtype)


def test_injected_neuron_layer_replaces_every_neuron():
    model = build("scmrl", neuron_layer=StatelessSpike)
    assert not any(isinstance(m, MultiStepLIF) for m in model.modules())
    assert sum(isinstance(m, StatelessSpike) for m in model.modules()) > 20
    with FiringRates(model, neuron_types=(StatelessSpike,)) as probe:
        model(*inputs())
    assert len(probe.rates) == sum(isinstance(m, StatelessSpike) for m in model.modules())


def test_neuron_config_reaches_neurons():
    model = build("av-add", threshold=0.5, detach_mem=False, fused=False)
    lifs = [m for m in model.modules() if isinstance(m, MultiStepLIF)]
    assert lifs and all(m.threshold == 0.5 and not m.detach_mem and not m.fused for m in lifs)
    partial_model = build("av-add", neuron_layer=functools.partial(MultiStepLIF, tau=3.0))
    assert all(m.tau == 3.0 for m in partial_model.modules() if isinstance(m, MultiStepLIF))


def test_fused_and_unfused_models_agree():
    a, v = inputs(3)
    fused, ref = build("scmrl", 5, True, fused=True), build("scmrl", 5, True, fused=False)
    out_f, out_r = fused(a, v), ref(a, v)
    assert torch.equal(out_f.logits, out_r.logits)
    total_loss(out_f).backward()
    total_loss(out_r).backward()
    for (name, p), q in zip(fused.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6, msg=name)


UNIMODAL_FEATURES = {"av-add": "fusion-input", "av-concat": "fusion-input", "cmrl": "stem", "scmrl": "stem",
                     "weight-attention": "stem", "sca": "stem", "cmci": "stem"}


@pytest.mark.parametrize("name", sorted(UNIMODAL_FEATURES))
def test_unimodal_features_are_chosen_per_model(name):
    # docs/iemf.md §5 item 1: av-add / av-concat give IEMF the features entering the head (the authors' choice);
    # models with a cross-modal block give the stem output, the only features that are still unimodal.
    model = build(name)
    assert model.unimodal_features == UNIMODAL_FEATURES[name]
    a, v = inputs(2)
    out = model(a, v)
    a0, v0 = model.stem_audio(a), model.stem_visual(v)  # same train-mode batch: the stems recompute the same
    if model.unimodal_features == "stem":
        assert torch.equal(out.feat_audio, a0.mean(dim=3).mean(dim=0))
        assert torch.equal(out.feat_visual, v0.mean(dim=3).mean(dim=0))
        return
    a2, v2 = model.mlp_audio(a0).mean(dim=3), model.mlp_visual(v0).mean(dim=3)  # (T, B, D)
    assert torch.equal(out.feat_audio, a2.mean(dim=0)) and torch.equal(out.feat_visual, v2.mean(dim=0))
    head_input = (torch.cat((out.feat_audio, out.feat_visual), dim=1) if model.interaction == "concat"
                  else out.feat_audio + out.feat_visual)
    torch.testing.assert_close(model.head(head_input), out.logits, rtol=1e-6, atol=1e-6)


def test_unimodal_features_can_be_overridden_and_are_checked():
    model = build("av-add")
    model.unimodal_features = "stem"  # e.g. to compare with the stem choice
    a, v = inputs(2)
    assert torch.equal(model(a, v).feat_audio, model.stem_audio(a).mean(dim=3).mean(dim=0))
    model.unimodal_features = "pre-fusion"
    with pytest.raises(ConfigError, match="unimodal_features"):
        model(a, v)

    class Forgetful(CrossModalResidualSpikformer):
        unimodal_features = "fusion-input"

    with pytest.raises(ValueError, match="not unimodal"):
        Forgetful(K, embed_dim=D, num_heads=4, stem="shallow", in_channels_visual=2)

"""The simple feature pyramid and the downstream registration helpers.

These need neither mmdet nor mmpose: they run in the classification tier.
"""
import pytest
import torch
from mmengine.registry import Registry

from ci2p_mm.downstream import (DOWNSTREAM_MODULES, CI2PSimplePyramid,
                                register_into)
from ci2p_mm.models import CI2PViT


def test_pyramid_shapes_and_channels():
    neck = CI2PSimplePyramid(in_channels=64)
    assert neck.out_channels == [16, 32, 64, 64]
    outs = neck((torch.rand(2, 64, 4, 5), ))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 16, 20), (2, 32, 8, 10),
                                              (2, 64, 4, 5), (2, 64, 2, 3)]
    outs[0].sum().backward()


def test_pyramid_with_output_convs_and_more_levels():
    neck = CI2PSimplePyramid(
        in_channels=64, scale_factors=(2, 1, 0.5, 0.25), out_channels=32)
    assert neck.out_channels == [32] * 4
    outs = neck([torch.rand(1, 16, 9, 9), torch.rand(1, 64, 8, 8)])
    assert [tuple(o.shape) for o in outs] == [(1, 32, 16, 16), (1, 32, 8, 8),
                                              (1, 32, 4, 4), (1, 32, 2, 2)]


def test_pyramid_on_ci2p_vit_featmap():
    vit = CI2PViT(
        arch='deit-t', patch_cfg=dict(pretrained=False), out_type='featmap')
    neck = CI2PSimplePyramid(in_channels=vit.embed_dims)
    with torch.no_grad():
        outs = neck(vit(torch.rand(1, 3, 128, 96)))
    # strides 8, 16, 32, 64
    assert [tuple(o.shape[2:]) for o in outs] == [(16, 12), (8, 6), (4, 3),
                                                  (2, 2)]


@pytest.mark.parametrize('kwargs,pattern', [
    (dict(scale_factors=(3.0, )), 'subset'),
    (dict(scale_factors=()), 'subset'),
    (dict(in_channels=66), 'divisible by 4'),
])
def test_pyramid_refuses_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        CI2PSimplePyramid(**kwargs)


def test_pyramid_names_the_fix_for_token_input():
    neck = CI2PSimplePyramid(in_channels=64)
    with pytest.raises(ValueError, match='featmap'):
        neck((torch.rand(2, 20, 64), ))


def test_register_into_a_downstream_registry():
    registry = Registry('model', scope='fake_downstream')
    assert register_into(registry) == list(DOWNSTREAM_MODULES)
    assert registry.get('CI2PViT') is CI2PViT
    assert register_into(registry) == []  # idempotent

    clash = Registry('model', scope='clashing')
    clash.register_module(name='CI2PViT', module=torch.nn.Identity)
    with pytest.raises(KeyError, match="mmpretrain.CI2PViT"):
        register_into(clash)


def test_register_downstream_skips_missing_and_warns_on_broken(monkeypatch):
    from ci2p_mm.downstream import registry
    monkeypatch.setattr(
        registry,
        'DOWNSTREAM_REGISTRIES',
        {
            'ci2p_no_such_package': 'ci2p_no_such_package.registry',
            'json': 'json.ci2p_no_such_registry',  # installed, but broken
        })
    with pytest.warns(UserWarning, match='json is installed but'):
        assert registry.register_downstream() == {}

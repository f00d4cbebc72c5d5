"""CI2PViT and DualScaleViT: the paper's architectures, mmpretrain's
contract."""
import pytest
import torch
from mmpretrain.models.backbones import VisionTransformer
from torch.nn.modules.batchnorm import _BatchNorm

from ci2p_mm.models import CI2PPatchEmbed, CI2PViT, DualScaleViT

NO_DOWNLOAD = dict(pretrained=False)


@pytest.fixture(scope='module')
def vit_b():
    torch.manual_seed(0)
    return CI2PViT(patch_cfg=NO_DOWNLOAD).eval()


def test_defaults_are_the_papers_ci2p_vit_b(vit_b):
    assert isinstance(vit_b, VisionTransformer)
    assert isinstance(vit_b.patch_embed, CI2PPatchEmbed)
    assert vit_b.patch_embed.ci2p_encoder.codec == 'bmshj2018-factorized'
    assert vit_b.patch_embed.ci2p_encoder.quality == 5
    assert len(vit_b.layers) == 12 and vit_b.embed_dims == 768
    assert vit_b.layers[0].attn.num_heads == 12
    assert vit_b.layers[0].ffn.feedforward_channels == 3072
    assert vit_b.cls_token is None and vit_b.out_type == 'avg_featmap'
    assert vit_b.pos_embed.shape == (1, 64, 768)  # a quarter of ViT-B/16's
    with torch.no_grad():
        (out, ) = vit_b(torch.rand(2, 3, 256, 256))
    assert out.shape == (2, 768)


@pytest.mark.parametrize('out_type,shape', [
    ('featmap', (1, 192, 4, 6)),
    ('raw', (1, 24, 192)),
    ('avg_featmap', (1, 192)),
])
def test_ci2p_vit_out_types_and_other_sizes(out_type, shape):
    model = CI2PViT(
        'deit-t',
        img_size=64,
        patch_cfg=NO_DOWNLOAD,
        out_type=out_type,
        out_indices=(3, -1))
    outs = model(torch.rand(1, 3, 128, 192))  # not img_size: pos resized
    assert len(outs) == 2 and all(o.shape == shape for o in outs)


def test_ci2p_vit_cls_token():
    model = CI2PViT(
        'deit-t',
        img_size=64,
        patch_cfg=NO_DOWNLOAD,
        with_cls_token=True,
        out_type='cls_token')
    assert model(torch.rand(2, 3, 64, 64))[0].shape == (2, 192)


def test_img_size_must_be_a_multiple_of_32():
    with pytest.raises(ValueError, match='multiple of 32'):
        CI2PViT('deit-t', img_size=250, patch_cfg=NO_DOWNLOAD)


def test_frozen_stages_survive_train_mode():
    model = CI2PViT(
        'deit-t',
        img_size=64,
        patch_cfg=NO_DOWNLOAD,
        frozen_stages=2,
        drop_rate=0.1)
    model.train()
    for frozen in (model.patch_embed, model.layers[0], model.layers[1]):
        assert not frozen.training
        assert not any(p.requires_grad for p in frozen.parameters())
    assert model.layers[2].training and not model.pos_embed.requires_grad
    assert all(p.requires_grad for p in model.layers[2].parameters())


def test_norm_eval_keeps_batchnorm_statistics():
    model = CI2PViT(
        'deit-t', img_size=64, patch_cfg=NO_DOWNLOAD, norm_eval=True)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and not any(bn.training for bn in bns)
    before = bns[0].running_mean.clone()
    model(torch.rand(2, 3, 64, 64))
    assert torch.equal(before, bns[0].running_mean)


@pytest.fixture(scope='module')
def ds_b():
    torch.manual_seed(0)
    return DualScaleViT(patch_cfg=NO_DOWNLOAD).eval()


def test_dual_scale_defaults_are_the_papers(ds_b):
    first, last = ds_b.layers[0], ds_b.layers[-1]
    assert len(ds_b.layers) == 12 and ds_b.num_stage1_layers == 6
    assert first.embed_dims == 192 and first.attn.num_heads == 3
    assert first.ffn.feedforward_channels == 768
    assert last.embed_dims == 768 and last.attn.num_heads == 12
    assert last.ffn.feedforward_channels == 3072
    assert ds_b.pos_embed.shape == (1, 256, 192)
    conv = ds_b.cnn_reshape.depthwise_conv.conv
    assert conv.stride == (2, 2) and conv.kernel_size == (5, 5)
    assert ds_b.cnn_reshape.expand_conv.conv.out_channels == 1152
    with torch.no_grad():
        assert ds_b(torch.rand(2, 3, 256, 256))[0].shape == (2, 768)


def test_dual_scale_feature_pyramid():
    model = DualScaleViT(
        't',
        img_size=128,
        patch_cfg=NO_DOWNLOAD,
        out_type='featmap',
        out_indices=(-1, 'enc_s8', 1, 'enc_s2', 'enc_s4'))
    outs = model(torch.rand(2, 3, 128, 192))
    # Ordered by depth: encoder maps, then stage 1 (stride 16), stage 2 (32).
    assert [tuple(o.shape)
            for o in outs] == [(2, 128, 64, 96), (2, 128, 32, 48),
                               (2, 128, 16, 24), (2, 192, 8, 12),
                               (2, 192, 4, 6)]


def test_dual_scale_raw_tokens_and_bad_indices():
    model = DualScaleViT(
        't',
        img_size=64,
        patch_cfg=NO_DOWNLOAD,
        out_type='raw',
        out_indices=(0, 3))
    a, b = model(torch.rand(1, 3, 64, 64))
    assert a.shape == (1, 16, 192) and b.shape == (1, 4, 192)
    with pytest.raises(ValueError, match='stage-2 layers'):
        DualScaleViT('t', patch_cfg=NO_DOWNLOAD, out_indices=0)
    with pytest.raises(ValueError, match="need out_type='featmap'"):
        DualScaleViT('t', patch_cfg=NO_DOWNLOAD, out_indices='enc_s4')
    with pytest.raises(
            ValueError, match=r'Invalid out_indices \[4\]: there '
            r'are 4 layers'):
        DualScaleViT('t', patch_cfg=NO_DOWNLOAD, out_indices=4)
    with pytest.raises(ValueError, match=r'Invalid out_indices \[-5\]'):
        DualScaleViT('t', patch_cfg=NO_DOWNLOAD, out_indices=-5)
    with pytest.raises(ValueError, match="Arch 'q' is not in default archs"):
        DualScaleViT('q', patch_cfg=NO_DOWNLOAD)
    with pytest.raises(ValueError, match='encoder maps are'):
        DualScaleViT(
            't',
            patch_cfg=NO_DOWNLOAD,
            out_type='featmap',
            out_indices='enc_s32')


def test_dual_scale_frozen_stages_and_norm_eval():
    model = DualScaleViT(
        't', patch_cfg=NO_DOWNLOAD, frozen_stages=3, norm_eval=True)
    model.train()
    frozen = [model.patch_embed, model.cnn_reshape, *model.layers[:3]]
    for module in frozen:
        assert not module.training
        assert not any(p.requires_grad for p in module.parameters())
    assert model.layers[3].training
    x = torch.rand(1, 3, 64, 64)
    model(x)[0].sum().backward()
    assert model.layers[3].attn.qkv.weight.grad is not None
    assert model.layers[2].attn.qkv.weight.grad is None


def test_dual_scale_checkpoint_from_another_size_loads():
    small = DualScaleViT('t', img_size=64, patch_cfg=NO_DOWNLOAD)
    large = DualScaleViT('t', img_size=128, patch_cfg=NO_DOWNLOAD)
    large.load_state_dict(small.state_dict())
    assert large.pos_embed.shape == (1, 64, 192)
    assert torch.equal(large.layers[0].attn.qkv.weight,
                       small.layers[0].attn.qkv.weight)


def test_dual_scale_layer_depths_for_layer_decay():
    model = DualScaleViT('t', patch_cfg=NO_DOWNLOAD)
    assert model.get_layer_depth('backbone.pos_embed', 'backbone.') == (0, 6)
    assert model.get_layer_depth('backbone.layers.3.ln1.weight',
                                 'backbone.') == (4, 6)
    assert model.get_layer_depth('head.fc.weight', 'backbone.') == (5, 6)


@pytest.mark.parametrize(
    'backbone', [
        lambda cfg: CI2PViT('deit-t', img_size=64, patch_cfg=cfg),
        lambda cfg: DualScaleViT('t', img_size=64, patch_cfg=cfg),
    ],
    ids=['CI2PViT', 'DualScaleViT'])
def test_one_patch_cfg_contract_for_both_backbones(backbone):
    """The same patch_cfg keys mean the same under both backbones: the
    encoder's arguments reach the encoder, norm_cfg/act_cfg the reshape
    blocks; a key neither takes is refused, naming the ones that exist."""
    model = backbone(
        dict(
            pretrained=False,
            quality=4,
            frozen=False,
            norm_cfg=dict(type='GN', num_groups=8),
            act_cfg=dict(type='GELU')))
    encoders = [
        m for m in model.modules() if type(m).__name__ == 'CI2PEncoder'
    ]
    assert len(encoders) == 1
    assert encoders[0].quality == 4 and not encoders[0].frozen
    reshape = [
        m for m in model.modules()
        if type(m).__name__ in ('PatchReshape', 'CnnReshape')
    ][0]
    kinds = {type(m).__name__ for m in reshape.modules()}
    assert 'GroupNorm' in kinds and 'GELU' in kinds
    assert not {'BatchNorm2d', 'ReLU6'} & kinds
    with pytest.raises(ValueError, match=r"\['qualty'\].*quality.*norm_cfg"):
        backbone(dict(pretrained=False, qualty=4))

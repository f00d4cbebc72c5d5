"""CI2P backbones and SegNetr in mmseg: registration, the shipped configs'
conventions, the CI2P-ViT (single scale) config: UPerNet through the
simple pyramid, and the SegNetr config at full resolution (CPU, generated
data, no downloads)."""
import os.path as osp

import pytest
import torch
import torch.nn as nn
from downstream_utils import (BACKBONE_TYPES, CONFIGS, assert_backbone_builds,
                              build_model, default_scope, require_downstream)

require_downstream('mmseg.models')

from mmengine.config import Config  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402

import ci2p_mm.downstream  # noqa: E402,F401

CI2P_CONFIGS = [
    'upernet_ci2p-vit-ds-b_1xb8-20k_isic2017-224x224.py',
    'upernet_ci2p-vit-ds-b_8xb2-160k_ade20k-512x512.py'
]

VIT_CONFIG = 'upernet_ci2p-vit-b_simple-pyramid_8xb2-160k_ade20k-512x512.py'

mmseg_default_scope = default_scope('mmseg')


def test_segnetr_and_ci2p_backbones_registered_in_mmseg():
    from ci2p_mm.models import SegNetr
    assert MODELS.get('SegNetr') is SegNetr
    assert 'mmseg' in ci2p_mm.downstream.REGISTERED


@pytest.mark.parametrize('type_name', BACKBONE_TYPES)
def test_backbones_build_from_mmseg(type_name):
    assert_backbone_builds(MODELS, type_name)


@pytest.mark.parametrize('name', CI2P_CONFIGS)
def test_ci2p_seg_configs_use_conventions(name):
    cfg = Config.fromfile(osp.join(CONFIGS, name))
    assert cfg.default_scope == 'mmseg'
    assert {'ci2p_mm', 'ci2p_mm.downstream'} <= set(cfg.custom_imports.imports)
    pre = cfg.model.data_preprocessor
    assert pre.mean == [0., 0., 0.] and pre.std == [255., 255., 255.]
    assert pre.bgr_to_rgb
    assert all(s % 32 == 0 for s in pre.size)
    backbone = cfg.model.backbone
    assert backbone.type == 'DualScaleViT' and 'depth' not in backbone
    assert backbone.patch_cfg.frozen and backbone.patch_cfg.pretrained
    assert backbone.out_indices == ('enc_s4', 'enc_s8', 5, 11)
    assert cfg.model.decode_head.in_channels == [128, 128, 192, 768]
    assert backbone.init_cfg == dict(
        type='Pretrained', checkpoint=cfg.pretrained, prefix='backbone.')


def seg_batch(model, batch_size=2, size=(64, 96)):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    h, w = size
    samples = []
    for _ in range(batch_size):
        s = SegDataSample(
            metainfo=dict(
                img_shape=size,
                ori_shape=size,
                pad_shape=size,
                padding_size=[0, 0, 0, 0]))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, h, w)))
        samples.append(s)
    inputs = [
        torch.randint(0, 256, (3, h, w), dtype=torch.uint8)
        for _ in range(batch_size)
    ]
    return dict(inputs=inputs, data_samples=samples)


def test_ci2p_vit_simple_pyramid_upernet_trains_and_predicts():
    """The shipped CI2P-ViT config, shrunk: the single stride-32 map ->
    CI2PSimplePyramid (strides 8-64) -> UPerNet. Loss and backward reach
    the ViT, not the frozen codec; predict gives a label map of the input
    size."""
    cfg = Config.fromfile(osp.join(CONFIGS, VIT_CONFIG))
    assert cfg.model.backbone.type == 'CI2PViT'
    assert cfg.model.neck.type == 'CI2PSimplePyramid'
    assert cfg.model.decode_head.in_channels == [192, 384, 768, 768]
    cfg.model.backbone.update(arch='deit-t', img_size=(64, 96), init_cfg=None)
    cfg.model.backbone.patch_cfg.pretrained = False
    cfg.model.data_preprocessor.size = (64, 96)
    cfg.model.neck.in_channels = 192
    cfg.model.decode_head.update(
        in_channels=[48, 96, 192, 192],
        channels=32,
        num_classes=3,
        norm_cfg=dict(type='BN'))
    cfg.model.auxiliary_head.update(
        in_channels=96, channels=16, num_classes=3, norm_cfg=dict(type='BN'))
    model = build_model(MODELS, cfg.model)
    batch = seg_batch(model)
    model.train()
    data = model.data_preprocessor(batch, True)
    assert 0 <= data['inputs'].min() and data['inputs'].max() <= 1
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    loss.backward()
    encoder = model.backbone.patch_embed.encoder
    assert all(p.grad is None and not p.requires_grad
               for p in encoder.parameters())
    assert all(p.grad is not None for p in model.backbone.layers.parameters())
    model.eval()
    with torch.no_grad():
        out = model.test_step(batch)
    assert out[0].pred_sem_seg.data.shape == (1, 64, 96)


def test_segnetr_config_predicts_at_full_resolution():
    """The shipped SegNetr config (arch 'paper'): the backbone's last map is
    full resolution with C/2 = 32 channels, the head is Figure 1's 1x1
    conv alone, a training step reaches every backbone parameter and
    prediction needs no upsampling."""
    cfg = Config.fromfile(
        osp.join(CONFIGS, 'segnetr_1xb8-20k_isic2017-224x224.py'))
    assert cfg.default_scope == 'mmseg'
    assert cfg.model.backbone.type == 'SegNetr'
    assert cfg.model.backbone.arch == 'paper'
    cfg.model.data_preprocessor.size = (64, 96)
    cfg.model.decode_head.num_classes = 3
    model = build_model(MODELS, cfg.model)
    head = model.decode_head
    assert isinstance(head.convs, nn.Identity)  # num_convs=0
    assert head.dropout is None
    conv_seg = head.conv_seg
    assert (conv_seg.in_channels, conv_seg.kernel_size) == (32, (1, 1))
    batch = seg_batch(model)
    model.train()
    data = model.data_preprocessor(batch, True)
    (features, ) = model.extract_feat(data['inputs'])
    assert features.shape == (2, 32, 64, 96)
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    loss.backward()
    assert all(p.grad is not None for p in model.backbone.parameters())
    model.eval()
    with torch.no_grad():
        logits = model(**model.data_preprocessor(batch, False), mode='tensor')
        out = model.test_step(batch)
    assert logits.shape == (2, 3, 64, 96)
    assert out[0].pred_sem_seg.data.shape == (1, 64, 96)

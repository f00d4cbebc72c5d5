"""Backbones inside mmpretrain's ImageClassifier, and every shipped config."""
import glob
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import ci2p_mm  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def classifier_cfg(backbone):
    return dict(
        type='ImageClassifier',
        backbone=backbone,
        head=dict(
            type='LinearClsHead',
            num_classes=3,
            in_channels=backbone.pop('_width'),
            loss=dict(type='CrossEntropyLoss')),
        data_preprocessor=dict(type='CI2PDataPreprocessor', num_classes=3))


@pytest.mark.parametrize(
    'backbone',
    [
        dict(
            type='CI2PViT',
            arch='deit-t',
            img_size=64,
            patch_cfg=dict(pretrained=False),
            _width=192),
        dict(
            type='DualScaleViT',
            arch='t',
            img_size=64,
            patch_cfg=dict(pretrained=False),
            _width=192),
        dict(
            type='CI2PViT',
            arch='deit-t',
            img_size=64,
            _width=192,
            patch_cfg=dict(pretrained=False, frozen=False)),  # CNN-ViT
    ],
    ids=['CI2PViT', 'DualScaleViT', 'CNN-ViT'])
def test_classifier_loss_and_predict(backbone):
    torch.manual_seed(0)
    model = MODELS.build(classifier_cfg(backbone))
    images = [
        torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8) for _ in range(4)
    ]
    samples = [DataSample().set_gt_label(i % 3) for i in range(4)]
    data = model.data_preprocessor(
        dict(inputs=images, data_samples=samples), training=True)
    losses = model(**data, mode='loss')
    assert torch.isfinite(losses['loss'])
    losses['loss'].backward()
    model.eval()
    with torch.no_grad():
        preds = model(
            **model.data_preprocessor(
                dict(inputs=images, data_samples=samples)),
            mode='predict')
    assert len(preds) == 4 and preds[0].pred_score.shape == (3, )


def test_data_preprocessor_gives_rgb_in_unit_range():
    pre = MODELS.build(dict(type='CI2PDataPreprocessor'))
    bgr = torch.zeros(3, 32, 32, dtype=torch.uint8)
    bgr[0] = 255  # blue, as mmcv decodes it
    out = pre(dict(inputs=[bgr]))['inputs']
    assert out.min() == 0 and out.max() == 1
    assert out[0, 2].eq(1).all() and out[0, 0].eq(0).all()  # RGB: blue last


def test_data_preprocessor_refuses_normalisation():
    with pytest.raises(ValueError, match='mean=.*would normalise'):
        MODELS.build(
            dict(
                type='CI2PDataPreprocessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375]))
    with pytest.raises(ValueError, match='to_rgb=True'):
        MODELS.build(dict(type='CI2PDataPreprocessor', to_rgb=False))
    # The explicit unit scaling is accepted.
    MODELS.build(
        dict(type='CI2PDataPreprocessor', mean=[0, 0, 0], std=[255, 255, 255]))


#: The hybrids' configs (ImageNet-sized, some large) are built, counted and
#: trained in tests/test_hybrids.py; this covers CI2P's and its ViT's. The
#: codec training presets (configs/codec/) build codecs, not classifiers
#: (tests/test_codec_training.py).
HYBRIDS = ('cvt', 'crossvit', 'mobile_former', 'codec')
CONFIGS = sorted(
    p for p in glob.glob(
        osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p and 'downstream' not in p and osp.relpath(
        p, osp.join(REPO, 'configs')).split(os.sep)[0] not in HYBRIDS)


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, REPO) for p in CONFIGS])
def test_every_config_builds_its_model(path):
    cfg = Config.fromfile(path)
    model_cfg = cfg.model
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    backbone = model_cfg.backbone
    if 'patch_cfg' in backbone:
        backbone.patch_cfg.pretrained = False
    model = MODELS.build(model_cfg)
    size = backbone.img_size
    # Latent configs take the codec's [192, H/16, W/16] latents, not images.
    inputs = (
        torch.randn(1, 192, size // 16, size //
                    16) if backbone.get('patch_cfg', {}).get('latent_input')
        else torch.rand(1, 3, size, size))
    with torch.no_grad():
        model.eval()
        out = model(inputs, mode='tensor')
    assert out.shape == (1, model_cfg.head.num_classes)


def test_paper_recipe_in_the_main_config():
    cfg = Config.fromfile(osp.join(REPO, 'configs/ci2p_vit_animals10.py'))
    assert cfg.optim_wrapper.optimizer == dict(
        type='Adam', lr=1e-4, betas=(0.9, 0.999), weight_decay=0)
    assert cfg.train_cfg.max_epochs == 300 and not cfg.param_scheduler
    assert cfg.train_dataloader.batch_size == 128
    assert cfg.auto_scale_lr.base_batch_size == 128
    random_ops = [
        t['type'] for t in cfg.train_pipeline if t['type'].startswith('Random')
    ]
    assert random_ops == ['RandomFlip']
    assert cfg.model.backbone.patch_cfg.pretrained is True
    assert cfg.data_preprocessor.type == 'CI2PDataPreprocessor'
    cnn = Config.fromfile(osp.join(REPO, 'configs/cnn_vit_animals10.py'))
    assert cnn.model.backbone.patch_cfg.frozen is False
    assert cnn.model.backbone.patch_cfg.pretrained is False

"""CI2P backbones in mmdet: RetinaNet configs train, predict and load
classification checkpoints (CPU, generated data, no downloads)."""
import pytest
import torch
# yapf: disable
from downstream_utils import (BACKBONE_TYPES, assert_backbone_builds,
                              assert_backbone_loaded,
                              assert_config_conventions,
                              assert_gradients_reach_vit_not_encoder,
                              build_model, default_scope, load_config,
                              require_downstream,
                              write_classification_checkpoint)

# yapf: enable

require_downstream('mmdet.models')

from mmdet.registry import MODELS  # noqa: E402
from mmdet.structures import DetDataSample  # noqa: E402
from mmdet.testing import demo_mm_inputs  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402

DS_CONFIG = 'retinanet_ci2p-vit-ds-b_fpn_1x_coco.py'
VIT_CONFIG = 'retinanet_ci2p-vit-b_simple-pyramid-fpn_1x_coco.py'
IMG = (3, 128, 160)  # H, W multiples of 32; not square on purpose

mmdet_default_scope = default_scope('mmdet')


def build_detector(cfg):
    return build_model(MODELS, cfg.model)


@pytest.fixture(scope='module', params=[DS_CONFIG, VIT_CONFIG])
def config_name(request):
    return request.param


@pytest.fixture(scope='module')
def detector(config_name):
    return build_detector(load_config(config_name))


def test_configs_use_conventions(config_name):
    assert_config_conventions(config_name, 'mmdet')


def test_feature_shapes_match_fpn(detector, config_name):
    """Backbone (+ pyramid) outputs: the channels FPN is configured for, at
    the strides RetinaNet's anchors assume."""
    x = torch.rand(2, 3, 128, 160)
    with torch.no_grad():
        feats = detector.backbone(x)
        if config_name == DS_CONFIG:
            # enc_s8, layer 5, layer 11
            assert [tuple(f.shape) for f in feats] == [(2, 128, 16, 20),
                                                       (2, 192, 8, 10),
                                                       (2, 768, 4, 5)]
            fpn = detector.neck
        else:
            assert [tuple(f.shape) for f in feats] == [(2, 768, 4, 5)]
            pyramid, fpn = detector.neck
            feats = pyramid(feats)
            assert [tuple(f.shape) for f in feats] == [(2, 192, 16, 20),
                                                       (2, 384, 8, 10),
                                                       (2, 768, 4, 5),
                                                       (2, 768, 2, 3)]
            assert pyramid.out_channels == list(fpn.in_channels)
        assert [f.size(1) for f in feats] == list(fpn.in_channels)
        outs = fpn(feats)
    strides = detector.bbox_head.prior_generator.strides
    assert [s[0] for s in strides] == [8, 16, 32, 64, 128]
    for out, (stride, _) in zip(outs, strides):
        assert out.shape[1] == 256
        assert out.shape[2] == -(-128 // stride)  # ceil


def test_loss_backward_reaches_vit_not_encoder(detector):
    detector.train()
    detector.zero_grad()
    data = detector.data_preprocessor(
        demo_mm_inputs(batch_size=2, image_shapes=IMG, num_classes=80), True)
    assert data['inputs'].min() >= 0 and data['inputs'].max() <= 1
    losses = detector(**data, mode='loss')
    assert set(losses) == {'loss_cls', 'loss_bbox'}
    loss, _ = detector.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    assert_gradients_reach_vit_not_encoder(detector.backbone)
    # norm_eval=True in the configs: BatchNorm of the reshape blocks stays
    # in eval mode while the rest trains
    bns = [
        m for m in detector.backbone.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    ]
    assert bns and not any(m.training for m in bns)
    assert detector.backbone.layers[0].training


def test_predict(detector):
    detector.eval()
    data = detector.data_preprocessor(
        demo_mm_inputs(batch_size=2, image_shapes=IMG, num_classes=80), False)
    with torch.no_grad():
        results = detector(**data, mode='predict')
    assert len(results) == 2
    for res in results:
        assert isinstance(res, DetDataSample)
        assert res.pred_instances.bboxes.shape[1] == 4
        assert len(res.pred_instances.scores) == len(
            res.pred_instances.labels) <= 100


def test_optim_wrapper_builds(detector, config_name):
    cfg = load_config(config_name)
    wrapper = build_optim_wrapper(detector, cfg.optim_wrapper)
    assert type(wrapper.optimizer).__name__ == 'AdamW'


@pytest.mark.parametrize('type_name', BACKBONE_TYPES)
def test_backbone_builds_by_plain_and_cross_scope_name(type_name):
    assert_backbone_builds(MODELS, type_name)


#: Small arches for the backbone-only tests (the shipped configs use 'b').
SMALL = {
    DS_CONFIG: dict(arch='t', out_indices=('enc_s8', 1, 3)),
    VIT_CONFIG: dict(arch='deit-t'),
}


def small_backbone(config_name, **kwargs):
    """The config's backbone, built by mmdet's registry, at a small arch."""
    cfg = load_config(config_name, **SMALL[config_name], **kwargs)
    torch.manual_seed(0)
    backbone = MODELS.build(cfg.model.backbone)
    backbone.init_weights()
    return backbone


def test_frozen_stages(config_name):
    backbone = small_backbone(config_name, frozen_stages=1)
    backbone.train()
    sum(f.sum() for f in backbone(torch.rand(2, 3, 64, 96))).backward()
    assert not backbone.pos_embed.requires_grad
    assert all(p.grad is None and not p.requires_grad
               for p in backbone.patch_embed.parameters())
    assert not backbone.patch_embed.training
    frozen, trained = backbone.layers[0], backbone.layers[1:]
    assert not frozen.training
    assert all(p.grad is None and not p.requires_grad
               for p in frozen.parameters())
    for layer in trained:
        assert layer.training
        assert all(p.grad is not None for p in layer.parameters())


@pytest.mark.parametrize('norm_eval', [False, True])
def test_norm_eval(config_name, norm_eval):
    backbone = small_backbone(config_name, norm_eval=norm_eval)
    backbone.train()
    bns = [
        m for m in backbone.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    ]
    assert bns
    assert all(m.training != norm_eval for m in bns)
    # running statistics move only when BN trains
    before = [m.running_mean.clone() for m in bns]
    backbone(torch.rand(2, 3, 64, 64))
    moved = [not torch.equal(b, m.running_mean) for b, m in zip(before, bns)]
    assert all(moved) if not norm_eval else not any(moved)


#: The classification config whose checkpoints each detector config loads.
CLASSIFICATION = {
    DS_CONFIG: 'ci2p_vit_ds_imagenet.py',
    VIT_CONFIG: 'ci2p_vit_imagenet.py',
}


def test_classification_checkpoint_loads(tmp_path, config_name):
    """A checkpoint of our classification config loads into the detector's
    backbone through init_cfg=Pretrained(prefix='backbone.')."""
    ckpt = str(tmp_path / 'epoch_3.pth')
    state_dict = write_classification_checkpoint(ckpt,
                                                 CLASSIFICATION[config_name])
    cfg = load_config(config_name)
    cfg.model.backbone.init_cfg = dict(
        type='Pretrained', checkpoint=ckpt, prefix='backbone.')
    detector = build_detector(cfg)
    unused = assert_backbone_loaded(detector.backbone, state_dict)
    # only the norm of the classifier's average pooling is left over
    assert unused == ['ln2.bias', 'ln2.weight'], unused
    assert torch.equal(detector.backbone.layers[-1].ffn.layers[1].weight,
                       state_dict['backbone.layers.11.ffn.layers.1.weight'])
    # the codec encoder is the checkpoint's, and stays frozen
    enc = detector.backbone.patch_embed.encoder
    assert not any(p.requires_grad for p in enc.parameters())

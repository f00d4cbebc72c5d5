"""CvT and Mobile-Former as mmdet backbones: the shipped RetinaNet configs
build, their maps fit FPN and the anchors' strides, and a loss step and
predict run (CPU, tiny arches, generated inputs, no downloads)."""
import pytest
import torch
from downstream_utils import CONFIGS, default_scope, require_downstream

require_downstream('mmdet.models')

from mmdet.registry import MODELS  # noqa: E402
from mmdet.testing import demo_mm_inputs  # noqa: E402
from mmengine.config import Config  # noqa: E402

import ci2p_mm.downstream  # noqa: E402,F401

mmdet_default_scope = default_scope('mmdet')

#: config -> (tiny backbone, its FPN in_channels, the shipped in_channels)
CONFIGS_UNDER_TEST = {
    'retinanet_cvt-13_fpn_1x_coco.py': (dict(
        arch=dict(
            embed_dims=[16, 32, 48], depths=[1, 1, 1], num_heads=[1, 2, 3])),
                                        [32, 48], [192, 384]),
    'retinanet_mobile-former-508m_fpn_1x_coco.py': (dict(
        arch=dict(
            stem_channels=8,
            num_tokens=3,
            token_dims=32,
            head_channels=64,
            stages=[[(2, 8, 1, 0)], [(3, 16, 2,
                                      4)], [(3, 24, 2,
                                             4)], [(3, 32, 2,
                                                    4)], [(3, 40, 2, 4)]])),
                                                    [24, 32,
                                                     40], [72, 176, 240]),
}


@pytest.fixture(scope='module', params=sorted(CONFIGS_UNDER_TEST))
def name(request):
    return request.param


def tiny_detector(name):
    backbone, in_channels, _ = CONFIGS_UNDER_TEST[name]
    cfg = Config.fromfile(f'{CONFIGS}/{name}')
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.arch = backbone['arch']
    cfg.model.neck.in_channels = in_channels
    torch.manual_seed(0)
    detector = MODELS.build(cfg.model)
    detector.init_weights()
    return detector


def test_shipped_config_matches_the_standard_backbone(name):
    cfg = Config.fromfile(f'{CONFIGS}/{name}')
    assert {'ci2p_mm', 'ci2p_mm.downstream'} <= set(cfg.custom_imports.imports)
    cfg.model.backbone.init_cfg = None
    backbone = MODELS.build(cfg.model.backbone)
    with torch.no_grad():
        feats = backbone.eval()(torch.rand(1, 3, 64, 96))
    assert [f.size(1) for f in feats] == CONFIGS_UNDER_TEST[name][2]
    strides = [8, 16] if 'cvt' in name else [8, 16, 32]
    assert [64 // f.size(2) for f in feats] == strides


def test_loss_backward_and_predict(name):
    detector = tiny_detector(name)
    detector.train()
    data = detector.data_preprocessor(
        demo_mm_inputs(
            batch_size=2, image_shapes=(3, 128, 160), num_classes=80), True)
    losses = detector(**data, mode='loss')
    loss, _ = detector.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in detector.backbone.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)
    strides = detector.bbox_head.prior_generator.strides
    assert [s[0] for s in strides] == [8, 16, 32, 64, 128]
    detector.eval()
    with torch.no_grad():
        results = detector(
            **detector.data_preprocessor(
                demo_mm_inputs(
                    batch_size=1, image_shapes=(3, 128, 160), num_classes=80),
                False),
            mode='predict')
    assert len(results) == 1 and results[0].pred_instances.bboxes.shape[1] == 4

"""CI2P-ViT^ds in mmpose: the top-down heatmap config trains, predicts and
loads classification checkpoints (CPU, generated data, no downloads)."""
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

require_downstream('mmpose.models')

from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmpose.registry import MODELS  # noqa: E402
from mmpose.structures import PoseDataSample  # noqa: E402
from mmpose.testing import get_packed_inputs  # noqa: E402

CONFIG = 'td-hm_ci2p-vit-ds-b_8xb64-210e_coco-256x192.py'

mmpose_default_scope = default_scope('mmpose')


def build_pose_model(cfg):
    return build_model(MODELS, cfg.model)


def batch():
    # the config's crop size (256x192), heatmaps at stride 4 (64x48)
    return get_packed_inputs(
        batch_size=2,
        img_shape=(256, 192),
        input_size=(192, 256),
        heatmap_size=(48, 64),
        with_simcc_label=False)


@pytest.fixture(scope='module')
def pose_model():
    return build_pose_model(load_config(CONFIG))


def test_config_uses_conventions():
    assert_config_conventions(CONFIG, 'mmpose')


def test_dual_scale_features_feed_the_head(pose_model):
    x = torch.rand(2, 3, 256, 192)
    with torch.no_grad():
        feats = pose_model.backbone(x)
        assert [tuple(f.shape) for f in feats] == [(2, 192, 16, 12),
                                                   (2, 768, 8, 6)]
        fused = pose_model.neck(feats)
        assert [tuple(f.shape) for f in fused] == [(2, 960, 16, 12)]
        heatmaps = pose_model.head(fused)
    assert tuple(heatmaps.shape) == (2, 17, 64, 48)


def test_loss_backward_reaches_vit_not_encoder(pose_model):
    pose_model.train()
    pose_model.zero_grad()
    data = pose_model.data_preprocessor(batch(), True)
    assert data['inputs'].min() >= 0 and data['inputs'].max() <= 1
    losses = pose_model(**data, mode='loss')
    assert 'loss_kpt' in losses
    loss, _ = pose_model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    assert_gradients_reach_vit_not_encoder(pose_model.backbone)
    assert all(p.grad is not None
               for p in pose_model.backbone.cnn_reshape.parameters())


def test_predict(pose_model):
    pose_model.eval()
    data = pose_model.data_preprocessor(batch(), False)
    with torch.no_grad():
        results = pose_model(**data, mode='predict')
    assert len(results) == 2
    for res in results:
        assert isinstance(res, PoseDataSample)
        assert res.pred_instances.keypoints.shape == (1, 17, 2)
        assert res.pred_instances.keypoint_scores.shape == (1, 17)


def test_optim_wrapper_builds(pose_model):
    wrapper = build_optim_wrapper(pose_model,
                                  load_config(CONFIG).optim_wrapper)
    assert type(wrapper.optimizer).__name__ == 'AdamW'


@pytest.mark.parametrize('type_name', BACKBONE_TYPES)
def test_backbone_builds_by_plain_and_cross_scope_name(type_name):
    assert_backbone_builds(MODELS, type_name)


def test_classification_checkpoint_loads(tmp_path):
    """A checkpoint of the 256x256 classifier (configs/ci2p_vit_ds_imagenet.py)
    loads into the 256x192 pose backbone: the position embedding is resized,
    everything else equal."""
    ckpt = str(tmp_path / 'epoch_3.pth')
    state_dict = write_classification_checkpoint(ckpt,
                                                 'ci2p_vit_ds_imagenet.py')
    cfg = load_config(CONFIG)
    cfg.model.backbone.init_cfg = dict(
        type='Pretrained', checkpoint=ckpt, prefix='backbone.')
    model = build_pose_model(cfg)
    unused = assert_backbone_loaded(
        model.backbone, state_dict, resized=('pos_embed', ))
    assert unused == ['ln2.bias', 'ln2.weight'], unused
    assert model.backbone.pos_embed.shape == (1, 16 * 12, 192)
    assert state_dict['backbone.pos_embed'].shape == (1, 16 * 16, 192)

"""End to end in mmpose: the top-down heatmap model with CI2P-ViT^ds trains
on a generated COCO keypoints set through mmengine's Runner (as mmpose's
tools/train.py runs it), the loss falls, the checkpoint is tested with
mmpose's CocoMetric (keypoint AP) and training resumes from it."""
import os.path as osp

from data_gen import make_coco_keypoints
from downstream_utils import load_config, require_downstream
from e2e_utils import train_test_resume

require_downstream('mmpose.models')

INPUT = (64, 64)  # (W, H) of the crops
HEATMAP = (16, 16)


def test_topdown_heatmap_ci2p_vit_ds_end_to_end(tmp_path):
    root = str(tmp_path / 'coco')
    ann = make_coco_keypoints(root, 8)
    cfg = load_config(
        'td-hm_ci2p-vit-ds-b_8xb64-210e_coco-256x192.py',
        arch='t',
        img_size=INPUT[::-1],
        out_indices=(1, 3))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.randomness = dict(seed=0)
    codec = dict(
        type='MSRAHeatmap', input_size=INPUT, heatmap_size=HEATMAP, sigma=2)
    cfg.model.head.update(
        in_channels=192 + 192,
        out_channels=17,
        deconv_out_channels=(32, 32),
        decoder=codec)
    cfg.model.test_cfg.flip_test = False  # the discs' colours are not
    # left/right symmetric, so no flipping in training or testing
    train_pipeline = [
        dict(type='LoadImage'),
        dict(type='GetBBoxCenterScale'),
        dict(type='TopdownAffine', input_size=INPUT),
        dict(type='GenerateTarget', encoder=codec),
        dict(type='PackPoseInputs'),
    ]
    test_pipeline = [
        dict(type='LoadImage'),
        dict(type='GetBBoxCenterScale'),
        dict(type='TopdownAffine', input_size=INPUT),
        dict(type='PackPoseInputs'),
    ]
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[key]
        loader.update(num_workers=0, persistent_workers=False)
        loader.dataset.update(
            data_root=root,
            ann_file=ann,
            data_prefix=dict(img='train/'),
            pipeline=train_pipeline
            if key.startswith('train') else test_pipeline)
        loader.dataset.pop('bbox_file', None)  # ground-truth boxes
    cfg.train_dataloader.batch_size = 4
    for key in ('val_evaluator', 'test_evaluator'):
        cfg[key].ann_file = ann
    cfg.param_scheduler = []  # the base's 500-iteration warm-up
    cfg.optim_wrapper.optimizer.lr = 2e-3
    cfg.train_cfg.max_epochs = 12
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.update(interval=4, save_best=None)
    result = train_test_resume(cfg, 'td_hm_ds', ['coco/AP', 'coco/AR'],
                               dict(max_epochs=14))
    assert osp.isfile(osp.join(cfg.work_dir, 'epoch_14.pth'))
    encoder = result['runner'].model.backbone.patch_embed.encoder
    assert all(not p.requires_grad for p in encoder.parameters())

"""End to end in mmdet: RetinaNet + CI2P-ViT^ds trains on a generated COCO
detection set through mmengine's Runner (as mmdet's tools/train.py runs it),
the loss falls, the checkpoint is tested with mmdet's CocoMetric (bbox mAP)
and training resumes from it."""
import os.path as osp

from data_gen import make_coco_detection
from downstream_utils import load_config, require_downstream
from e2e_utils import train_test_resume

require_downstream('mmdet.models')

SCALE = (128, 96)  # mmdet's Resize scale is (W, H)


def test_retinanet_ci2p_vit_ds_end_to_end(tmp_path):
    root = str(tmp_path / 'coco')
    ann = make_coco_detection(root, 8)
    cfg = load_config(
        'retinanet_ci2p-vit-ds-b_fpn_1x_coco.py',
        arch='t',
        img_size=(96, 128),
        out_indices=('enc_s8', 1, 3))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.randomness = dict(seed=0)
    cfg.model.neck.in_channels = [128, 192, 192]
    cfg.model.bbox_head.num_classes = 1
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[key]
        loader.update(num_workers=0, persistent_workers=False)
        loader.dataset.update(
            data_root=root,
            ann_file=ann,
            data_prefix=dict(img='train/'),
            metainfo=dict(classes=('box', )))
        for t in loader.dataset.pipeline:
            if t['type'] == 'Resize':
                t['scale'] = SCALE
    cfg.train_dataloader.batch_size = 2
    cfg.train_dataloader.dataset.filter_cfg = dict(filter_empty_gt=True)
    for key in ('val_evaluator', 'test_evaluator'):
        cfg[key].ann_file = ann
    cfg.param_scheduler = []  # the 1x schedule's 500-iteration warm-up
    cfg.optim_wrapper.optimizer.lr = 3e-4
    cfg.train_cfg.max_epochs = 6
    cfg.default_hooks.logger.interval = 1
    result = train_test_resume(cfg, 'retinanet_ds',
                               ['coco/bbox_mAP', 'coco/bbox_mAP_50'],
                               dict(max_epochs=7))
    assert osp.isfile(osp.join(cfg.work_dir, 'epoch_7.pth'))
    encoder = result['runner'].model.backbone.patch_embed.encoder
    assert all(not p.requires_grad for p in encoder.parameters())

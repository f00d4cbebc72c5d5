"""End to end in mmseg: SegNetr and UPerNet + CI2P-ViT^ds train on a
generated ISIC 2017-style mask folder through mmengine's Runner (as mmseg's
tools/train.py runs it), the loss falls, the checkpoint is tested with
mmseg's IoUMetric (mIoU, mDice) and training resumes from it."""
import os.path as osp

import pytest
from data_gen import make_isic2017
from downstream_utils import CONFIGS, require_downstream
from e2e_utils import train_test_resume

require_downstream('mmseg.models')

from mmengine.config import Config  # noqa: E402

from ci2p_mm.datasets import convert_isic2017  # noqa: E402

METRICS = ['mIoU', 'mDice', 'aAcc']


@pytest.fixture(scope='module')
def isic_root(tmp_path_factory):
    """A generated ISIC 2017 release, converted by the data preparation
    step users run (tools/dataset_converters/isic2017.py)."""
    src = make_isic2017(
        str(tmp_path_factory.mktemp('isic_raw')), {
            'Training': 8,
            'Validation': 4,
            'Test_v2': 4
        })
    out = str(tmp_path_factory.mktemp('isic2017_seg'))
    assert convert_isic2017(src, out) == {'train': 8, 'val': 4, 'test': 4}
    return out


def small_isic_config(name, data_root, work_dir, size, max_iters):
    """The shipped ISIC config, shrunk for CPU: ``size`` crops, batch 4,
    no workers, constant lr, a checkpoint at the end."""
    cfg = Config.fromfile(osp.join(CONFIGS, name))
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=0)
    for pipeline in (cfg.train_pipeline, cfg.test_pipeline):
        for t in pipeline:
            if t['type'] == 'Resize':
                t['scale'] = size
    cfg.model.data_preprocessor.size = size
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[key]
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.dataset.data_root = data_root
        loader.dataset.pipeline = (
            cfg.train_pipeline
            if key.startswith('train') else cfg.test_pipeline)
    cfg.train_dataloader.batch_size = 4
    cfg.param_scheduler = []
    cfg.train_cfg.max_iters = max_iters
    cfg.default_hooks.logger.interval = 5
    cfg.default_hooks.checkpoint.update(interval=max_iters, save_best=None)
    return cfg


def test_segnetr_isic_end_to_end(isic_root, tmp_path):
    cfg = small_isic_config(
        'segnetr_1xb8-20k_isic2017-224x224.py',
        isic_root,
        str(tmp_path), (32, 32),
        max_iters=24)
    cfg.model.backbone.arch = 't'
    cfg.model.decode_head.in_channels = cfg.model.decode_head.channels = 8
    result = train_test_resume(cfg, 'segnetr', METRICS, dict(max_iters=28))
    assert type(result['runner'].model.backbone).__name__ == 'SegNetr'


def test_upernet_ci2p_vit_ds_isic_end_to_end(isic_root, tmp_path):
    cfg = small_isic_config(
        'upernet_ci2p-vit-ds-b_1xb8-20k_isic2017-224x224.py',
        isic_root,
        str(tmp_path), (64, 64),
        max_iters=24)
    backbone = cfg.model.backbone
    backbone.update(
        arch='t', img_size=(64, 64), out_indices=('enc_s4', 'enc_s8', 1, 3))
    backbone.patch_cfg.pretrained = False  # no download
    backbone.init_cfg = None
    cfg.model.decode_head.update(in_channels=[128, 128, 192, 192], channels=32)
    cfg.model.auxiliary_head.channels = 16
    cfg.optim_wrapper.optimizer.lr = 1e-3
    result = train_test_resume(cfg, 'upernet_ds', METRICS, dict(max_iters=28))
    model = result['runner'].model
    # the codec stayed frozen through training and resuming
    encoder = model.backbone.patch_embed.encoder
    assert not encoder.training
    assert all(not p.requires_grad for p in encoder.parameters())

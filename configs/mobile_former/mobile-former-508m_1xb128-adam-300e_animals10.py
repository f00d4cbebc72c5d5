# Mobile-Former-508M on Animals-10 at 256x256 (fully convolutional on
# the Mobile side; 8x8 local features at the end), the paper's head:
# pooled local features + first global token, two FC layers, h-swish.
# The CI2P paper's recipe (as configs/ci2p_vit_animals10.py): from scratch,
# Adam lr 1e-4, random horizontal flip only, 300 epochs, batch 128.
_base_ = [
    '../_base_/datasets/animals10_bs128.py',
    '../_base_/schedules/adam_1e-4_300e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='ImageClassifier',
    backbone=dict(type='MobileFormer', arch='508m'),
    neck=None,
    head=dict(
        type='StackedLinearClsHead',
        num_classes=10,
        in_channels=240 * 6 + 192,
        mid_channels=[1920],
        norm_cfg=dict(type='BN1d'),
        act_cfg=dict(type='HSwish'),
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))

# mean/std-normalised RGB (the hybrids are not codec-fed), as the ViT-B/16
# baseline (configs/_base_/models/vit_b16.py).
data_preprocessor = dict(
    type='ClsDataPreprocessor',
    num_classes=10,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

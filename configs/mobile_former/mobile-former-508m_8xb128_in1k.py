# Mobile-Former-508M on ImageNet-1k with the authors' recipe (the training
# command in github.com/AAboys/MobileFormer's README, timm 0.3.4 train.py):
# 8 GPUs x 128 images, AdamW lr 1e-3, weight decay 0.2, dropout 0.3 before
# the classifier, no stochastic depth, cosine schedule over 450 epochs
# (timm's defaults: 3 warm-up epochs from 1e-4, min lr 1e-5, label smoothing
# 0.1), RandAugment m9-mstd0.5, Mixup 0.2, random erasing 0.2 (per-pixel),
# no colour jitter. mmpretrain's RandAugment preset is timm's "increasing"
# variant; the authors used the plain one.
# 14.0M params, 511 MFLOPs at 224 (paper: 14.0M, 508M).
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    '../_base_/schedules/imagenet_adamw_warmup_cosine.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='ImageClassifier',
    backbone=dict(type='MobileFormer', arch='508m'),
    neck=None,
    # The paper's head: [pooled local features, first token] -> FC ->
    # BN -> h-swish -> dropout -> FC.
    head=dict(
        type='StackedLinearClsHead',
        num_classes=1000,
        in_channels=240 * 6 + 192,
        mid_channels=[1920],
        dropout_rate=0.3,
        norm_cfg=dict(type='BN1d'),
        act_cfg=dict(type='HSwish'),
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=dict(type='Normal', layer='Linear', std=0.01)),
    train_cfg=dict(augments=dict(type='Mixup', alpha=0.2)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='RandAugment',
        policies='timm_increasing',
        num_policies=2,
        total_level=10,
        magnitude_level=9,
        magnitude_std=0.5,
        hparams=dict(pad_val=[104, 116, 124], interpolation='bicubic')),
    dict(
        type='RandomErasing',
        erase_prob=0.2,
        mode='rand',
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        fill_color=[103.53, 116.28, 123.675],
        fill_std=[57.375, 57.12, 58.395]),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='ResizeEdge',
        scale=256,
        edge='short',
        backend='pillow',
        interpolation='bilinear'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=128, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=64, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# The schedule (imagenet_adamw_warmup_cosine.py) with Mobile-Former's
# settings: weight decay 0.2 (flat parameters decayed), 3 warm-up epochs,
# 450 epochs.
optim_wrapper = dict(
    optimizer=dict(lr=1e-3, weight_decay=0.2),
    paramwise_cfg=dict(flat_decay_mult=1.0))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        by_epoch=True,
        end=3,
        convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=3)
]
train_cfg = dict(max_epochs=450)

# CvT-13 on ImageNet-1k with the authors' recipe
# (github.com/microsoft/CvT, experiments/imagenet/cvt/cvt-13-224x224.yaml):
# 8 GPUs x 256 images, AdamW lr 2.5e-4, weight decay 0.05 (none on norms and
# biases), 5 warm-up epochs, cosine to 1e-5, 300 epochs, RandAugment
# m9-mstd0.5, Mixup 0.8 + CutMix 1.0, label smoothing 0.1, random erasing
# 0.25, bicubic resizing, stochastic depth 0.1 in stage 3, AMP.
# 20.0M params, 4.58 GFLOPs at 224 (paper: 20M, 4.5G).
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    '../_base_/schedules/imagenet_adamw_warmup_cosine.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='ImageClassifier',
    backbone=dict(type='CvT', arch='13', drop_path_rate=0.1),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=384,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02)),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0)
    ]))

train_dataloader = dict(batch_size=256)
val_dataloader = dict(batch_size=64)
test_dataloader = val_dataloader

# The schedule (imagenet_adamw_warmup_cosine.py) with CvT's settings.
optim_wrapper = dict(
    type='AmpOptimWrapper', optimizer=dict(lr=2.5e-4, weight_decay=0.05))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=4e-3,
        by_epoch=True,
        end=5,
        convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=5)
]
auto_scale_lr = dict(base_batch_size=2048)

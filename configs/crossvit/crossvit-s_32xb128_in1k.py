# CrossViT-S on ImageNet-1k with the paper's recipe (DeiT's, as CrossViT
# states): 240x240 input, batch 4096 (32 x 128), AdamW lr 4e-3
# (5e-4 x 4096 / 512), weight decay 0.05, 30 warm-up epochs, cosine to 1e-5,
# 300 epochs, RandAugment m9-mstd0.5, Mixup 0.8 + CutMix 1.0, label
# smoothing 0.1, random erasing 0.25, stochastic depth 0.1; test: shorter
# side 274 (crop ratio 0.875), centre crop 240.
# 26.9M params, 5.63 GFLOPs at 240 (paper: 26.7M, 5.6G).
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    '../_base_/schedules/imagenet_adamw_warmup_cosine.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='ImageClassifier',
    backbone=dict(type='CrossViT', arch='s', img_size=240, drop_path_rate=0.1),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=192 + 384,  # both branches' class tokens
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02)),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0)
    ]))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=240,
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
        erase_prob=0.25,
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
        scale=274,
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=240),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=128, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=64, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# The schedule (imagenet_adamw_warmup_cosine.py) with CrossViT's settings:
# 30 warm-up epochs, no decay on the position embeddings and class tokens.
optim_wrapper = dict(
    optimizer=dict(lr=4e-3, weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={
        '.pos_embed_': dict(decay_mult=0.0),
        '.cls_token_': dict(decay_mult=0.0)
    }))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        end=30,
        convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=30)
]
auto_scale_lr = dict(base_batch_size=4096)

# CvT-W24 at 384x384, the authors' cvt-w24-384x384.yaml: 8 x 128 images,
# lr 1.25e-4, weight decay 0.1, stochastic depth 0.3, test at 384 without
# centre-crop margin. (The paper's CvT-W24 is pre-trained on ImageNet-22k;
# this is the recipe the authors ship for ImageNet-1k.)
# 277.2M params, 194.5 GFLOPs at 384 (paper: 277M, 193.2G).
_base_ = ['./cvt-13_8xb256_in1k.py']

model = dict(
    backbone=dict(arch='w24', drop_path_rate=0.3), head=dict(in_channels=1024))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=384,
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
        type='Resize',
        scale=(384, 384),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=128, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=1.25e-4, weight_decay=0.1))
auto_scale_lr = dict(base_batch_size=1024)

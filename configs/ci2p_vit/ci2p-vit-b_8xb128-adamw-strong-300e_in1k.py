# CI2P-ViT-B on ImageNet-1k with the authors' "strong" recipe: AdamW,
# warm-up + cosine, RandAugment, mixup/cutmix, label smoothing. Batch 1024
# in total (8 GPUs x 128).
_base_ = [
    '../_base_/models/ci2p_vit_b.py',
    '../_base_/datasets/imagenet_bs128_256.py',
    '../_base_/schedules/adamw_strong_300e.py',
    '../_base_/default_runtime.py',
]
model = dict(
    backbone=dict(drop_path_rate=0.1),
    head=dict(
        num_classes=1000,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        topk=(1, 5)),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0)
    ]))
data_preprocessor = dict(num_classes=1000)

train_pipeline = [
    dict(type='SafeLoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=256,
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
    # 'const' erasing: 'rand' mode draws pixels outside 0-255, which the
    # codec (trained on [0, 1]) never saw.
    dict(
        type='RandomErasing',
        erase_prob=0.25,
        mode='const',
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        fill_color=[104, 116, 124]),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# UPerNet with CI2P-ViT^ds (DualScaleViT) on ISIC 2017 lesion segmentation,
# mmseg 1.x. Model: configs/_base_/models/upernet_ci2p_vit_ds.py (codec maps
# at strides 4/8 + both ViT scales).
#
# Needs the downstream extras: bash tools/misc/install_mmcv_full.sh
# Data: docs/segmentation.md. Pretrained backbone: a classification
# checkpoint trained with configs/ci2p_vit_ds_*.py (keys `backbone.*`).
_base_ = [
    'mmseg::_base_/default_runtime.py',
    '../_base_/models/upernet_ci2p_vit_ds.py',
    '../_base_/datasets/isic2017_seg.py',
    '../_base_/schedules/seg_poly_20k.py',
]

custom_imports = dict(
    imports=['ci2p_mm', 'ci2p_mm.downstream'], allow_failed_imports=False)

norm_cfg = dict(type='BN', requires_grad=True)  # one GPU, batch 8
model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    backbone=dict(img_size={{_base_.crop_size}}),
    decode_head=dict(
        channels=256,
        num_classes=2,
        norm_cfg=norm_cfg,
        loss_decode=[
            dict(type='CrossEntropyLoss', loss_weight=1.0),
            dict(type='DiceLoss', use_sigmoid=False, loss_weight=1.0),
        ]),
    auxiliary_head=dict(channels=128, num_classes=2, norm_cfg=norm_cfg))

# ViT fine-tuning: AdamW, no weight decay on norms, biases and the position
# embedding; gradient clipping.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        bias_decay_mult=0.,
        custom_keys={'pos_embed': dict(decay_mult=0.)}),
    clip_grad=dict(max_norm=1.0, norm_type=2))

# UPerNet with CI2P-ViT^ds (DualScaleViT) on ISIC 2017 lesion segmentation,
# mmseg 1.x.
#
# The pyramid UPerNet fuses: the frozen codec encoder's own maps at strides
# 4 and 8 ('enc_s4', 'enc_s8': 128 ch), stage 1 of the ViT at stride 16
# (layer 5: 192 ch) and stage 2 at stride 32 (layer 11: 768 ch).
#
# Needs the downstream extras: bash tools/misc/install_mmcv_full.sh
# Data: docs/segmentation.md. Pretrained backbone: a classification
# checkpoint trained with configs/ci2p_vit_ds_*.py (keys `backbone.*`).
_base_ = [
    'mmseg::_base_/default_runtime.py',
    '../_base_/datasets/isic2017_seg.py',
    '../_base_/schedules/seg_poly_20k.py',
]

custom_imports = dict(
    imports=['ci2p_mm', 'ci2p_mm.downstream'], allow_failed_imports=False)

pretrained = 'checkpoints/ci2p_vit_ds_imagenet.pth'  # classification ckpt
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    # The codec wants unnormalised RGB in [0, 1]: x / 255, BGR -> RGB;
    # crops are multiples of 32 (the backbone's coarsest stride).
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[0., 0., 0.],
        std=[255., 255., 255.],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
        size={{_base_.crop_size}}),
    backbone=dict(
        type='DualScaleViT',  # or 'mmpretrain.DualScaleViT'
        arch='b',
        img_size={{_base_.crop_size}},
        patch_cfg=dict(
            codec='bmshj2018-factorized', quality=5, pretrained=True,
            frozen=True),
        out_type='featmap',
        out_indices=('enc_s4', 'enc_s8', 5, 11),
        drop_path_rate=0.1,
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    decode_head=dict(
        type='UPerHead',
        in_channels=[128, 128, 192, 768],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=256,
        dropout_ratio=0.1,
        num_classes=2,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=[
            dict(type='CrossEntropyLoss', loss_weight=1.0),
            dict(type='DiceLoss', use_sigmoid=False, loss_weight=1.0),
        ]),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=192,
        in_index=2,
        channels=128,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=2,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

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

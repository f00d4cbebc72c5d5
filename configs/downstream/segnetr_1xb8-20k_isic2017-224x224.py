# SegNetr (Cheng et al., MICCAI 2023, arXiv 2307.02953) on ISIC 2017 lesion
# segmentation, mmseg 1.x.
#
# SegNetr's encoder, bottleneck, IRSC skips and decoder form the backbone
# (the skips tie them together, as in mmseg's own UNet backbone); its last
# map is full resolution with C/2 = 32 channels, and the paper's 1x1
# classifier is FCNHead without convs (Figure 1's ``Conv 1x1``), so mmseg's
# EncoderDecoder predicts at full resolution with nothing to upsample. No
# codec here: inputs are mean/std normalised as usual. Trained from scratch.
#
# Needs the downstream extras: bash tools/misc/install_mmcv_full.sh
# Data: docs/segmentation.md (tools/dataset_converters/isic2017.py).
_base_ = [
    'mmseg::_base_/default_runtime.py',
    '../_base_/datasets/isic2017_seg.py',
    '../_base_/schedules/seg_poly_20k.py',
]

custom_imports = dict(
    imports=['ci2p_mm', 'ci2p_mm.downstream'], allow_failed_imports=False)

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
        size={{_base_.crop_size}}),
    backbone=dict(
        type='SegNetr',  # or 'mmpretrain.SegNetr'
        arch='paper',
        patch_sizes=(8, 4, 2, 1),
        global_sizes=(16, 8, 4, 2),
        out_indices=(-1, )),  # (H, W, C/2)
    decode_head=dict(
        type='FCNHead',
        in_channels=32,
        channels=32,
        num_convs=0,
        concat_input=False,
        dropout_ratio=0.0,  # Figure 1: the 1x1 conv alone
        num_classes=2,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=[
            dict(type='CrossEntropyLoss', loss_weight=1.0),
            dict(type='DiceLoss', use_sigmoid=False, loss_weight=1.0),
        ]),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

# AdamW; the schedule (warm-up, poly decay, 20k iterations of batch 8) is
# in _base_/schedules/seg_poly_20k.py.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01))

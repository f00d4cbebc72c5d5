# RetinaNet with Mobile-Former-508M + FPN on COCO, mmdet 3.x: the
# Mobile-Former comparison for retinanet_ci2p_vit_ds_fpn_1x_coco.py.
#
# Stages 2-4 give the local feature maps at strides 8, 16 and 32 (72, 176,
# 240 channels); FPN adds P6-P7 from its input, as RetinaNet (strides
# 8-128) needs. With out_type='featmap' the classifier-only parts (last
# bridge and 1x1 expansion conv) are not built: no unused parameters.
#
# Needs the downstream extras: bash tools/misc/install_mmcv_full.sh
# Pretrained backbone: a checkpoint of
# configs/mobile_former/mobile-former-508m_8xb128_in1k.py (keys `backbone.*`;
# its classifier-only keys are ignored).
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']

custom_imports = dict(
    imports=['ci2p_mm', 'ci2p_mm.downstream'], allow_failed_imports=False)

pretrained = 'checkpoints/mobile-former-508m_in1k.pth'  # classification ckpt

model = dict(
    # mean/std-normalised RGB (the base's), padded to multiples of 32.
    data_preprocessor=dict(pad_size_divisor=32),
    backbone=dict(
        _delete_=True,
        type='MobileFormer',  # or 'mmpretrain.MobileFormer'
        arch='508m',
        out_type='featmap',
        out_indices=(2, 3, 4),
        frozen_stages=0,  # stem and global tokens, as mmdet freezes stems
        norm_eval=True,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(
        type='FPN',
        in_channels=[72, 176, 240],
        out_channels=256,
        start_level=0,
        add_extra_convs='on_input',
        num_outs=5))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.),
    clip_grad=dict(max_norm=1.0, norm_type=2))

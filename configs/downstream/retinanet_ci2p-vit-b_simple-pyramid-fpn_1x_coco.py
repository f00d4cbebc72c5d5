# RetinaNet with CI2P-ViT-B + a simple feature pyramid + FPN on COCO.
#
# CI2PViT has one map (768 ch at stride 32). CI2PSimplePyramid (ViTDet's
# simple feature pyramid) makes strides 8/16/32/64 from it with
# deconvolutions and max pooling: channels [192, 384, 768, 768]. FPN then adds
# P7 (stride 128) as RetinaNet expects.
#
# Needs the downstream extras: bash tools/misc/install_mmcv_full.sh
# Pretrained backbone: a classification checkpoint trained with
# configs/ci2p_vit_*.py (keys `backbone.*`), see `pretrained` below.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']

custom_imports = dict(
    imports=['ci2p_mm', 'ci2p_mm.downstream'], allow_failed_imports=False)

pretrained = 'checkpoints/ci2p_vit_b_imagenet.pth'  # classification ckpt

model = dict(
    # The codec wants unnormalised RGB in [0, 1]: x / 255, BGR -> RGB.
    data_preprocessor=dict(
        mean=[0., 0., 0.],
        std=[255., 255., 255.],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        _delete_=True,
        type='CI2PViT',  # or 'mmpretrain.CI2PViT'
        arch='b',
        img_size=256,  # the pretraining size: position embeddings resize
        patch_cfg=dict(
            codec='bmshj2018-factorized',
            quality=5,
            pretrained=True,
            frozen=True),
        out_type='featmap',
        out_indices=-1,
        with_cls_token=False,
        drop_path_rate=0.1,
        frozen_stages=-1,
        norm_eval=True,  # BN of PatchReshape in eval mode (2 images per GPU)
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    # A list of necks is built as nn.Sequential: pyramid, then FPN.
    neck=[
        dict(
            type='CI2PSimplePyramid',
            in_channels=768,
            scale_factors=(4.0, 2.0, 1.0, 0.5)),
        dict(
            type='FPN',
            in_channels=[192, 384, 768, 768],
            out_channels=256,
            start_level=0,
            add_extra_convs='on_input',
            num_outs=5),
    ])

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        bias_decay_mult=0.,
        custom_keys={'pos_embed': dict(decay_mult=0.)}),
    clip_grad=dict(max_norm=1.0, norm_type=2))

# Top-down heatmap pose estimation (SimpleBaseline-style) with CI2P-ViT^ds on
# COCO keypoints, mmpose 1.x.
#
# Both scales of DualScaleViT are used: layer 5 (192 ch, stride 16) and
# layer 11 (768 ch, stride 32) are concatenated at stride 16 (960 ch) by
# mmpose's FeatureMapProcessor; two deconvolutions bring them to the
# stride-4 heatmaps (64x48 for 256x192 crops).
#
# Needs the downstream extras: bash tools/misc/install_mmcv_full.sh
# Pretrained backbone: a classification checkpoint trained with
# configs/ci2p_vit_ds_*.py (keys `backbone.*`), see `pretrained` below.
_base_ = [
    'mmpose::body_2d_keypoint/topdown_heatmap/coco/'
    'td-hm_res50_8xb64-210e_coco-256x192.py'
]

custom_imports = dict(
    imports=['ci2p_mm', 'ci2p_mm.downstream'], allow_failed_imports=False)

pretrained = 'checkpoints/ci2p_vit_ds_imagenet.pth'  # classification ckpt

model = dict(
    # The codec wants unnormalised RGB in [0, 1]: x / 255, BGR -> RGB.
    data_preprocessor=dict(
        mean=[0., 0., 0.],
        std=[255., 255., 255.],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        _delete_=True,
        type='DualScaleViT',  # or 'mmpretrain.DualScaleViT'
        arch='b',
        img_size=(256, 192),  # (H, W) of the crops
        patch_cfg=dict(
            codec='bmshj2018-factorized',
            quality=5,
            pretrained=True,
            frozen=True),
        out_type='featmap',
        out_indices=(5, 11),
        drop_path_rate=0.1,
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(type='FeatureMapProcessor', select_index=(0, 1), concat=True),
    head=dict(
        in_channels=192 + 768,
        deconv_out_channels=(256, 256),
        deconv_kernel_sizes=(4, 4)))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        bias_decay_mult=0.,
        custom_keys={'pos_embed': dict(decay_mult=0.)}),
    clip_grad=dict(max_norm=1.0, norm_type=2))

# UPerNet with CI2P-ViT (single scale, stride 32) on ADE20K, mmseg 1.x: the
# ViTDet-style simple pyramid (CI2PSimplePyramid) turns the last map (768 ch)
# into strides 8/16/32/64 with [192, 384, 768, 768] channels for UPerNet.
# Everything else (data, recipe, slide inference) as the CI2P-ViT^ds config.
#
# Needs the downstream extras: bash tools/misc/install_mmcv_full.sh
# Pretrained backbone: a classification checkpoint from
# configs/ci2p_vit_*.py (keys `backbone.*`).
_base_ = ['./upernet_ci2p-vit-ds-b_8xb2-160k_ade20k-512x512.py']

pretrained = 'checkpoints/ci2p_vit_imagenet.pth'  # classification ckpt
model = dict(
    backbone=dict(
        _delete_=True,
        type='CI2PViT',  # or 'mmpretrain.CI2PViT'
        arch='b',
        img_size={{_base_.crop_size}},
        patch_cfg=dict(
            codec='bmshj2018-factorized',
            quality=5,
            pretrained=True,
            frozen=True),
        out_type='featmap',
        out_indices=(-1, ),
        drop_path_rate=0.1,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(type='CI2PSimplePyramid', in_channels=768),
    decode_head=dict(in_channels=[192, 384, 768, 768]),
    auxiliary_head=dict(in_channels=384, in_index=1))
